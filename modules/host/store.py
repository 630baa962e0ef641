"""The host's SQLite database: module configuration and the object index.

One file, ``host.sqlite3`` in the data directory, in WAL mode, shared by
every thread (a small lock-protected pool of connections) and by every
process serving the same data directory.

Tables:

* ``modules``: configured vendor modules (name, dotted path, description,
  JSON args, a revision bumped on every change).
* ``objects``: the object index, ``(policy, key) -> module_data, size,
  sha256, content type, created, headers`` (the representation headers and
  user metadata given at upload, JSON). ``policy`` is the name of a configured
  module; the key is any UTF-8 text and is never used as a file path.
* ``garbage``: module_data waiting to be destroyed. A row is written in the
  same transaction that stops referencing the data (overwrite, delete), so a
  crash never loses track of stored bytes; write intents are recorded
  before a new object is stored for the same reason, with the writing
  process's identity (:mod:`modules.host.processes`) so that the intents of
  a process that is gone are collected at once. The row id is a sequence
  that only grows: reads remember its value when they look a key up (see
  :mod:`modules.host.pins`).
* ``readers``: one row per serving process: which retired data its
  in-flight reads may still use (see :mod:`modules.host.pins`).
* ``meta``: schema version, configuration generation, first-start flag.
"""
import contextlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from modules.errors import LocationUnavailable
from modules.sqlite_wal import connect_wal
from modules.host import forking

__all__ = ["Store", "ModuleConfig", "ObjectRecord", "GarbageItem", "ReaderRow", "RepairPass",
           "ModuleInUse", "BorrowedDataGone",
           "DB_FILENAME", "string_arguments", "RETIRED_KINDS"]

log = logging.getLogger(__name__)

#: The database file inside the data directory.
DB_FILENAME = "host.sqlite3"

#: Connections kept open at most; more threads wait for a free one.
DEFAULT_POOL_SIZE = 8

#: Seconds a writer waits for another process's transaction to finish.
DEFAULT_BUSY_TIMEOUT = 30.0

#: Write intents of a process on another machine (whose liveness cannot be checked) are
#: collected once they are older than this (the write may still be running until then).
INTENT_GRACE_SECONDS = 24 * 3600.0

#: Garbage kinds that held a committed object: requests may still be reading them.
RETIRED_KINDS = ("replaced", "deleted")

_SCHEMA_VERSION = "2"

_OBJECT_COLUMNS = "policy, key, module_data, size, created, sha256, content_type, borrowed, headers"
_GARBAGE_COLUMNS = "id, policy, module_data, kind, since, attempts, last_error, writer"
_PASS_COLUMNS = ("module, revision, after, done, failed, last_error, started, finished, owner, "
                 "heartbeat")

