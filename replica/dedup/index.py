"""The deduplication index: objects, stored blobs with reference counts, unfinished work.

One SQLite database, ``<state_dir>/dedup-index.sqlite3`` (WAL,
``synchronous=FULL``: a change survives a crash once its call returned),
shared by every process of the node, like the replica's journal. Tables:

* ``objects(id, digest, size)``: the wrapper's objects;
* ``blobs(digest, inner, size, refs)``: the content stored once in the inner
  location under the inner module_data ``inner``; ``refs`` objects use it;
* ``pending(inner, owner, kind, since)``: inner data that may exist and that
  no blob references: ``upload`` (being written by ``owner``), ``discard``
  (a duplicate or failed upload to delete), ``free`` (a blob whose last
  reference went). A row is written *before* the inner data can exist and
  removed only after the inner data is deleted or became a blob, so a crash
  at any step leaves a row that :meth:`DedupIndex.reclaimable` returns once
  the owner is gone (``upload``) or at once (``discard``, ``free``).

Every change that touches more than one row is one ``BEGIN IMMEDIATE``
transaction, so concurrent processes see either all of it or none of it.
"""
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from modules.errors import ConfigurationError, LocationUnavailable
from modules.sqlite_wal import connect_wal

__all__ = ["DedupIndex", "Entry", "PendingRow", "FILE_NAME", "UPLOAD", "DISCARD", "FREE"]

log = logging.getLogger(__name__)

#: The index's file name inside ``state_dir``.
FILE_NAME = "dedup-index.sqlite3"
UPLOAD = "upload"
DISCARD = "discard"
FREE = "free"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, digest TEXT NOT NULL, "
    "size INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS objects_by_digest ON objects (digest)",
    "CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, inner TEXT NOT NULL UNIQUE, "
    "size INTEGER NOT NULL, refs INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pending (inner TEXT PRIMARY KEY, owner TEXT NOT NULL, "
    "kind TEXT NOT NULL, since REAL NOT NULL)",
)


@dataclass(frozen=True)
class Entry:
    """Where one object's content is: its digest, size and the blob's inner module_data."""

    digest: str
    size: int
    inner: str


@dataclass(frozen=True)
class PendingRow:
    """Inner data that no blob references (see the module docstring)."""

    inner: str
    owner: str
    kind: str
    since: float


