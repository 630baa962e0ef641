"""Modules' statistics for the status page, ``/metrics`` and the provisioning API.

A module's ``statistics()`` may ask its storage (a replica asks every
location), and a hung location answers only when the module's own timeout
expires: tens of seconds. The views that show statistics must not wait that
long, nor fail because one module is slow, so :class:`StatisticsGatherer`
asks every module at once on a small pool and waits at most a deadline; a
module still answering a previous request is not asked again (a hung module
holds one worker, never a growing pile of them).
"""
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from modules.errors import StorageError
from modules.host.registry import Lease

log = logging.getLogger(__name__)

#: ``(statistics, None)``, or ``(None, why the module could not report)``.
Report = Tuple[Optional[Dict[str, Any]], Optional[str]]

#: Seconds the views wait for statistics before showing "no answer".
DEFAULT_DEADLINE = 5.0

#: Threads asking modules for statistics at once (per process).
DEFAULT_WORKERS = 4


def module_statistics(lease: Lease, name: str) -> Report:
    """Return ``(statistics, None)``, or ``(None, why)`` when the module cannot report.

    Never raises: statistics must render even when a module is broken.
    """
    try:
        return lease.module(name).statistics(lease.context(name)), None
    except StorageError as error:
        return None, "%s: %s" % (type(error).__name__, error)
    except Exception as error:  # a module bug must not break the admin's view
        log.exception("statistics of module %r failed", name)
        return None, "%s: %s" % (type(error).__name__, error)


class StatisticsGatherer:
    """Ask modules for statistics in parallel, within a deadline.

    Args:
        lease: returns a new registry lease (each call holds its own, so a
            call that outlives the request still has live module instances).
        deadline: seconds :meth:`gather` waits for the slowest module.
        workers: threads asking at once.
    """

    def __init__(self, lease: Callable[[], Lease], deadline: float = DEFAULT_DEADLINE,
                 workers: int = DEFAULT_WORKERS):
        self._lease = lease
        self._deadline = deadline
        self._pool = ThreadPoolExecutor(max_workers=workers,
                                        thread_name_prefix="vsm-statistics")
        self._lock = threading.Lock()
        self._running: Dict[str, Future] = {}

    def gather(self, names: Iterable[str]) -> Dict[str, Report]:
        """Return each module's report, waiting at most the deadline in all.

        Returns:
            dict: name -> :data:`Report`; a module that has not answered in
            time gets ``(None, "no answer within N s ...")``.
        """
        futures: Dict[str, Future] = {}
        names = list(names)
        with self._lock:
            for gone in [name for name, future in self._running.items()
                         if future.done() and name not in names]:
                del self._running[gone]  # modules no longer asked for (deleted ones)
            for name in names:
                future = self._running.get(name)
                if future is None or future.done():
                    future = self._pool.submit(self._ask, name)
                    self._running[name] = future
                futures[name] = future
        done, _ = wait(list(futures.values()), timeout=self._deadline)
        reports: Dict[str, Report] = {}
        for name, future in futures.items():
            if future in done:
                reports[name] = future.result()
            else:
                reports[name] = (None, "no answer within %g s: the module's storage is slow or "
                                       "hung (its own timeouts still apply)" % self._deadline)
        return reports

    def one(self, name: str) -> Report:
        """Return one module's report (see :meth:`gather`)."""
        return self.gather([name])[name]

    def close(self) -> None:
        """Stop the workers without waiting for calls still hung in a module."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _ask(self, name: str) -> Report:
        try:
            lease = self._lease()
        except StorageError as error:
            return None, "%s: %s" % (type(error).__name__, error)
        try:
            return module_statistics(lease, name)
        finally:
            lease.release()
