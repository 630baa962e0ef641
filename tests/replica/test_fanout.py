"""The fan-out writer, its channels and the worker pool, with real threads."""
import hashlib
import io
import threading
import unittest

from modules.errors import LocationUnavailable, SourceStreamError
from modules.testing import FailingSource, payload
from replica.fanout import ChunkChannel, FanOut
from replica.workers import WorkerPool
from tests.replica.helpers import MIB, wait_until


def digest_writer(results, name, read_size=65536):
    """A writer that hashes what it reads (like a child's assign would store it)."""
    def write(channel):
        hasher = hashlib.sha256()
        while True:
            chunk = channel.read(read_size)
            if not chunk:
                break
            hasher.update(chunk)
        results[name] = hasher.hexdigest()
    return write


class TestChunkChannel(unittest.TestCase):

    def test_reads_split_and_join_chunks(self):
        channel = ChunkChannel(depth=4)
        self.assertTrue(channel.put(b"abcdef", 1))
        self.assertTrue(channel.put(b"gh", 1))
        self.assertTrue(channel.put(b"", 1))
        self.assertEqual(channel.read(4), b"abcd")
        self.assertEqual(channel.read(100), b"ef")
        self.assertEqual(channel.read(), b"gh")
        self.assertEqual(channel.read(1), b"")
        self.assertTrue(channel.reached_eof)
        self.assertEqual(channel.tell(), 8)

    def test_a_whole_chunk_is_handed_over_without_a_copy(self):
        chunk = b"x" * 1000
        channel = ChunkChannel()
        channel.put(chunk, 1)
        self.assertIs(channel.read(1000), chunk)

    def test_readinto(self):
        channel = ChunkChannel()
        channel.put(b"hello", 1)
        buffer = bytearray(3)
        self.assertEqual(channel.readinto(buffer), 3)
        self.assertEqual(bytes(buffer), b"hel")

    def test_put_waits_for_room_and_stalls_after_the_timeout(self):
        channel = ChunkChannel(depth=2)
        channel.put(b"1", 1)
        channel.put(b"2", 1)
        from replica.fanout import _Stalled
        with self.assertRaises(_Stalled):
            channel.put(b"3", 0.05)
        self.assertEqual(channel.read(1), b"1")
        self.assertTrue(channel.put(b"3", 0.05))

    def test_abort_makes_the_reader_fail(self):
        channel = ChunkChannel()
        channel.put(b"queued", 1)
        channel.abort("the source broke")
        with self.assertRaisesRegex(SourceStreamError, "the source broke"):
            channel.read(10)

    def test_a_finished_consumer_releases_the_producer(self):
        channel = ChunkChannel(depth=1)
        channel.put(b"1", 1)
        threading.Timer(0.05, channel.consumer_finished).start()
        self.assertFalse(channel.put(b"2", 10))

    def test_not_seekable(self):
        self.assertFalse(ChunkChannel().seekable())
        self.assertTrue(ChunkChannel().readable())


