"""Health per direction: reads and writes are judged and error-limited apart (issue 9)."""
import io
import os
import shutil
import subprocess
import sys
import threading
import unittest

from modules.errors import LocationUnavailable
from modules.host.status_page import ModuleView, render_status_page
from modules.host.store import ModuleConfig
from modules.testing import payload
from replica.replica import ReplicaStorage
from tests.replica.helpers import ReplicaTestCase, temp_dir


def _read_only(name):
    return LocationUnavailable("[Errno 30] Read-only file system: the mount of %s" % name,
                               location=name, retryable=False)


class TestWriteHealth(ReplicaTestCase):
    options = {"error_limit": 3, "error_interval": 60}

    def test_a_location_that_rejects_every_write_is_not_ok_for_writes_in_every_sample(self):
        """Regression (issue 9): a read-only location showed 'health: ok' in 9 of 20 samples."""
        older = payload(4000, seed=1)
        older_md = self.store(older)
        faulty = self.faulty["loc-c"]
        faulty.fail("assign", _read_only("loc-c"))
        faulty.fail("delete", _read_only("loc-c"))
        write_samples, read_samples = [], []
        for number in range(20):
            data = payload(3000, seed=100 + number)
            module_data = self.store(data)         # writes fail at loc-c ...
            self.assertEqual(self.read(module_data), data)
            self.assertEqual(self.read(older_md), older)  # ... while reads succeed
            self.assertTrue(faulty.inner.available(None, self.child_md(older_md, "loc-c")))
            report = self.location_report(self.replica.statistics(self.context), "loc-c")
            write_samples.append(report["write_health"])
            read_samples.append(report["read_health"])
        self.assertNotIn("ok", write_samples)
        self.assertEqual(write_samples[-1], "error-limited")
        self.assertEqual(set(read_samples), {"ok"})
        self.assertEqual(report["health"], "error-limited", "the overall health is the worse one")

    def test_writes_skip_a_write_limited_location_which_still_serves_reads(self):
        """Regression (issue 9): read successes reset the count, so writes kept trying it."""
        older = payload(4000, seed=2)
        older_md = self.store(older)
        faulty = self.faulty["loc-c"]
        faulty.fail("assign", _read_only("loc-c"))
        for number in range(3):  # error_limit failed writes
            self.store(payload(3000, seed=200 + number))
        self.assertEqual(self.read(older_md), older)
        assigns = faulty.calls["assign"]
        module_data = self.store(payload(3000, seed=300))
        self.assertEqual(faulty.calls["assign"], assigns, "a write-limited location was written")
        self.assertFalse(self.has_copy(module_data, "loc-c"))
        stats = self.replica.statistics(self.context)
        self.assertEqual(stats["under_replicated"], 4, "each skipped copy is journaled")
        # reads: the only copy left of the older object is at loc-c, and it is served
        for name in ("loc-a", "loc-b"):
            os.unlink(self.copy_path(older_md, name))
        with self.replica.get_read_stream(self.context, older_md) as stream:
            self.assertEqual(stream.read(), older)
            self.assertEqual(stream.location, "loc-c")
        report = self.location_report(self.replica.statistics(self.context), "loc-c")
        self.assertEqual((report["read_health"], report["write_health"]), ("ok", "error-limited"))
        self.assertIsNone(report["read"]["limited_for"])
        self.assertGreater(report["write"]["limited_for"], 0)
        self.assertIn("Read-only", report["write"]["last_error"])

    def test_a_location_that_fails_reads_is_still_written(self):
        faulty = self.faulty["loc-a"]
        faulty.fail("get_read_stream")
        for number in range(4):
            data = payload(2000, seed=400 + number)
            module_data = self.store(data)
            self.assertEqual(self.read(module_data), data)
            self.assertTrue(self.has_copy(module_data, "loc-a"))
        report = self.location_report(self.replica.statistics(self.context), "loc-a")
        self.assertEqual((report["read_health"], report["write_health"]), ("error-limited", "ok"))

    def test_the_status_page_shows_both_directions(self):
        faulty = self.faulty["loc-c"]
        faulty.fail("assign", _read_only("loc-c"))
        for number in range(3):
            self.store(payload(1000, seed=500 + number))
        view = ModuleView(config=ModuleConfig(name="mirror", module="replica.replica.ReplicaStorage"),
                          statistics=self.replica.statistics(self.context), error=None,
                          objects=3, pending_deletions=0)
        page = render_status_page([view], temp_dir(self)).decode("utf-8")
        row = page[page.index('data-location="loc-c"'):]
        row = row[:row.index("</tr>")]
        self.assertIn("reads: ok", row)
        self.assertIn("writes: error-limited", row)


class TestReadOnlyMount(unittest.TestCase):
    """A real read-only mount (EROFS) as one location, under mixed load (issue 9)."""

    def setUp(self):
        if sys.platform != "linux" or shutil.which("mount") is None:
            self.skipTest("needs Linux mount")
        root = temp_dir(self)
        self.dirs = [os.path.join(root, name) for name in ("a", "b", "ro")]
        for directory in self.dirs:
            os.mkdir(directory)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs",
                                  self.dirs[2]], capture_output=True)
        if mounted.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: %s" % mounted.stderr.decode().strip())
        self.addCleanup(subprocess.run, ["umount", self.dirs[2]], capture_output=True)
        self.replica = ReplicaStorage(*["file://%s#%s" % (path, os.path.basename(path))
                                        for path in self.dirs],
                                      "error_limit=3", sleep=lambda seconds: None)
        self.addCleanup(self.replica.close)

    def test_read_only_location_is_never_ok_for_writes_and_keeps_serving_reads(self):
        """Regression (issue 9): showed 'health: ok' in 9 of 20 samples under mixed load."""
        older = payload(200000, seed=7)
        older_md = self.replica.new_data(None)
        self.replica.assign(None, older_md, io.BytesIO(older))
        remounted = subprocess.run(["mount", "-o", "remount,ro", self.dirs[2]],
                                   capture_output=True)
        if remounted.returncode != 0:
            self.skipTest("cannot remount read-only: %s" % remounted.stderr.decode().strip())
        errors = []

        def reader():
            try:
                for _ in range(20):
                    with self.replica.get_read_stream(None, older_md) as stream:
                        if stream.read() != older:
                            errors.append("wrong bytes")
            except Exception as error:  # reported by the main thread
                errors.append(repr(error))

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for thread in threads:
            thread.start()
        samples = []
        for number in range(20):
            module_data = self.replica.new_data(None)
            self.replica.assign(None, module_data, io.BytesIO(payload(30000, seed=number)))
            self.assertTrue(self.replica.available(None, older_md) in (True, False))
            stats = self.replica.statistics(None)
            (entry,) = [item for item in stats["locations"] if item["name"] == "ro"]
            samples.append((entry["write_health"], entry["read_health"]))
        for thread in threads:
            thread.join(30)
        self.assertEqual(errors, [])
        self.assertNotIn("ok", [write for write, _ in samples])
        self.assertEqual(samples[-1][0], "error-limited")
        self.assertEqual({read for _, read in samples}, {"ok"})
        self.assertIn("Read-only", entry["write"]["last_error"])
        self.assertEqual(stats["under_replicated"], 20)
        # every copy but the read-only one gone: reads are still served from it
        for path in self.dirs[:2]:
            for base, _, names in os.walk(path):
                for name in names:
                    os.unlink(os.path.join(base, name))
        with self.replica.get_read_stream(None, older_md) as stream:
            self.assertEqual(stream.read(), older)
