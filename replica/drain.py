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
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from modules.errors import InvalidModuleData, LocationUnavailable, ObjectNotFound, StorageError
from replica.copies import delete_copy
from replica.journal import DELETE, Journal, JournalEntry
from replica.locations import OK
from replica.repairer import Repairer

if TYPE_CHECKING:  # pragma: no cover
    from replica.replica import ReplicaStorage

__all__ = ["Drainer", "DRAIN_BATCH", "INLINE_DELETES"]

log = logging.getLogger(__name__)

#: Journal entries one background drain handles at most.
DRAIN_BATCH = 64
#: Owed deletes retried in the caller's thread after a data call, at most.
INLINE_DELETES = 4
#: Journal entries fetched per query while replaying.
_PAGE = 100


class Drainer:
    """Replay a ``ReplicaStorage``'s journal, one replay at a time.

    Args:
        owner: the replica whose locations, pool, clock and counters are used.
        journal: the owner's journal.
        repairer: refills the copies that COPY entries ask for.
        hint: False only when the journal is known to be empty.
    """

    def __init__(self, owner: "ReplicaStorage", journal: Journal, repairer: Repairer,
                 hint: bool):
        self._owner = owner
        self._journal = journal
        self._repairer = repairer
        #: Held while a replay runs; ``close`` waits for it before closing the journal.
        self.lock = threading.Lock()
        #: False only when the journal is known to be empty (skips inline retries).
        self.hint = hint
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
                skipped = [location.name for location in self._owner._locations
                           if location.is_limited()]
            usable = [location.name for location in self._owner._locations
                      if location.name not in skipped]
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
                if outcome == "failed" and self._owner._by_name[entry.location].is_limited():
                    given_up.add(entry.location)
        summary["skipped_locations"] = skipped
        try:
            summary["remaining"] = self._journal.counts()
        except StorageError as error:
            summary["remaining"] = {"error": str(error)}
        self._owner._count(journal_replayed=handled)
        return summary

    def _replay_entry(self, context: Optional[dict], entry: JournalEntry,
                      queue_timeout: float, probe: bool) -> str:
        """Retry one journal entry; return 'done', 'failed' or 'obsolete'."""
        location = self._owner._by_name[entry.location]
        try:
            data = self._owner._layout(context, entry.module_data).data
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
            self._journal.retry_failed(entry, "%s: %s" % (type(error).__name__, error))
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
        if self.hint and not self._owner._closed:
            self._retry_deletes_inline(context)
        self._maybe_drain(context)

    def _retry_deletes_inline(self, context: Optional[dict]) -> None:
        usable = [location.name for location in self._owner._locations if location.health() == OK]
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
        now = self._owner._clock()
        with self._owner._lock:
            if self._next_drain is None:  # the first drain comes one interval after start
                self._next_drain = now + self._owner.settings.journal_interval
            if self._owner._closed or now < self._next_drain:
                return
            self._next_drain = now + self._owner.settings.journal_interval
        if self.lock.locked():
            return
        counts = self._owner._journal_call("read", self._journal.counts)
        if counts is not None:
            self.hint = any(counts.values())  # other processes may add entries too
        if not counts or not any(counts.values()):
            return
        if not self._owner._pool.reserve(1, 0):
            return
        try:
            self._owner._pool.submit(self._background_drain, context)
        except StorageError as error:
            self._owner._pool.release(1)
            log.debug("not draining the journal: %s", error)

    def _background_drain(self, context: Optional[dict]) -> None:
        if not self.lock.acquire(blocking=False):
            return
        try:
            if self._owner._closed:
                return
            summary = self._replay(context, DRAIN_BATCH, 0.0, False)
            log.info("journal drain: %s", summary)
        except Exception:  # a background task has nobody to raise to
            log.exception("draining the replica journal failed")
        finally:
            self.lock.release()
