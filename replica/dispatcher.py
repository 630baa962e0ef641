"""How the replica calls its locations: the worker pool, deadlines and the one retry policy.

:class:`Dispatcher` owns the replica's :class:`~replica.workers.WorkerPool`
and :class:`~replica.fanout.FanOut` and makes every call to a location in one
of two ways:

* :meth:`Dispatcher.attempt` for a call the caller waits for (``get_size``,
  opening a read stream, loading a manifest, ``new_data``): retried by the
  replica's policy only when the location does not retry for itself, and
  bounded by ``call_timeout`` as a whole;
* :meth:`Dispatcher.parallel` for one call per location at once (checks,
  deletes, statistics), each bounded by ``call_timeout``.

Retries live in exactly one layer. A child that declares
``capabilities['retries']`` (HTTPStorage, S3Storage) is called once per copy
attempt, and when that fails the caller moves on to the next copy, as
OpenStack Swift's proxy does. For other children the replica retries
transient errors (:func:`modules.errors.is_transient`: never a timeout, never
an error raised with ``retryable=False``) up to ``read_attempts`` times in
all, with exponential pauses from ``read_backoff``. The tenacity policy is
built once per replica, with the injected ``sleep``.
"""
import concurrent.futures
import logging
import time
from typing import Any, Callable, Dict, Tuple

import tenacity

from modules.errors import LocationTimeout, StorageError, is_transient
from replica.fanout import FanOut
from replica.location_set import LocationSet
from replica.locations import READ, Location
from replica.workers import WorkerPool

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)


class _Attempt:
    """One retried call: the function, its location and whether the caller gave up on it."""

    def __init__(self, location: Location, function: Callable[[], Any]):
        self.location = location
        self.function = function
        self.direction = READ
        self.abandoned = False

    def __call__(self) -> Any:
        return self.function()


