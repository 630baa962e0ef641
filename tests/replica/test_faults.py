"""The replica under injected faults (FaultyStorage around real simple locations)."""
import io
import json
import os
import threading
import unittest

from modules.errors import (
    InsufficientStorage,
    LocationUnavailable,
    ObjectNotFound,
    SourceStreamError,
)
from modules.testing import FailingSource, payload
from tests.replica.helpers import MIB, ReplicaTestCase, wait_until


class TestWrites(ReplicaTestCase):

    def test_one_location_down_meets_quorum_and_records_the_missing_copy(self):
        self.faulty["loc-c"].down()
        data = payload(MIB + 3, seed=1)
        module_data = self.store(data)
        self.assertTrue(self.has_copy(module_data, "loc-a"))
        self.assertTrue(self.has_copy(module_data, "loc-b"))
        self.assertFalse(self.has_copy(module_data, "loc-c"))
        self.assertFalse(self.replica.available(self.context, module_data))
        stats = self.replica.statistics(self.context)
        self.assertEqual(stats["under_replicated"], 1)
        self.assertTrue(stats["degraded"])
        self.assertEqual(self.read(module_data), data)

    def test_two_locations_down_fails_and_leaves_no_copy(self):
        self.faulty["loc-b"].down()
        self.faulty["loc-c"].fail("write", after_bytes=MIB)
        module_data = self.replica.new_data(self.context)
        with self.assertRaises(LocationUnavailable) as caught:
            self.replica.assign(self.context, module_data, io.BytesIO(payload(3 * MIB, seed=2)))
        message = str(caught.exception)
        self.assertIn("loc-b", message)
        self.assertIn("loc-c", message)
        self.assertEqual(set(caught.exception.failures), {"loc-b", "loc-c"})
        for directory in self.dirs:
            self.assertEqual(self.files_under(directory), [], "a copy or partial file was left")
        self.assertFalse(self.replica.available(self.context, module_data))

    def test_below_quorum_before_writing_reads_nothing(self):
        """Two locations down at the availability check: the source is not consumed at all."""
        self.faulty["loc-a"].down()
        self.faulty["loc-b"].down()
        module_data = self.replica.new_data(self.context)
        source = io.BytesIO(b"x" * 1000)
        with self.assertRaises(LocationUnavailable):
            self.replica.assign(self.context, module_data, source)
        self.assertEqual(source.tell(), 0)
        self.assertEqual(self.faulty["loc-c"].calls["assign"], 0)

    def test_every_location_full_raises_insufficient_storage(self):
        for faulty in self.faulty.values():
            faulty.fail("write", InsufficientStorage, after_bytes=10)
        module_data = self.replica.new_data(self.context)
        with self.assertRaises(InsufficientStorage):
            self.replica.assign(self.context, module_data, io.BytesIO(payload(1000, seed=3)))

    def test_failure_mid_write_drops_one_location_without_partial_copy(self):
        self.faulty["loc-b"].fail("write", after_bytes=MIB + 512)
        data = payload(4 * MIB + 1, seed=4)
        module_data = self.store(data)
        self.assertFalse(self.has_copy(module_data, "loc-b"))
        self.assertEqual(self.files_under(self.dirs[1]), [], "partial file left at loc-b")
        self.assertTrue(self.has_copy(module_data, "loc-a"))
        self.assertTrue(self.has_copy(module_data, "loc-c"))
        with open(self.copy_path(module_data, "loc-c"), "rb") as file:
            self.assertEqual(file.read(), data)
        self.assertEqual(self.replica.statistics(self.context)["under_replicated"], 1)

    def test_a_location_dropped_while_still_reading_discards_its_copy(self):
        replica = self.make_replica(write_timeout=0.3)
        data = payload(100000, seed=53)  # small: fits in the queue, so the end is queued
        self.faulty["loc-a"].hang("write", after_bytes=len(data))
        module_data = self.store(data, replica)
        self.faulty["loc-a"].clear("write")
        self.assertTrue(wait_until(lambda: replica.statistics(None)["workers"]["busy"] == 0))
        self.assertEqual(self.files_under(self.dirs[0]), [])
        self.assertFalse(replica.available(self.context, module_data))

    def test_stalled_location_is_dropped_after_write_timeout(self):
        replica = self.make_replica(write_timeout=0.3)
        self.faulty["loc-a"].hang("write", after_bytes=MIB)
        data = payload(8 * MIB, seed=5)
        module_data = self.store(data, replica)
        self.assertTrue(self.has_copy(module_data, "loc-b"))
        self.assertTrue(self.has_copy(module_data, "loc-c"))
        self.faulty["loc-a"].release()
        # once released, the stalled child reads an aborted stream and discards its partial copy
        self.assertTrue(wait_until(lambda: self.files_under(self.dirs[0]) == []),
                        "the stalled location kept a partial file")
        self.assertEqual(self.read(module_data, replica), data)
        report = self.location_report(replica.statistics(self.context), "loc-a")
        self.assertIn("stopped reading", report["last_error"])

    def test_a_late_copy_of_a_failed_write_is_removed_when_it_lands(self):
        replica = self.make_replica(write_timeout=0.3)
        data = payload(100000, seed=51)
        self.faulty["loc-a"].hang("stored")  # stored, but assign does not return in time
        self.faulty["loc-b"].fail("write", after_bytes=10)
        self.faulty["loc-c"].fail("write", after_bytes=10)
        module_data = replica.new_data(self.context)
        with self.assertRaises(LocationUnavailable) as caught:
            replica.assign(self.context, module_data, io.BytesIO(data))
        self.assertIn("did not finish storing", str(caught.exception))
        self.faulty["loc-a"].clear("stored")
        # the removal runs when the late writer's future completes, just after its worker is free
        self.assertTrue(wait_until(lambda: not self.has_copy(module_data, "loc-a")),
                        "the late copy was kept")

    def test_a_late_copy_of_a_successful_write_is_found_by_repair(self):
        replica = self.make_replica(write_timeout=0.3)
        data = payload(100000, seed=52)
        self.faulty["loc-a"].hang("stored")
        module_data = self.store(data, replica)
        self.assertEqual(replica.statistics(self.context)["under_replicated"], 1)
        self.faulty["loc-a"].clear("stored")
        self.assertTrue(wait_until(lambda: self.has_copy(module_data, "loc-a")))
        summary = replica.repair(self.context, module_data)
        # the late copy has no manifest (the write gave up on it first), so it does not count
        # and repair rewrites it with its manifest
        self.assertEqual(summary["present"], ["loc-b", "loc-c"])
        self.assertEqual(summary["repaired"], ["loc-a"])
        self.assertTrue(replica.available(self.context, module_data))
        self.assertEqual(replica.statistics(self.context)["under_replicated"], 0)

    def test_source_failure_leaves_nothing_anywhere(self):
        module_data = self.replica.new_data(self.context)
        data = payload(3 * MIB, seed=6)
        with self.assertRaises(SourceStreamError):
            self.replica.assign(self.context, module_data, FailingSource(data, 2 * MIB + 7))
        for directory in self.dirs:
            self.assertEqual(self.files_under(directory), [])
        for name in self.names:
            self.assertEqual(self.location_report(self.replica.statistics(self.context),
                                                  name)["health"], "ok",
                             "a source failure was blamed on %s" % name)

    def test_available_skip_a_location_holding_the_copy_receives_no_write(self):
        self.faulty["loc-c"].down()
        data = payload(2 * MIB, seed=7)
        module_data = self.store(data)
        self.faulty["loc-c"].up()
        writes = {name: faulty.calls["assign"] for name, faulty in self.faulty.items()}
        # the platform's way: available() is False, so it sends the data again
        self.assertFalse(self.replica.available(self.context, module_data))
        self.replica.assign(self.context, module_data, io.BytesIO(data))
        self.assertEqual(self.faulty["loc-a"].calls["assign"], writes["loc-a"])
        self.assertEqual(self.faulty["loc-b"].calls["assign"], writes["loc-b"])
        # one assign for the data and one for its manifest
        self.assertEqual(self.faulty["loc-c"].calls["assign"], writes["loc-c"] + 2)
        self.assertTrue(self.replica.available(self.context, module_data))
        self.assertEqual(self.replica.statistics(self.context)["under_replicated"], 0)

    def test_new_data_without_one_location_still_meets_quorum(self):
        self.faulty["loc-c"].fail("new_data")
        module_data = self.replica.new_data(self.context)
        self.assertNotIn("loc-c", module_data)
        self.faulty["loc-b"].fail("new_data")
        with self.assertRaises(LocationUnavailable) as caught:
            self.replica.new_data(self.context)
        self.assertIn("loc-b", str(caught.exception))

    def test_repair_refills_missing_copies(self):
        self.faulty["loc-b"].down()
        self.faulty["loc-c"].fail("write", after_bytes=0)
        replica = self.make_replica(write_quorum=1)
        data = payload(2 * MIB + 99, seed=8)
        module_data = self.store(data, replica)
        self.faulty["loc-b"].up()
        self.faulty["loc-c"].up()
        summary = replica.repair(self.context, module_data)
        self.assertEqual(summary["present"], ["loc-a"])
        self.assertEqual(sorted(summary["repaired"]), ["loc-b", "loc-c"])
        for name in ("loc-b", "loc-c"):
            with open(self.copy_path(module_data, name), "rb") as file:
                self.assertEqual(file.read(), data)
        self.assertEqual(replica.statistics(self.context)["under_replicated"], 0)
        self.assertEqual(replica.repair(self.context, module_data)["repaired"], [])

    def test_repair_of_an_object_with_no_copy_left(self):
        module_data = self.replica.new_data(self.context)
        with self.assertRaises(ObjectNotFound):
            self.replica.repair(self.context, module_data)


