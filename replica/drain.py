"""Draining the replica's journal: retrying deferred deletes and missing copies.

:class:`Drainer` replays journal entries (:mod:`replica.journal`) for a
``ReplicaStorage``: a few owed deletes in the caller's thread after each data
call (:meth:`Drainer.after_call`), a bounded background pass at most every
``journal_interval``, and the whole journal on an administrator's
``repair()`` (:meth:`Drainer.replay_all`). Copies are refilled through the
:class:`~replica.repairer.Repairer`. One replay runs at a time (``lock``).
"""
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from modules.errors import (
    InvalidModuleData,
    LocationUnavailable,
    ObjectNotFound,
    StorageError,
    describe_error,
)
from replica.copies import delete_copy
from replica.journal import DELETE, JournalEntry
from replica.ledger import Ledger
from replica.location_set import LocationSet
from replica.locations import OK, READ, WRITE, Location
from replica.repairer import Repairer
from replica.workers import WorkerPool

__all__ = ["Drainer", "DRAIN_BATCH", "INLINE_DELETES"]

log = logging.getLogger(__name__)

#: Journal entries one background drain handles at most.
DRAIN_BATCH = 64
#: Owed deletes retried in the caller's thread after a data call, at most.
INLINE_DELETES = 4
#: Journal entries fetched per query while replaying.
_PAGE = 100


