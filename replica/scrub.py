"""Checking one copy of an object: the cheap check and the full verification.

* :func:`check_copy` (used by ``available`` and ``assign``): the copy counts
  only when its manifest exists and is intact and the data's size equals
  the manifest's (``available`` of the manifest, then a read of the small
  manifest and ``get_size`` of the data); with ``deep`` it is fully
  verified too.
  Copies without a manifest reference (older objects) are asked ``available``.
* :func:`verify_copy` (used by ``scrub`` and ``repair``): reads the whole
  copy block by block against a reference manifest and says what is wrong.

Copy states: ``ok``, ``missing`` (no data: its manifest may be left, as
while the copy is being deleted; a copy that is gone is never damage),
``damaged`` (data present and wrong, or present without a manifest, with the
reason), ``unverified`` (an older object without manifests: the
data exists but cannot be checked), ``unreachable``.
"""
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

from modules.errors import DataCorrupted, ObjectNotFound, StorageError, describe_error
from replica.locations import Location
from replica.manifest import Manifest
from replica.verified import load_manifest, read_exactly

__all__ = ["CopyReport", "check_copy", "verify_copy", "Pacer", "OK", "MISSING", "DAMAGED",
           "UNVERIFIED", "UNREACHABLE"]

log = logging.getLogger(__name__)

OK = "ok"
MISSING = "missing"
DAMAGED = "damaged"
UNVERIFIED = "unverified"
UNREACHABLE = "unreachable"

#: Block numbers listed per damaged copy in a report, at most.
MAX_LISTED_BLOCKS = 20


@dataclass
class CopyReport:
    """The outcome of checking one copy."""

    state: str
    reason: Optional[str] = None
    bad_blocks: List[int] = field(default_factory=list)
    bytes_checked: int = 0
    manifest: Optional[Manifest] = None
    error: Optional[StorageError] = None
    #: Whether the copy's data exists (False: missing, or gone with its manifest left).
    has_data: bool = True
    #: Damaged only by bad blocks (right size, intact manifest): its other blocks can be used.
    lendable: bool = False


class Pacer:
    """Keep an average rate of at most ``rate`` bytes per second (None: no limit)."""

    def __init__(self, rate: Optional[float], sleep: Callable[[float], None],
                 clock: Callable[[], float] = time.monotonic):
        self._rate = rate
        self._sleep = sleep
        self._clock = clock
        self._start: Optional[float] = None
        self._done = 0

    def account(self, count: int) -> None:
        """Record ``count`` bytes handled; sleep when ahead of the rate."""
        if not self._rate:
            return
        now = self._clock()
        if self._start is None:
            self._start = now
        self._done += count
        ahead = self._done / self._rate - (now - self._start)
        if ahead > 0:
            self._sleep(ahead)


def check_copy(context: Optional[dict], location: Location, md: str, mf: Optional[str],
               deep: bool = False) -> bool:
    """Return True when the copy at ``location`` is complete (see the module docstring).

    Raises:
        StorageError: the location could not answer (not an answer about the copy).
    """
    if mf is None:
        return location.call(context, "available", md) is True
    if location.call(context, "available", mf) is not True:
        return False  # no manifest: not complete (and no read needed to say so)
    try:
        manifest = load_manifest(context, location, mf)
        size = location.call(context, "get_size", md)
    except (ObjectNotFound, DataCorrupted) as error:
        log.debug("copy at %s does not count: %s", location.name, error)
        return False
    if size != manifest.size:
        log.warning("copy at %s holds %r bytes but its manifest says %d; it does not count",
                    location.name, size, manifest.size)
        return False
    if deep:
        return verify_copy(context, location, md, mf, manifest, None).state == OK
    return True


