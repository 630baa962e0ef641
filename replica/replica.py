"""``ReplicaStorage``: every object mirrored on several locations.

Each object is stored on every configured *location* (a child storage
module). A write succeeds when ``write_quorum`` copies exist; reads use the
first copy that answers and switch copies transparently on failure; deletes
that cannot reach a location are kept in a journal and retried; ``repair``
refills missing copies. The administrator's guide is ``docs/replica.md``.

This file holds the contract methods and the copy helpers they share;
scrubbing and repairing one object live in :mod:`replica.repairer`,
replaying the journal in :mod:`replica.drain`, building the statistics in
:mod:`replica.statistics`.
"""
import collections
import concurrent.futures
import functools
import io
import itertools
import logging
import threading
import time
from types import MappingProxyType
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Sequence, Tuple

import tenacity

from modules import StorageModule
from modules.errors import (
    ConfigurationError,
    InsufficientStorage,
    InvalidModuleData,
    LocationTimeout,
    LocationUnavailable,
    ObjectNotFound,
    StorageError,
)
from replica import module_data as formats
from replica.copies import delete_copy, writer
from replica.drain import Drainer
from replica.failover import exhausted_error, open_failover_stream
from replica.fill import (
    DRAINING,
    HOLDS,
    MISSING,
    NEEDED,
    UNPLACEABLE,
    open_fill_counts,
    safe_report,
)
from replica.fanout import FanOut, FanOutResult
from replica.journal import COPY, DELETE, open_journal
from replica.locations import Location, Placed, describe_failures, limited_error
from replica.manifest import BlockHasher, HashingReader, Manifest
from replica.placement import PLACED, Layout, expand, supports_placement
from replica.repairer import Repairer
from replica.scrub import check_copy
from replica.settings import parse_settings
from replica.statistics import journal_report, location_reports, summarize
from replica.verified import VerifiedReadStream, find_reference, open_verified_stream
from replica.workers import WorkerPool

__all__ = ["ReplicaStorage"]

log = logging.getLogger(__name__)

#: Recently deleted object ids remembered, so that a repair running at the
#: same time as the delete does not leave a copy or a journal entry behind.
TOMBSTONES = 10000
#: Numbers the instances, to name their worker threads.
_INSTANCES = itertools.count(1)