class Dispatcher:
    """Run calls to locations with deadlines and the replica's one retry policy.

    Args:
        locations: the replica's locations (to blame a call that misses its deadline).
        pool: the replica's worker pool (the dispatcher shuts it down).
        fanout: the one-pass writer over the same pool.
        call_timeout: seconds one call (with its retries) may take, in seconds.
        read_attempts: attempts in all for children that do not retry (>= 1).
        read_backoff: first pause between attempts, in seconds (0: none);
            it doubles up to 8 times that.
        sleep: pauses between attempts (tests inject a recorder).

    Deadlines are measured with :func:`time.monotonic` (real waits), not
    with the replica's injectable clock (which times error limiting).
    """

    def __init__(self, locations: LocationSet, pool: WorkerPool, fanout: FanOut,
                 call_timeout: float, read_attempts: int, read_backoff: float,
                 sleep: Callable[[float], None] = time.sleep):
        self.locations = locations
        self.pool = pool
        self.fanout = fanout
        self.call_timeout = call_timeout
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_any(tenacity.stop_after_attempt(max(1, read_attempts)),
                                   _stop_for_location),
            wait=tenacity.wait_exponential(multiplier=read_backoff, max=read_backoff * 8)
            if read_backoff > 0 else tenacity.wait_none(),
            retry=tenacity.retry_if_exception(is_transient),
            sleep=sleep,
            reraise=True)

    # -- one call the caller waits for ----------------------------------------

    def attempt(self, location: Location, function: Callable[[], Any],
                direction: str = READ) -> Any:
        """Call ``function`` (a call to ``location``) under the retry policy and a deadline.

        The call runs on a worker while the caller waits at most
        ``call_timeout`` seconds; when no worker is free it runs in the
        caller's thread (bounded by the child's own timeouts only). A call
        that misses the deadline is left to finish on its worker (a stream it
        returns then is closed) and counts as a failure of ``location``.

        Returns:
            what ``function`` returns.

        Raises:
            LocationTimeout: no answer within ``call_timeout``.
            StorageError: the last attempt's error.
        """
        attempt = _Attempt(location, function)
        attempt.direction = direction
        if not self._reserve():
            return self._retrying(attempt)
        try:
            future = self.pool.submit(self._retrying, attempt)
        except StorageError:
            self.pool.release(1)
            raise
        try:
            return future.result(timeout=self.call_timeout)
        except concurrent.futures.TimeoutError:
            attempt.abandoned = True
            future.add_done_callback(_close_late_result)
            error = LocationTimeout("location %s did not answer within %g s (call_timeout)"
                                    % (location.name, self.call_timeout), location=location.name)
            location.failed(error, "call", direction)
            raise error from None

    def attempt_each(self, calls: Dict[str, Tuple[Location, Callable[[], Any]]],
                     direction: str = READ) -> Dict[str, Tuple[bool, Any]]:
        """:meth:`attempt` for several locations at once, under one deadline.

        Args:
            calls: name -> (location, function calling it).

        Returns:
            dict: name -> (True, value) or (False, StorageError), in the
            order of ``calls``.
        """
        results: Dict[str, Tuple[bool, Any]] = {}
        if len(calls) < 2 or not self.pool.reserve(len(calls), 0):
            for name, (location, function) in calls.items():
                try:
                    results[name] = (True, self.attempt(location, function, direction))
                except StorageError as error:
                    results[name] = (False, error)
            return results
        attempts: Dict[str, _Attempt] = {}
        futures: Dict[str, concurrent.futures.Future] = {}
        try:
            for name, (location, function) in calls.items():
                attempts[name] = _Attempt(location, function)
                attempts[name].direction = direction
                futures[name] = self.pool.submit(self._retrying, attempts[name])
        finally:
            self.pool.release(len(calls) - len(futures))
        deadline = time.monotonic() + self.call_timeout
        for name, future in futures.items():
            try:
                results[name] = (True, future.result(
                    timeout=max(0.0, deadline - time.monotonic())))
            except concurrent.futures.TimeoutError:
                attempts[name].abandoned = True
                future.add_done_callback(_close_late_result)
                error = LocationTimeout("location %s did not answer within %g s (call_timeout)"
                                        % (name, self.call_timeout), location=name)
                attempts[name].location.failed(error, "call", direction)
                results[name] = (False, error)
            except StorageError as error:
                results[name] = (False, error)
        return results

    # -- one call per location at once -----------------------------------------

    def parallel(self, calls: Dict[str, Callable[[], Any]],
                 direction: str = READ) -> Dict[str, Tuple[bool, Any]]:
        """Run one call per location name at once; return name -> (True, value) or (False, error).

        Calls run on the pool when it has room (together bounded by
        ``call_timeout``; a location that does not answer in time counts as
        failed in ``direction``), otherwise one after the other in this
        thread. Calls are not retried.
        """
        results: Dict[str, Tuple[bool, Any]] = {}
        if len(calls) > 1 and self.pool.reserve(len(calls), 0):
            futures: Dict[str, concurrent.futures.Future] = {}
            try:
                for name, call in calls.items():
                    futures[name] = self.pool.submit(call)
            finally:
                self.pool.release(len(calls) - len(futures))
            deadline = time.monotonic() + self.call_timeout
            for name, future in futures.items():
                location = self.locations.get(name)
                try:
                    results[name] = (True, future.result(
                        timeout=max(0.0, deadline - time.monotonic())))
                except concurrent.futures.TimeoutError:
                    error = LocationTimeout("location %s did not answer within %g s "
                                            "(call_timeout)" % (name, self.call_timeout),
                                            location=name)
                    location.failed(error, "call", direction)
                    results[name] = (False, error)
                except Exception as error:  # calls translate already; a safety net
                    results[name] = (False, location.translate(error, "call"))
            return results
        for name, call in calls.items():
            try:
                results[name] = (True, call())
            except StorageError as error:
                results[name] = (False, error)
        return results

    def shutdown(self, timeout: float) -> None:
        """Stop the workers, waiting up to ``timeout`` seconds for running calls."""
        self.pool.shutdown(timeout=timeout)

    def _reserve(self) -> bool:
        try:
            return self.pool.reserve(1, 0)
        except StorageError:  # closed: run inline, the caller checks for closing itself
            return False


def _stop_for_location(state: tenacity.RetryCallState) -> bool:
    """Stop retrying: the child retries itself, the location is error-limited, or nobody waits."""
    attempt = state.fn
    if not isinstance(attempt, _Attempt):
        return False
    return (attempt.abandoned or attempt.location.retries_itself
            or attempt.location.is_limited(attempt.direction))


def _close_late_result(future: concurrent.futures.Future) -> None:
    """Close a stream that a call returned after its caller gave up on it."""
    if future.cancelled() or future.exception() is not None:
        return
    close = getattr(future.result(), "close", None)
    if callable(close):
        try:
            close()
        except Exception as error:  # nobody to report to; the stream is unused
            log.debug("closing a late stream failed: %s: %s", type(error).__name__, error)