class TestReads(ReplicaTestCase):

    def test_first_location_down_falls_back(self):
        data = payload(MIB + 5, seed=10)
        module_data = self.store(data)
        self.faulty["loc-a"].down()
        with self.replica.get_read_stream(self.context, module_data) as stream:
            self.assertEqual(stream.location, "loc-b")
            self.assertEqual(stream.read(), data)
        self.assertEqual(self.replica.get_size(self.context, module_data), len(data))

    def test_transient_errors_are_retried_with_backoff_at_the_same_location(self):
        data = payload(1000, seed=11)
        module_data = self.store(data)
        self.faulty["loc-a"].fail("get_read_stream", times=2)
        with self.replica.get_read_stream(self.context, module_data) as stream:
            self.assertEqual(stream.location, "loc-a")
            self.assertEqual(stream.read(), data)
        self.assertEqual(len(self.sleeps.pauses), 2)
        self.assertLess(self.sleeps.pauses[0], self.sleeps.pauses[1], "backoff must grow")

    def test_failure_mid_read_resumes_on_the_next_copy(self):
        data = payload(5 * MIB + 333, seed=12)
        module_data = self.store(data)
        self.faulty["loc-a"].fail("read", after_bytes=2 * MIB + 17)
        with self.replica.get_read_stream(self.context, module_data) as stream:
            parts = []
            while True:
                chunk = stream.read(300000)
                if not chunk:
                    break
                parts.append(chunk)
            self.assertEqual(stream.failovers, 1)
            self.assertEqual(stream.location, "loc-b")
        self.assertEqual(b"".join(parts), data)

    def test_mid_read_failover_skips_a_copy_of_the_wrong_size(self):
        data = payload(3 * MIB, seed=13)
        module_data = self.store(data)
        with open(self.copy_path(module_data, "loc-b"), "r+b") as file:
            file.truncate(MIB)
        self.faulty["loc-a"].fail("read", after_bytes=MIB + 1)
        with self.replica.get_read_stream(self.context, module_data) as stream:
            self.assertEqual(stream.read(), data)
            self.assertEqual(stream.location, "loc-c")

    def test_seek_then_failover_keeps_the_offset(self):
        data = payload(3 * MIB, seed=14)
        module_data = self.store(data)
        with self.replica.get_read_stream(self.context, module_data) as stream:
            stream.seek(2 * MIB + 10)
            self.faulty["loc-a"].fail("read")
            self.assertEqual(stream.read(1000), data[2 * MIB + 10:2 * MIB + 1010])
            stream.seek(5)
            self.assertEqual(stream.read(10), data[5:15])

    def test_every_copy_failing_mid_read_raises_location_unavailable(self):
        from replica.verified import READ_AHEAD
        data = payload((READ_AHEAD + 2) * MIB, seed=15)
        module_data = self.store(data)
        with self.replica.get_read_stream(self.context, module_data) as stream:
            self.assertEqual(stream.read(MIB), data[:MIB])
            for faulty in self.faulty.values():
                faulty.fail("read")
            stream.seek((READ_AHEAD + 1) * MIB)  # past the blocks already read ahead
            with self.assertRaises(LocationUnavailable) as caught:
                stream.read(MIB)
        for name in self.names:
            self.assertIn(name, str(caught.exception))

    def test_not_found_only_when_no_location_has_it(self):
        data = payload(100, seed=16)
        module_data = self.store(data)
        os.unlink(self.copy_path(module_data, "loc-a"))
        os.unlink(self.copy_path(module_data, "loc-b"))
        self.assertEqual(self.read(module_data), data)
        os.unlink(self.copy_path(module_data, "loc-c"))
        with self.assertRaises(ObjectNotFound):
            self.replica.get_read_stream(self.context, module_data)
        with self.assertRaises(ObjectNotFound):
            self.replica.get_size(self.context, module_data)

    def test_unavailable_when_every_location_that_might_have_it_failed(self):
        data = payload(100, seed=17)
        module_data = self.store(data)
        os.unlink(self.copy_path(module_data, "loc-a"))
        self.faulty["loc-b"].down()
        self.faulty["loc-c"].down()
        with self.assertRaises(LocationUnavailable):
            self.replica.get_read_stream(self.context, module_data)
        with self.assertRaises(LocationUnavailable):
            self.replica.get_size(self.context, module_data)


