"""ReadStream: complete reads from a primitive that returns short pieces."""
import io
import random
import unittest

from modules.streams import ReadStream


class _Trickle(ReadStream):
    """Serves ``data`` a few bytes per primitive call, as a slow network would."""

    def __init__(self, data: bytes):
        super().__init__(len(data))
        self._data = data
        self._sizes = random.Random(3)
        self.released = 0

    def _read_at(self, position, size):
        return self._data[position:position + min(size, self._sizes.randint(1, 7000))]

    def _release(self):
        self.released += 1


class TestReadStream(unittest.TestCase):
    def test_read_returns_everything_asked_for_despite_short_primitive_reads(self):
        """Regression: read() and read(n) returned after one short primitive call."""
        data = bytes(range(256)) * 5000
        stream = _Trickle(data)
        self.assertEqual(stream.read(100000), data[:100000])
        self.assertEqual(stream.read(), data[100000:])
        stream.seek(-10, io.SEEK_END)
        self.assertEqual(stream.read(50), data[-10:])
        self.assertEqual(stream.read(), b"")

    def test_a_failed_read_leaves_the_position(self):
        stream = _Trickle(bytes(100000))
        original = stream._read_at
        calls = []

        def failing(position, size):
            calls.append(position)
            if len(calls) == 3:
                raise OSError("gone")
            return original(position, size)

        stream._read_at = failing
        stream.seek(10)
        with self.assertRaises(OSError):
            stream.read(50000)
        self.assertEqual(stream.tell(), 10)
        self.assertEqual(len(stream.read(50000)), 50000)

    def test_seek_rules_and_close(self):
        stream = _Trickle(b"0123456789")
        self.assertEqual(stream.seek(3), 3)
        self.assertEqual(stream.seek(2, io.SEEK_CUR), 5)
        self.assertEqual(stream.seek(-1, io.SEEK_END), 9)
        with self.assertRaises(ValueError):
            stream.seek(-20, io.SEEK_END)
        with self.assertRaises(ValueError):
            stream.seek(0, 7)
        with stream:
            pass
        stream.close()
        self.assertEqual(stream.released, 1)
        with self.assertRaises(ValueError):
            stream.read()
