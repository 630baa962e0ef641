"""Retries in exactly one layer, and a deadline on every call the caller waits for (issue 9).

Real directories behind FaultyStorage wrappers; the replica's ``sleep`` is a
recorder, so retried calls cost no time.
"""
import os
import time
from types import MappingProxyType

from modules.errors import LocationTimeout, LocationUnavailable, is_transient
from modules.testing import payload
from tests.replica.helpers import ReplicaTestCase, wait_until


class TestOneRetryLayer(ReplicaTestCase):
    options = {"read_attempts": 3, "error_limit": 100, "integrity": "off"}

    def stored(self):
        data = payload(5000, seed=3)
        return self.store(data), data

    def test_a_transient_error_of_a_plain_child_is_retried_read_attempts_times(self):
        module_data, data = self.stored()
        self.faulty["loc-a"].fail("get_read_stream")
        self.assertEqual(self.read(module_data), data)
        self.assertEqual(self.faulty["loc-a"].calls["get_read_stream"], 3)
        self.assertEqual(len(self.sleeps.pauses), 2, "the injected sleep paces the retries")

    def test_an_error_raised_with_retryable_false_is_called_once(self):
        """Regression (issue 9): a child error raised with retryable=False was retried 3 times."""
        module_data, data = self.stored()
        self.faulty["loc-a"].fail("get_read_stream", LocationUnavailable(
            "the mount is read-only", location="loc-a", retryable=False))
        self.faulty["loc-a"].fail("get_size", LocationUnavailable(
            "the mount is read-only", location="loc-a", retryable=False))
        self.assertEqual(self.read(module_data), data)
        # a fresh replica (another worker process): loc-a has no recent failure there
        fresh = self.make_replica()
        self.assertEqual(fresh.get_size(self.context, module_data), len(data))
        self.assertEqual(self.faulty["loc-a"].calls["get_read_stream"], 1)
        self.assertEqual(self.faulty["loc-a"].calls["get_size"], 1)
        self.assertEqual(self.sleeps.pauses, [])

    def test_a_timeout_moves_on_to_the_next_copy(self):
        """Regression (issue 9): a timeout means "slow now": the same copy is not asked again."""
        module_data, data = self.stored()
        self.faulty["loc-a"].fail("get_read_stream", LocationTimeout(
            "no answer within 1 s", location="loc-a"))
        with self.replica.get_read_stream(self.context, module_data) as stream:
            self.assertEqual(stream.read(), data)
            self.assertEqual(stream.location, "loc-b")
        self.assertEqual(self.faulty["loc-a"].calls["get_read_stream"], 1)

    def test_a_child_that_retries_itself_is_called_once_per_copy_attempt(self):
        """Regression (issue 9): retries multiplied (replica attempts x child attempts)."""
        module_data, data = self.stored()
        faulty = self.faulty["loc-a"]
        faulty.capabilities = MappingProxyType(dict(faulty.capabilities, retries=True))
        faulty.fail("get_read_stream")
        faulty.fail("get_size")
        self.assertEqual(self.read(module_data), data)
        fresh = self.make_replica()
        self.assertEqual(fresh.get_size(self.context, module_data), len(data))
        self.assertEqual(faulty.calls["get_read_stream"], 1)
        self.assertEqual(faulty.calls["get_size"], 1)
        self.assertEqual(self.sleeps.pauses, [])

    def test_the_transient_rule(self):
        self.assertTrue(is_transient(LocationUnavailable("refused")))
        self.assertFalse(is_transient(LocationUnavailable("501", retryable=False)))
        self.assertFalse(is_transient(LocationTimeout("slow")))
        self.assertFalse(is_transient(OSError("foreign")))


class TestDeadlines(ReplicaTestCase):
    """Every call made in the caller's thread is bounded by call_timeout (issue 9)."""

    options = {"call_timeout": 0.5, "error_limit": 100}

    def test_a_hung_location_costs_get_size_and_a_read_one_deadline(self):
        """Regression (issue 9): call_timeout did not bound get_size, opening or manifests."""
        data = payload(300000, seed=4)
        module_data = self.store(data)
        self.faulty["loc-a"].hang("get_read_stream")  # the manifest, then the data
        self.faulty["loc-a"].hang("get_size")
        started = time.monotonic()
        self.assertEqual(self.replica.get_size(self.context, module_data), len(data))
        self.assertEqual(self.read(module_data), data)
        elapsed = time.monotonic() - started
        # One deadline of 0.5 s, then loc-a is read last; without deadlines this hangs.
        self.assertLess(elapsed, 5)
        report = self.location_report(self.replica.statistics(self.context), "loc-a")
        self.assertEqual(report["read_health"], "down")
        self.assertIn("call_timeout", report["read"]["last_error"])
        self.release_faults()

    def test_a_late_stream_is_closed(self):
        """A stream returned after its caller gave up on it is closed, not leaked."""
        data = payload(1000, seed=5)
        module_data = self.store(data)
        opened_before = len(os.listdir("/proc/self/fd"))
        self.faulty["loc-a"].hang("get_read_stream", seconds=1.0)
        self.assertEqual(self.read(module_data), data)
        self.settle()  # the abandoned open finishes on its worker; its stream is closed
        self.assertEqual(self.faulty["loc-a"].calls["get_read_stream"], 1)
        self.assertTrue(wait_until(lambda: len(os.listdir("/proc/self/fd")) <= opened_before),
                        "the late stream's file stayed open")
