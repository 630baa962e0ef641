"""Per-location fill counts of the repair pass: how many objects each location holds.

The replica does not know the list of objects (the platform's index does);
what it knows is what each ``repair(context, module_data)`` found. A *repair
pass* (``vsm repair``: one journal step, ``repair(context)``, then one
``repair(context, module_data)`` per object of the index) is counted here:

* ``repair(context)`` starts a new pass (the current counts become the
  ``last`` pass);
* each object repaired adds one to ``objects`` and, per configured
  location, to one of ``holds`` (it has the copy after the repair),
  ``missing`` (it should have it and does not: write failed, unreachable),
  ``unplaceable`` (the location cannot receive existing objects: no
  ``placement`` capability) or ``draining`` (a draining location that holds
  no copy: it is not refilled); and to ``needed`` when the location holds a
  copy that the object cannot do without: the copies outside this location
  and the draining ones are fewer than ``write_quorum``.

Together with the number of objects in the host's index, this gives each
location's fill progress (``holds / objects in the index``) and tells when a
draining location can be removed (a whole pass with ``needed == 0`` for
it). Only counters are kept (a few per location: bounded memory). With a ``state_dir`` they live in
``<state_dir>/replica-fill.sqlite3``, shared by every server process that
serves the replica (a host with several workers spreads a pass's steps over
them); without one they live in memory. They are statistics, never the record
of where a copy is: losing them loses nothing but the figures.
"""
import logging
import os
import sqlite3
import threading
import time
from typing import Any, Dict, Iterable, Mapping, Optional

from modules.errors import LocationUnavailable, StorageError
from modules.sqlite_wal import connect_wal

__all__ = ["FillCounts", "SqliteFillCounts", "open_fill_counts", "safe_report", "HOLDS",
           "MISSING", "UNPLACEABLE", "DRAINING", "NEEDED",
           "FILE_NAME"]

log = logging.getLogger(__name__)

HOLDS = "holds"
MISSING = "missing"
UNPLACEABLE = "unplaceable"
DRAINING = "draining"
NEEDED = "needed"
_STATES = (HOLDS, MISSING, UNPLACEABLE, DRAINING)
#: The counter kept for the replica as a whole (location "").
_OBJECTS = "objects"
#: The file name inside the state directory.
FILE_NAME = "replica-fill.sqlite3"
_CURRENT, _LAST = "current", "last"


class FillCounts:
    """Counters of the current and the last repair pass (thread-safe; in memory).

    Args:
        clock: wall-clock time source (seconds since the epoch), for the
            passes' start times.
    """

    def __init__(self, clock=time.time):
        self._clock = clock
        self._lock = threading.Lock()
        self._passes: Dict[str, Dict[str, Any]] = {}

    def start_pass(self) -> None:
        """Begin a new pass; the current one (if it counted any object) becomes the last.

        Raises:
            LocationUnavailable: the durable counts cannot be written.
        """
        with self._lock:
            current = self._passes.get(_CURRENT)
            if current is not None and current["counts"].get(("", _OBJECTS)):
                self._passes[_LAST] = current
            self._passes[_CURRENT] = {"started": self._clock(), "counts": {}}

    def record(self, states: Mapping[str, str], needed: Iterable[str] = ()) -> None:
        """Count one repaired object: ``states`` maps location name -> one of the states;
        ``needed``: the locations whose copy the object cannot do without.

        Raises:
            LocationUnavailable: the durable counts cannot be written.
        """
        with self._lock:
            current = self._passes.setdefault(_CURRENT, {"started": self._clock(),
                                                         "counts": {}})
            for key in _increments(states, needed):
                current["counts"][key] = current["counts"].get(key, 0) + 1

    def report(self, locations: Iterable[str]) -> Dict[str, Any]:
        """Return ``{"current": pass, "last": pass}`` (None for a pass not run).

        Each pass: ``started`` (seconds since the epoch), ``objects`` and
        ``locations``: name -> ``{holds, missing, unplaceable, draining,
        needed}``.

        Raises:
            LocationUnavailable: the durable counts cannot be read.
        """
        with self._lock:
            passes = {name: (value["started"], dict(value["counts"]))
                      for name, value in self._passes.items()}
        return _report(passes, list(locations))

    def close(self) -> None:
        """Release resources (nothing to do in memory)."""