class ReplicaStorage(StorageModule):
    """Mirror every object over several locations (see ``docs/replica.md``).

    Args:
        *locations: each a configured module's name (resolved through
            ``context['func']['getModule']``), an inline JSON spec
            ``{"module": ..., "args": [...], "name": ...}``, or a
            ``file:///dir`` / ``http(s)://`` URL (``#name`` sets its name).
            Any ``"option=value"`` string is taken as an option.
        **options: ``write_quorum``, ``read_attempts``, ``read_backoff``,
            ``error_limit``, ``error_interval``, ``workers``,
            ``write_timeout``, ``call_timeout``, ``queue_timeout``,
            ``state_dir``, ``journal_limit``, ``journal_interval``,
            ``integrity`` (on/off), ``verify_available`` (size/deep).

    Raises:
        ConfigurationError: no locations, a location or option that cannot
            be used, duplicate names, quorum out of range, or a state
            directory that cannot hold the journal.
    """

    capabilities = MappingProxyType({"repair": True, "verified_reads": True, "scrub": True})

    def __init__(self, *locations: Any, **options: Any):
        super().__init__()
        settings = self.settings = parse_settings(locations, options)
        #: Monotonic clock and sleep; tests replace them on the instance.
        self._clock: Callable[[], float] = time.monotonic
        self._sleep: Callable[[float], None] = time.sleep
        self._lock = threading.Lock()
        self._closed = False
        self._locations: List[Location] = []
        try:
            for spec in settings.locations:
                self._locations.append(Location(spec, settings.error_limit,
                                                settings.error_interval, owner=self,
                                                clock=self._now))
            try:
                self._journal = open_journal(settings.state_dir, settings.journal_limit)
            except LocationUnavailable as error:
                raise ConfigurationError("state_dir cannot hold the replica journal: %s"
                                         % error) from error
            try:
                self._fill = open_fill_counts(settings.state_dir)
            except LocationUnavailable as error:
                self._journal.close()
                raise ConfigurationError("state_dir cannot hold the replica's fill counts: %s"
                                         % error) from error
        except BaseException:
            for location in self._locations:
                location.close()
            raise
        #: Locations being retired: no new copies, read last, not required by ``available``.
        self._draining = frozenset(spec.name for spec in settings.locations if spec.draining)
        self._by_name = {location.name: location for location in self._locations}
        self._integrity = settings.integrity == "on"
        if not self._integrity:
            self.capabilities = MappingProxyType(dict(type(self).capabilities,
                                                      verified_reads=False))
        self._pool = WorkerPool(settings.workers, name="replica-%d" % next(_INSTANCES))
        self._fanout = FanOut(self._pool, settings.write_timeout, settings.queue_timeout)
        self._repairer = Repairer(self)
        self._tombstones: "collections.OrderedDict[str, None]" = collections.OrderedDict()
        counts = self._journal_call("read", self._journal.counts)
        self._drainer = Drainer(self, self._journal, self._repairer,
                                hint=counts is None or any(counts.values()))
        self._counters = dict.fromkeys((
            "objects_created", "writes", "bytes_written", "writes_failed",
            "under_replicated_writes", "reads", "read_failovers", "deletes", "deferred_deletes",
            "repairs", "copies_repaired", "journal_replayed", "verified_reads",
            "unverified_reads", "damaged_copies_found", "scrubs", "scrub_bytes",
            "damaged_copies_repaired"), 0)

    def __repr__(self) -> str:
        return "ReplicaStorage(%r, write_quorum=%d)" % (
            [location.name for location in self._locations], self.settings.write_quorum)

    # -- the contract -----------------------------------------------------

    def new_data(self, context: Optional[dict]) -> str:
        """Ask every location for its module_data and combine them with a new object id.

        A location that fails here gets no copy of this object (module_data
        never changes); that is accepted while ``write_quorum`` locations
        answer, and logged.

        Returns:
            str: versioned JSON naming each location's child module_data.

        Raises:
            LocationUnavailable: fewer than ``write_quorum`` locations answered
                (each failure is listed).
        """
        self._check_open()
        copies: Dict[str, Dict[str, str]] = {}
        failures: Dict[str, StorageError] = {}
        for location in self._locations:
            if location.name in self._draining:
                continue
            try:
                child = self._retry(location, functools.partial(location.call, context,
                                                                "new_data"))
            except StorageError as error:
                failures[location.name] = error
                continue
            if not isinstance(child, str) or not child \
                    or len(child) > formats.MAX_CHILD_LENGTH:
                failures[location.name] = LocationUnavailable(
                    "location %s returned unusable module_data from new_data (a %s)"
                    % (location.name, type(child).__name__), location=location.name)
                continue
            entry = {"md": child}
            if self._integrity:
                try:
                    manifest_md = self._retry(location, functools.partial(
                        location.call, context, "new_data"))
                except StorageError as error:
                    failures[location.name] = error
                    continue
                if not isinstance(manifest_md, str) or not manifest_md or manifest_md == child \
                        or len(manifest_md) > formats.MAX_CHILD_LENGTH:
                    failures[location.name] = LocationUnavailable(
                        "location %s returned unusable module_data for a manifest"
                        % location.name, location=location.name)
                    continue
                entry["mf"] = manifest_md
            copies[location.name] = entry
        if len(copies) < self.settings.write_quorum:
            raise LocationUnavailable(
                "only %d of %d locations could allocate the object (write_quorum is %d): %s"
                % (len(copies), len(self._locations) - len(self._draining),
                   self.settings.write_quorum,
                   describe_failures(failures)))
        if failures:
            log.warning("new object will have no copy at %s: %s",
                        ", ".join(failures), describe_failures(failures))
        try:
            text = formats.encode(formats.new_object_id(), copies)
        except InvalidModuleData as error:
            raise LocationUnavailable("the locations' module_data do not fit in a replica "
                                      "module_data: %s" % error) from error
        self._count(objects_created=1)
        return text

    def assign(self, context: Optional[dict], module_data: str, stream: BinaryIO) -> None:
        """Store the stream's bytes on every location that lacks them, in one pass.

        Locations that already hold a copy (``available``) are skipped and
        count towards the quorum. The source is read once, in chunks, and
        fanned out to the others in parallel with bounded memory. A location
        that fails or stalls drops out of this write and keeps no partial
        copy. Missing copies are recorded in the journal (see ``repair``).

        Returns:
            None.

        Raises:
            InvalidModuleData: ``module_data`` is not a replica's.
            SourceStreamError: the source failed or is not binary; no copy
                was written anywhere (SDK errors from the source pass through).
            InsufficientStorage: below quorum and every failed location is full.
            LocationUnavailable: below quorum (or no free workers in time);
                the copies this call wrote were removed and each location's
                failure is listed (also as the error's ``failures`` dict).
        """
        data = self._layout(context, module_data).data
        self._check_open()
        present, unconfigured = self._split(data)
        present = [placed for placed in present if placed[0].name not in self._draining]
        failures: Dict[str, StorageError] = {
            name: LocationUnavailable("location %s is not configured any more" % name)
            for name in unconfigured}
        checks = {}
        for location, child in present:
            if location.is_limited():
                failures[location.name] = limited_error(location)
            else:
                checks[location.name] = functools.partial(
                    check_copy, context, location, child, data.manifest_md(location.name))
        answers = self._parallel(checks)
        skipped: List[str] = []
        targets: Dict[str, Placed] = {}
        for location, child in present:
            if location.name not in answers:
                continue
            ok, value = answers[location.name]
            if not ok:
                failures[location.name] = value
            elif value is True:
                skipped.append(location.name)
            else:
                targets[location.name] = (location, child)
        quorum = self.settings.write_quorum
        if len(skipped) + len(targets) < quorum:
            self._count(writes_failed=1)
            raise _quorum_error(data, len(skipped), quorum, failures,
                                "nothing was written")
        hasher = BlockHasher() if data.verified and targets else None
        try:
            result = self._fanout.run(stream if hasher is None else HashingReader(stream, hasher),
                                      {name: writer(context, location, child)
                                       for name, (location, child) in targets.items()})
        except BaseException:
            self._count(writes_failed=1)
            raise
        self._blame_dropped(result)
        written = [name for name in targets if name not in result.failures]
        failures.update(result.failures)
        if result.incomplete:
            self._delete_copies(context, data, sorted(result.incomplete))
        if hasher is not None and written:
            written = self._write_manifests(context, data, written, hasher.manifest(), failures)
        if len(skipped) + len(written) < quorum:
            self._delete_copies(context, data, written)
            self._delete_late_copies(context, data, result.late)
            self._count(writes_failed=1)
            raise _quorum_error(data, len(skipped) + len(written), quorum, failures,
                                "the %d copies this call wrote were removed" % len(written))
        holding = skipped + written
        missing = [location.name for location, _ in present if location.name not in holding]
        self._note_copies(data, holding, missing)
        self._count(writes=1, bytes_written=result.size,
                    under_replicated_writes=1 if missing or unconfigured else 0)
        if missing or unconfigured:
            log.warning("object %s stored on %d of %d locations (quorum %d); missing at %s: %s",
                        data.object_id, len(holding), len(data.copies), quorum,
                        ", ".join(missing + unconfigured), describe_failures(failures))
        self._drainer.after_call(context)

    def available(self, context: Optional[dict], module_data: str) -> bool:
        """Tell whether every location holds its copy.

        False as soon as one location lacks its copy or cannot tell (error,
        error-limited), so that the platform sends the data again and
        :meth:`assign` fills the gaps.

        Returns:
            bool: True only when every configured location named in
            ``module_data`` answers True.

        Raises:
            InvalidModuleData: ``module_data`` is not a replica's.
            LocationUnavailable: no location could answer at all.
        """
        data = self._layout(context, module_data).data
        self._check_open()
        present, unconfigured = self._split(data)
        if not present:
            raise _unconfigured_error(data, unconfigured)
        required = [placed for placed in present if placed[0].name not in self._draining]
        present = required or present  # only draining copies left: they must answer
        deep = self.settings.verify_available == "deep"
        checks = {location.name: functools.partial(check_copy, context, location, child,
                                                   data.manifest_md(location.name), deep)
                  for location, child in present if not location.is_limited()}
        answers = self._parallel(checks)
        answered = {name: value for name, (ok, value) in answers.items() if ok}
        if not answered:
            failures = {name: value for name, (_, value) in answers.items()}
            failures.update((location.name, limited_error(location))
                            for location, _ in present if location.name not in answers)
            raise LocationUnavailable("no location could tell whether object %s is stored: %s"
                                      % (data.object_id, describe_failures(failures)))
        self._drainer.after_call(context)
        return len(answered) == len(present) and all(value is True
                                                     for value in answered.values())

    def get_read_stream(self, context: Optional[dict], module_data: str):
        """Open the object on the first location that answers.

        Locations are tried in configured order, error-limited ones last;
        transient errors are retried (``read_attempts``, ``read_backoff``).
        Objects with manifests (the default) are verified block by block: a
        block is returned only after its digest matches, and a damaged block
        or copy is read from the next copy and journaled for repair. Older
        objects (or ``integrity=off``) are read unverified; if a read fails
        mid-stream, the stream reopens the next copy at the same offset.

        Returns:
            VerifiedReadStream or FailoverReadStream: seekable; close it (or
            use ``with``).

        Raises:
            InvalidModuleData: ``module_data`` is not a replica's.
            ObjectNotFound: no location holds the object.
            DataCorrupted: no copy can be verified (no intact manifest), or
                the only copies found have the wrong size; reads raise it
                when no copy has a good version of a block.
            LocationUnavailable: every location that might hold it failed.
        """
        data = self._layout(context, module_data).data
        self._check_open()
        candidates = self._candidates(data)
        if self._integrity and data.verified:
            stream = self._open_verified(context, data, candidates)
            self._count(reads=1, verified_reads=1)
        else:
            stream = open_failover_stream(context, module_data, candidates, self._retry,
                                          on_failover=self._count_failover)
            self._count(reads=1, unverified_reads=1)
        self._drainer.after_call(context)
        return stream

    def delete(self, context: Optional[dict], module_data: str) -> None:
        """Delete every copy, in parallel; unreachable copies are deleted later.

        A location that cannot be reached (or is error-limited) gets the
        delete recorded in the journal; it is retried on later calls and by
        :meth:`repair`. Missing copies are fine.

        Returns:
            None.

        Raises:
            InvalidModuleData: ``module_data`` is not a replica's.
            LocationUnavailable: a copy could not be deleted and the delete
                could not be recorded either (journal full or unwritable);
                calling again is safe.
        """
        data = self._layout(context, module_data).data
        self._check_open()
        self._bury(data.object_id)
        present, unconfigured = self._split(data)
        if unconfigured:
            log.warning("object %s: copies at %s are not deleted: those locations are not "
                        "configured any more", data.object_id, ", ".join(unconfigured))
        calls = {}
        deferred: Dict[str, StorageError] = {}
        for location, child in present:
            if location.is_limited():
                deferred[location.name] = limited_error(location)
            else:
                calls[location.name] = functools.partial(
                    delete_copy, context, location, child, data.manifest_md(location.name))
        for name, (ok, value) in self._parallel(calls).items():
            if ok or isinstance(value, ObjectNotFound):
                continue
            if isinstance(value, InvalidModuleData):
                log.error("object %s: location %s rejects its own module_data (%s); its copy, if "
                          "any, is left in place", data.object_id, name, value)
                continue
            deferred[name] = value
        self._journal_call("forget copies of", self._journal_forget, data.object_id)
        unrecorded = {}
        for name, error in deferred.items():
            recorded = self._journal_add(DELETE, name, data)
            if recorded:
                log.warning("object %s: delete at %s deferred (%s)", data.object_id, name, error)
            else:
                unrecorded[name] = error
        self._count(deletes=1, deferred_deletes=len(deferred) - len(unrecorded))
        if unrecorded:
            raise LocationUnavailable(
                "object %s: could not delete the copies at %s and could not record the deletes "
                "for later (journal full or unwritable); call delete again: %s"
                % (data.object_id, ", ".join(unrecorded), describe_failures(unrecorded)))
        self._drainer.after_call(context)

    def get_size(self, context: Optional[dict], module_data: str) -> int:
        """Return the object's size from the first location that knows it.

        Returns:
            int: the size in bytes.

        Raises:
            InvalidModuleData: ``module_data`` is not a replica's.
            ObjectNotFound: no location holds the object.
            DataCorrupted: copies exist but none has an intact manifest.
            LocationUnavailable: every location that might hold it failed.
        """
        data = self._layout(context, module_data).data
        self._check_open()
        failures: Dict[str, StorageError] = {}
        if self._integrity and data.verified:
            _, manifest, _ = find_reference(context, module_data,
                                         self._verified_candidates(data, self._candidates(data)),
                                         self._retry, failures)
            return manifest.size
        for location, child in self._candidates(data):
            try:
                size = self._retry(location, functools.partial(location.call, context,
                                                               "get_size", child))
            except StorageError as error:
                failures[location.name] = error
                continue
            if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
                return size
            failures[location.name] = LocationUnavailable(
                "location %s returned size %r" % (location.name, size), location=location.name)
        raise exhausted_error(module_data, failures)

    def statistics(self, context: Optional[dict]) -> Dict[str, Any]:
        """Describe the replica and every location; never raises.

        Returns:
            dict: ``capacity`` (that of the healthy location with the least
            free bytes; -1s when none is known), ``capacity_location``,
            ``capacity_unknown``, ``raw`` (sums of what is known),
            ``replicas``, ``write_quorum``, ``healthy``, ``degraded``,
            ``under_replicated``, ``pending_deletes``, ``journal``,
            ``locations`` (name, kind, health ok/down/error-limited,
            capacity, last error, error counts, the child's statistics),
            ``workers``, ``operations`` and ``options``.
        """
        try:
            return self._statistics(context)
        except Exception as error:  # statistics must never raise; report instead
            log.exception("building replica statistics failed")
            return {"capacity": self.capacity(), "replicas": len(self._locations),
                    "degraded": True, "error": "%s: %s" % (type(error).__name__, error)}

    def repair(self, context: Optional[dict], module_data: Optional[str] = None,
               rate: Optional[float] = None) -> Dict[str, Any]:
        """Refill and fix one object's copies, or replay the whole journal.

        With ``module_data``: every location (error-limited ones too) is
        checked. Objects with manifests are scrubbed (every copy read and
        verified, at most ``rate`` bytes per second when given); damaged
        copies are deleted (manifest, then data) and, like missing ones,
        rewritten from verified blocks with their manifest. Older objects:
        every location is asked whether it holds its copy, and those that do
        not get one, streamed from a copy (unverified). Without: pending
        deletes and missing or damaged copies recorded in the journal are
        retried; an error-limited location is probed with its first entry
        and skipped for the rest of this repair if that fails.

        Returns:
            dict: with ``module_data``: ``object``, ``present``, ``repaired``,
            ``failed``, ``unreachable``, ``not_configured``, and for objects
            with manifests the scrub's ``ok``, ``damaged``, ``missing``,
            ``unverified``, ``bytes_checked``; without:
            counts of ``deletes`` and ``copies`` done/failed/obsolete,
            ``skipped_locations`` and the ``remaining`` journal counts.

        Raises:
            InvalidModuleData: ``module_data`` is not a replica's.
            ObjectNotFound: no location holds the object any more.
            LocationUnavailable: no location holding it could be read, or
                the journal cannot be read.
        """
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                                 or rate <= 0):
            raise ValueError("rate must be a positive number of bytes per second, got %r" % rate)
        self._check_open()
        if module_data is None:
            self._fill_call("start a pass in", self._fill.start_pass)
            summary = self._drainer.replay_all(context, self.settings.queue_timeout)
            self._count(repairs=1)
            return summary
        layout = self._layout(context, module_data)
        data = layout.data
        present, unconfigured = self._split(data)
        if not present:
            raise _unconfigured_error(data, unconfigured)
        report = self._repairer.repair_object(context, data, None, self.settings.queue_timeout,
                                              True, rate)
        report.update(object=data.object_id, not_configured=unconfigured)
        self._count_fill(layout, report)
        self._count(repairs=1)
        return report

    def scrub(self, context: Optional[dict], module_data: str,
              rate: Optional[float] = None) -> Dict[str, Any]:
        """Verify every copy of one object by reading it in full; change nothing.

        Each copy is read block by block and compared with the object's
        manifest; its own manifest and size must agree. ``rate`` limits the
        reading to that many bytes per second on average (None: no limit).

        Returns:
            dict: ``object``, ``size`` (None when unknown), ``verified`` (the
            object has manifests), ``ok`` (locations whose copy is intact),
            ``damaged`` (location -> reason), ``missing``, ``unverified``
            (older objects: copies that exist but cannot be checked),
            ``unreachable`` (location -> error), ``not_configured`` and
            ``bytes_checked``.

        Raises:
            InvalidModuleData: ``module_data`` is not a replica's.
            LocationUnavailable: the object is only at unconfigured locations.
        """
        layout = self._layout(context, module_data)
        data = layout.data
        self._check_open()
        present, unconfigured = self._split(data)
        if not present:
            raise _unconfigured_error(data, unconfigured)
        report, _, _ = self._repairer.scrub(context, data, present, rate)
        report["not_placeable"] = dict(layout.unplaced)
        report.update(object=data.object_id, not_configured=unconfigured)
        self._count(scrubs=1)
        return report

    def close(self) -> None:
        """Stop the workers, close the journal and the modules this replica created.

        Named modules belong to the platform and are left open. Safe to call
        twice.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(timeout=self.settings.call_timeout)
        drained = self._drainer.lock.acquire(timeout=self.settings.call_timeout)
        if not drained:
            log.warning("closing the journal while a journal replay is still running")
        try:
            self._journal.close()
        finally:
            if drained:
                self._drainer.lock.release()
        self._fill.close()
        for location in self._locations:
            location.close()

    # -- locations ----------------------------------------------------------

    def _layout(self, context: Optional[dict], module_data: str) -> Layout:
        """Decode ``module_data`` and add the copies placed on locations it does not name.

        Raises:
            InvalidModuleData: ``module_data`` is not a replica's.
        """
        return expand(context, formats.decode(module_data), self._locations, self._draining)

    def _count_fill(self, layout: Layout, report: Dict[str, Any]) -> Dict[str, str]:
        """Count one repaired object in the pass's fill counts; add drain facts to ``report``.

        Adds ``placed`` (derived copies the object has now), ``not_placeable``
        (location -> why it cannot receive the object) and, when a location
        is draining, ``below_quorum_without_draining`` (1 when the copies
        outside draining locations are fewer than ``write_quorum``, else 0).
        """
        holding = set(report.get("present") or ()) | set(report.get("repaired") or ())
        states: Dict[str, str] = {}
        for location in self._locations:
            name = location.name
            if name in holding:
                states[name] = HOLDS
            elif name in self._draining:
                states[name] = DRAINING
            elif name in layout.unplaced:
                states[name] = UNPLACEABLE
            else:
                states[name] = MISSING
        kept = {name for name in holding if name in self._by_name and name not in self._draining}
        at_risk = len(kept) < self.settings.write_quorum
        quorum = self.settings.write_quorum
        needed = [name for name in holding if name in self._by_name
                  and len(kept - {name}) < quorum]
        report["placed"] = [name for name in layout.placed if name in holding]
        report["not_placeable"] = dict(layout.unplaced)
        if self._draining:
            report["below_quorum_without_draining"] = 1 if at_risk else 0
            if at_risk:
                log.warning("object %s has %d copies outside the draining locations %s "
                            "(write_quorum %d): do not remove them yet", layout.data.object_id,
                            len(kept), ", ".join(sorted(self._draining)), quorum)
        self._fill_call("count in", self._fill.record, states, needed)
        return states

    def _fill_call(self, action: str, function: Callable[..., Any], *args: Any) -> None:
        """Update the fill counts; log (never raise) when they cannot be written."""
        try:
            function(*args)
        except StorageError as error:
            log.error("could not %s the replica's fill counts: %s", action, error)

    def _split(self, data: formats.ReplicaData) -> Tuple[List[Placed], List[str]]:
        """Return (configured locations named in ``data`` in configured order, other names)."""
        present = [(location, data.child_md(location.name)) for location in self._locations
                   if location.name in data.copies]
        unconfigured = sorted(name for name in data.copies if name not in self._by_name)
        return present, unconfigured

    def _candidates(self, data: formats.ReplicaData) -> List[Placed]:
        """Return the copies to read, healthy locations first, error-limited ones last."""
        present, unconfigured = self._split(data)
        if not present:
            raise _unconfigured_error(data, unconfigured)
        healthy = [placed for placed in present if not placed[0].is_limited()]
        limited = [placed for placed in present if placed[0].is_limited()]

        def rank(placed: Placed) -> int:
            # recorded copies first, then derived ones (maybe not filled yet), then draining
            if placed[0].name in self._draining:
                return 2
            return 1 if data.copies[placed[0].name].get(PLACED) else 0
        return sorted(healthy, key=rank) + limited

    def _retry(self, location: Location, function: Callable[[], Any]) -> Any:
        """Call ``function``, retrying LocationUnavailable unless the location is error-limited."""
        attempts = self.settings.read_attempts
        if attempts <= 1 or location.is_limited():
            return function()
        backoff = self.settings.read_backoff
        retrying = tenacity.Retrying(
            stop=tenacity.stop_any(tenacity.stop_after_attempt(attempts),
                                   lambda state: location.is_limited()),
            wait=tenacity.wait_exponential(multiplier=backoff, max=backoff * 8)
            if backoff > 0 else tenacity.wait_none(),
            retry=tenacity.retry_if_exception_type(LocationUnavailable),
            sleep=lambda seconds: self._sleep(seconds),
            reraise=True)
        return retrying(function)

    def _parallel(self, calls: Dict[str, Callable[[], Any]]) -> Dict[str, Tuple[bool, Any]]:
        """Run one call per location at once; return name -> (True, value) or (False, error).

        Calls run on the pool when it has room (each bounded by
        ``call_timeout``; a location that does not answer in time is counted
        as failed), otherwise one after the other in this thread.
        """
        results: Dict[str, Tuple[bool, Any]] = {}
        if len(calls) > 1 and self._pool.reserve(len(calls), 0):
            futures: Dict[str, concurrent.futures.Future] = {}
            try:
                for name, call in calls.items():
                    futures[name] = self._pool.submit(call)
            finally:
                self._pool.release(len(calls) - len(futures))
            deadline = time.monotonic() + self.settings.call_timeout
            for name, future in futures.items():
                location = self._by_name[name]
                try:
                    results[name] = (True, future.result(
                        timeout=max(0.0, deadline - time.monotonic())))
                except concurrent.futures.TimeoutError:
                    error = LocationTimeout("location %s did not answer within %.1f s "
                                            "(call_timeout)" % (name, self.settings.call_timeout),
                                            location=name)
                    location.failed(error, "call")
                    results[name] = (False, error)
                except Exception as error:  # calls translate already; a safety net
                    results[name] = (False, location.translate(error, "call"))
            return results
        for name, call in calls.items():
            try:
                results[name] = (True, call())
            except StorageError as error:
                results[name] = (False, error)
        return results

    # -- copies and the journal ----------------------------------------------

    def _blame_dropped(self, result: FanOutResult) -> None:
        """Count stalls detected by the fan-out against their locations' health."""
        for name in result.dropped:
            self._by_name[name].failed(result.failures[name], "assign")

    def _note_copies(self, data: formats.ReplicaData, holding: Sequence[str],
                     missing: Sequence[str]) -> None:
        """Record missing copies in the journal and forget entries for copies now held.

        Nothing is recorded for an object deleted meanwhile (a repair racing a delete).
        """
        if not self._is_buried(data.object_id):
            for name in missing:
                self._journal_add(COPY, name, data)
        if holding and self._journal_call("read", self._journal.has, data.object_id):
            for name in holding:
                self._journal_call("update", self._journal.remove, COPY, name, data.object_id)

    def _bury(self, object_id: str) -> None:
        """Remember that ``object_id`` was deleted (the oldest of TOMBSTONES are forgotten)."""
        with self._lock:
            self._tombstones[object_id] = None
            self._tombstones.move_to_end(object_id)
            while len(self._tombstones) > TOMBSTONES:
                self._tombstones.popitem(last=False)

    def _is_buried(self, object_id: str) -> bool:
        with self._lock:
            return object_id in self._tombstones

    def _journal_add(self, kind: str, name: str, data: formats.ReplicaData) -> bool:
        """Record an entry; return False when it could not be recorded (logged)."""
        self._drainer.hint = True
        return bool(self._journal_call("record a %s in" % kind, self._journal.add,
                                       kind, name, data.object_id, data.text))

    def _journal_forget(self, object_id: str) -> None:
        if self._journal.has(object_id):
            self._journal.remove_object(object_id, COPY)

    def _journal_call(self, action: str, function: Callable[..., Any], *args: Any) -> Any:
        """Call a journal method; log and return None when the journal fails."""
        try:
            return function(*args)
        except StorageError as error:
            log.error("could not %s the replica journal: %s", action, error)
            return None

    def _delete_copies(self, context: Optional[dict], data: formats.ReplicaData,
                       names: Sequence[str]) -> None:
        """Delete the copies at ``names`` (in parallel); journal the ones that fail."""
        calls = {name: functools.partial(delete_copy, context, self._by_name[name],
                                         data.child_md(name), data.manifest_md(name))
                 for name in names}
        for name, (ok, value) in self._parallel(calls).items():
            if not ok and not isinstance(value, ObjectNotFound):
                log.warning("object %s: removing the copy at %s failed (%s); deferred",
                            data.object_id, name, value)
                self._journal_add(DELETE, name, data)

    def _delete_late_copies(self, context: Optional[dict], data: formats.ReplicaData,
                            late: Dict[str, concurrent.futures.Future]) -> None:
        """Delete copies whose writer finishes after the write was given up on."""
        for name, future in late.items():
            def finished(done: concurrent.futures.Future, name: str = name) -> None:
                if done.cancelled() or done.exception() is not None:
                    return
                log.warning("object %s: the write to %s finished after the write failed; "
                            "removing that copy", data.object_id, name)
                self._delete_copies(context, data, [name])
            future.add_done_callback(finished)

    def _open_verified(self, context: Optional[dict], data: formats.ReplicaData,
                       candidates: Sequence[Placed]) -> VerifiedReadStream:
        return open_verified_stream(context, data.text, self._verified_candidates(data, candidates),
                                    self._retry, self._pool,
                                    on_damage=functools.partial(self._damage_found, data),
                                    on_failover=self._count_failover)

    @staticmethod
    def _verified_candidates(data: formats.ReplicaData,
                             candidates: Sequence[Placed]) -> List[Tuple[Location, str, str]]:
        return [(location, child, data.manifest_md(location.name) or "")
                for location, child in candidates]

    def _damage_found(self, data: formats.ReplicaData, name: str, reason: str) -> None:
        """A read found the copy at ``name`` damaged: count it and journal it for repair."""
        self._count(damaged_copies_found=1)
        if self._journal_add(COPY, name, data):
            log.warning("object %s: damaged copy at %s journaled for repair (%s)",
                        data.object_id, name, reason)

    def _write_manifests(self, context: Optional[dict], data: formats.ReplicaData,
                         names: Sequence[str], manifest: Manifest,
                         failures: Dict[str, StorageError]) -> List[str]:
        """Store ``manifest`` with each copy at ``names``; return where it was stored.

        A location whose manifest cannot be stored loses its data copy too
        (a copy without manifest never counts) and is added to ``failures``.
        """
        raw = manifest.to_bytes()
        calls = {name: functools.partial(self._by_name[name].call, context, "assign",
                                         data.manifest_md(name), io.BytesIO(raw))
                 for name in names}
        stored = []
        lost = []
        for name, (ok, value) in self._parallel(calls).items():
            if ok:
                stored.append(name)
            else:
                failures[name] = value
                lost.append(name)
                log.warning("object %s: storing the manifest at %s failed (%s); removing its "
                            "copy", data.object_id, name, value)
        if lost:
            self._delete_copies(context, data, lost)
        return [name for name in names if name in stored]

    # -- statistics -------------------------------------------------------

    def _statistics(self, context: Optional[dict]) -> Dict[str, Any]:
        reports = location_reports(context, self._locations, self._parallel)
        journal = journal_report(self._journal)
        with self._lock:
            operations = dict(self._counters)
        fill = safe_report(self._fill, [location.name for location in self._locations])
        for entry in reports:
            entry.update(self._fill_facts(context, entry["name"], fill))
        return summarize(reports, self.settings.write_quorum, journal, {
            "workers": self._pool.stats(), "operations": operations,
            "options": self.settings.describe(), "repair_pass": fill,
            "draining": self._drain_report(fill)})

    def _fill_facts(self, context: Optional[dict], name: str,
                    fill: Dict[str, Any]) -> Dict[str, Any]:
        """Return a location's ``draining``, ``placement`` and ``fill`` statistics.

        ``fill`` comes from the current repair pass (or the last one while
        the current has counted nothing): ``objects`` repaired in that pass,
        how many of them the location ``holds``, is ``missing``, cannot
        receive (``unplaceable``), and ``progress`` (holds / objects, None
        before any repair). The host divides ``holds`` by the objects in
        its index for the fill of the whole store.
        """
        location = self._by_name[name]
        try:
            placement: Any = supports_placement(location.module(context))
        except StorageError:
            placement = None  # unknown: the module cannot be resolved now
        facts: Dict[str, Any] = {"draining": name in self._draining, "placement": placement}
        chosen = _shown_pass(fill)
        if chosen:
            counts = dict(chosen["locations"].get(name) or {})
            objects = chosen["objects"]
            counts.update(objects=objects, started=chosen["started"],
                          progress=round(counts.get(HOLDS, 0) / objects, 4) if objects else None)
            facts["fill"] = counts
        else:
            facts["fill"] = None
        if placement is False:
            facts["placement_note"] = ("cannot receive objects created before it was added (no "
                                       "'placement' capability)")
        return facts

    def _drain_report(self, fill: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """Say whether the draining locations can be removed, from the repair pass shown.

        Returns:
            None when no location is draining; else ``objects`` (how many
            objects the pass shown repaired) and ``locations``: name ->
            ``{"needed": objects whose copy there is still needed to keep
            write_quorum copies, "removable": True when that pass repaired
            objects and none needs the copy}``. The pass must have covered
            the whole index (``vsm repair`` to the end) for ``removable`` to
            hold for every object; the host compares ``objects`` with it.
        """
        if not self._draining:
            return None
        chosen = _shown_pass(fill)
        objects = chosen.get("objects", 0) if chosen else 0
        locations = {}
        for name in sorted(self._draining):
            needed = chosen["locations"].get(name, {}).get(NEEDED) if chosen else None
            locations[name] = {"needed": needed, "removable": bool(objects) and needed == 0}
        return {"objects": objects, "locations": locations}

    # -- small helpers -------------------------------------------------------

    def _now(self) -> float:
        return self._clock()

    def _check_open(self) -> None:
        if self._closed:
            raise LocationUnavailable("this ReplicaStorage is closed; the host must use the new "
                                      "instance")

    def _count(self, **increments: int) -> None:
        with self._lock:
            for key, value in increments.items():
                self._counters[key] += value

    def _count_failover(self) -> None:
        self._count(read_failovers=1)


def _quorum_error(data: formats.ReplicaData, copies: int, quorum: int,
                  failures: Dict[str, StorageError], what: str) -> StorageError:
    message = ("object %s: only %d of %d copies could be stored, write_quorum is %d; %s. "
               "Failures: %s" % (data.object_id, copies, len(data.copies), quorum, what,
                                 describe_failures(failures)))
    full = failures and all(isinstance(error, InsufficientStorage)
                            for error in failures.values())
    error: StorageError = InsufficientStorage(message) if full else LocationUnavailable(message)
    error.failures = {name: "%s: %s" % (type(value).__name__, value)  # type: ignore[attr-defined]
                      for name, value in failures.items()}
    return error


def _shown_pass(fill: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Return the repair pass statistics show: the current one, or the last while the
    current has counted nothing (None when there is neither)."""
    chosen = fill.get("current")
    if not chosen or not chosen.get("objects"):
        chosen = fill.get("last") or chosen
    return chosen


def _unconfigured_error(data: formats.ReplicaData, names: Sequence[str]) -> LocationUnavailable:
    return LocationUnavailable(
        "object %s is stored only at locations that are not configured any more (%s); add them "
        "back under the same names to reach it" % (data.object_id, ", ".join(names)))
