"""The replica's one bounded worker pool, with admission so it can never deadlock.

A write needs one worker per target location *at the same time* (each
worker runs a child's ``assign`` while the caller's thread feeds it).
Submitting such groups to a plain pool can starve: the first writers of
many writes take every worker and wait for data while the producers wait
for their other writers to start. So callers first :meth:`WorkerPool.reserve`
as many slots as they will submit tasks; a reservation never exceeds the pool
size, so every reserved task starts at once. A task frees its slot when it
ends. Threads are created lazily and live until :meth:`WorkerPool.shutdown`.
"""
import concurrent.futures
import logging
import threading
import time
from typing import Any, Callable, Dict, Optional

from modules.errors import LocationUnavailable

__all__ = ["WorkerPool"]

log = logging.getLogger(__name__)


class WorkerPool:
    """A fixed-size thread pool whose callers reserve slots before submitting.

    Args:
        size: the number of worker threads (and slots).
        name: thread name prefix (threads are called ``<name>_<n>``).
    """

    def __init__(self, size: int, name: str = "replica"):
        self.size = size
        self._name = name
        self._cond = threading.Condition()
        self._free = size
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._closed = False
        self._waits = 0

    def reserve(self, count: int, timeout: Optional[float]) -> bool:
        """Wait until ``count`` slots are free and take them.

        Returns:
            bool: True when reserved; False when ``timeout`` seconds passed
            first (``timeout=0`` never waits).

        Raises:
            LocationUnavailable: the pool is shut down.
            ValueError: ``count`` exceeds the pool size.
        """
        if count > self.size:
            raise ValueError("cannot reserve %d of %d workers" % (count, self.size))
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            waited = False
            while self._free < count and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                if not waited:
                    self._waits += 1
                    waited = True
                self._cond.wait(remaining)
            if self._closed:
                raise LocationUnavailable("the replica is closed; no more operations")
            self._free -= count
            return True

    def release(self, count: int) -> None:
        """Give back ``count`` reserved slots that were not used for tasks."""
        with self._cond:
            self._free += count
            self._cond.notify_all()

    def submit(self, function: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        """Run ``function(*args)`` on a worker, using one slot reserved beforehand.

        The slot is freed when the task ends, however it ends. If this
        raises, the slot is still the caller's to :meth:`release`.

        Returns:
            concurrent.futures.Future: the task's future.

        Raises:
            LocationUnavailable: the pool is shut down.
        """
        with self._cond:
            if self._closed:
                raise LocationUnavailable("the replica is closed; no more operations")
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.size, thread_name_prefix=self._name)
            executor = self._executor
        return executor.submit(self._run, function, args)

    def _run(self, function: Callable[..., Any], args: tuple) -> Any:
        try:
            return function(*args)
        finally:
            self.release(1)

    def stats(self) -> Dict[str, Any]:
        """Return ``size``, ``busy`` (slots in use), ``waits`` (reservations that waited),
        ``threads`` (live threads) and ``name`` (their name prefix)."""
        prefix = self._name + "_"
        threads = sum(1 for thread in threading.enumerate() if thread.name.startswith(prefix))
        with self._cond:
            return {"size": self.size, "busy": self.size - self._free, "waits": self._waits,
                    "threads": threads, "name": self._name}

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop accepting work and end the threads.

        Waits up to ``timeout`` seconds for running tasks to end; tasks
        still running after that (a child that never returns) are logged
        and left behind.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while self._free < self.size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            executor, self._executor = self._executor, None
            busy = self.size - self._free
        if executor is None:
            return
        if busy:
            log.warning("closing the replica while %d worker(s) are still busy (a location that "
                        "does not return?); not waiting for them", busy)
            executor.shutdown(wait=False, cancel_futures=True)
        else:
            executor.shutdown(wait=True)
