"""Temporaries of writes cut off by a crash are counted and swept (issue 9).

A real writer process is killed with SIGKILL in the middle of an ``assign``;
what it leaves behind shows in ``statistics`` and is removed by ``repair``
once older than ``temp_grace`` (never while fresh: another process may be
writing it).
"""
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from modules.errors import ConfigurationError, InvalidModuleData, ObjectNotFound
from simple.simple import SimpleStorage

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: A writer that streams into SimpleStorage forever, until it is killed.
_WRITER = textwrap.dedent("""
    import io, sys, time
    sys.path.insert(0, sys.argv[2])
    from simple.simple import SimpleStorage

    class Endless(io.RawIOBase):
        def readable(self):
            return True
        def readinto(self, buffer):
            time.sleep(0.01)
            buffer[:4096] = b"x" * 4096
            return 4096

    storage = SimpleStorage(sys.argv[1])
    storage.assign(None, storage.new_data(None), Endless())
""")


class TestTemporaries(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="vsm-simple-temp-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.storage = SimpleStorage(self.directory)

    def temporaries(self):
        """Paths of the temporary files under the storage directory."""
        return sorted(os.path.join(base, name) for base, _, names in os.walk(self.directory)
                      for name in names if name.startswith(".tmp-"))

    def age(self, path, seconds):
        then = time.time() - seconds
        os.utime(path, (then, then))

    def kill_a_writer(self):
        """Start a writer process, wait until its temporary grows, SIGKILL it."""
        process = subprocess.Popen([sys.executable, "-c", _WRITER, self.directory, _ROOT])
        self.addCleanup(process.wait, 10)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        deadline = time.monotonic() + 20  # bounds the wait only
        while time.monotonic() < deadline:
            paths = self.temporaries()
            if paths and os.path.getsize(paths[0]):
                break
            self.assertIsNone(process.poll(), "the writer ended by itself")
            time.sleep(0.02)
        else:
            self.fail("the writer never started writing")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        (path,) = self.temporaries()
        return path

    def test_a_killed_write_is_counted_then_swept_after_the_grace_period(self):
        """Regression (issue 9): kill -9 left temporaries that nothing removed or reported."""
        left = self.kill_a_writer()
        size = os.path.getsize(left)
        self.assertEqual(self.storage.statistics(None)["temporaries"],
                         {"files": 1, "bytes": size})
        report = self.storage.repair(None)
        self.assertEqual((report["temporaries_removed"], report["temporaries_kept"]), (0, 1),
                         "a fresh temporary was touched")
        self.assertTrue(os.path.exists(left))
        self.age(left, 3601)
        report = self.storage.repair(None)
        self.assertEqual(report["temporaries_removed"], 1)
        self.assertEqual(report["bytes_removed"], size)
        self.assertEqual((report["reclaimed"], report["failed"]), (1, {}))
        self.assertFalse(os.path.exists(left))
        self.assertEqual(os.listdir(self.directory), [], "the emptied shard is removed too")
        self.assertEqual(self.storage.statistics(None)["temporaries"], {"files": 0, "bytes": 0})

    def test_objects_and_fresh_temporaries_are_never_removed(self):
        module_data = self.storage.new_data(None)
        self.storage.assign(None, module_data, io.BytesIO(b"kept"))
        object_path = os.path.join(self.directory, *module_data.split("/"))
        self.age(object_path, 10 * 86400)
        fresh = os.path.join(os.path.dirname(object_path), ".tmp-%s-0000aaaa" % module_data[-32:])
        with open(fresh, "wb") as file:
            file.write(b"in progress")
        report = self.storage.repair(None)
        self.assertEqual(report["temporaries_removed"], 0)
        self.assertTrue(os.path.exists(fresh))
        with self.storage.get_read_stream(None, module_data) as stream:
            self.assertEqual(stream.read(), b"kept")

    def test_old_temporaries_next_to_objects_are_swept(self):
        module_data = self.storage.new_data(None)
        self.storage.assign(None, module_data, io.BytesIO(b"data"))
        shard = os.path.join(self.directory, *module_data.split("/")[:2])
        legacy = os.path.join(shard, ".tmp-%s-deadbeef" % module_data.split("/")[-1])
        with open(legacy, "wb") as file:
            file.write(b"x" * 100)
        self.age(legacy, 7200)
        report = self.storage.repair(None)
        self.assertEqual((report["temporaries_removed"], report["bytes_removed"]), (1, 100))
        self.assertFalse(os.path.exists(legacy))
        self.assertTrue(self.storage.available(None, module_data))

    def test_repair_of_one_object_sweeps_only_its_temporaries(self):
        first, second = self.storage.new_data(None), self.storage.new_data(None)
        paths = {}
        for module_data in (first, second):
            shard = os.path.join(self.directory, *module_data.split("/")[:2])
            os.makedirs(shard, exist_ok=True)
            paths[module_data] = os.path.join(shard, ".tmp-%s-12345678"
                                              % module_data.split("/")[-1])
            with open(paths[module_data], "wb") as file:
                file.write(b"partial")
            self.age(paths[module_data], 7200)
        self.storage.assign(None, first, io.BytesIO(b"complete"))
        report = self.storage.repair(None, first)
        self.assertEqual(report["temporaries_removed"], 1)
        self.assertFalse(os.path.exists(paths[first]))
        self.assertTrue(os.path.exists(paths[second]))
        # An object without its file: the temporary is swept, and the loss is reported.
        with self.assertRaises(ObjectNotFound):
            self.storage.repair(None, second)
        self.assertFalse(os.path.exists(paths[second]))
        with self.assertRaises(InvalidModuleData):
            self.storage.repair(None, "../../etc/passwd")

    def test_repair_of_an_object_whose_file_is_gone_raises_object_not_found(self):
        """attack2 finding: ``vsm repair`` of a ``simple`` policy counted objects whose data
        file was gone as "checked" and exited 0 (13 of 155 objects were unreadable); the
        contract says repair(context, module_data) raises ObjectNotFound then."""
        module_data = self.storage.new_data(None)
        self.storage.assign(None, module_data, io.BytesIO(b"data"))
        self.assertIsInstance(self.storage.repair(None, module_data), dict)
        os.unlink(os.path.join(self.directory, module_data))
        with self.assertRaisesRegex(ObjectNotFound, module_data.split("/")[-1]):
            self.storage.repair(None, module_data)

    def test_temp_grace_option(self):
        storage = SimpleStorage(self.directory, temp_grace="60")
        self.assertEqual(storage.temp_grace, 60.0)
        self.assertTrue(storage.capabilities["repair"])
        for bad in ("soon", 0, -5, True, float("inf")):
            with self.subTest(temp_grace=bad), self.assertRaises(ConfigurationError):
                SimpleStorage(self.directory, temp_grace=bad)


if __name__ == "__main__":
    unittest.main()