class TestErrorLimiting(ReplicaTestCase):
    options = {"error_limit": 3, "error_interval": 60}

    def test_a_dead_location_is_not_retried_on_every_call_until_the_interval_passes(self):
        data = payload(1000, seed=20)
        module_data = self.store(data)
        dead = self.faulty["loc-a"]
        dead.fail("get_read_stream")
        self.assertEqual(self.read(module_data), data)  # 3 attempts -> limited
        calls = dead.calls["get_read_stream"]
        self.assertEqual(calls, 3)
        stats = self.replica.statistics(self.context)
        self.assertEqual(self.location_report(stats, "loc-a")["health"], "error-limited")
        for _ in range(20):
            self.assertEqual(self.read(module_data), data)
        self.assertEqual(dead.calls["get_read_stream"], calls, "an error-limited location was "
                         "tried while healthy copies exist")
        self.clock.advance(61)
        self.assertEqual(self.read(module_data), data)
        self.assertEqual(dead.calls["get_read_stream"], calls + 1,
                         "after the interval the location is probed exactly once")
        self.assertEqual(self.location_report(self.replica.statistics(self.context),
                                              "loc-a")["health"], "error-limited")
        dead.up()
        self.clock.advance(61)
        with self.replica.get_read_stream(self.context, module_data) as stream:
            self.assertEqual(stream.location, "loc-a")
        self.assertEqual(self.location_report(self.replica.statistics(self.context),
                                              "loc-a")["health"], "ok")

    def test_repair_probes_an_error_limited_location_that_is_back(self):
        """Regression: repair() right after fixing a location must not wait for the limit."""
        os.rename(self.dirs[2], self.dirs[2] + ".lost")
        objects = {}
        for seed in range(6):
            data = payload(2000, seed=seed)
            objects[self.store(data)] = data
        self.assertEqual(self.location_report(self.replica.statistics(self.context),
                                              "loc-c")["health"], "error-limited")
        os.rename(self.dirs[2] + ".lost", self.dirs[2])
        summary = self.replica.repair(self.context)
        self.assertEqual(summary["copies"], {"done": 6, "failed": 0, "obsolete": 0})
        for module_data, data in objects.items():
            with open(self.copy_path(module_data, "loc-c"), "rb") as file:
                self.assertEqual(file.read(), data)
        self.assertEqual(self.location_report(self.replica.statistics(self.context),
                                              "loc-c")["health"], "ok")

    def test_repair_gives_up_on_a_limited_location_that_is_still_down(self):
        os.rename(self.dirs[2], self.dirs[2] + ".lost")
        for seed in range(6):
            self.store(payload(2000, seed=seed))
        before = sum(self.faulty["loc-c"].calls.values())
        summary = self.replica.repair(self.context)
        self.assertEqual(summary["copies"]["failed"], 1)
        self.assertEqual(summary["skipped_locations"], ["loc-c"])
        self.assertEqual(summary["remaining"]["copy"], 6)
        # one probe (with manifests: reading the copy's manifest), then it is given up on
        self.assertEqual(sum(self.faulty["loc-c"].calls.values()), before + 1)

    def test_repair_of_one_object_probes_an_error_limited_location(self):
        os.rename(self.dirs[2], self.dirs[2] + ".lost")
        stored = [self.store(payload(2000, seed=seed)) for seed in range(4)]
        os.rename(self.dirs[2] + ".lost", self.dirs[2])
        self.assertEqual(self.replica.repair(self.context, stored[0])["repaired"], ["loc-c"])

    def test_error_limited_location_is_still_tried_last(self):
        data = payload(1000, seed=21)
        module_data = self.store(data)
        self.faulty["loc-a"].fail("get_read_stream")
        self.read(module_data)
        self.faulty["loc-a"].up()
        self.assertTrue(self.replica.statistics(self.context)["degraded"])
        os.unlink(self.copy_path(module_data, "loc-b"))
        os.unlink(self.copy_path(module_data, "loc-c"))
        with self.replica.get_read_stream(self.context, module_data) as stream:
            self.assertEqual(stream.location, "loc-a")
            self.assertEqual(stream.read(), data)

    def test_writes_skip_an_error_limited_location(self):
        self.faulty["loc-c"].down()
        for seed in range(3):
            self.store(payload(100, seed=seed))
        before = self.faulty["loc-c"].calls["available"]
        self.store(payload(100, seed=9))
        self.assertEqual(self.faulty["loc-c"].calls["available"], before)
        self.assertEqual(self.replica.statistics(self.context)["under_replicated"], 4)


