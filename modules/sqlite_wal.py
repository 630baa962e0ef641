"""Open an SQLite database in WAL mode, safely when several processes open it at once.

Every process of ``vsm serve --workers N`` opens the same databases (the host's
index, a replica's journal and fill counts, a dedup index) at the same moment.
Switching a database to WAL takes an exclusive lock, and SQLite may answer
"database is locked" at once, without calling its busy handler, while another
connection is doing the same (sqlite.org/wal.html, "Persistence of WAL mode";
the busy handler is not used for every lock, sqlite.org/c3ref/busy_timeout.html).
So the switch is retried, with tenacity, for as long as the busy timeout.
"""
import sqlite3

import tenacity

__all__ = ["connect_wal"]


def _locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and (
        "locked" in str(error) or "busy" in str(error))


def connect_wal(path: str, timeout: float, synchronous: str = "FULL") -> sqlite3.Connection:
    """Return an autocommit connection to ``path`` in WAL mode.

    Args:
        path: the database file (created when missing).
        timeout: seconds SQLite waits for a lock (its busy timeout), and
            seconds the switch to WAL is retried for.
        synchronous: ``PRAGMA synchronous`` (``FULL``, ``NORMAL`` or ``OFF``).

    Returns:
        sqlite3.Connection: ``isolation_level=None``, usable from any thread.

    Raises:
        sqlite3.Error: the file cannot be opened, or stayed locked ``timeout`` seconds.
    """
    if synchronous not in ("FULL", "NORMAL", "OFF"):
        raise ValueError("synchronous must be FULL, NORMAL or OFF, not %r" % synchronous)
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        tenacity.Retrying(
            stop=tenacity.stop_after_delay(timeout),
            wait=tenacity.wait_random_exponential(multiplier=0.01, max=0.25),
            retry=tenacity.retry_if_exception(_locked),
            reraise=True)(db.execute, "PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=%s" % synchronous)
    except BaseException:
        db.close()
        raise
    return db