# Sorts after any key starting with a given prefix (the largest code point, U+10FFFF,
# twice: only keys continuing the prefix with two of these non-characters would be missed).
_HIGHEST = "\U0010ffff\U0010ffff"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS modules (
    name TEXT PRIMARY KEY,
    module TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    args TEXT NOT NULL,
    revision INTEGER NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
    policy TEXT NOT NULL,
    key TEXT NOT NULL,
    module_data TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT,
    content_type TEXT,
    created REAL NOT NULL,
    borrowed INTEGER NOT NULL DEFAULT 0,
    headers TEXT,
    PRIMARY KEY (policy, key)
);
CREATE INDEX IF NOT EXISTS objects_by_data ON objects (policy, module_data);
CREATE INDEX IF NOT EXISTS borrowed_by_data ON objects (module_data) WHERE borrowed = 1;
CREATE TABLE IF NOT EXISTS garbage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    policy TEXT NOT NULL,
    module_data TEXT NOT NULL,
    kind TEXT NOT NULL,
    since REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    writer TEXT
);
CREATE INDEX IF NOT EXISTS garbage_by_policy ON garbage (policy, id);
CREATE TABLE IF NOT EXISTS repair_passes (
    module TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    after TEXT NOT NULL DEFAULT '',
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    started REAL NOT NULL,
    finished REAL,
    owner TEXT,
    heartbeat REAL
);
CREATE TABLE IF NOT EXISTS readers (
    process TEXT PRIMARY KEY,
    published INTEGER NOT NULL,
    oldest INTEGER,
    updated REAL NOT NULL
);
"""

# Schema 1 (the first release) lacked the stored headers, the intents' writer and readers.
_MIGRATE_FROM_1 = (
    "ALTER TABLE objects ADD COLUMN headers TEXT",
    "ALTER TABLE garbage ADD COLUMN writer TEXT",
)


class ModuleInUse(Exception):
    """A module cannot be removed: objects or other modules still use it."""


class BorrowedDataGone(Exception):
    """A copy cannot borrow data that no object owns any more (its source went meanwhile)."""


@dataclass(frozen=True)
class ModuleConfig:
    """One configured vendor module, as the configuration API stores it."""

    name: str
    module: str
    description: str = ""
    args: Union[List[Any], Dict[str, Any]] = field(default_factory=list)
    revision: int = 0
    updated: float = 0.0

    def same_settings(self, other: "ModuleConfig") -> bool:
        """Return True when ``other`` configures the same module the same way."""
        return (self.module, self.description, self.args) == (
            other.module, other.description, other.args)


@dataclass(frozen=True)
class RepairPass:
    """The background repair pass of one module (see :mod:`modules.host.background_repair`).

    One per module, for its configuration ``revision``: ``after`` is the
    last key repaired, ``done`` and ``failed`` count objects, ``finished``
    is None while it runs; ``owner`` is the process running it, which
    proves it alive through ``heartbeat`` (seconds since the epoch).
    """

    module: str
    revision: int
    after: str = ""
    done: int = 0
    failed: int = 0
    last_error: Optional[str] = None
    started: float = 0.0
    finished: Optional[float] = None
    owner: Optional[str] = None
    heartbeat: Optional[float] = None


@dataclass(frozen=True)
class ObjectRecord:
    """One row of the object index."""

    policy: str
    key: str
    module_data: str
    size: int
    created: float
    sha256: Optional[str] = None
    content_type: Optional[str] = None
    borrowed: bool = False
    #: Representation headers and ``X-Object-Meta-*`` given at upload, as (name, value) pairs.
    headers: Tuple[Tuple[str, str], ...] = ()


@dataclass(frozen=True)
class GarbageItem:
    """module_data waiting to be destroyed in module ``policy``."""

    id: int
    policy: str
    module_data: str
    kind: str
    since: float
    attempts: int
    last_error: Optional[str]
    #: For an intent: the identity of the writing process (``str(ProcessIdentity)``).
    writer: Optional[str] = None


@dataclass(frozen=True)
class ReaderRow:
    """What one serving process published about its in-flight reads.

    Every read it starts from now on, and every read in flight when it
    published, looked its key up at garbage sequence ``oldest`` or later
    (``oldest`` is None when no read was in flight: then ``published``).
    """

    process: str
    published: int
    oldest: Optional[int]
    updated: float

    def protects(self, item_id: int) -> bool:
        """Return True when a read of this process may still use garbage item ``item_id``."""
        lowest = self.published if self.oldest is None else min(self.oldest, self.published)
        return lowest < item_id


class Store:
    """Thread-safe access to the host database at ``path``.

    Args:
        path: the SQLite file (created with its tables when missing).
        pool_size: connections kept open at most.
        busy_timeout: seconds to wait for a lock held by another process.

    Raises:
        LocationUnavailable: the database cannot be opened or created.
    """

    def __init__(self, path: str, pool_size: int = DEFAULT_POOL_SIZE,
                 busy_timeout: float = DEFAULT_BUSY_TIMEOUT):
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.path = path
        self._busy_timeout = busy_timeout
        self._pool_size = pool_size
        self._idle: "queue.LifoQueue[sqlite3.Connection]" = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._all: List[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Write transactions of this process queue here rather than in SQLite's busy
        # handler, which sleeps in steps of milliseconds: with 16 request threads a
        # PUT spent about a quarter of its time there. Other processes still wait in
        # SQLite (busy_timeout).
        self._writer = threading.RLock()
        self._closed = False
        _create_private_file(path)
        self._create_schema()
        forking.register(self)

    # -- connections ------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            db = connect_wal(self.path, timeout=self._busy_timeout)
        except sqlite3.Error as error:
            raise LocationUnavailable("cannot open the host database %s: %s" % (self.path, error),
                                      location=self.path) from error
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise LocationUnavailable("the host database is closed", location=self.path)
        self._slots.acquire()
        try:
            try:
                db = self._idle.get_nowait()
            except queue.Empty:
                db = self._connect()
                with self._lock:
                    self._all.append(db)
            try:
                yield db
            finally:
                self._idle.put(db)
        finally:
            self._slots.release()

    def _before_fork(self) -> None:
        """Close the idle connections, so that no open database is carried into the child.

        SQLite keeps per-process lock state for open files; a child that
        inherits it from open connections may misjudge its locks (sqlite.org
        FAQ: "do not carry an open SQLite database across a fork()"). The
        parent reopens connections on demand.
        """
        if self._closed:
            return
        with self._lock:
            idle = []
            while True:
                try:
                    idle.append(self._idle.get_nowait())
                except queue.Empty:
                    break
            self._all = [db for db in self._all if db not in idle]
        for db in idle:
            db.close()

    def _after_fork_in_child(self) -> None:
        """Leave the parent's connections alone in a forked child and open new ones.

        SQLite connections must not be carried across fork() (sqlite.org,
        "How To Corrupt An SQLite Database File", section 2.6); closing them
        here could release the parent's locks, so they are only dropped.
        """
        self._lock = threading.Lock()
        self._writer = threading.RLock()
        self._idle = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(self._pool_size)
        self._all = []

    @contextlib.contextmanager
    def _transaction(self, synced: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE) committed on success, rolled back on error.

        ``synced=False`` commits without fsync (SQLite ``synchronous=NORMAL``
        in WAL mode: the commit survives the process being killed, and is on
        disk once the next synced commit or checkpoint fsyncs the WAL, but a
        power loss may undo it; sqlite.org/pragma.html#pragma_synchronous).
        Only for records whose loss costs no acknowledged data.
        """
        with self._writer, self._connection() as db:
            if not synced:
                db.execute("PRAGMA synchronous=NORMAL")
            try:
                try:
                    db.execute("BEGIN IMMEDIATE")
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                if not synced:
                    db.execute("PRAGMA synchronous=FULL")

    def _query(self, sql: str, parameters=()) -> List[tuple]:
        with self._connection() as db:
            return db.execute(sql, parameters).fetchall()

    def _create_schema(self) -> None:
        with self._connection() as db:
            with_version = None
            if db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
                with_version = db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
            if with_version is not None and with_version[0] == "1":
                db.execute("BEGIN IMMEDIATE")
                try:
                    still_1 = db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
                    if still_1[0] == "1":  # another process may have migrated meanwhile
                        for statement in _MIGRATE_FROM_1:
                            db.execute(statement)
                        db.execute("UPDATE meta SET value=? WHERE name='schema'",
                                   (_SCHEMA_VERSION,))
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                log.info("migrated the host database %s to schema %s", self.path,
                         _SCHEMA_VERSION)
                with_version = (_SCHEMA_VERSION,)
            db.executescript(_SCHEMA)
            if with_version is None:
                db.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ?)",
                           (_SCHEMA_VERSION,))
            elif with_version[0] != _SCHEMA_VERSION:
                raise LocationUnavailable(
                    "the host database %s has schema %s; this version reads schema %s"
                    % (self.path, with_version[0], _SCHEMA_VERSION), location=self.path)

    def close(self) -> None:
        """Close every connection; later calls raise LocationUnavailable."""
        self._closed = True
        with self._lock:
            connections, self._all = self._all, []
        for db in connections:
            db.close()

    # -- meta -------------------------------------------------------------

    def get_meta(self, name: str) -> Optional[str]:
        """Return the meta value ``name`` or None."""
        rows = self._query("SELECT value FROM meta WHERE name=?", (name,))
        return rows[0][0] if rows else None

    def set_meta_once(self, name: str, value: str) -> bool:
        """Set ``name`` unless it is set already; return True when this call set it."""
        with self._transaction() as db:
            cursor = db.execute("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)",
                                (name, value))
            return cursor.rowcount == 1

    def generation(self) -> int:
        """Return the configuration generation, bumped by every configuration change."""
        value = self.get_meta("generation")
        return int(value) if value is not None else 0

    @staticmethod
    def _bump_generation(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO meta (name, value) VALUES ('generation', '1') "
                   "ON CONFLICT(name) DO UPDATE SET value = CAST(value AS INTEGER) + 1")

    # -- module configuration --------------------------------------------

    def list_modules(self) -> List[ModuleConfig]:
        """Return every configured module, sorted by name."""
        rows = self._query("SELECT name, module, description, args, revision, updated "
                           "FROM modules ORDER BY name")
        return [_module_config(row) for row in rows]

    def get_module(self, name: str) -> Optional[ModuleConfig]:
        """Return the configuration of module ``name`` or None."""
        rows = self._query("SELECT name, module, description, args, revision, updated "
                           "FROM modules WHERE name=?", (name,))
        return _module_config(rows[0]) if rows else None

    def put_module(self, config: ModuleConfig) -> Optional[ModuleConfig]:
        """Create or replace a module's configuration.

        Returns:
            The stored configuration (with its new revision), or None when
            the same settings were stored already (nothing changed).
        """
        args = json.dumps(config.args, sort_keys=True)
        with self._transaction() as db:
            row = db.execute("SELECT name, module, description, args, revision, updated "
                             "FROM modules WHERE name=?", (config.name,)).fetchone()
            if row is not None and _module_config(row).same_settings(config):
                return None
            revision = (row[4] + 1) if row is not None else 1
            updated = time.time()
            db.execute("INSERT INTO modules (name, module, description, args, revision, updated) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                       "module=excluded.module, description=excluded.description, "
                       "args=excluded.args, revision=excluded.revision, updated=excluded.updated",
                       (config.name, config.module, config.description, args, revision, updated))
            self._bump_generation(db)
        return ModuleConfig(config.name, config.module, config.description,
                            json.loads(args), revision, updated)

    # -- background repair passes ----------------------------------------

    def plan_repair_passes(self) -> None:
        """Start a new pass for every module whose configuration changed since its last one.

        A module configured for the first time gets none (it holds no
        objects); passes of modules no longer configured are forgotten.
        """
        now = time.time()
        with self._transaction(synced=False) as db:
            db.execute("DELETE FROM repair_passes WHERE module NOT IN (SELECT name FROM modules)")
            db.execute("INSERT INTO repair_passes (module, revision, started, finished) "
                       "SELECT name, revision, ?, CASE WHEN revision = 1 THEN ? END FROM modules "
                       "WHERE true ON CONFLICT(module) DO UPDATE SET revision=excluded.revision, "
                       "after='', done=0, failed=0, last_error=NULL, started=excluded.started, "
                       "finished=NULL, owner=NULL, heartbeat=NULL "
                       "WHERE repair_passes.revision != excluded.revision",
                       (now, now))

    def claim_repair_pass(self, owner: str, stale_after: float) -> Optional[RepairPass]:
        """Take an unfinished pass nobody runs (or whose runner stopped beating), if any.

        The pass touched least recently comes first, so that a module whose
        passes keep failing does not hold up the others.

        Returns:
            RepairPass: the pass, now owned by ``owner``; or None.
        """
        now = time.time()
        claimable = ("SELECT %s FROM repair_passes WHERE finished IS NULL AND (owner IS NULL OR "
                     "owner=? OR heartbeat < ?) ORDER BY COALESCE(heartbeat, 0), module LIMIT 1"
                     % _PASS_COLUMNS)
        if not self._query(claimable, (owner, now - stale_after)):
            return None  # the usual answer, without a write transaction
        with self._transaction(synced=False) as db:
            row = db.execute(claimable, (owner, now - stale_after)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE repair_passes SET owner=?, heartbeat=? WHERE module=?",
                       (owner, now, row[0]))
        return RepairPass(*row[:8], owner=owner, heartbeat=now)

    def advance_repair_pass(self, step: RepairPass) -> bool:
        """Record the progress of a pass its owner runs (``finished`` set when it is over).

        Returns:
            bool: False when the pass is no longer the owner's (the module was
            reconfigured, removed, or another process took the pass over).
        """
        with self._transaction(synced=False) as db:
            cursor = db.execute(
                "UPDATE repair_passes SET after=?, done=?, failed=?, last_error=?, finished=?, "
                "heartbeat=? WHERE module=? AND revision=? AND owner=?",
                (step.after, step.done, step.failed, step.last_error, step.finished, time.time(),
                 step.module, step.revision, step.owner))
            return cursor.rowcount == 1

    def get_repair_pass(self, module: str) -> Optional[RepairPass]:
        """Return the background repair pass of ``module`` (or None)."""
        rows = self._query("SELECT %s FROM repair_passes WHERE module=?" % _PASS_COLUMNS,
                           (module,))
        return RepairPass(*rows[0]) if rows else None

    def delete_module(self, name: str) -> bool:
        """Remove module ``name``; return False when it was not configured.

        Raises:
            ModuleInUse: objects are stored with it, or another module's
                arguments name it (the message says which).
        """
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM modules WHERE name=?", (name,)).fetchone() is None:
                return False
            count = db.execute("SELECT COUNT(*) FROM objects WHERE policy=?", (name,)).fetchone()[0]
            if count:
                raise ModuleInUse("%d object(s) are stored with module %r; delete them first"
                                  % (count, name))
            # The same count as count_garbage (the API's pending_deletions), intents included.
            pending = db.execute("SELECT COUNT(*) FROM garbage WHERE policy=?",
                                 (name,)).fetchone()[0]
            if pending:
                raise ModuleInUse("%d stored piece(s) of data in module %r still wait to be "
                                  "deleted (or are being written); run 'vsm repair' when the "
                                  "module is reachable" % (pending, name))
            users = [row[0] for row in db.execute(
                "SELECT name, args FROM modules WHERE name != ?", (name,)).fetchall()
                if name in string_arguments(json.loads(row[1]))]
            if users:
                raise ModuleInUse("module %r is used by module(s) %s; reconfigure or delete them "
                                  "first" % (name, ", ".join(sorted(users))))
            db.execute("DELETE FROM modules WHERE name=?", (name,))
            self._bump_generation(db)
        return True

    # -- the object index -------------------------------------------------

    def get_object(self, policy: str, key: str) -> Optional[ObjectRecord]:
        """Return the index row for ``(policy, key)`` or None."""
        rows = self._query("SELECT %s FROM objects WHERE policy=? AND key=?" % _OBJECT_COLUMNS,
                           (policy, key))
        return _object_record(rows[0]) if rows else None

    def garbage_sequence(self) -> int:
        """Return the highest garbage id handed out so far (0 before the first).

        Ids only grow (``AUTOINCREMENT``): data retired after this call gets
        a larger id. A read takes this value *before* looking its key up.
        """
        rows = self._query("SELECT seq FROM sqlite_sequence WHERE name='garbage'")
        return int(rows[0][0]) if rows else 0

    def list_objects(self, policy: str, prefix: str = "", after: str = "",
                     limit: int = 1000) -> List[ObjectRecord]:
        """Return up to ``limit`` rows of ``policy`` in key order.

        Only keys greater than ``after`` and starting with ``prefix`` are returned.
        """
        if not prefix:
            rows = self._query("SELECT %s FROM objects WHERE policy=? AND key > ? ORDER BY key "
                               "LIMIT ?" % _OBJECT_COLUMNS, (policy, after, int(limit)))
        else:  # the bounds let SQLite walk only the prefix's part of the primary key
            rows = self._query(
                "SELECT %s FROM objects WHERE policy=? AND key > ? AND key >= ? AND key < ? "
                "AND substr(key, 1, ?) = ? ORDER BY key LIMIT ?" % _OBJECT_COLUMNS,
                (policy, after, prefix, prefix + _HIGHEST, len(prefix), prefix, int(limit)))
        return [_object_record(row) for row in rows]

    def count_objects(self, policy: str) -> int:
        """Return how many objects ``policy`` holds."""
        return self._query("SELECT COUNT(*) FROM objects WHERE policy=?", (policy,))[0][0]

    def add_intent(self, policy: str, module_data: str, writer: str = "") -> int:
        """Record that ``module_data`` is about to be written by process ``writer``.

        If the writer dies before :meth:`put_object` or :meth:`drop_intent`,
        the intent outlives it; :meth:`collect_intents` turns it into garbage
        once the writer is known to be gone.

        The intent is committed without its own fsync (one index fsync per
        PUT instead of two, issue 10): it survives the process being killed,
        and the synced commit of :meth:`put_object` makes it durable with the
        object. Only a power loss before that commit may lose it, and then
        the write was never acknowledged: what is lost is the record of copies
        to delete (they stay as unreferenced data), never an object.

        Returns:
            int: the intent's id.
        """
        with self._transaction(synced=False) as db:
            cursor = db.execute("INSERT INTO garbage (policy, module_data, kind, since, writer) "
                                "VALUES (?, ?, 'intent', ?, ?)",
                                (policy, module_data, time.time(), writer or None))
            return cursor.lastrowid

    def drop_intent(self, intent_id: int, garbage: bool) -> Optional[GarbageItem]:
        """Finish a write intent: forget it, or turn it into garbage to delete now.

        Returns:
            The garbage item when ``garbage`` is True, else None.
        """
        with self._transaction() as db:
            if garbage:
                db.execute("UPDATE garbage SET kind='aborted', since=? WHERE id=?",
                           (time.time(), intent_id))
                row = db.execute("SELECT %s FROM garbage WHERE id=?" % _GARBAGE_COLUMNS,
                                 (intent_id,)).fetchone()
                return GarbageItem(*row) if row else None
            db.execute("DELETE FROM garbage WHERE id=?", (intent_id,))
            return None

    def collect_intents(self, writer_gone: Callable[[Optional[str], float], bool],
                        policy: Optional[str] = None) -> List[GarbageItem]:
        """Turn the intents whose writer is gone into garbage (kind ``'crashed'``).

        Args:
            writer_gone: ``f(writer, since)`` returns True when the process
                that recorded an intent at ``since`` can no longer finish it.
            policy: only this module's intents (default: every module's).

        Returns:
            list: the garbage items made (delete their data).
        """
        where, parameters = ("kind='intent'", ())
        if policy is not None:
            where, parameters = ("kind='intent' AND policy=?", (policy,))
        rows = self._query("SELECT %s FROM garbage WHERE %s ORDER BY id"
                           % (_GARBAGE_COLUMNS, where), parameters)
        gone = [GarbageItem(*row) for row in rows if writer_gone(row[7], row[4])]
        collected = []
        for item in gone:
            with self._transaction() as db:
                cursor = db.execute("UPDATE garbage SET kind='crashed' WHERE id=? AND "
                                    "kind='intent'", (item.id,))
                if cursor.rowcount:
                    collected.append(GarbageItem(item.id, item.policy, item.module_data,
                                                 "crashed", item.since, item.attempts,
                                                 item.last_error, item.writer))
        return collected

    def put_object(self, record: ObjectRecord, intent_id: Optional[int] = None,
                   precondition: Optional[Callable[[Optional[ObjectRecord]], None]] = None,
                   require_owner: bool = False) -> Tuple[bool, Optional[GarbageItem]]:
        """Point ``(policy, key)`` at ``record`` atomically, finishing the write intent.

        The replaced row's module_data (if any, and unless another row still
        uses it or it was borrowed) becomes garbage in the same transaction;
        when another module's row borrowed it, that row owns it instead.

        Args:
            precondition: called with the current row (or None) inside the
                transaction; whatever it raises aborts the change (how
                conditional requests stay exact under concurrency).
            require_owner: for a borrowed record (a copy of another row's
                data): commit only while some row still owns that data.

        Returns:
            ``(replaced, garbage)``: whether a row was replaced, and the
            garbage item to delete (or None).

        Raises:
            BorrowedDataGone: ``require_owner`` and no row owns the data.
        """
        headers = json.dumps(list(record.headers)) if record.headers else None
        with self._transaction() as db:
            old = db.execute("SELECT %s FROM objects WHERE policy=? AND key=?" % _OBJECT_COLUMNS,
                             (record.policy, record.key)).fetchone()
            if precondition is not None:
                precondition(_object_record(old) if old is not None else None)
            if record.borrowed and require_owner and db.execute(
                    "SELECT 1 FROM objects WHERE module_data=? AND borrowed=0 LIMIT 1",
                    (record.module_data,)).fetchone() is None:
                # Its owner was deleted or replaced while the copy was made: the data is
                # garbage already, to be destroyed once the copying request ends.
                raise BorrowedDataGone("no object owns %r any more" % record.module_data)
            db.execute("INSERT INTO objects (policy, key, module_data, size, created, sha256, "
                       "content_type, borrowed, headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                       "ON CONFLICT(policy, key) DO UPDATE SET module_data=excluded.module_data, "
                       "size=excluded.size, created=excluded.created, sha256=excluded.sha256, "
                       "content_type=excluded.content_type, borrowed=excluded.borrowed, "
                       "headers=excluded.headers",
                       (record.policy, record.key, record.module_data, record.size, record.created,
                        record.sha256, record.content_type, int(record.borrowed), headers))
            if intent_id is not None:
                db.execute("DELETE FROM garbage WHERE id=?", (intent_id,))
            if old is None:
                return False, None
            return True, self._retire(db, _object_record(old), "replaced")

    def delete_object(self, policy: str, key: str,
                      precondition: Optional[Callable[[Optional[ObjectRecord]], None]] = None
                      ) -> Tuple[Optional[ObjectRecord], Optional[GarbageItem]]:
        """Remove ``(policy, key)`` from the index; its data becomes garbage.

        Args:
            precondition: as for :meth:`put_object`, called with the row
                about to be removed (not called when there is none).

        Returns:
            ``(removed row or None, garbage item to delete or None)``.
        """
        with self._transaction() as db:
            old = db.execute("SELECT %s FROM objects WHERE policy=? AND key=?" % _OBJECT_COLUMNS,
                             (policy, key)).fetchone()
            if old is None:
                return None, None
            record = _object_record(old)
            if precondition is not None:
                precondition(record)
            db.execute("DELETE FROM objects WHERE policy=? AND key=?", (policy, key))
            return record, self._retire(db, record, "deleted")

    @staticmethod
    def _retire(db: sqlite3.Connection, old: ObjectRecord, kind: str) -> Optional[GarbageItem]:
        if old.borrowed:
            return None  # the data belongs to whatever replicated it here
        still_owned = db.execute("SELECT 1 FROM objects WHERE policy=? AND module_data=? "
                                 "AND borrowed=0 LIMIT 1", (old.policy, old.module_data)).fetchone()
        if still_owned:
            return None
        borrower = db.execute("SELECT policy, key FROM objects WHERE module_data=? AND borrowed=1 "
                              "ORDER BY policy != ? LIMIT 1",
                              (old.module_data, old.policy)).fetchone()
        if borrower is not None:
            # A copy said the data was already there (available() True): the storage
            # is shared, so destroying it here would empty that copy. The borrower
            # (one of this policy first) owns the data from now on and destroys it
            # when it goes; whatever only this module held is left (a leak, not a loss).
            db.execute("UPDATE objects SET borrowed=0 WHERE policy=? AND key=?", borrower)
            log.info("%s object %s/%s: its data is now owned by %s/%s, which borrowed it",
                     kind, old.policy, old.key, borrower[0], borrower[1])
            return None
        since = time.time()
        cursor = db.execute("INSERT INTO garbage (policy, module_data, kind, since) "
                            "VALUES (?, ?, ?, ?)", (old.policy, old.module_data, kind, since))
        return GarbageItem(cursor.lastrowid, old.policy, old.module_data, kind, since, 0, None)

    def pending_garbage(self, policy: Optional[str] = None, limit: int = 1000,
                        after_id: int = 0, untried_only: bool = False) -> List[GarbageItem]:
        """Return garbage (not running write intents) of ``policy`` (or of every module).

        Items come in id order, after ``after_id``; ``untried_only`` leaves
        out those whose deletion already failed. Retired data (kinds in
        :data:`RETIRED_KINDS`) may still be read: check with
        :class:`modules.host.pins.ReadPins` before destroying it.
        """
        where = ["kind != 'intent'", "id > ?"]
        parameters: List[Any] = [after_id]
        if policy is not None:
            where.append("policy = ?")
            parameters.append(policy)
        if untried_only:
            where.append("attempts = 0")
        rows = self._query("SELECT %s FROM garbage WHERE %s ORDER BY id LIMIT ?"
                           % (_GARBAGE_COLUMNS, " AND ".join(where)),
                           tuple(parameters) + (int(limit),))
        return [GarbageItem(*row) for row in rows]

    def get_garbage(self, item_id: int) -> Optional[GarbageItem]:
        """Return garbage item ``item_id`` or None when it is gone."""
        rows = self._query("SELECT %s FROM garbage WHERE id=?" % _GARBAGE_COLUMNS, (item_id,))
        return GarbageItem(*rows[0]) if rows else None

    def count_garbage(self, policy: str) -> int:
        """Return how many pieces of data of ``policy`` wait to be deleted.

        Write intents count too: until the write ends (or its process is
        known to be gone) the data may exist. :meth:`delete_module` refuses
        on the same number.
        """
        return self._query("SELECT COUNT(*) FROM garbage WHERE policy=?", (policy,))[0][0]

    def garbage_counts(self, policy: str) -> Dict[str, int]:
        """Return the pending pieces of ``policy`` by kind (``intent``, ``replaced``, ...)."""
        rows = self._query("SELECT kind, COUNT(*) FROM garbage WHERE policy=? GROUP BY kind",
                           (policy,))
        return {kind: count for kind, count in rows}

    def is_referenced(self, policy: str, module_data: str) -> bool:
        """Return True when an index row of ``policy`` uses ``module_data``."""
        return bool(self._query("SELECT 1 FROM objects WHERE policy=? AND module_data=? LIMIT 1",
                                (policy, module_data)))

    def garbage_done(self, item_id: int) -> None:
        """Forget garbage item ``item_id`` (its data is gone)."""
        with self._transaction() as db:
            db.execute("DELETE FROM garbage WHERE id=?", (item_id,))

    def garbage_failed(self, item_id: int, error: str) -> None:
        """Record a failed attempt to delete garbage item ``item_id``."""
        with self._transaction() as db:
            db.execute("UPDATE garbage SET attempts = attempts + 1, last_error=? WHERE id=?",
                       (error[:500], item_id))

    # -- readers ------------------------------------------------------------

    def publish_reader(self, process: str, published: int, oldest: Optional[int]) -> None:
        """Record what process ``process`` says about its in-flight reads (see :class:`ReaderRow`)."""
        with self._transaction() as db:
            db.execute("INSERT INTO readers (process, published, oldest, updated) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT(process) DO UPDATE SET "
                       "published=excluded.published, oldest=excluded.oldest, "
                       "updated=excluded.updated", (process, published, oldest, time.time()))

    def remove_reader(self, process: str) -> None:
        """Forget the row of process ``process`` (it stopped, or it is gone)."""
        with self._transaction() as db:
            db.execute("DELETE FROM readers WHERE process=?", (process,))

    def list_readers(self) -> List[ReaderRow]:
        """Return every serving process's row."""
        return [ReaderRow(*row) for row in self._query(
            "SELECT process, published, oldest, updated FROM readers ORDER BY process")]


def _create_private_file(path: str) -> None:
    """Create the database file readable by its owner only (it holds module arguments)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as error:
        raise LocationUnavailable("cannot create the host database %s: %s"
                                  % (path, error.strerror), location=path) from None


def _module_config(row) -> ModuleConfig:
    return ModuleConfig(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])


def _object_record(row) -> ObjectRecord:
    headers: Tuple[Tuple[str, str], ...] = ()
    if row[8]:
        headers = tuple((str(name), str(value)) for name, value in json.loads(row[8]))
    return ObjectRecord(policy=row[0], key=row[1], module_data=row[2], size=row[3],
                        created=row[4], sha256=row[5], content_type=row[6], borrowed=bool(row[7]),
                        headers=headers)


def string_arguments(args) -> List[str]:
    """Return the string arguments of a configuration (list items or dict values)."""
    values = args.values() if isinstance(args, dict) else args
    return [value for value in values if isinstance(value, str)]
