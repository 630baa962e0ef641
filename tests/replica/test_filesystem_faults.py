"""Real filesystem faults under file:// locations: no injection, the disk itself misbehaves."""
import io
import os
import shutil
import subprocess
import sys
import unittest

from modules.errors import LocationUnavailable
from modules.testing import payload
from replica.replica import ReplicaStorage
from tests.replica.helpers import MIB, temp_dir

TMPFS_SIZE = 2 * MIB


class FileLocations(unittest.TestCase):
    """A replica over three file:// directories."""

    def setUp(self):
        super().setUp()
        self.root = temp_dir(self)
        self.dirs = [os.path.join(self.root, name) for name in ("a", "b", "c")]
        for directory in self.dirs:
            os.mkdir(directory)

    def make_replica(self, **options):
        replica = ReplicaStorage(*["file://%s" % d for d in self.dirs],
                                 sleep=lambda seconds: None, **options)
        self.addCleanup(replica.close)
        return replica

    def store(self, replica, data):
        module_data = replica.new_data(None)
        replica.assign(None, module_data, io.BytesIO(data))
        return module_data

    def read(self, replica, module_data):
        with replica.get_read_stream(None, module_data) as stream:
            return stream.read()

    def report(self, stats, directory):
        return next(entry for entry in stats["locations"] if entry["name"] == "file://" + directory)


class TestDirectoryReplacedByAFile(FileLocations):

    def test_writes_meet_quorum_reads_fall_back_and_statistics_say_down(self):
        replica = self.make_replica()
        before = payload(MIB, seed=1)
        old = self.store(replica, before)
        shutil.rmtree(self.dirs[0])
        with open(self.dirs[0], "wb") as file:
            file.write(b"not a directory")
        data = payload(2 * MIB + 5, seed=2)
        module_data = self.store(replica, data)
        self.assertEqual(self.read(replica, module_data), data)
        self.assertEqual(self.read(replica, old), before)
        self.assertEqual(replica.get_size(None, old), len(before))
        self.assertFalse(replica.available(None, module_data))
        stats = replica.statistics(None)
        report = self.report(stats, self.dirs[0])
        self.assertIn(report["health"], ("down", "error-limited"))
        self.assertEqual(stats["healthy"], 2)
        self.assertIn("not a directory", report["reason"])
        self.assertEqual(stats["under_replicated"], 1)
        self.assertTrue(os.path.isfile(self.dirs[0]), "the plain file was replaced")
        replica.delete(None, module_data)
        self.assertEqual(replica.statistics(None)["pending_deletes"], 1)


class TestDirectoryRemoved(FileLocations):

    def test_a_removed_directory_is_never_recreated(self):
        replica = self.make_replica()
        kept = self.store(replica, payload(1000, seed=3))
        shutil.rmtree(self.dirs[1])
        data = payload(MIB, seed=4)
        module_data = self.store(replica, data)
        self.assertEqual(self.read(replica, module_data), data)
        self.assertEqual(self.read(replica, kept), payload(1000, seed=3))
        replica.delete(None, kept)
        self.assertEqual(replica.repair(None, module_data)["repaired"], [])
        replica.repair(None)
        stats = replica.statistics(None)
        self.assertEqual(self.report(stats, self.dirs[1])["health"], "down")
        self.assertIn("does not exist", self.report(stats, self.dirs[1])["reason"])
        self.assertFalse(os.path.exists(self.dirs[1]), "the removed location was recreated")

    def test_two_directories_removed_fails_the_write_cleanly(self):
        replica = self.make_replica()
        shutil.rmtree(self.dirs[1])
        shutil.rmtree(self.dirs[2])
        module_data = replica.new_data(None)
        with self.assertRaises(LocationUnavailable) as caught:
            replica.assign(None, module_data, io.BytesIO(payload(MIB, seed=5)))
        self.assertIn("does not exist", str(caught.exception))
        self.assertEqual(os.listdir(self.dirs[0]), [], "a copy was left at the healthy location")

    def test_the_directory_comes_back_and_repair_fills_it(self):
        replica = self.make_replica()
        os.rename(self.dirs[2], self.dirs[2] + ".away")
        data = payload(3 * MIB, seed=6)
        module_data = self.store(replica, data)
        os.rename(self.dirs[2] + ".away", self.dirs[2])
        summary = replica.repair(None)
        self.assertEqual(summary["copies"]["done"], 1)
        self.assertTrue(replica.available(None, module_data))
        self.assertEqual(replica.statistics(None)["under_replicated"], 0)


class TestFullFilesystem(FileLocations):
    """One location on a tiny tmpfs: it fills up mid-write."""

    def setUp(self):
        super().setUp()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % TMPFS_SIZE, "tmpfs",
                                 self.dirs[2]], capture_output=True, text=True)
        if result.returncode != 0:
            reason = "cannot mount a tmpfs (needs root): %s" % (result.stderr.strip() or
                                                                 result.returncode)
            print("skipping full-filesystem tests: %s" % reason, file=sys.stderr)
            self.skipTest(reason)
        self.addCleanup(subprocess.run, ["umount", "-l", self.dirs[2]], capture_output=True)

    def test_a_full_location_drops_out_and_keeps_nothing(self):
        replica = self.make_replica()
        data = payload(4 * MIB, seed=7)
        module_data = self.store(replica, data)
        self.assertEqual(self.read(replica, module_data), data)
        leftovers = [os.path.join(base, name) for base, _, names in os.walk(self.dirs[2])
                     for name in names]
        self.assertEqual(leftovers, [], "the full location kept a partial file")
        stats = replica.statistics(None)
        self.assertEqual(stats["under_replicated"], 1)
        self.assertIn("InsufficientStorage", self.report(stats, self.dirs[2])["last_error"])

    def test_capacity_is_the_full_locations(self):
        replica = self.make_replica()
        stats = replica.statistics(None)
        self.assertEqual(stats["capacity_location"], "file://" + self.dirs[2])
        self.assertEqual(stats["capacity"]["total"], TMPFS_SIZE)
        self.assertGreater(stats["raw"]["total"], 2 * stats["capacity"]["total"])

    def test_small_objects_still_fit_everywhere(self):
        replica = self.make_replica()
        module_data = self.store(replica, payload(100000, seed=8))
        self.assertTrue(replica.available(None, module_data))


if __name__ == "__main__":
    unittest.main()