class TestFanOut(unittest.TestCase):

    def setUp(self):
        self.pool = WorkerPool(4)
        self.addCleanup(self.pool.shutdown)
        self.fanout = FanOut(self.pool, write_timeout=5, queue_timeout=5)

    def test_every_writer_gets_every_byte(self):
        data = payload(5 * MIB + 7, seed=1)
        results = {}
        result = self.fanout.run(io.BytesIO(data), {
            name: digest_writer(results, name, size)
            for name, size in (("a", 1000), ("b", 65536), ("c", 3 * MIB))})
        expected = hashlib.sha256(data).hexdigest()
        self.assertEqual(results, {"a": expected, "b": expected, "c": expected})
        self.assertEqual(result.failures, {})
        self.assertEqual(result.size, len(data))

    def test_a_failing_writer_drops_out_and_the_others_finish(self):
        data = payload(6 * MIB, seed=2)
        results = {}

        def broken(channel):
            channel.read(MIB)
            raise LocationUnavailable("disk gone", location="b")

        result = self.fanout.run(io.BytesIO(data), {
            "a": digest_writer(results, "a"), "b": broken, "c": digest_writer(results, "c")})
        self.assertEqual(set(result.failures), {"b"})
        self.assertIn("disk gone", str(result.failures["b"]))
        self.assertEqual(results["a"], hashlib.sha256(data).hexdigest())
        self.assertEqual(results["c"], results["a"])

    def test_source_failure_aborts_every_writer(self):
        seen = {}

        def writer(name):
            def write(channel):
                try:
                    while channel.read(65536):
                        pass
                except SourceStreamError as error:
                    seen[name] = error
                    raise
            return write

        with self.assertRaises(SourceStreamError):
            self.fanout.run(FailingSource(payload(3 * MIB), 2 * MIB + 1),
                            {"a": writer("a"), "b": writer("b")})
        self.assertEqual(set(seen), {"a", "b"}, "every writer must see the abort")
        self.assertEqual(self.pool.stats()["busy"], 0)

    def test_text_source_is_refused(self):
        with self.assertRaisesRegex(SourceStreamError, "binary"):
            self.fanout.run(io.StringIO("text"), {"a": digest_writer({}, "a")})

    def test_a_stalled_writer_is_dropped_after_write_timeout(self):
        fanout = FanOut(self.pool, write_timeout=0.2, queue_timeout=5)
        release = threading.Event()
        results = {}

        def stuck(channel):
            channel.read(1)
            release.wait(10)
            channel.read(1)  # the aborted channel raises here

        data = payload(8 * MIB, seed=3)
        result = fanout.run(io.BytesIO(data), {"a": stuck, "b": digest_writer(results, "b")})
        self.assertIn("stopped reading", str(result.failures["a"]))
        self.assertEqual(result.dropped, {"a"})
        self.assertEqual(results["b"], hashlib.sha256(data).hexdigest())
        release.set()
        self.assertTrue(wait_until(lambda: self.pool.stats()["busy"] == 0))

    def test_a_writer_that_returns_early_is_incomplete(self):
        def lazy(channel):
            channel.read(10)

        result = self.fanout.run(io.BytesIO(payload(3 * MIB)), {"a": lazy})
        self.assertEqual(result.incomplete, {"a"})
        self.assertIn("returned from assign", str(result.failures["a"]))

    def test_memory_stays_bounded_whatever_the_object_size(self):
        """At most depth chunks wait in a channel, however slow the writer."""
        depth_seen = []
        release = threading.Event()

        def slow(channel):
            release.wait(10)
            while True:
                with channel._cond:
                    depth_seen.append(len(channel._chunks))
                if not channel.read(MIB):
                    break

        threading.Timer(0.1, release.set).start()
        self.fanout.run(io.BytesIO(bytes(32 * MIB)), {"a": slow})
        self.assertLessEqual(max(depth_seen), 4)

    def test_no_free_workers_in_time(self):
        pool = WorkerPool(2)
        self.addCleanup(pool.shutdown)
        self.assertTrue(pool.reserve(2, 0))
        fanout = FanOut(pool, write_timeout=1, queue_timeout=0.05)
        with self.assertRaisesRegex(LocationUnavailable, "workers stayed busy"):
            fanout.run(io.BytesIO(b"x"), {"a": digest_writer({}, "a")})
        pool.release(2)


class TestWorkerPool(unittest.TestCase):

    def test_reserve_never_exceeds_the_size(self):
        pool = WorkerPool(3)
        self.addCleanup(pool.shutdown)
        self.assertTrue(pool.reserve(2, 0))
        self.assertFalse(pool.reserve(2, 0))
        self.assertTrue(pool.reserve(1, 0))
        with self.assertRaises(ValueError):
            pool.reserve(4, 0)
        pool.release(3)
        self.assertEqual(pool.stats()["busy"], 0)

    def test_a_task_frees_its_slot_however_it_ends(self):
        pool = WorkerPool(1)
        self.addCleanup(pool.shutdown)
        pool.reserve(1, 0)
        future = pool.submit(lambda: 1 / 0)
        with self.assertRaises(ZeroDivisionError):
            future.result(5)
        self.assertTrue(wait_until(lambda: pool.stats()["busy"] == 0))

    def test_closed_pool_refuses_work(self):
        pool = WorkerPool(1)
        pool.shutdown()
        with self.assertRaises(LocationUnavailable):
            pool.reserve(1, 0)


if __name__ == "__main__":
    unittest.main()