class SqliteFillCounts(FillCounts):
    """:class:`FillCounts` kept in ``<state_dir>/replica-fill.sqlite3`` (shared by processes).

    Counts are statistics: the file is written without fsync
    (``synchronous=OFF``); a crash may lose the last few increments.
    """

    def __init__(self, state_dir: str, clock=time.time):
        super().__init__(clock)
        self.path = os.path.join(state_dir, FILE_NAME)
        try:
            os.makedirs(state_dir, exist_ok=True)
            self._db = connect_wal(self.path, timeout=10.0, synchronous="OFF")
            self._db.execute("CREATE TABLE IF NOT EXISTS passes (pass TEXT PRIMARY KEY, "
                             "started REAL NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS counts (pass TEXT NOT NULL, "
                             "location TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,"
                             " PRIMARY KEY (pass, location, name))")
        except (OSError, sqlite3.Error) as error:
            raise LocationUnavailable("cannot open the replica's fill counts %s: %s"
                                      % (self.path, error)) from error

    def start_pass(self) -> None:
        with self._lock, self._errors("start a pass in"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT value FROM counts WHERE pass=? AND location='' "
                                       "AND name=?", (_CURRENT, _OBJECTS)).fetchone()
                if row and row[0]:
                    self._db.execute("DELETE FROM counts WHERE pass=?", (_LAST,))
                    self._db.execute("DELETE FROM passes WHERE pass=?", (_LAST,))
                    self._db.execute("UPDATE counts SET pass=? WHERE pass=?", (_LAST, _CURRENT))
                    self._db.execute("UPDATE passes SET pass=? WHERE pass=?", (_LAST, _CURRENT))
                self._db.execute("DELETE FROM counts WHERE pass=?", (_CURRENT,))
                self._db.execute("INSERT OR REPLACE INTO passes VALUES (?, ?)",
                                 (_CURRENT, self._clock()))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def record(self, states: Mapping[str, str], needed: Iterable[str] = ()) -> None:
        with self._lock, self._errors("count in"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO passes VALUES (?, ?)",
                                 (_CURRENT, self._clock()))
                self._db.executemany(
                    "INSERT INTO counts VALUES (?, ?, ?, 1) ON CONFLICT (pass, location, name) "
                    "DO UPDATE SET value = value + 1",
                    [(_CURRENT, location, name)
                     for location, name in _increments(states, needed)])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def report(self, locations: Iterable[str]) -> Dict[str, Any]:
        with self._lock, self._errors("read"):
            started = dict(self._db.execute("SELECT pass, started FROM passes").fetchall())
            rows = self._db.execute("SELECT pass, location, name, value FROM counts").fetchall()
        passes = {name: (when, {}) for name, when in started.items()}
        for name, location, counter, value in rows:
            passes.setdefault(name, (None, {}))[1][(location, counter)] = value
        return _report(passes, list(locations))

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error as error:
                log.warning("closing the fill counts %s failed: %s", self.path, error)

    def _errors(self, action: str) -> "_SqliteErrors":
        return _SqliteErrors(self.path, action)


class _SqliteErrors:
    """Turn sqlite3 errors into LocationUnavailable naming the file and the action."""

    def __init__(self, path: str, action: str):
        self._path = path
        self._action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> bool:
        if isinstance(error, sqlite3.Error):
            raise LocationUnavailable("cannot %s the replica's fill counts %s: %s"
                                      % (self._action, self._path, error)) from error
        return False


def open_fill_counts(state_dir: Optional[str]) -> FillCounts:
    """Return durable counts in ``state_dir``, or in-memory counts when it is None.

    Raises:
        LocationUnavailable: the state directory cannot hold the file.
    """
    if state_dir is None:
        return FillCounts()
    return SqliteFillCounts(state_dir)


def _increments(states: Mapping[str, str], needed: Iterable[str]):
    keys = [("", _OBJECTS)]
    for location, state in states.items():
        if state not in _STATES:
            raise ValueError("unknown fill state %r" % state)
        keys.append((location, state))
    keys.extend((location, NEEDED) for location in needed)
    return keys


def _report(passes: Dict[str, Any], locations) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    for name in (_CURRENT, _LAST):
        if name not in passes:
            result[name] = None
            continue
        started, counts = passes[name]
        result[name] = {
            "started": None if started is None else round(started, 3),
            "objects": counts.get(("", _OBJECTS), 0),
            "locations": {location: {state: counts.get((location, state), 0)
                                     for state in _STATES + (NEEDED,)}
                          for location in locations},
        }
    return result


def safe_report(counts: FillCounts, locations: Iterable[str]) -> Dict[str, Any]:
    """Return :meth:`FillCounts.report`, or ``{"error": ...}`` when it fails (never raises)."""
    try:
        return counts.report(locations)
    except StorageError as error:
        return {"error": str(error)}
