"""The host's background repair pass: after a module is reconfigured, repair every object.

A replica keeps no list of its objects; the host's index has one. When an
administrator changes a module's configuration (a location added to a
mirror, one marked draining, one replaced under the same name), the copies
that configuration calls for do not exist yet. ``vsm repair`` writes them
at once; this pass writes them in the background, as Linux md resyncs an
added disk: ``module.repair(context, module_data)`` for every object of
the module in key order, a batch at a time, at most ``rate`` bytes per
second of reading for modules that can scrub (see
:class:`modules.host.repair.RepairService`, which runs each batch).

Progress lives in the index database (:class:`modules.host.store.RepairPass`),
not in a process: a restarted host resumes where the pass stopped, and of
several ``vsm serve`` workers exactly one runs a pass at a time (the owner
beats a heartbeat; a pass whose owner stopped beating is taken over). A new
configuration revision restarts the pass from the first key.
"""
import logging
import os
import threading
import time
import uuid
from dataclasses import replace
from typing import Callable, Optional

from modules.errors import StorageError, Unsupported

from modules.host.registry import Lease
from modules.host.repair import RepairService
from modules.host.store import RepairPass, Store

__all__ = ["BackgroundRepair", "DEFAULT_RATE"]

log = logging.getLogger(__name__)

#: Bytes per second a pass reads at most by default (``vsm serve --background-repair``).
DEFAULT_RATE = 32 * 1024 * 1024

#: Objects repaired per batch (one heartbeat and one progress record per batch).
BATCH = 100

#: Seconds between looks for work when there is none (or after a failed batch): a look
#: reads the configuration generation, and the passes only when there may be one to run.
INTERVAL = 2.0

#: Seconds without a heartbeat after which another process takes a pass over.
STALE_AFTER = 300.0


class BackgroundRepair:
    """One process's runner of background repair passes (a daemon thread).

    Args:
        store: the index database (passes and objects).
        lease: returns a new registry lease (one per batch).
        service: runs one objects step of a repair.
        rate: bytes per second of reading for modules that scrub (None: no limit).
        batch: objects per step.
        interval: seconds between looks for work when there is none.
        stale_after: seconds after which another process's pass is taken over.
    """

    def __init__(self, store: Store, lease: Callable[[], Lease], service: RepairService,
                 rate: Optional[float] = DEFAULT_RATE, batch: int = BATCH,
                 interval: float = INTERVAL, stale_after: float = STALE_AFTER):
        self._store = store
        self._lease = lease
        self._service = service
        self._rate = rate
        self._batch = batch
        self._interval = interval
        self._stale_after = stale_after
        self._identity = "%d-%s" % (os.getpid(), uuid.uuid4().hex[:8])
        self._planned: Optional[int] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        return "BackgroundRepair(rate=%r, identity=%r)" % (self._rate, self._identity)

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="vsm-background-repair",
                                            daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the current object (a module call that hangs is not waited for)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def step(self) -> bool:
        """Repair one batch of one pass that needs it.

        Returns:
            bool: True when there is more work to do at once.

        Raises:
            LocationUnavailable: the index database cannot be used.
        """
        generation = self._store.generation()  # bumped by every configuration change
        if generation != self._planned:
            self._store.plan_repair_passes()
            self._planned = generation
        current = self._store.claim_repair_pass(self._identity, self._stale_after)
        if current is None:
            return False
        body = {"after": current.after, "limit": self._batch}
        if self._rate:
            body["rate"] = self._rate
        try:
            with self._lease() as lease:
                report = self._service.run(lease, current.module, body)
        except Unsupported as error:
            self._record(replace(current, last_error=str(error), finished=time.time()))
            return True  # on to the next pass
        except StorageError as error:  # the module cannot be created or used now: retry later
            log.warning("background repair of module %r: %s: %s", current.module,
                        type(error).__name__, error)
            self._record(replace(current, last_error="%s: %s" % (type(error).__name__, error)))
            return False
        failures = report["failed"]
        progress = replace(
            current, after=report["next"] or current.after, done=current.done + report["done"],
            failed=current.failed + len(failures),
            last_error=failures[-1]["error"] if failures else current.last_error,
            finished=None if report["next"] else time.time())
        if failures:
            log.warning("background repair of module %r: %d object(s) failed, e.g. %s: %s",
                        current.module, len(failures), failures[0]["key"], failures[0]["error"])
        if progress.finished is not None:
            log.info("background repair of module %r (configuration revision %d) finished: "
                     "%d object(s) repaired, %d failed", current.module, current.revision,
                     progress.done - progress.failed, progress.failed)
        self._record(progress)
        return progress.finished is None

    def _record(self, progress: RepairPass) -> None:
        if not self._store.advance_repair_pass(progress):
            log.info("background repair of module %r: the pass changed hands or the module was "
                     "reconfigured; the next look starts over", progress.module)

    def _run(self) -> None:
        pause = 0.0
        while not self._stop.wait(pause):
            try:
                pause = 0 if self.step() else self._interval
            except Exception:
                if self._stop.is_set():
                    return  # the application is closing (its database may be gone)
                log.exception("background repair failed; trying again in %g s", self._interval)
                pause = self._interval
