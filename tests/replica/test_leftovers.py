"""The replica's repair() sweeps its locations' leftovers; statistics count them (issue 9).

A real process writing through a replica is killed with SIGKILL mid-write;
each location keeps a temporary. ``statistics`` counts them, and
``repair(context)`` (what ``vsm repair`` calls) removes those older than the
locations' grace period, never a fresh one.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
import unittest

from modules.testing import payload
from replica.replica import ReplicaStorage
from tests.replica.helpers import ReplicaTestCase, temp_dir

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_WRITER = textwrap.dedent("""
    import io, sys, time
    sys.path.insert(0, sys.argv[1])
    from replica.replica import ReplicaStorage

    class Endless(io.RawIOBase):
        def readable(self):
            return True
        def readinto(self, buffer):
            time.sleep(0.01)
            buffer[:4096] = b"x" * 4096
            return 4096

    replica = ReplicaStorage(*sys.argv[2:])
    replica.assign(None, replica.new_data(None), Endless())
""")


class TestLeftoversAfterKill(unittest.TestCase):
    def setUp(self):
        root = temp_dir(self)
        self.dirs = [os.path.join(root, name) for name in ("a", "b", "c")]
        for directory in self.dirs:
            os.mkdir(directory)
        self.urls = ["file://%s" % directory for directory in self.dirs]

    def temporaries(self):
        return [os.path.join(base, name) for directory in self.dirs
                for base, _, names in os.walk(directory) for name in names
                if name.startswith(".tmp-")]

    def test_repair_sweeps_what_a_killed_writer_left_at_every_location(self):
        """Regression (issue 9): 5 kills left 19 files that no restart, repair or scrub removed."""
        process = subprocess.Popen([sys.executable, "-c", _WRITER, _ROOT] + self.urls)
        self.addCleanup(process.wait, 10)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        deadline = time.monotonic() + 20  # bounds the wait only
        while len(self.temporaries()) < 3 or not all(map(os.path.getsize, self.temporaries())):
            self.assertIsNone(process.poll(), "the writer ended by itself")
            self.assertLess(time.monotonic(), deadline, "the writer never wrote everywhere")
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        left = self.temporaries()
        self.assertEqual(len(left), 3)

        replica = ReplicaStorage(*self.urls)
        self.addCleanup(replica.close)
        counted = replica.statistics(None)["temporaries"]
        self.assertEqual((counted["files"], counted["bytes"]),
                         (3, sum(os.path.getsize(path) for path in left)))
        summary = replica.repair(None)
        self.assertEqual(len(self.temporaries()), 3, "a fresh temporary was removed")
        self.assertEqual({report["temporaries_kept"] for report in summary["locations"].values()},
                         {1})
        for path in left:
            then = time.time() - 2 * 3600
            os.utime(path, (then, then))
        summary = replica.repair(None)
        self.assertEqual(self.temporaries(), [])
        self.assertEqual(sorted(summary["locations"]), sorted(
            location["name"] for location in replica.statistics(None)["locations"]))
        self.assertEqual(sum(report["temporaries_removed"]
                             for report in summary["locations"].values()), 3)
        stats = replica.statistics(None)
        self.assertEqual(stats["temporaries"]["files"], 0)
        self.assertEqual(stats["operations"]["temporaries_removed"], 3)


class TestSweepThroughNamedLocations(ReplicaTestCase):
    def test_a_failing_sweep_is_reported_not_raised(self):
        self.store(payload(1000, seed=1))
        self.faulty["loc-b"].fail("repair")
        summary = self.replica.repair(self.context)
        self.assertIn("error", summary["locations"]["loc-b"])
        self.assertEqual(summary["locations"]["loc-a"]["temporaries_removed"], 0)
        self.assertEqual(self.location_report(self.replica.statistics(self.context),
                                              "loc-b")["health"], "ok",
                         "a failed sweep is maintenance, not a failed read or write")


if __name__ == "__main__":
    unittest.main()