class DedupIndex:
    """The index in ``state_dir`` (thread-safe; one connection per process).

    Raises:
        ConfigurationError: ``state_dir`` cannot be created or the database
            cannot be opened there.
    """

    def __init__(self, state_dir: str, clock: Callable[[], float] = time.time):
        self.path = os.path.join(state_dir, FILE_NAME)
        self._clock = clock
        self._lock = threading.Lock()
        self._db: Optional[sqlite3.Connection] = None
        self._pid = None
        self._inherited: Optional[sqlite3.Connection] = None
        try:
            os.makedirs(state_dir, exist_ok=True)
            with self._connection() as db:
                for statement in _SCHEMA:
                    db.execute(statement)
        except (OSError, sqlite3.Error, LocationUnavailable) as error:
            raise ConfigurationError("state_dir %s cannot hold the deduplication index: %s"
                                     % (state_dir, error)) from None

    # -- connection -----------------------------------------------------------

    class _Transaction:
        def __init__(self, index: "DedupIndex", immediate: bool):
            self._index = index
            self._immediate = immediate

        def __enter__(self) -> sqlite3.Connection:
            self._index._lock.acquire()
            try:
                db = self._index._open()
                db.execute("BEGIN IMMEDIATE" if self._immediate else "BEGIN")
            except sqlite3.Error as error:
                self._index._lock.release()
                raise LocationUnavailable("the deduplication index %s cannot be used: %s"
                                          % (self._index.path, error)) from error
            except BaseException:
                self._index._lock.release()
                raise
            self._db = db
            return db

        def __exit__(self, kind, error, traceback) -> bool:
            try:
                if kind is None:
                    self._db.execute("COMMIT")
                else:
                    self._db.execute("ROLLBACK")
            except sqlite3.Error as failure:
                if kind is None:
                    raise LocationUnavailable("the deduplication index %s cannot be written: %s"
                                              % (self._index.path, failure)) from failure
            finally:
                self._index._lock.release()
            if isinstance(error, sqlite3.Error):
                raise LocationUnavailable("the deduplication index %s failed: %s"
                                          % (self._index.path, error)) from error
            return False

    def _connection(self) -> "DedupIndex._Transaction":
        return DedupIndex._Transaction(self, True)

    def _open(self) -> sqlite3.Connection:
        # A connection must not cross a fork (SQLite's rule): a child opens its own. The
        # parent's object is kept, not closed, so the child never touches its locks.
        if self._db is None or self._pid != os.getpid():
            db = connect_wal(self.path, timeout=30.0)
            self._inherited = self._db
            self._db, self._pid = db, os.getpid()
        return self._db

    def close(self) -> None:
        """Close this process's connection (safe to call twice)."""
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None

    # -- objects --------------------------------------------------------------

    def lookup(self, object_id: str) -> Optional[Entry]:
        """Return where ``object_id``'s content is, or None when it is not stored."""
        with DedupIndex._Transaction(self, False) as db:
            row = db.execute("SELECT o.digest, o.size, b.inner FROM objects o JOIN blobs b "
                             "ON b.digest = o.digest WHERE o.id = ?", (object_id,)).fetchone()
        return None if row is None else Entry(row[0], row[1], row[2])

    def begin_upload(self, inner: str, owner: str) -> None:
        """Record that ``owner`` is about to write ``inner`` (before any byte is written)."""
        with self._connection() as db:
            db.execute("INSERT OR REPLACE INTO pending (inner, owner, kind, since) "
                       "VALUES (?, ?, ?, ?)", (inner, owner, UPLOAD, self._clock()))

    def commit_upload(self, object_id: str, digest: str, size: int, inner: str) -> List[str]:
        """Make ``object_id`` refer to content ``digest`` whose upload is at ``inner``.

        In one transaction: when a blob with that digest exists its
        reference count goes up and ``inner`` becomes a ``discard``; when not,
        ``inner`` becomes that blob. An earlier content of ``object_id`` loses
        its reference.

        Returns:
            list: inner module_data to delete now (each is a ``pending`` row,
            to :meth:`forget` once deleted).
        """
        to_delete: List[str] = []
        with self._connection() as db:
            previous = db.execute("SELECT digest FROM objects WHERE id = ?",
                                  (object_id,)).fetchone()
            if previous is not None and previous[0] == digest:
                self._mark(db, inner, DISCARD)
                return [inner]
            if previous is not None:
                to_delete.extend(self._release(db, previous[0]))
            blob = db.execute("SELECT inner FROM blobs WHERE digest = ?", (digest,)).fetchone()
            if blob is None:
                db.execute("INSERT INTO blobs (digest, inner, size, refs) VALUES (?, ?, ?, 1)",
                           (digest, inner, size))
                db.execute("DELETE FROM pending WHERE inner = ?", (inner,))
            else:
                db.execute("UPDATE blobs SET refs = refs + 1 WHERE digest = ?", (digest,))
                self._mark(db, inner, DISCARD)
                to_delete.append(inner)
            db.execute("INSERT OR REPLACE INTO objects (id, digest, size) VALUES (?, ?, ?)",
                       (object_id, digest, size))
        return to_delete

    def abandon_upload(self, inner: str) -> None:
        """Turn a failed upload into a ``discard`` (deleted now or by the next repair)."""
        with self._connection() as db:
            self._mark(db, inner, DISCARD)

    def remove(self, object_id: str) -> List[str]:
        """Forget ``object_id``; when it held the last reference, its blob becomes ``free``.

        Returns:
            list: inner module_data to delete now (empty or one item).
        """
        with self._connection() as db:
            row = db.execute("SELECT digest FROM objects WHERE id = ?", (object_id,)).fetchone()
            if row is None:
                return []
            db.execute("DELETE FROM objects WHERE id = ?", (object_id,))
            return self._release(db, row[0])

    def forget(self, inner: str) -> None:
        """Drop the ``pending`` row of ``inner`` once its data is deleted."""
        with self._connection() as db:
            db.execute("DELETE FROM pending WHERE inner = ?", (inner,))

    # -- repair ---------------------------------------------------------------

    def pending(self) -> List[PendingRow]:
        """Return every ``pending`` row, oldest first."""
        with DedupIndex._Transaction(self, False) as db:
            rows = db.execute("SELECT inner, owner, kind, since FROM pending "
                              "ORDER BY since").fetchall()
        return [PendingRow(*row) for row in rows]

    def recount(self) -> Tuple[int, List[str], List[str]]:
        """Set every blob's reference count from the objects that use it.

        Returns:
            (fixed, freed, lost): how many counts were wrong; the inner
            module_data of blobs no object uses any more (now ``free``
            rows, to delete); the ids of objects whose blob is missing from
            the index (their content is lost; they are removed).
        """
        with self._connection() as db:
            fixed = db.execute(
                "UPDATE blobs SET refs = (SELECT COUNT(*) FROM objects o WHERE o.digest = "
                "blobs.digest) WHERE refs != (SELECT COUNT(*) FROM objects o WHERE o.digest = "
                "blobs.digest)").rowcount
            freed = [row[0] for row in db.execute("SELECT inner FROM blobs WHERE refs = 0")]
            for inner in freed:
                self._mark(db, inner, FREE)
            db.execute("DELETE FROM blobs WHERE refs = 0")
            lost = [row[0] for row in db.execute(
                "SELECT id FROM objects WHERE digest NOT IN (SELECT digest FROM blobs)")]
            if lost:
                db.execute("DELETE FROM objects WHERE digest NOT IN (SELECT digest FROM blobs)")
        return fixed, freed, lost

    def totals(self, stale_after: float = 60.0) -> Dict[str, Any]:
        """Return ``objects``, ``logical_bytes``, ``blobs``, ``stored_bytes``, ``pending``, ``stale``.

        ``pending`` counts the unfinished rows by kind; ``stale`` counts the
        ``discard`` and ``free`` rows older than ``stale_after`` seconds
        (their deletion failed: they wait for a repair).
        """
        with DedupIndex._Transaction(self, False) as db:
            objects, logical = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) "
                                          "FROM objects").fetchone()
            blobs, stored = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) "
                                       "FROM blobs").fetchone()
            pending = dict(db.execute("SELECT kind, COUNT(*) FROM pending GROUP BY kind"))
            stale = db.execute("SELECT COUNT(*) FROM pending WHERE kind != ? AND since < ?",
                               (UPLOAD, self._clock() - stale_after)).fetchone()[0]
        return {"objects": objects, "logical_bytes": logical, "blobs": blobs,
                "stored_bytes": stored, "pending": pending, "stale": stale}

    # -- helpers (inside a transaction) -----------------------------------

    def _mark(self, db: sqlite3.Connection, inner: str, kind: str) -> None:
        updated = db.execute("UPDATE pending SET kind = ? WHERE inner = ?",
                             (kind, inner)).rowcount
        if not updated:
            db.execute("INSERT INTO pending (inner, owner, kind, since) VALUES (?, '', ?, ?)",
                       (inner, kind, self._clock()))

    def _release(self, db: sqlite3.Connection, digest: str) -> List[str]:
        db.execute("UPDATE blobs SET refs = refs - 1 WHERE digest = ?", (digest,))
        row = db.execute("SELECT inner, refs FROM blobs WHERE digest = ?", (digest,)).fetchone()
        if row is None or row[1] > 0:
            return []
        db.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
        self._mark(db, row[0], FREE)
        return [row[0]]
