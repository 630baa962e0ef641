"""The journal of deferred operations: deletes and copies a location still owes.

Two kinds of entries, keyed by (kind, location, object id):

* ``delete``: a copy at that location must be deleted (it was unreachable
  when the object was deleted), so a location that comes back does not keep
  orphans forever;
* ``copy``: the object is under-replicated: that location has no copy yet.

Both keep the replica module_data, which is all a retry needs. The journal
is bounded (``limit`` entries). When it is full, a new ``delete`` entry takes
the place of the oldest ``copy`` entry (a missing copy can still be found
later: ``available`` says False and ``repair(module_data)`` refills it; an
unrecorded delete leaves an orphan nobody knows about); otherwise the new
entry is refused. Either way the loss is counted as ``dropped`` and logged.

:class:`MemoryJournal` is lost on restart;
:class:`SqliteJournal` keeps entries in ``<state_dir>/replica-journal.sqlite3``
(WAL, synchronous=FULL, so an entry survives a crash once ``add`` returned),
shared safely by every server process that uses the same state directory.

Entries come back oldest-touched first, so one entry that keeps failing does
not starve the others.
"""
import collections
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from modules.errors import LocationUnavailable
from modules.sqlite_wal import connect_wal

__all__ = ["JournalEntry", "Journal", "MemoryJournal", "SqliteJournal", "open_journal",
           "DELETE", "COPY", "FILE_NAME"]

log = logging.getLogger(__name__)

DELETE = "delete"
COPY = "copy"
KINDS = (DELETE, COPY)
#: The journal's file name inside the state directory.
FILE_NAME = "replica-journal.sqlite3"

_Key = Tuple[str, str, str]


@dataclass(frozen=True)
class JournalEntry:
    """One deferred operation.

    Attributes:
        kind: ``'delete'`` or ``'copy'``.
        location: the location name that owes it.
        object_id: the object's id.
        module_data: the replica module_data of the object.
        attempts: failed retries so far.
        last_error: the last retry's error, if any.
    """

    kind: str
    location: str
    object_id: str
    module_data: str
    attempts: int = 0
    last_error: Optional[str] = None