def verify_copy(context: Optional[dict], location: Location, md: str, mf: Optional[str],
                reference: Optional[Manifest], pacer: Optional[Pacer]) -> CopyReport:
    """Read the whole copy at ``location`` and compare it with ``reference``.

    ``reference`` is the object's manifest (None when no intact manifest
    exists anywhere); the copy's own manifest must describe the same bytes.

    Returns:
        CopyReport: never raises for a problem of the copy or the location.
    """
    if mf is None:
        return _legacy(context, location, md)
    try:
        own = load_manifest(context, location, mf)
    except ObjectNotFound:
        own = None
    except StorageError as error:
        if not isinstance(error, DataCorrupted):
            return CopyReport(UNREACHABLE, reason=_text(error), error=error)
        return _damaged_or_missing(context, location, md, "manifest damaged: %s" % error)
    if own is None:
        return _damaged_or_missing(context, location, md, "manifest missing")
    if reference is None:
        reference = own
    if not own.same_object(reference):
        return CopyReport(DAMAGED, reason="its manifest describes other bytes than the "
                          "object's manifest", manifest=own)
    try:
        size = location.call(context, "get_size", md)
    except ObjectNotFound:  # gone (deleted meanwhile, or lost): missing, not damaged
        return CopyReport(MISSING, reason="data missing (manifest present)", manifest=own,
                          has_data=False)
    except StorageError as error:
        return CopyReport(UNREACHABLE, reason=_text(error), error=error)
    if size != reference.size:
        return CopyReport(DAMAGED, reason="holds %r bytes, the manifest says %d"
                          % (size, reference.size), manifest=own)
    return _read_blocks(context, location, md, reference, pacer, own)


def _read_blocks(context: Optional[dict], location: Location, md: str, reference: Manifest,
                 pacer: Optional[Pacer], own: Manifest) -> CopyReport:
    report = CopyReport(OK, manifest=own)
    try:
        stream = location.call(context, "get_read_stream", md)
    except ObjectNotFound:  # gone (deleted meanwhile, or lost): missing, not damaged
        return CopyReport(MISSING, reason="data missing (manifest present)", manifest=own,
                          has_data=False)
    except StorageError as error:
        return CopyReport(UNREACHABLE, reason=_text(error), error=error)
    try:
        for index in range(reference.block_count()):
            length = reference.block_length(index)
            data = read_exactly(stream, length)
            report.bytes_checked += len(data)
            if pacer is not None:
                pacer.account(len(data))
            if len(data) != length:
                report.state = DAMAGED
                report.reason = "ends at byte %d, before its size %d" % (
                    index * reference.block_size + len(data), reference.size)
                return report
            if not reference.verify_block(index, data):
                report.bad_blocks.append(index)
        if stream.read(1):
            report.state = DAMAGED
            report.reason = "holds more bytes than its size %d" % reference.size
            return report
    except StorageError as error:
        if isinstance(error, DataCorrupted):
            return CopyReport(DAMAGED, reason=_text(error), manifest=own,
                              bytes_checked=report.bytes_checked)
        return CopyReport(UNREACHABLE, reason=_text(error), error=error,
                          bytes_checked=report.bytes_checked)
    except Exception as error:  # a child stream's foreign error, translated here
        translated = location.failed(error, "scrub")
        return CopyReport(UNREACHABLE, reason=_text(translated), error=translated,
                          bytes_checked=report.bytes_checked)
    finally:
        try:
            stream.close()
        except Exception as error:  # closing must not hide the verdict
            log.debug("closing %s after scrubbing failed: %s", location.name, error)
    if report.bad_blocks:
        report.state = DAMAGED
        report.lendable = True
        shown = report.bad_blocks[:MAX_LISTED_BLOCKS]
        report.reason = "%d block(s) fail their digest: %s%s" % (
            len(report.bad_blocks), ", ".join(map(str, shown)),
            "..." if len(report.bad_blocks) > len(shown) else "")
    return report


def _damaged_or_missing(context: Optional[dict], location: Location, md: str,
                        reason: str) -> CopyReport:
    try:
        present = location.call(context, "available", md) is True
    except StorageError as error:
        return CopyReport(UNREACHABLE, reason=_text(error), error=error)
    if present:
        return CopyReport(DAMAGED, reason=reason + " (data present)")
    if reason == "manifest missing":
        return CopyReport(MISSING, has_data=False)
    return CopyReport(DAMAGED, reason=reason, has_data=False)


def _legacy(context: Optional[dict], location: Location, md: str) -> CopyReport:
    try:
        present = location.call(context, "available", md) is True
    except StorageError as error:
        return CopyReport(UNREACHABLE, reason=_text(error), error=error)
    return CopyReport(UNVERIFIED if present else MISSING, has_data=present)


def _text(error: Any) -> str:
    return describe_error(error)
