"""DedupStorage after a crash at each step (issue 13): nothing lost, nothing leaked.

A real child process (tests/dedup/crash_child.py) stores one object, then dies
with ``os._exit`` in the middle of the next operation. Once it is gone,
``repair(context)`` in this process must reclaim what it left, without
waiting for any timer, and the first object must still read back.
"""
import io
import os
import subprocess
import sys
import threading
import unittest

from modules.context import make_context
from replica.dedup import DedupStorage
from tests.crypt.support import temp_dir
from tests.dedup import crash_child

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def stored_files(directory):
    """Complete objects of a simple location (its own temp files excluded)."""
    found = []
    for root, _, names in os.walk(directory):
        found.extend(name for name in names if not name.startswith(".tmp-"))
    return sorted(found)


class TestCrashes(unittest.TestCase):
    def setUp(self):
        self.inner = temp_dir(self, "vsm-dedup-inner-")
        self.state = temp_dir(self, "vsm-dedup-state-")

    def crash(self, step: str) -> str:
        child = subprocess.run(
            [sys.executable, "-m", "tests.dedup.crash_child", step, self.inner, self.state],
            cwd=_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(child.returncode, 17, "the child did not die at %s: %s" % (
            step, child.stderr.decode(errors="replace")[-2000:]))
        return child.stdout.decode().split()[0]

    def open(self) -> DedupStorage:
        dedup = DedupStorage("file://%s" % self.inner, state_dir=self.state)
        self.addCleanup(dedup.close)
        return dedup

    def check_after_repair(self, kept: str, step: str) -> dict:
        dedup, context = self.open(), make_context({})
        report = dedup.repair(context)
        self.assertFalse(report["failed"], report)
        self.assertEqual(report["remaining"], 0, report)
        with dedup.get_read_stream(context, kept) as stream:
            self.assertEqual(stream.read(), crash_child.KEPT, "the stored object was lost")
        stats = dedup.statistics(context)
        self.assertEqual(stats["pending"], {}, "unfinished work left after repair: %r" % stats)
        self.assertEqual(stats["blobs"], 1, stats)
        self.assertEqual(len(stored_files(self.inner)), 1,
                         "inner objects leaked after a crash at %s: %s"
                         % (step, stored_files(self.inner)))
        self.assertEqual(stats["stored_bytes"], len(crash_child.KEPT))
        return report

    def test_crash_in_the_middle_of_an_upload(self):
        kept = self.crash("mid-upload")
        self.check_after_repair(kept, "mid-upload")

    def test_crash_after_the_upload_before_the_index_commit(self):
        kept = self.crash("before-commit")
        self.assertEqual(len(stored_files(self.inner)), 2)  # the orphan upload is there
        report = self.check_after_repair(kept, "before-commit")
        self.assertEqual(report["reclaimed"], 1)

    def test_crash_before_a_duplicate_upload_is_discarded(self):
        kept = self.crash("duplicate-discard")
        self.assertEqual(len(stored_files(self.inner)), 2)
        report = self.check_after_repair(kept, "duplicate-discard")
        self.assertEqual(report["reclaimed"], 1)
        dedup, context = self.open(), make_context({})
        self.assertEqual(dedup.statistics(context)["objects"], 2,
                         "the duplicate's object was committed before the crash")

    def test_crash_before_a_freed_blob_is_deleted(self):
        kept = self.crash("delete")
        self.assertEqual(len(stored_files(self.inner)), 2)
        report = self.check_after_repair(kept, "delete")
        self.assertEqual(report["reclaimed"], 1)

    def test_an_upload_of_a_live_process_is_left_alone(self):
        """repair() never reclaims an upload whose process still runs."""
        dedup, context = self.open(), make_context({})
        started, release = threading.Event(), threading.Event()

        class Slow(io.RawIOBase):
            sent = False

            def readable(self):
                return True

            def read(self, size=-1):
                if not self.sent:
                    self.sent = True
                    return b"slow content"
                started.set()
                if not release.wait(20):
                    raise OSError("the test never released the source")
                return b""

        module_data = dedup.new_data(context)
        worker = threading.Thread(target=dedup.assign, args=(context, module_data, Slow()))
        worker.start()
        try:
            self.assertTrue(started.wait(20))
            report = dedup.repair(context)
            self.assertEqual((report["reclaimed"], report["remaining"]), (0, 1), report)
        finally:
            release.set()
            worker.join(20)
        with dedup.get_read_stream(context, module_data) as stream:
            self.assertEqual(stream.read(), b"slow content")
        self.assertEqual(dedup.repair(context)["remaining"], 0)


if __name__ == "__main__":
    unittest.main()
