"""The replica's books: the journal, the tombstones of recent deletes and the operation counters.

:class:`Ledger` is the one owner of the state the replica's paths record into:

* the journal (:mod:`replica.journal`): copies owed (missing or damaged) and
  deletes owed; a failing journal is logged, never raised, except where the
  caller must know (:meth:`Ledger.add` returns False);
* tombstones: the ids of objects this process deleted recently, so that a
  repair or a read racing the delete neither leaves a copy behind nor takes
  a vanished copy for a damaged one;
* counters (``operations`` in the statistics).

It has one lock, for tombstones and counters; the journal locks itself.
"""
import collections
import logging
import threading
from typing import Any, Callable, Dict, Optional, Sequence

from modules.errors import StorageError
from replica import module_data as formats
from replica.journal import COPY, Journal

__all__ = ["Ledger", "COUNTERS", "TOMBSTONES"]

log = logging.getLogger(__name__)

#: Recently deleted object ids remembered (the oldest are forgotten first).
TOMBSTONES = 10000

#: The operation counters, in the order the statistics show them.
COUNTERS = (
    "objects_created", "writes", "bytes_written", "writes_failed", "under_replicated_writes",
    "reads", "read_failovers", "deletes", "deferred_deletes", "repairs", "copies_repaired",
    "journal_replayed", "verified_reads", "unverified_reads", "damaged_copies_found",
    "vanished_copies", "scrubs", "scrub_bytes", "damaged_copies_repaired",
    "temporaries_removed")


class Ledger:
    """Journal, tombstones and counters of one replica.

    Args:
        journal: the opened journal (the ledger closes it).
        hint: False only when the journal is known to be empty.
        tombstones: how many deleted object ids to remember.
    """

    def __init__(self, journal: Journal, hint: bool = True, tombstones: int = TOMBSTONES):
        self.journal = journal
        #: False only when the journal is known to be empty (lets callers skip work).
        self.hint = hint
        self._limit = tombstones
        self._lock = threading.Lock()
        self._tombstones: "collections.OrderedDict[str, None]" = collections.OrderedDict()
        self._counters = dict.fromkeys(COUNTERS, 0)

    # -- counters -----------------------------------------------------------

    def count(self, **increments: int) -> None:
        """Add to counters by name (names from COUNTERS)."""
        with self._lock:
            for key, value in increments.items():
                self._counters[key] += value

    def counters(self) -> Dict[str, int]:
        """Return a copy of the counters."""
        with self._lock:
            return dict(self._counters)

    # -- tombstones ----------------------------------------------------------

    def bury(self, object_id: str) -> None:
        """Remember that ``object_id`` was deleted (the oldest are forgotten)."""
        with self._lock:
            self._tombstones[object_id] = None
            self._tombstones.move_to_end(object_id)
            while len(self._tombstones) > self._limit:
                self._tombstones.popitem(last=False)

    def is_buried(self, object_id: str) -> bool:
        """Return True when this process deleted ``object_id`` recently."""
        with self._lock:
            return object_id in self._tombstones

    # -- the journal -----------------------------------------------------------

    def call(self, action: str, function: Callable[..., Any], *args: Any) -> Any:
        """Call a journal method; log and return None when the journal fails."""
        try:
            return function(*args)
        except StorageError as error:
            log.error("could not %s the replica journal: %s", action, error)
            return None

    def add(self, kind: str, name: str, data: formats.ReplicaData) -> bool:
        """Record an entry; return False when it could not be recorded (logged)."""
        self.hint = True
        return bool(self.call("record a %s in" % kind, self.journal.add,
                              kind, name, data.object_id, data.text))

    def note_copies(self, data: formats.ReplicaData, holding: Sequence[str],
                    missing: Sequence[str]) -> None:
        """Record missing copies and forget entries for copies now held.

        Nothing is recorded for an object deleted meanwhile (a repair racing a delete).
        """
        if not self.is_buried(data.object_id):
            for name in missing:
                self.add(COPY, name, data)
        if holding and self.call("read", self.journal.has, data.object_id):
            for name in holding:
                self.call("update", self.journal.remove, COPY, name, data.object_id)

    def forget_copies(self, object_id: str) -> None:
        """Drop the owed copies of a deleted object (logged when the journal fails)."""
        def forget() -> None:
            if self.journal.has(object_id):
                self.journal.remove_object(object_id, COPY)
        self.call("forget copies of", forget)

    def counts(self) -> Optional[Dict[str, int]]:
        """Return the journal's counts by kind, or None when it cannot be read (logged)."""
        return self.call("read", self.journal.counts)

    def close(self) -> None:
        """Close the journal."""
        self.journal.close()
