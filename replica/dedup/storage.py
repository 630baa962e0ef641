"""``DedupStorage``: a wrapper that stores identical contents once in its inner location."""
import logging
import os
import re
import threading
import time
import uuid
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Optional

from modules.errors import (
    ConfigurationError,
    DataCorrupted,
    InvalidModuleData,
    ObjectNotFound,
    StorageError,
    Unsupported,
)
from modules.redaction import redact_text
from modules.reports import RepairReport, ScrubReport
from modules.wrapper import INHERIT, StorageWrapper
from replica.dedup.hashing import HashingSource, new_hash
from replica.dedup.index import DedupIndex, Entry
from replica.dedup.owners import current_owner, owner_is_gone
from replica.wrapped import open_inner, parse_wrapper_args

__all__ = ["DedupStorage"]

log = logging.getLogger(__name__)

_MODULE_DATA = re.compile(r"\Adedup1:([0-9a-f]{32})\Z")
_OPTIONS = {"state_dir"}
_SCRUB_PIECE = 1024 * 1024


class DedupStorage(StorageWrapper):
    """Store objects with identical content once in one inner location.

    See ``docs/dedup.md``. The content digest (SHA-256 and the size, see
    :mod:`replica.dedup.hashing`) is computed while the object streams to
    the inner location; an index in ``state_dir``
    (:mod:`replica.dedup.index`) maps objects to stored blobs with reference
    counts.

    Args:
        *args: exactly one inner location, given like a replica location (a
            configured module's name, an inline JSON spec, or a
            ``file:///dir``, ``http(s)://`` or ``s3://`` URL), and options as
            ``"name=value"``.
        state_dir: the directory of the SQLite index (created if missing);
            required. Every process of the node uses the same one.

    module_data is ``"dedup1:<32 hex>"`` and means something only with the
    index in ``state_dir``.

    Raises:
        ConfigurationError: a location or option that cannot be used, or a
            ``state_dir`` that is missing or cannot hold the index.
    """

    capability_rules = MappingProxyType({
        "repair": True,           # reconciles the index; forwards per-object repair
        "scrub": True,            # re-hashes the content (plus the inner scrub if any)
        "verified_reads": INHERIT,
        "retries": INHERIT,       # one inner call per operation: retries are the inner's
        "placement": False,       # module_data means something only with this node's index
    })

    def __init__(self, *args: Any, **kwargs: Any):
        spec, options = parse_wrapper_args("DedupStorage", args, kwargs, _OPTIONS, set())
        state_dir = options.get("state_dir")
        if not isinstance(state_dir, str) or not state_dir.strip():
            raise ConfigurationError("DedupStorage needs state_dir=PATH, the directory of its "
                                     "index (shared by every process of this node)")
        state_dir = os.path.abspath(state_dir.strip())
        self._index = DedupIndex(state_dir)
        try:
            location = open_inner(spec, owner=self)
        except BaseException:
            self._index.close()
            raise
        super().__init__(spec.name, location.module, close_inner=location.close)
        self.state_dir = state_dir
        self._owner: Optional[str] = None
        self._owner_pid: Optional[int] = None
        self._lock = threading.Lock()
        #: time source and sleep of scrub's rate limit (injectable for tests)
        self._clock: Callable[[], float] = time.monotonic
        self._sleep: Callable[[float], None] = time.sleep
        self._counters = dict.fromkeys((
            "writes", "duplicate_writes", "deletes", "blobs_freed", "reclaim_failures",
            "scrubs", "repairs"), 0)

    def __repr__(self) -> str:
        return "DedupStorage(%r, state_dir=%r)" % (self.inner_name, self.state_dir)

    # -- module_data ----------------------------------------------------------

    def new_data(self, context: Optional[dict]) -> str:
        """Return ``"dedup1:<32 hex>"`` (no storage is contacted)."""
        return "dedup1:" + uuid.uuid4().hex

    def new_data_for(self, context: Optional[dict], object_id: str) -> str:
        """Not offered: module_data means something only with this node's index.

        Raises:
            Unsupported: always (``capabilities['placement']`` is False).
        """
        raise Unsupported("DedupStorage does not support deterministic placement: its "
                          "module_data is found only through the index of one node")

    def _object_id(self, module_data: Any) -> str:
        if isinstance(module_data, str):
            match = _MODULE_DATA.match(module_data)
            if match:
                return match.group(1)
        shown = module_data[:60] if isinstance(module_data, str) else module_data
        raise InvalidModuleData("not DedupStorage module_data (expected 'dedup1:<32 hex>'): %r"
                                % (shown,), module_data=module_data
                                if isinstance(module_data, str) else None)

    def _entry(self, module_data: str) -> Entry:
        entry = self._index.lookup(self._object_id(module_data))
        if entry is None:
            raise ObjectNotFound("no object is stored for %s" % module_data,
                                 module_data=module_data)
        return entry

    # -- the contract -----------------------------------------------------------

    def assign(self, context: Optional[dict], module_data: str, stream) -> None:
        """Stream the content to the inner location while hashing it; keep one copy per content.

        The upload goes to fresh inner module_data recorded in the index
        first; once the digest is known, one transaction either makes it the
        stored blob or, when that content is already stored, adds a
        reference to the existing blob and deletes the new upload.

        Raises:
            InvalidModuleData: ``module_data`` is not a DedupStorage one.
            SourceStreamError: the source failed or is not binary (nothing kept).
            LocationUnavailable: the index cannot be used.
            StorageError: the inner location's errors, naming it.
        """
        object_id = self._object_id(module_data)
        inner = self.call_inner(context, "new_data", module_data=module_data)
        if not isinstance(inner, str) or not inner:
            raise StorageError("inner location %s returned module_data %r, not a non-empty "
                               "str" % (self.inner_name, inner))
        self._index.begin_upload(inner, self._current_owner())
        source = HashingSource(stream)
        try:
            self.call_inner(context, "assign", inner, source, module_data=module_data)
            if not source.finished:
                raise StorageError("inner location %s returned from assign before reading the "
                                   "whole source; nothing was stored" % self.inner_name)
        except BaseException:
            self._discard(context, [inner], abandon=True)
            raise
        to_delete = self._index.commit_upload(object_id, source.digest(), source.size, inner)
        duplicate = inner in to_delete
        self._count(writes=1, duplicate_writes=int(duplicate))
        self._discard(context, to_delete)

    def available(self, context: Optional[dict], module_data: str) -> bool:
        """Return True when the index knows the object and the inner location holds its blob."""
        entry = self._index.lookup(self._object_id(module_data))
        if entry is None:
            return False
        return bool(self.call_inner(context, "available", entry.inner, module_data=module_data))

    def get_read_stream(self, context: Optional[dict], module_data: str):
        """Open the blob's stream in the inner location.

        Raises:
            ObjectNotFound: the object is not stored (or was just deleted).
            InvalidModuleData: ``module_data`` is not a DedupStorage one.
            StorageError: the inner location's errors, naming it.
        """
        return self.open_inner_stream(context, self._entry(module_data).inner, module_data)

    def delete(self, context: Optional[dict], module_data: str) -> None:
        """Drop the object's reference; the last reference deletes the blob.

        A blob whose inner delete fails stays recorded and is deleted by the
        next :meth:`repair` (the object is gone either way).

        Raises:
            InvalidModuleData: ``module_data`` is not a DedupStorage one.
            LocationUnavailable: the index cannot be used.
        """
        freed = self._index.remove(self._object_id(module_data))
        self._count(deletes=1, blobs_freed=len(freed))
        self._discard(context, freed)

    def get_size(self, context: Optional[dict], module_data: str) -> int:
        """Return the size recorded in the index (no inner call).

        Raises:
            ObjectNotFound: the object is not stored.
            InvalidModuleData: ``module_data`` is not a DedupStorage one.
        """
        return self._entry(module_data).size

    def statistics(self, context: Optional[dict]) -> Dict[str, Any]:
        """The inner statistics plus ``logical_bytes``, ``stored_bytes``, ``dedup_ratio``.

        ``dedup_ratio`` is logical / stored bytes (1.0 when nothing is
        stored); ``objects``, ``blobs`` and ``pending`` (unfinished or
        unreclaimed inner data by kind) come from the index. Never raises.
        """
        result = super().statistics(context)
        try:
            totals = self._index.totals()
        except StorageError as error:
            result.update(status="unavailable", reason=redact_text(str(error)))
            return result
        stored = totals["stored_bytes"]
        totals["dedup_ratio"] = round(totals["logical_bytes"] / stored, 4) if stored else 1.0
        result.update(totals)
        stale = totals.pop("stale")
        if stale and result.get("status", "ok") == "ok":
            result["status"] = "degraded"
            result["reason"] = ("%d inner object(s) could not be deleted and wait to be "
                                "reclaimed; run repair" % stale)
        with self._lock:
            result["operations"] = dict(self._counters)
        result["state_dir"] = self.state_dir
        return result

    # -- optional methods -----------------------------------------------------

    def repair(self, context: Optional[dict], module_data: Optional[str] = None,
               rate: Optional[float] = None) -> Dict[str, Any]:
        """Reconcile the index with the inner location, or repair one object's blob.

        Without ``module_data``: inner data left by uploads whose process is
        gone (crashed), duplicates and freed blobs not yet deleted are
        deleted; reference counts are recomputed from the objects, and blobs
        no object uses are deleted. Uploads of live processes are left alone.
        With ``module_data``: the inner location's ``repair`` of the blob when
        it offers one, else a check that the blob is there.

        Returns:
            dict: a :class:`~modules.reports.RepairReport`: ``reclaimed``
            (inner objects deleted), ``failed`` (inner module_data ->
            error), ``remaining`` (left for later: failed deletes and uploads
            still running), ``refs_fixed``, ``lost`` (objects whose blob
            record was missing); for one object, the inner report or
            ``present``/``failed``.

        Raises:
            InvalidModuleData: ``module_data`` is not a DedupStorage one.
            ObjectNotFound: the object is not stored.
            LocationUnavailable: the index cannot be used.
        """
        self._count(repairs=1)
        if module_data is not None:
            entry = self._entry(module_data)
            if self.inner_offers(context, "repair"):
                kwargs = {} if rate is None else {"rate": rate}
                return self.call_inner(context, "repair", entry.inner, module_data=module_data,
                                       **kwargs)
            report = RepairReport(object=self._object_id(module_data))
            if self.call_inner(context, "available", entry.inner, module_data=module_data):
                report.present.append(self.inner_name)
            else:
                report.failed[self.inner_name] = "the stored content is missing"
            return report.to_dict()
        report = RepairReport()
        fixed, freed, lost = self._index.recount()
        report.extra["refs_fixed"] = fixed
        report.extra["lost"] = lost
        if lost:
            log.error("dedup index %s: %d object(s) had no stored content record and were "
                      "removed", self._index.path, len(lost))
        for row in self._index.pending():
            if row.kind == "upload" and not owner_is_gone(row.owner):
                report.remaining += 1  # still being written by a live process
                continue
            try:
                self.call_inner(context, "delete", row.inner)
            except StorageError as error:
                report.failed[row.inner] = "%s: %s" % (type(error).__name__,
                                                       redact_text(str(error)))
                report.remaining += 1
                continue
            self._index.forget(row.inner)
            report.reclaimed += 1
            report.repaired.append(row.inner)
        return report.to_dict()

    def scrub(self, context: Optional[dict], module_data: str,
              rate: Optional[float] = None) -> Dict[str, Any]:
        """Re-hash the stored content and compare digest and size; also the inner scrub if offered.

        Returns:
            dict: a :class:`~modules.reports.ScrubReport`; the inner
            location is in ``damaged`` when the content's digest or size
            differs, in ``missing`` when its blob is gone.

        Raises:
            InvalidModuleData: ``module_data`` is not a DedupStorage one.
            ObjectNotFound: the object is not stored.
        """
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                                 or rate <= 0):
            raise ValueError("rate must be a positive number of bytes per second, got %r" % rate)
        entry = self._entry(module_data)
        inner_scrub = self.inner_offers(context, "scrub")
        if inner_scrub:
            kwargs = {} if rate is None else {"rate": rate}
            report = ScrubReport.from_dict(self.call_inner(context, "scrub", entry.inner,
                                                           module_data=module_data, **kwargs))
        else:
            report = ScrubReport()
        report.object = self._object_id(module_data)
        report.verified = True
        try:
            digest, size = self._hash_content(context, module_data, entry.inner, rate)
        except ObjectNotFound:
            report.missing.append(self.inner_name)
        except DataCorrupted as error:
            report.damaged[self.inner_name] = str(error)
        except StorageError as error:
            if not inner_scrub:
                raise
            report.unreachable[self.inner_name] = str(error)
        else:
            if (digest, size) != (entry.digest, entry.size):
                report.damaged[self.inner_name] = (
                    "content differs from what was stored: %d bytes with digest %s, expected %d "
                    "bytes with digest %s" % (size, digest, entry.size, entry.digest))
            elif not inner_scrub:
                report.ok.append(self.inner_name)
            if not inner_scrub:
                report.bytes_checked += size
            report.size = entry.size
        self._count(scrubs=1)
        return report.to_dict()

    def close(self) -> None:
        """Close the index and the inner module if this wrapper created it."""
        try:
            super().close()
        finally:
            self._index.close()

    # -- helpers ----------------------------------------------------------------

    def _hash_content(self, context: Optional[dict], module_data: str, inner: str,
                      rate: Optional[float]):
        digest = new_hash()
        size = 0
        started = self._clock()
        with self.open_inner_stream(context, inner, module_data) as stream:
            while True:
                piece = stream.read(_SCRUB_PIECE)
                if not piece:
                    break
                digest.update(piece)
                size += len(piece)
                if rate:
                    ahead = size / rate - (self._clock() - started)
                    if ahead > 0:
                        self._sleep(ahead)
        return "sha256:" + digest.hexdigest(), size

    def _discard(self, context: Optional[dict], inners: List[str], abandon: bool = False) -> None:
        """Delete inner data nothing references; what fails stays for :meth:`repair`."""
        for inner in inners:
            try:
                if abandon:
                    self._index.abandon_upload(inner)
                self.call_inner(context, "delete", inner)
                self._index.forget(inner)
            except Exception as error:  # reclaiming is best effort; repair finishes it
                self._count(reclaim_failures=1)
                log.warning("%s: could not reclaim inner data at %s (left for repair): %s",
                            self, self.inner_name, redact_text(str(error)))

    def _current_owner(self) -> str:
        pid = os.getpid()
        if self._owner_pid != pid:  # computed again in a forked child
            self._owner, self._owner_pid = current_owner(), pid
        return self._owner

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                self._counters[name] += value
