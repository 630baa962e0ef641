"""One instance, many threads, for a long time: no deadlock, no growth in threads or files."""
import concurrent.futures
import io
import os
import threading
import unittest

from modules.errors import LocationUnavailable
from modules.testing import payload
from tests.replica.helpers import MIB, ReplicaTestCase


def open_fds(root: str) -> int:
    """Open descriptors of this process on files under ``root`` (other tests' noise excluded)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(os.path.join("/proc/self/fd", fd))
        except OSError:
            continue
        if target.startswith(root):
            count += 1
    return count


def pool_threads(name: str) -> int:
    return sum(1 for thread in threading.enumerate() if thread.name.startswith(name + "_"))


class TestPoolSaturation(ReplicaTestCase):
    options = {"workers": 3}

    def test_sixteen_concurrent_assigns_with_a_pool_of_three(self):
        """Each write needs 3 workers at once; 16 writers share 3 workers without deadlock."""

        def write_and_check(index):
            data = payload(MIB + index * 4099, seed=index)
            module_data = self.replica.new_data(self.context)
            self.replica.assign(self.context, module_data, io.BytesIO(data))
            if self.read(module_data) != data:
                raise AssertionError("thread %d read different bytes" % index)
            if not self.replica.available(self.context, module_data):
                raise AssertionError("thread %d: not every copy was written" % index)
            return module_data

        with concurrent.futures.ThreadPoolExecutor(16) as threads:
            futures = [threads.submit(write_and_check, index) for index in range(16)]
            done, pending = concurrent.futures.wait(futures, timeout=120)
        self.assertEqual(pending, set(), "concurrent assigns deadlocked")
        for future in done:
            future.result()
        stats = self.replica.statistics(self.context)
        self.assertEqual(stats["under_replicated"], 0)
        self.assertGreater(stats["workers"]["waits"], 0, "the test did not saturate the pool")
        self.assertEqual(stats["workers"]["busy"], 0)


class TestReadsWhileALocationFlaps(ReplicaTestCase):

    def test_readers_always_get_identical_bytes(self):
        data = payload(2 * MIB + 11, seed=1)
        module_data = self.store(data)
        stop = threading.Event()

        def flap():
            while not stop.is_set():
                self.faulty["loc-a"].fail("read", after_bytes=300000)
                stop.wait(0.002)
                self.faulty["loc-a"].clear()
                stop.wait(0.002)

        def reader(index):
            for _ in range(5):
                with self.replica.get_read_stream(self.context, module_data) as stream:
                    stream.seek(index * 1000)
                    if stream.read() != data[index * 1000:]:
                        raise AssertionError("reader %d got different bytes" % index)

        flapper = threading.Thread(target=flap)
        flapper.start()
        try:
            with concurrent.futures.ThreadPoolExecutor(8) as threads:
                for future in [threads.submit(reader, index) for index in range(8)]:
                    future.result(timeout=60)
        finally:
            stop.set()
            flapper.join()


class TestNoGrowth(ReplicaTestCase):

    def operations(self, rounds):
        for index in range(rounds):
            data = payload(1000 + index, seed=index)
            module_data = self.store(data)
            self.replica.available(self.context, module_data)
            self.replica.get_size(self.context, module_data)
            self.read(module_data)
            self.replica.statistics(self.context)
            self.replica.delete(self.context, module_data)

    def test_threads_and_open_files_do_not_grow_and_close_releases_them(self):
        self.operations(10)  # warm up: the pool starts its threads lazily
        workers = self.replica.statistics(self.context)["workers"]
        threads_warm = pool_threads(workers["name"])
        self.assertEqual(workers["threads"], threads_warm)
        fds_warm = open_fds(self.root)
        self.operations(150)
        threads = pool_threads(workers["name"])
        self.assertLessEqual(threads, self.replica.settings.workers)
        self.assertLessEqual(threads, threads_warm + 3, "threads keep growing with operations")
        self.assertEqual(open_fds(self.root), fds_warm, "open files grew with operations")
        self.replica.close()
        self.assertEqual(pool_threads(workers["name"]), 0, "close() left threads behind")
        self.assertEqual(open_fds(self.root), 0, "close() left files open")

    def test_failed_operations_do_not_leak_either(self):
        self.operations(5)
        name = self.replica.statistics(self.context)["workers"]["name"]
        fds_warm = open_fds(self.root)
        threads_warm = pool_threads(name)
        self.faulty["loc-b"].fail("read", after_bytes=10)
        self.faulty["loc-c"].fail("write", after_bytes=10)
        self.faulty["loc-a"].fail("get_read_stream")
        for index in range(40):
            module_data = self.store(payload(5000, seed=index))
            # loc-a cannot open, loc-b breaks after 10 bytes, loc-c has no copy: no copy can
            # serve the object (before integrity, a 10-byte read was returned as the object).
            with self.assertRaises(LocationUnavailable):
                self.read(module_data)
        self.assertEqual(open_fds(self.root), fds_warm, "failed operations leaked open files")
        self.assertLessEqual(pool_threads(name), threads_warm + 3)


if __name__ == "__main__":
    unittest.main()