class Journal:
    """The journal's interface (see the module docstring); thread-safe."""

    #: True when entries survive a restart.
    durable = False
    #: Where the entries live (None in memory).
    path: Optional[str] = None

    def __init__(self, limit: int):
        self.limit = limit
        self.dropped = 0

    def add(self, kind: str, location: str, object_id: str, module_data: str) -> bool:
        """Record an entry (an existing one is kept as it is).

        Returns:
            bool: False when the journal is full and the entry was dropped.

        Raises:
            LocationUnavailable: the durable journal cannot be written.
        """
        raise NotImplementedError

    def remove(self, kind: str, location: str, object_id: str) -> None:
        """Forget one entry (missing is fine).

        Raises:
            LocationUnavailable: the durable journal cannot be written.
        """
        raise NotImplementedError

    def remove_object(self, object_id: str, kind: Optional[str] = None) -> int:
        """Forget every entry (of ``kind``, or all kinds) for an object; return how many.

        Raises:
            LocationUnavailable: the durable journal cannot be written.
        """
        raise NotImplementedError

    def retry_failed(self, entry: JournalEntry, error: str) -> None:
        """Count a failed retry of ``entry`` and move it to the back of the line.

        Raises:
            LocationUnavailable: the durable journal cannot be written.
        """
        raise NotImplementedError

    def entries(self, limit: int, locations: Optional[Sequence[str]] = None,
                kind: Optional[str] = None) -> List[JournalEntry]:
        """Return up to ``limit`` entries, least recently touched first.

        ``locations`` restricts the result to entries owed by those names,
        ``kind`` to one kind.

        Raises:
            LocationUnavailable: the durable journal cannot be read.
        """
        raise NotImplementedError

    def has(self, object_id: str) -> bool:
        """Return True when any entry concerns ``object_id``.

        Raises:
            LocationUnavailable: the durable journal cannot be read.
        """
        raise NotImplementedError

    def counts(self) -> Dict[str, int]:
        """Return the number of entries per kind (``delete``, ``copy``).

        Raises:
            LocationUnavailable: the durable journal cannot be read.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release files; the journal is not used again."""

    def _refuse(self, kind: str, location: str, object_id: str) -> bool:
        self._dropped_one("not recording %s of object %s at %s" % (kind, object_id, location))
        return False

    def _dropped_one(self, what: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:  # do not flood the log
            log.error("the replica journal is full (%d entries; %d dropped so far): %s (run "
                      "repair, fix the location, or raise journal_limit)",
                      self.limit, self.dropped, what)


class MemoryJournal(Journal):
    """A journal held in memory: lost when the process ends."""

    def __init__(self, limit: int):
        super().__init__(limit)
        self._lock = threading.Lock()
        self._entries: "collections.OrderedDict[_Key, JournalEntry]" = collections.OrderedDict()
        self._by_object: Dict[str, Set[_Key]] = {}
        self._counts = dict.fromkeys(KINDS, 0)

    def add(self, kind: str, location: str, object_id: str, module_data: str) -> bool:
        """See :meth:`Journal.add`."""
        key = (kind, location, object_id)
        with self._lock:
            if key in self._entries:
                return True
            if len(self._entries) >= self.limit:
                victim = None
                if kind == DELETE:
                    victim = next((k for k in self._entries if k[0] == COPY), None)
                if victim is None:
                    return self._refuse(kind, location, object_id)
                self._forget(victim)
                self._dropped_one("forgot the missing copy of object %s at %s to record a delete"
                                  % (victim[2], victim[1]))
            self._entries[key] = JournalEntry(kind, location, object_id, module_data)
            self._by_object.setdefault(object_id, set()).add(key)
            self._counts[kind] += 1
            return True

    def remove(self, kind: str, location: str, object_id: str) -> None:
        """See :meth:`Journal.remove`."""
        with self._lock:
            self._forget((kind, location, object_id))

    def remove_object(self, object_id: str, kind: Optional[str] = None) -> int:
        """See :meth:`Journal.remove_object`."""
        with self._lock:
            keys = [key for key in self._by_object.get(object_id, ())
                    if kind is None or key[0] == kind]
            for key in keys:
                self._forget(key)
            return len(keys)

    def retry_failed(self, entry: JournalEntry, error: str) -> None:
        """See :meth:`Journal.retry_failed`."""
        key = (entry.kind, entry.location, entry.object_id)
        with self._lock:
            current = self._entries.get(key)
            if current is None:
                return
            self._entries[key] = JournalEntry(current.kind, current.location, current.object_id,
                                              current.module_data, current.attempts + 1,
                                              error[:300])
            self._entries.move_to_end(key)

    def entries(self, limit: int, locations: Optional[Sequence[str]] = None,
                kind: Optional[str] = None) -> List[JournalEntry]:
        """See :meth:`Journal.entries`."""
        wanted = None if locations is None else set(locations)
        with self._lock:
            result = []
            for key, entry in self._entries.items():
                if len(result) >= limit:
                    break
                if (wanted is None or key[1] in wanted) and (kind is None or key[0] == kind):
                    result.append(entry)
            return result

    def has(self, object_id: str) -> bool:
        """See :meth:`Journal.has`."""
        with self._lock:
            return object_id in self._by_object

    def counts(self) -> Dict[str, int]:
        """See :meth:`Journal.counts`."""
        with self._lock:
            return dict(self._counts)

    def _forget(self, key: _Key) -> None:
        if self._entries.pop(key, None) is None:
            return
        self._counts[key[0]] -= 1
        keys = self._by_object[key[2]]
        keys.discard(key)
        if not keys:
            del self._by_object[key[2]]


class SqliteJournal(Journal):
    """A durable journal in ``<state_dir>/replica-journal.sqlite3``.

    Raises:
        LocationUnavailable: the state directory or the database cannot be
            created or opened.
    """

    durable = True

    def __init__(self, state_dir: str, limit: int):
        super().__init__(limit)
        self.path = os.path.join(state_dir, FILE_NAME)
        self._lock = threading.Lock()
        with self._errors("open"):
            os.makedirs(state_dir, mode=0o700, exist_ok=True)
            self._db = connect_wal(self.path, timeout=30.0)
            try:
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS entries ("
                    " kind TEXT NOT NULL, location TEXT NOT NULL, object_id TEXT NOT NULL,"
                    " module_data TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
                    " last_error TEXT, touched REAL NOT NULL,"
                    " PRIMARY KEY (kind, location, object_id))")
                self._db.execute("CREATE INDEX IF NOT EXISTS entries_touched ON entries (touched)")
                self._db.execute("CREATE INDEX IF NOT EXISTS entries_object ON entries (object_id)")
            except BaseException:
                self._db.close()
                raise

    def add(self, kind: str, location: str, object_id: str, module_data: str) -> bool:
        """See :meth:`Journal.add`."""
        with self._lock, self._errors("write"):
            exists = self._db.execute(
                "SELECT 1 FROM entries WHERE kind=? AND location=? AND object_id=?",
                (kind, location, object_id)).fetchone()
            if exists:
                return True
            (count,) = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()
            if count >= self.limit:
                victim = None
                if kind == DELETE:
                    victim = self._db.execute(
                        "SELECT location, object_id FROM entries WHERE kind=? ORDER BY touched"
                        " LIMIT 1", (COPY,)).fetchone()
                if victim is None:
                    return self._refuse(kind, location, object_id)
                self._db.execute("DELETE FROM entries WHERE kind=? AND location=? AND object_id=?",
                                 (COPY,) + tuple(victim))
                self._dropped_one("forgot the missing copy of object %s at %s to record a delete"
                                  % (victim[1], victim[0]))
            self._db.execute(
                "INSERT OR IGNORE INTO entries (kind, location, object_id, module_data, touched)"
                " VALUES (?, ?, ?, ?, ?)", (kind, location, object_id, module_data, time.time()))
            return True

    def remove(self, kind: str, location: str, object_id: str) -> None:
        """See :meth:`Journal.remove`."""
        with self._lock, self._errors("write"):
            self._db.execute("DELETE FROM entries WHERE kind=? AND location=? AND object_id=?",
                             (kind, location, object_id))

    def remove_object(self, object_id: str, kind: Optional[str] = None) -> int:
        """See :meth:`Journal.remove_object`."""
        with self._lock, self._errors("write"):
            if kind is None:
                cursor = self._db.execute("DELETE FROM entries WHERE object_id=?", (object_id,))
            else:
                cursor = self._db.execute("DELETE FROM entries WHERE object_id=? AND kind=?",
                                          (object_id, kind))
            return cursor.rowcount

    def retry_failed(self, entry: JournalEntry, error: str) -> None:
        """See :meth:`Journal.retry_failed`."""
        with self._lock, self._errors("write"):
            self._db.execute(
                "UPDATE entries SET attempts=attempts+1, last_error=?, touched=?"
                " WHERE kind=? AND location=? AND object_id=?",
                (error[:300], time.time(), entry.kind, entry.location, entry.object_id))

    def entries(self, limit: int, locations: Optional[Sequence[str]] = None,
                kind: Optional[str] = None) -> List[JournalEntry]:
        """See :meth:`Journal.entries`."""
        query = "SELECT kind, location, object_id, module_data, attempts, last_error FROM entries"
        conditions: List[str] = []
        parameters: List[Any] = []
        if locations is not None:
            names = list(locations)
            if not names:
                return []
            conditions.append("location IN (%s)" % ", ".join("?" * len(names)))
            parameters.extend(names)
        if kind is not None:
            conditions.append("kind = ?")
            parameters.append(kind)
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        query += " ORDER BY touched LIMIT ?"
        parameters.append(int(limit))
        with self._lock, self._errors("read"):
            rows = self._db.execute(query, parameters).fetchall()
        return [JournalEntry(*row) for row in rows]

    def has(self, object_id: str) -> bool:
        """See :meth:`Journal.has`."""
        with self._lock, self._errors("read"):
            return self._db.execute("SELECT 1 FROM entries WHERE object_id=? LIMIT 1",
                                    (object_id,)).fetchone() is not None

    def counts(self) -> Dict[str, int]:
        """See :meth:`Journal.counts`."""
        with self._lock, self._errors("read"):
            rows = self._db.execute("SELECT kind, COUNT(*) FROM entries GROUP BY kind").fetchall()
        counts = dict.fromkeys(KINDS, 0)
        counts.update((kind, count) for kind, count in rows if kind in counts)
        return counts

    def close(self) -> None:
        """Close the database (logs, never raises)."""
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error as error:
                log.warning("closing the replica journal %s failed: %s", self.path, error)

    def _errors(self, action: str) -> "_SqliteErrors":
        return _SqliteErrors(self.path, action)


class _SqliteErrors:
    """Translate sqlite3 and OS errors into LocationUnavailable naming the journal file."""

    def __init__(self, path: str, action: str):
        self._path = path
        self._action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> bool:
        if isinstance(error, (sqlite3.Error, OSError)):
            raise LocationUnavailable("cannot %s the replica journal %s: %s (check state_dir: it "
                                      "must be a writable local directory)"
                                      % (self._action, self._path, error),
                                      location=self._path) from error
        return False


def open_journal(state_dir: Optional[str], limit: int) -> Journal:
    """Return a durable journal in ``state_dir``, or a memory journal when it is None.

    Raises:
        LocationUnavailable: the durable journal cannot be opened.
    """
    if state_dir is None:
        return MemoryJournal(limit)
    return SqliteJournal(state_dir, limit)
