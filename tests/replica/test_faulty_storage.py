"""The fault-injection wrapper itself (modules.testing.faults.FaultyStorage)."""
import io
import threading
import time
import unittest

from modules.errors import InsufficientStorage, LocationUnavailable, ObjectNotFound
from modules.loader import load_module
from modules.testing import StorageModuleTestBase, payload
from modules.testing.faults import FaultyStorage
from simple.simple import SimpleStorage
from tests.replica.helpers import temp_dir


class TestFaultyStorageConformance(StorageModuleTestBase, unittest.TestCase):
    """Without faults, the wrapper is a conforming module."""

    def make_module(self):
        return FaultyStorage(SimpleStorage(temp_dir(self)))


class TestFaultyStorage(unittest.TestCase):

    def setUp(self):
        self.faulty = FaultyStorage(SimpleStorage(temp_dir(self)), name="dc1")
        self.addCleanup(self.faulty.close)

    def store(self, data):
        module_data = self.faulty.new_data(None)
        self.faulty.assign(None, module_data, io.BytesIO(data))
        return module_data

    def test_fail_a_method_a_number_of_times(self):
        module_data = self.store(b"data")
        self.faulty.fail("get_size", times=2)
        for _ in range(2):
            with self.assertRaisesRegex(LocationUnavailable, "dc1"):
                self.faulty.get_size(None, module_data)
        self.assertEqual(self.faulty.get_size(None, module_data), 4)
        self.assertEqual(self.faulty.calls["get_size"], 3)

    def test_fail_with_a_chosen_error(self):
        self.faulty.fail("new_data", InsufficientStorage)
        with self.assertRaises(InsufficientStorage):
            self.faulty.new_data(None)
        self.faulty.fail("new_data", ValueError("boom"))
        with self.assertRaisesRegex(ValueError, "boom"):
            self.faulty.new_data(None)

    def test_fail_after_bytes_written_keeps_nothing(self):
        self.faulty.fail("write", after_bytes=100000)
        module_data = self.faulty.new_data(None)
        with self.assertRaises(LocationUnavailable):
            self.faulty.assign(None, module_data, io.BytesIO(payload(300000)))
        self.assertFalse(self.faulty.available(None, module_data))

    def test_fail_after_bytes_read(self):
        data = payload(300000, seed=1)
        module_data = self.store(data)
        self.faulty.fail("read", after_bytes=1000, times=1)
        with self.faulty.get_read_stream(None, module_data) as stream:
            self.assertEqual(stream.read(1000), data[:1000])
            with self.assertRaises(LocationUnavailable):
                stream.read(5000)
            self.assertEqual(stream.tell(), 1000, "a failed read must not move the position")
        with self.faulty.get_read_stream(None, module_data) as stream:
            self.assertEqual(stream.read(), data)

    def test_hang_for_seconds_or_until_released(self):
        self.faulty.hang("available", seconds=0.05)
        module_data = self.faulty.new_data(None)
        self.assertFalse(self.faulty.available(None, module_data))
        self.faulty.hang("available")
        result = []
        thread = threading.Thread(target=lambda: result.append(
            self.faulty.available(None, module_data)))
        thread.start()
        time.sleep(0.05)
        self.assertEqual(result, [], "a hung call returned before release")
        self.faulty.release()
        thread.join(10)
        self.assertEqual(result, [False])

    def test_report_capacity(self):
        self.faulty.report_capacity(total=100, free=10, used=90)
        self.assertEqual(self.faulty.statistics(None)["capacity"],
                         {"total": 100, "free": 10, "used": 90})
        self.faulty.report_capacity()
        self.assertGreater(self.faulty.statistics(None)["capacity"]["total"], 100)

    def test_down_and_up(self):
        module_data = self.store(b"x")
        self.faulty.down()
        for call in (lambda: self.faulty.available(None, module_data),
                     lambda: self.faulty.get_read_stream(None, module_data),
                     lambda: self.faulty.statistics(None)):
            with self.assertRaises(LocationUnavailable):
                call()
        self.faulty.new_data(None)  # allocation is local; down leaves it alone
        self.faulty.up()
        self.assertTrue(self.faulty.available(None, module_data))

    def test_unknown_points_are_refused(self):
        with self.assertRaises(ValueError):
            self.faulty.fail("explode")
        with self.assertRaises(ValueError):
            self.faulty.fail("delete", after_bytes=3)

    def test_configurable_through_the_loader(self):
        directory = temp_dir(self)
        module = load_module("modules.testing.faults.FaultyStorage", {
            "module": "simple.simple.SimpleStorage", "args": [directory], "name": "x"})
        self.addCleanup(module.close)
        with self.assertRaises(ObjectNotFound):
            module.get_size(None, module.new_data(None))


if __name__ == "__main__":
    unittest.main()