class Drainer:
    """Replay a replica's journal, one replay at a time.

    Entries are writes (a delete or a copy owed to a location), so a
    location error-limited for writes is skipped by background replays.

    Args:
        locations: the replica's locations.
        ledger: journal, counters and the "journal may hold entries" hint.
        repairer: refills the copies that COPY entries ask for.
        pool: the worker pool background replays run on.
        journal_interval: seconds between background replays (0: after every call).
        is_closed: tells whether the replica is closing (no new replays then).
        clock: monotonic time source.
    """

    def __init__(self, locations: LocationSet, ledger: Ledger, repairer: Repairer,
                 pool: WorkerPool, journal_interval: float,
                 is_closed: Callable[[], bool] = lambda: False,
                 clock: Callable[[], float] = time.monotonic):
        self._locations = locations
        self._ledger = ledger
        self._journal = ledger.journal
        self._repairer = repairer
        self._pool = pool
        self._interval = journal_interval
        self._is_closed = is_closed
        self._clock = clock
        #: Held while a replay runs; ``close`` waits for it before closing the journal.
        self.lock = threading.Lock()
        self._schedule_lock = threading.Lock()
        self._next_drain: Optional[float] = None

    def replay_all(self, context: Optional[dict], queue_timeout: float) -> Dict[str, Any]:
        """Replay every journal entry, probing error-limited locations (``repair()``).

        Returns:
            dict: counts of ``deletes`` and ``copies`` done/failed/obsolete,
            ``skipped_locations`` and the ``remaining`` journal counts.

        Raises:
            LocationUnavailable: the journal cannot be read.
        """
        with self.lock:
            return self._replay(context, None, queue_timeout, True)

    def _replay(self, context: Optional[dict], limit: Optional[int], queue_timeout: float,
                probe: bool) -> Dict[str, Any]:
        """Retry journal entries (least recently tried first); the caller holds the drain lock.

        ``queue_timeout`` is how long a copy may wait for free workers (0 in
        the background: a busy pool leaves the entry for the next pass).
        ``probe`` (an administrator's repair): error-limited locations are
        tried too, until one of their entries fails and leaves them limited;
        otherwise (background) they are skipped.
        """
        summary: Dict[str, Any] = {
            "deletes": {"done": 0, "failed": 0, "obsolete": 0},
            "copies": {"done": 0, "failed": 0, "obsolete": 0}}
        seen = set()
        handled = 0
        given_up: set = set()
        skipped: List[str] = []
        while limit is None or handled < limit:
            if probe:
                skipped = sorted(given_up)
            else:
                skipped = [location.name for location in self._locations
                           if _limited(location)]
            usable = [name for name in self._locations.names if name not in skipped]
            page = [entry for entry in self._journal.entries(_PAGE, usable)
                    if (entry.kind, entry.location, entry.object_id) not in seen]
            if not page:
                break
            for entry in page:
                if limit is not None and handled >= limit:
                    break
                if entry.location in given_up:
                    continue
                seen.add((entry.kind, entry.location, entry.object_id))
                handled += 1
                outcome = self._replay_entry(context, entry, queue_timeout, probe)
                summary["deletes" if entry.kind == DELETE else "copies"][outcome] += 1
                if outcome == "failed" and _limited(self._locations.get(entry.location)):
                    given_up.add(entry.location)
        summary["skipped_locations"] = skipped
        try:
            summary["remaining"] = self._journal.counts()
        except StorageError as error:
            summary["remaining"] = {"error": describe_error(error)}
        self._ledger.count(journal_replayed=handled)
        return summary

    def _replay_entry(self, context: Optional[dict], entry: JournalEntry,
                      queue_timeout: float, probe: bool) -> str:
        """Retry one journal entry; return 'done', 'failed' or 'obsolete'."""
        location = self._locations.get(entry.location)
        try:
            data = self._locations.layout(context, entry.module_data).data
            child = data.child_md(entry.location)
        except (InvalidModuleData, KeyError):
            log.error("dropping a journal entry with unusable module_data (%s at %s)",
                      entry.kind, entry.location)
            self._journal.remove(entry.kind, entry.location, entry.object_id)
            return "obsolete"
        try:
            if entry.kind == DELETE:
                try:
                    delete_copy(context, location, child, data.manifest_md(entry.location))
                except ObjectNotFound:
                    pass
                log.info("object %s: deferred delete at %s done", entry.object_id, entry.location)
            else:
                report = self._repairer.repair_object(context, data, [entry.location],
                                                      queue_timeout, probe)
                if entry.location in report["failed"] or entry.location in report["unreachable"]:
                    raise LocationUnavailable(report["failed"].get(entry.location) or
                                              report["unreachable"][entry.location])
        except ObjectNotFound as error:  # no copy left anywhere to copy from
            log.error("object %s: cannot refill its copy at %s: %s", entry.object_id,
                      entry.location, error)
            self._journal.remove(entry.kind, entry.location, entry.object_id)
            return "obsolete"
        except StorageError as error:
            self._journal.retry_failed(entry, describe_error(error))
            return "failed"
        self._journal.remove(entry.kind, entry.location, entry.object_id)
        return "done"

    def after_call(self, context: Optional[dict]) -> None:
        """Catch up on the journal a little after a data call (cheap when it is empty).

        Retries up to INLINE_DELETES owed deletes in this thread, at
        locations whose last call succeeded (so a location that just failed,
        or is error-limited, costs nothing; one that fails is left alone for
        the rest of the batch), then starts a background pass when
        ``journal_interval`` has passed.
        """
        if self._ledger.hint and not self._is_closed():
            self._retry_deletes_inline(context)
        self._maybe_drain(context)

    def _retry_deletes_inline(self, context: Optional[dict]) -> None:
        usable = [location.name for location in self._locations if location.health(WRITE) == OK]
        if not usable or not self.lock.acquire(blocking=False):
            return
        try:
            entries = self._journal.entries(INLINE_DELETES, usable, DELETE)
            failed = set()
            for entry in entries:
                if entry.location in failed:
                    continue
                if self._replay_entry(context, entry, 0.0, False) == "failed":
                    failed.add(entry.location)
        except StorageError as error:
            log.error("retrying deferred deletes failed: %s", error)
        finally:
            self.lock.release()

    def _maybe_drain(self, context: Optional[dict]) -> None:
        """Start a background replay of some journal entries, at most every journal_interval."""
        now = self._clock()
        with self._schedule_lock:
            if self._next_drain is None:  # the first drain comes one interval after start
                self._next_drain = now + self._interval
            if self._is_closed() or now < self._next_drain:
                return
            self._next_drain = now + self._interval
        if self.lock.locked():
            return
        counts = self._ledger.counts()
        if counts is not None:
            self._ledger.hint = any(counts.values())  # other processes may add entries too
        if not counts or not any(counts.values()):
            return
        if not self._pool.reserve(1, 0):
            return
        try:
            self._pool.submit(self._background_drain, context)
        except StorageError as error:
            self._pool.release(1)
            log.debug("not draining the journal: %s", error)

    def _background_drain(self, context: Optional[dict]) -> None:
        if not self.lock.acquire(blocking=False):
            return
        try:
            if self._is_closed():
                return
            summary = self._replay(context, DRAIN_BATCH, 0.0, False)
            log.info("journal drain: %s", summary)
        except Exception:  # a background task has nobody to raise to
            log.exception("draining the replica journal failed")
        finally:
            self.lock.release()


def _limited(location: Location) -> bool:
    """Entries need both directions (a copy is checked, then written): skip either limit."""
    return location.is_limited(WRITE) or location.is_limited(READ)
