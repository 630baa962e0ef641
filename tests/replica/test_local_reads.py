"""Verified reads of local copies (issue 10): read in the caller's thread, verified behind on a
worker — and still never a damaged byte, with failover to another copy mid-stream.

The other integrity tests wrap locations in FaultyStorage, whose streams have no file
descriptor, so they exercise the read-ahead path for remote copies; these use plain
``file://`` locations, whose streams are local files.
"""
import io
import json
import os
import unittest

from modules.errors import DataCorrupted
from modules.testing import payload
from replica.replica import ReplicaStorage
from replica.verified import VerifiedReadStream
from tests.replica.helpers import MIB, temp_dir


class LocalCase(unittest.TestCase):

    def setUp(self):
        root = temp_dir(self)
        self.dirs = [os.path.join(root, name) for name in ("a", "b", "c")]
        for directory in self.dirs:
            os.mkdir(directory)
        self.replica = ReplicaStorage(*["file://%s#%s" % (directory, os.path.basename(directory))
                                        for directory in self.dirs])
        self.addCleanup(self.replica.close)
        self.data = payload(6 * MIB + 321, seed=31)
        self.module_data = self.replica.new_data(None)
        self.replica.assign(None, self.module_data, io.BytesIO(self.data))

    def copy_path(self, index: int) -> str:
        name = os.path.basename(self.dirs[index])
        child = json.loads(self.module_data)["copies"][name]["md"]
        return os.path.join(self.dirs[index], *child.split("/"))

    def damage(self, index: int, offset: int) -> None:
        with open(self.copy_path(index), "r+b") as handle:
            handle.seek(offset)
            value = handle.read(1)[0]
            handle.seek(offset)
            handle.write(bytes([value ^ 0x55]))

    def read_all(self, piece: int = MIB) -> bytes:
        parts = []
        with self.replica.get_read_stream(None, self.module_data) as stream:
            self.assertIsInstance(stream, VerifiedReadStream)
            while True:
                chunk = stream.read(piece)
                if not chunk:
                    return b"".join(parts)
                parts.append(chunk)


class TestLocalReads(LocalCase):

    def test_whole_object_in_pieces_of_every_size(self):
        for piece in (MIB, 300000, 3 * MIB + 1):
            with self.subTest(piece=piece):
                self.assertEqual(self.read_all(piece), self.data)

    def test_a_damaged_block_is_read_from_another_copy(self):
        for block in (0, 1, 3, 6):
            with self.subTest(block=block):
                self.damage(0, block * MIB + 17)
                self.assertEqual(self.read_all(), self.data)
                self.damage(0, block * MIB + 17)  # undo

    def test_damage_found_while_reading_is_recorded(self):
        self.damage(0, 4 * MIB + 1)
        self.assertEqual(self.read_all(), self.data)
        operations = self.replica.statistics(None)["operations"]
        self.assertEqual(operations["damaged_copies_found"], 1)

    def test_copy_truncated_after_the_stream_opened(self):
        with self.replica.get_read_stream(None, self.module_data) as stream:
            first = stream.read(MIB)
            with open(self.copy_path(0), "r+b") as handle:
                handle.truncate(2 * MIB + 5)
            rest = stream.read()
        self.assertEqual(first + rest, self.data)

    def test_same_block_damaged_everywhere_never_returns_it(self):
        for index in range(3):
            self.damage(index, 5 * MIB + 9)
        with self.replica.get_read_stream(None, self.module_data) as stream:
            good = stream.read(5 * MIB)
            with self.assertRaises(DataCorrupted):
                stream.read(MIB)
        self.assertEqual(good, self.data[:5 * MIB])

    def test_seeks_backwards_and_forwards(self):
        with self.replica.get_read_stream(None, self.module_data) as stream:
            stream.seek(4 * MIB + 10)
            self.assertEqual(stream.read(100), self.data[4 * MIB + 10:4 * MIB + 110])
            stream.seek(10)
            self.assertEqual(stream.read(2 * MIB), self.data[10:2 * MIB + 10])
            stream.seek(-50, io.SEEK_END)
            self.assertEqual(stream.read(), self.data[-50:])

    def test_closing_mid_read_leaves_no_busy_worker(self):
        with self.replica.get_read_stream(None, self.module_data) as stream:
            stream.read(MIB + 1)
        self.assertEqual(self.replica.statistics(None)["workers"]["busy"], 0)


if __name__ == "__main__":
    unittest.main()