class TestDeletes(ReplicaTestCase):
    options = {"journal_interval": 0}

    def test_delete_with_a_location_down_then_back_drains_the_journal(self):
        module_data = self.store(payload(1000, seed=30))
        self.faulty["loc-c"].down()
        self.replica.delete(self.context, module_data)
        self.assertFalse(self.has_copy(module_data, "loc-a"))
        self.assertTrue(self.has_copy(module_data, "loc-c"))
        self.assertEqual(self.replica.statistics(self.context)["pending_deletes"], 1)
        self.faulty["loc-c"].up()
        self.store(payload(10, seed=31))  # a later call starts a background drain
        self.assertTrue(wait_until(lambda: not self.has_copy(module_data, "loc-c")),
                        "the deferred delete was never retried")
        self.assertTrue(wait_until(
            lambda: self.replica.statistics(self.context)["pending_deletes"] == 0))

    def test_the_next_call_retries_owed_deletes_at_a_location_that_is_back(self):
        replica = self.make_replica(journal_interval=3600)  # no background pass
        module_data = self.store(payload(1000, seed=39), replica)
        other = self.store(payload(1000, seed=40), replica)
        self.faulty["loc-c"].down()
        replica.delete(self.context, module_data)
        self.assertTrue(self.has_copy(module_data, "loc-c"))
        self.assertTrue(self.has_copy(other, "loc-c"))
        self.faulty["loc-c"].up()
        replica.delete(self.context, other)
        self.assertFalse(self.has_copy(module_data, "loc-c"), "the owed delete was not retried")
        self.assertFalse(self.has_copy(other, "loc-c"))
        self.assertEqual(replica.statistics(self.context)["pending_deletes"], 0)

    def test_owed_deletes_are_not_retried_at_a_location_that_is_still_failing(self):
        replica = self.make_replica(journal_interval=3600)
        module_data = self.store(payload(1000, seed=41), replica)
        other = self.store(payload(1000, seed=42), replica)
        self.faulty["loc-c"].down()
        replica.delete(self.context, module_data)
        deletes = self.faulty["loc-c"].calls["delete"]
        for _ in range(5):
            self.read(other, replica)
        self.assertEqual(self.faulty["loc-c"].calls["delete"], deletes)

    def test_reads_also_drain_the_journal(self):
        """Regression: a read-mostly workload must still catch up a location that came back."""
        module_data = self.store(payload(1000, seed=37))
        other = self.store(payload(1000, seed=38))
        self.faulty["loc-b"].down()
        self.replica.delete(self.context, module_data)
        self.faulty["loc-b"].up()
        self.settle()
        self.read(other)
        self.assertTrue(wait_until(lambda: not self.has_copy(module_data, "loc-b")))

    def test_repair_replays_deferred_deletes_and_copies(self):
        replica = self.make_replica(journal_interval=3600)
        gone = self.store(payload(1000, seed=32), replica)
        self.faulty["loc-b"].down()
        replica.delete(self.context, gone)
        kept = self.store(payload(MIB, seed=33), replica)
        self.assertFalse(self.has_copy(kept, "loc-b"))
        self.faulty["loc-b"].up()
        summary = replica.repair(self.context)
        self.assertEqual(summary["deletes"]["done"], 1)
        self.assertEqual(summary["copies"]["done"], 1)
        self.assertEqual(summary["remaining"], {"delete": 0, "copy": 0})
        self.assertFalse(self.has_copy(gone, "loc-b"))
        with open(self.copy_path(kept, "loc-b"), "rb") as file:
            self.assertEqual(file.read(), payload(MIB, seed=33))

    def test_repair_leaves_entries_of_a_location_still_down(self):
        replica = self.make_replica(journal_interval=3600)
        module_data = self.store(payload(10, seed=34), replica)
        self.faulty["loc-b"].down()
        replica.delete(self.context, module_data)
        summary = replica.repair(self.context)
        self.assertEqual(summary["deletes"]["failed"], 1)
        self.assertEqual(summary["remaining"]["delete"], 1)

    def test_delete_of_a_deleted_object_is_fine(self):
        module_data = self.store(payload(10, seed=35))
        self.replica.delete(self.context, module_data)
        self.replica.delete(self.context, module_data)
        self.assertEqual(self.replica.statistics(self.context)["pending_deletes"], 0)

    def test_a_delete_during_a_repair_leaves_no_copy_and_no_entry(self):
        """Regression: a refill that finished after a concurrent delete left an orphan copy
        (and a failed one re-recorded the missing copy of a deleted object)."""
        replica = self.make_replica(journal_interval=3600)
        self.faulty["loc-c"].down()
        module_data = self.store(payload(MIB, seed=60), replica)
        self.faulty["loc-c"].up()
        self.faulty["loc-c"].hang("write", after_bytes=1000)
        repairing = threading.Thread(target=replica.repair, args=(self.context, module_data))
        repairing.start()
        self.assertTrue(wait_until(lambda: self.faulty["loc-c"].calls["assign"] == 1))
        replica.delete(self.context, module_data)
        self.faulty["loc-c"].clear("write")
        repairing.join(10)
        self.assertFalse(repairing.is_alive())
        for name in ("loc-a", "loc-b", "loc-c"):
            self.assertFalse(self.has_copy(module_data, name), "a copy survived at " + name)
        stats = replica.statistics(self.context)
        self.assertEqual((stats["under_replicated"], stats["pending_deletes"]), (0, 0))

    def test_delete_forgets_missing_copies_of_the_object(self):
        self.faulty["loc-c"].down()
        module_data = self.store(payload(10, seed=36))
        self.assertEqual(self.replica.statistics(self.context)["under_replicated"], 1)
        self.replica.delete(self.context, module_data)
        stats = self.replica.statistics(self.context)
        self.assertEqual(stats["under_replicated"], 0)
        self.assertEqual(stats["pending_deletes"], 1)


