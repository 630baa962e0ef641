"""HTTPStorage's temporary uploads: their names, and the sweep that removes stale ones.

``assign`` uploads to ``xx/yy/.upload-<32 hex key>-<12 hex random>`` in the
object's shard collection and ``MOVE``\\ s it onto the key. A process killed
in the middle (``kill -9``, a crash, a lost connection) leaves that
temporary behind. :class:`Sweeper` lists the shard collections
(``PROPFIND``, ``Depth: 1``: one request for the base collection, one per
first-level shard and one per second-level shard) and deletes the
temporaries older than a grace period. Ages are measured on the server's
clock (its ``Date`` header against ``getlastmodified``), so a skewed client
clock never makes a fresh upload look old; a temporary without a
modification time is kept. A fresh temporary is never touched: another
process may be writing it.
"""
import logging
import re
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Optional

from modules.errors import StorageError, describe_error
from replica.http.webdav import Entry, WebDAV

__all__ = ["TEMP_PREFIX", "temporary_name", "is_temporary_name", "Sweeper"]

log = logging.getLogger(__name__)

#: Prefix of every temporary upload's name.
TEMP_PREFIX = ".upload-"
_TEMPORARY = re.compile(r"\A\.upload-([0-9a-f]{32})-[0-9a-f]{12}\Z")
_SHARD = re.compile(r"\A[0-9a-f]{2}\Z")


def temporary_name(key_name: str) -> str:
    """Return a new temporary name for the object named ``key_name`` (32 hex)."""
    return "%s%s-%s" % (TEMP_PREFIX, key_name, uuid.uuid4().hex[:12])


def is_temporary_name(name: str) -> bool:
    """Tell whether ``name`` (one path segment) is one of HTTPStorage's temporary uploads."""
    return bool(_TEMPORARY.match(name))


class Sweeper:
    """Find and remove stale temporary uploads below one base collection.

    Args:
        webdav: lists collections and deletes.
        base_url: the storage's base collection (ends with ``/``).
        grace: seconds; temporaries younger than this are counted, never removed.
        clock: ``time.time``, replaceable in tests; used only when the
            server sends no ``Date``.
    """

    def __init__(self, webdav: WebDAV, base_url: str, grace: float,
                 clock: Callable[[], float] = time.time):
        self._webdav = webdav
        self._base_url = base_url
        self._grace = grace
        self._clock = clock
        self._lock = threading.Lock()
        self._last: Optional[Dict[str, Any]] = None

    def sweep(self, shard: Optional[str] = None) -> Dict[str, Any]:
        """Walk the shard collections (only ``shard``, ``'xx/yy'``, when given); remove stale
        temporaries.

        Returns:
            dict: ``collections`` listed, ``found`` and ``found_bytes``
            (temporaries seen), ``removed`` and ``removed_bytes``, ``fresh``
            (younger than the grace period, kept), ``undated`` (no
            modification time, kept), ``grace_seconds``, ``complete`` (False
            when a listing or a delete failed) and ``errors`` (URL -> message,
            at most 10, secrets masked).

        Raises:
            StorageError: the base collection itself cannot be listed (the
                server is down, refuses PROPFIND, or refuses our credentials).
        """
        report: Dict[str, Any] = {"collections": 0, "found": 0, "found_bytes": 0, "removed": 0,
                                  "removed_bytes": 0, "fresh": 0, "undated": 0,
                                  "grace_seconds": self._grace, "complete": True, "errors": {}}
        if shard is not None:
            self._sweep_leaf(shard + "/", report)
        else:
            for first in self._subcollections("", report, must=True):
                for second in self._subcollections(first, report, must=False):
                    self._sweep_leaf(first + second, report)
        if shard is None:
            with self._lock:
                self._last = {"files": report["found"] - report["removed"],
                              "bytes": report["found_bytes"] - report["removed_bytes"],
                              "as_of": round(self._clock(), 3),
                              "complete": report["complete"]}
        return report

    def last_count(self) -> Optional[Dict[str, Any]]:
        """Return the temporaries left by the last full sweep, or None before the first.

        Returns:
            dict or None: ``files``, ``bytes``, ``as_of`` (seconds since the
            epoch) and ``complete``; no request is sent.
        """
        with self._lock:
            return dict(self._last) if self._last else None

    # -- helpers ----------------------------------------------------------

    def _subcollections(self, relative: str, report: Dict[str, Any], must: bool) -> List[str]:
        def keep(entry: Entry) -> bool:
            return entry.collection and bool(_SHARD.match(entry.name))

        try:
            _, entries = self._webdav.list_collection(self._base_url + relative, keep)
        except StorageError as error:
            if must:
                raise
            self._note(report, self._base_url + relative, error)
            return []
        report["collections"] += 1
        return sorted(entry.name + "/" for entry in entries)

    def _sweep_leaf(self, relative: str, report: Dict[str, Any]) -> None:
        def keep(entry: Entry) -> bool:
            return not entry.collection and is_temporary_name(entry.name)

        url = self._base_url + relative
        try:
            server_time, temporaries = self._webdav.list_collection(url, keep)
        except StorageError as error:
            self._note(report, url, error)
            return
        report["collections"] += 1
        now = server_time if server_time is not None else self._clock()
        for entry in temporaries:
            size = entry.length or 0
            report["found"] += 1
            report["found_bytes"] += size
            if entry.modified is None:
                report["undated"] += 1
                continue
            if now - entry.modified < self._grace:
                report["fresh"] += 1
                continue
            try:
                self._webdav.delete(url + entry.name, retry=False)
            except StorageError as error:
                self._note(report, url + entry.name, error)
                continue
            log.info("removed the stale temporary upload %s%s (%d bytes, %.0f s old)", url,
                     entry.name, size, now - entry.modified)
            report["removed"] += 1
            report["removed_bytes"] += size

    @staticmethod
    def _note(report: Dict[str, Any], where: str, error: BaseException) -> None:
        report["complete"] = False
        if len(report["errors"]) < 10:
            report["errors"][where] = describe_error(error)
        log.warning("sweeping temporary uploads: %s", error)
