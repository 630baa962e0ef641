"""The replica's named parts work on their own, from their explicit dependencies (issue 9).

No ReplicaStorage here: the repairer and the drainer are built from a
LocationSet, a Dispatcher, Copies and a Ledger over real directories.
"""
import io
import os
import unittest

from modules.errors import LocationTimeout, LocationUnavailable
from modules.testing import payload
from replica import module_data as formats
from replica.copies import Copies
from replica.dispatcher import Dispatcher
from replica.drain import Drainer
from replica.fanout import FanOut
from replica.journal import COPY, DELETE, MemoryJournal
from replica.ledger import Ledger
from replica.location_set import LocationSet
from replica.locations import READ, WRITE
from replica.repairer import Repairer
from replica.settings import parse_settings
from replica.workers import WorkerPool
from tests.replica.helpers import FakeClock, SleepRecorder, temp_dir


class PartsTestCase(unittest.TestCase):
    def setUp(self):
        root = temp_dir(self)
        urls = []
        for name in ("a", "b", "c"):
            os.mkdir(os.path.join(root, name))
            urls.append("file://%s#%s" % (os.path.join(root, name), name))
        self.clock = FakeClock()
        self.sleeps = SleepRecorder()
        self.locations = LocationSet(parse_settings(urls, {}).locations, error_limit=2,
                                     error_interval=60, clock=self.clock)
        self.addCleanup(self.locations.close)
        pool = WorkerPool(8, name="parts")
        self.addCleanup(pool.shutdown, 5)
        self.dispatcher = Dispatcher(self.locations, pool, FanOut(pool, 10, 10), call_timeout=5,
                                     read_attempts=3, read_backoff=0.01, sleep=self.sleeps)
        self.ledger = Ledger(MemoryJournal(1000))
        self.copies = Copies(self.locations, self.dispatcher, self.ledger)
        self.repairer = Repairer(self.locations, self.dispatcher, self.copies, self.ledger,
                                 integrity=False, sleep=self.sleeps)
        self.drainer = Drainer(self.locations, self.ledger, self.repairer, pool,
                               journal_interval=0, clock=self.clock)

    def child(self, name):
        return self.locations.get(name).module(None)

    def store_at(self, names, data):
        """Write an object (no manifests) at ``names`` only; return its ReplicaData."""
        copies = {name: {"md": self.child(name).new_data(None)} for name in ("a", "b", "c")}
        for name in names:
            self.child(name).assign(None, copies[name]["md"], io.BytesIO(data))
        return formats.decode(formats.encode(formats.new_object_id(), copies))


class TestRepairerAlone(PartsTestCase):
    def test_refills_the_missing_copies(self):
        data = payload(70000, seed=1)
        object_data = self.store_at(["a"], data)
        report = self.repairer.repair_object(None, object_data, None, 5, probe=True)
        self.assertEqual((report["present"], sorted(report["repaired"])), (["a"], ["b", "c"]))
        for name in ("b", "c"):
            with self.child(name).get_read_stream(None, object_data.child_md(name)) as stream:
                self.assertEqual(stream.read(), data)
        self.assertEqual(self.ledger.counters()["copies_repaired"], 2)

    def test_a_deleted_object_is_not_repaired(self):
        object_data = self.store_at(["a"], b"x")
        self.ledger.bury(object_data.object_id)
        with self.assertRaises(Exception) as caught:
            self.repairer.repair_object(None, object_data, None, 5, probe=True)
        self.assertEqual(type(caught.exception).__name__, "ObjectNotFound")
        self.assertFalse(self.child("b").available(None, object_data.child_md("b")))


class TestDrainerAlone(PartsTestCase):
    def test_replays_owed_deletes_and_copies(self):
        doomed = self.store_at(["a", "b"], b"doomed")
        owed = self.store_at(["a"], b"owed")
        self.ledger.add(DELETE, "b", doomed)
        self.ledger.add(COPY, "c", owed)
        summary = self.drainer.replay_all(None, 5)
        self.assertEqual(summary["deletes"]["done"], 1)
        self.assertEqual(summary["copies"]["done"], 1)
        self.assertFalse(self.child("b").available(None, doomed.child_md("b")))
        self.assertTrue(self.child("c").available(None, owed.child_md("c")))
        self.assertEqual(self.ledger.counts(), {COPY: 0, DELETE: 0})


class TestDispatcherAlone(PartsTestCase):
    def test_one_policy_retries_only_transient_errors(self):
        location = self.locations.get("a")
        calls = []

        def refused():  # as Location.call does: the failure counts against its health
            calls.append(1)
            raise location.failed(LocationUnavailable("refused", location="a"), "get_size")

        with self.assertRaises(LocationUnavailable):
            self.dispatcher.attempt(location, refused)
        self.assertEqual(len(calls), 2, "stops when the location becomes error-limited (2)")
        calls.clear()

        def slow():
            calls.append(1)
            raise LocationTimeout("slow", location="b")

        with self.assertRaises(LocationTimeout):
            self.dispatcher.attempt(self.locations.get("b"), slow)
        self.assertEqual(len(calls), 1)

    def test_health_directions_are_recorded_apart(self):
        location = self.locations.get("c")
        for _ in range(2):
            location.failed(LocationUnavailable("read-only"), "assign")
        self.assertTrue(location.is_limited(WRITE))
        self.assertFalse(location.is_limited(READ))
        self.assertFalse(self.locations.writable(location))
        self.clock.advance(61)
        self.assertTrue(self.locations.writable(location), "probed again after the interval")


if __name__ == "__main__":
    unittest.main()
