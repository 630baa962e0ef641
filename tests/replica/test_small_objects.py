"""Objects of at most one chunk: read ahead, one worker per location for data and manifest.

Issue 10 (speed on small objects): a small object is read whole before the
write, fanned out without the producer loop, and each location stores its
data copy and its manifest on the same worker. The rules of the streaming
path must hold unchanged.
"""
import io
import json
import threading
import unittest

from modules.errors import LocationUnavailable, SourceStreamError
from modules.testing import FailingSource, payload
from replica.fanout import CHUNK_SIZE, FanOut, read_ahead
from replica.workers import WorkerPool
from simple.simple import SimpleStorage
from tests.replica.helpers import ReplicaTestCase


class _RefusesOne(SimpleStorage):
    """A SimpleStorage whose ``assign`` of one given module_data fails (a full manifest shard)."""

    refused = None

    def assign(self, context, module_data, stream):
        if module_data == self.refused:
            raise LocationUnavailable("refused %s" % module_data, location=self.storage_dir)
        return super().assign(context, module_data, stream)


class TestReadAhead(unittest.TestCase):

    def test_a_source_within_the_limit_is_returned_whole(self):
        data = payload(5000, seed=1)
        whole, rest = read_ahead(io.BytesIO(data), limit=8192)
        self.assertEqual(whole, data)
        self.assertIsNone(rest)

    def test_an_empty_source_is_whole(self):
        self.assertEqual(read_ahead(io.BytesIO(b""), limit=10), (b"", None))

    def test_a_larger_source_yields_every_byte_once(self):
        data = payload(3 * 8192 + 7, seed=2)
        whole, rest = read_ahead(io.BytesIO(data), limit=8192)
        self.assertIsNone(whole)
        parts = []
        for _ in range(100):  # bounded
            chunk = rest.read(4096)
            if not chunk:
                break
            self.assertLessEqual(len(chunk), 4096)
            parts.append(chunk)
        self.assertEqual(b"".join(parts), data)

    def test_a_failing_source_raises_before_anything_is_written(self):
        with self.assertRaises(SourceStreamError):
            read_ahead(FailingSource(payload(100, seed=3), fail_after=50), limit=8192)


class TestRunBuffered(unittest.TestCase):

    def test_every_writer_reads_the_whole_object_then_the_end(self):
        pool = WorkerPool(4, name="test-buffered")
        self.addCleanup(pool.shutdown, 5)
        fanout = FanOut(pool, write_timeout=5, queue_timeout=5)
        data = payload(CHUNK_SIZE, seed=4)
        seen = {}
        lock = threading.Lock()

        def writer(name):
            def write(channel):
                got = channel.read(-1)
                with lock:
                    seen[name] = got
            return write
        result = fanout.run_buffered(data, {name: writer(name) for name in "abc"})
        self.assertEqual(result.failures, {})
        self.assertEqual(result.size, len(data))
        self.assertEqual(seen, {name: data for name in "abc"})

    def test_a_writer_that_stops_early_is_incomplete(self):
        pool = WorkerPool(2, name="test-buffered-early")
        self.addCleanup(pool.shutdown, 5)
        fanout = FanOut(pool, write_timeout=5, queue_timeout=5)
        result = fanout.run_buffered(b"x" * 100, {"lazy": lambda channel: channel.read(10)})
        self.assertIn("lazy", result.incomplete)
        self.assertIn("lazy", result.failures)


class TestSmallObjectWrites(ReplicaTestCase):

    def test_a_manifest_that_cannot_be_stored_removes_its_data_copy(self):
        """Issue 10: data and manifest stored together; a lost manifest still removes the copy."""
        refusing = _RefusesOne(self.dirs[2])
        self.faulty["loc-c"].inner = refusing
        module_data = self.replica.new_data(self.context)
        refusing.refused = json.loads(module_data)["copies"]["loc-c"]["mf"]
        data = payload(4096, seed=5)
        self.replica.assign(self.context, module_data, io.BytesIO(data))  # quorum 2 of 3
        self.assertTrue(self.has_copy(module_data, "loc-a"))
        self.assertFalse(self.has_copy(module_data, "loc-c"),
                         "a data copy without its manifest was left behind")
        self.assertEqual(self.files_under(self.dirs[2]), [])
        self.assertEqual(self.read(module_data), data)
        refusing.refused = None
        report = self.replica.repair(self.context, module_data)
        self.assertIn("loc-c", report["repaired"])
        self.assertTrue(self.has_copy(module_data, "loc-c"))

    def test_small_and_streamed_objects_read_back_and_scrub_clean(self):
        for size in (0, 1, 4096, CHUNK_SIZE, CHUNK_SIZE + 1):
            data = payload(size, seed=size % 251)
            module_data = self.store(data)
            self.assertEqual(self.read(module_data), data)
            report = self.replica.scrub(self.context, module_data)
            self.assertEqual(sorted(report["ok"]), self.names, "size %d" % size)


if __name__ == "__main__":
    unittest.main()