class TestStatistics(ReplicaTestCase):

    def test_statistics_with_a_location_down_returns_and_marks_it(self):
        self.faulty["loc-b"].down()
        stats = self.replica.statistics(self.context)
        report = self.location_report(stats, "loc-b")
        self.assertEqual(report["health"], "down")
        self.assertIn("injected fault", report["reason"])
        self.assertEqual(stats["healthy"], 2)
        self.assertTrue(stats["degraded"])
        self.assertGreater(stats["capacity"]["free"], 0)
        self.assertEqual(stats["capacity_unknown"], ["loc-b"])
        self.assertEqual(report["capacity"], {"total": -1, "free": -1, "used": -1})

    def test_capacity_is_the_most_constrained_healthy_location(self):
        self.faulty["loc-a"].report_capacity(1000, 700, 300)
        self.faulty["loc-b"].report_capacity(5000, 400, 4600)
        self.faulty["loc-c"].report_capacity(-1, -1, -1)
        stats = self.replica.statistics(self.context)
        self.assertEqual(stats["capacity"], {"total": 5000, "free": 400, "used": 4600})
        self.assertEqual(stats["capacity_location"], "loc-b")
        self.assertEqual(stats["capacity_unknown"], ["loc-c"])
        self.assertEqual(stats["raw"], {"total": 6000, "free": 1100, "used": 4900})

    def test_a_failing_location_is_left_out_of_capacity_never_zero(self):
        self.faulty["loc-a"].report_capacity(1000, 700, 300)
        self.faulty["loc-b"].report_capacity(1000, 500, 500)
        self.faulty["loc-c"].fail("statistics")
        stats = self.replica.statistics(self.context)
        self.assertEqual(stats["capacity"]["free"], 500)
        self.assertEqual(self.location_report(stats, "loc-c")["capacity"]["free"], -1)

    def test_no_known_capacity_reports_unknown(self):
        for faulty in self.faulty.values():
            faulty.fail("statistics")
        stats = self.replica.statistics(self.context)
        self.assertEqual(stats["capacity"], {"total": -1, "free": -1, "used": -1})
        self.assertEqual(stats["healthy"], 0)

    def test_statistics_without_context_before_resolution_does_not_raise(self):
        replica = self.make_replica()
        stats = replica.statistics(None)
        self.assertEqual(stats["capacity"]["free"], -1)
        for entry in stats["locations"]:
            self.assertIn("not been resolved", entry["reason"])

    def test_statistics_of_a_hung_location_returns_within_call_timeout(self):
        replica = self.make_replica(call_timeout=0.2)
        self.faulty["loc-a"].hang("statistics")
        stats = replica.statistics(self.context)
        self.faulty["loc-a"].release()
        self.assertEqual(self.location_report(stats, "loc-a")["health"], "down")
        self.assertIn("call_timeout", self.location_report(stats, "loc-a")["reason"])
        self.assertEqual(stats["healthy"], 2)


class TestSecrets(ReplicaTestCase):

    def test_credentials_quoted_by_a_foreign_error_never_reach_errors_logs_or_statistics(self):
        module_data = self.store(payload(10, seed=50))
        leak = ValueError("GET https://admin:s3cret@dav.example.com/x failed")
        for faulty in self.faulty.values():
            faulty.fail("get_size", leak)
        with self.assertLogs("replica", "WARNING") as logs:
            with self.assertRaises(LocationUnavailable) as caught:
                self.replica.get_size(self.context, module_data)
        self.assertNotIn("s3cret", str(caught.exception))
        self.assertIn("dav.example.com", str(caught.exception))
        self.assertNotIn("s3cret", "\n".join(logs.output))
        self.assertNotIn("s3cret", json.dumps(self.replica.statistics(self.context)))


class TestCallsWithoutContext(ReplicaTestCase):

    def test_named_modules_are_cached_for_calls_without_context(self):
        data = payload(1000, seed=40)
        module_data = self.store(data)
        self.assertEqual(self.read(module_data), data)
        with self.replica.get_read_stream(None, module_data) as stream:
            self.assertEqual(stream.read(), data)
        self.assertTrue(self.replica.available({}, module_data))


if __name__ == "__main__":
    unittest.main()
