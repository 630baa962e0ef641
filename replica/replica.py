"""``ReplicaStorage``: every object mirrored on several locations.

Each object is stored on every configured *location* (a child storage
module). A write succeeds when ``write_quorum`` copies exist; reads use the
first copy that answers and switch copies transparently on failure; deletes
that cannot reach a location are kept in a journal and retried; ``repair``
refills missing copies and sweeps the locations' leftovers. The
administrator's guide is ``docs/replica.md``.

This file holds the contract methods only; they direct named parts, each
with its own dependencies and lock:

* :class:`~replica.location_set.LocationSet`: the locations, their order,
  health per direction and which to skip;
* :class:`~replica.dispatcher.Dispatcher`: the worker pool, the fan-out,
  deadlines and the one retry policy;
* :class:`~replica.copies.Copies`: writing, deleting and opening copies;
* :class:`~replica.ledger.Ledger`: journal, tombstones and counters;
* :class:`~replica.repairer.Repairer` (scrub and repair one object) and
  :class:`~replica.drain.Drainer` (replay the journal).
"""
import functools
import itertools
import logging
import threading
import time
from types import MappingProxyType
from typing import Any, BinaryIO, Callable, Dict, FrozenSet, List, Optional, Set, Tuple

from modules import StorageModule
from modules.errors import (
    ConfigurationError,
    InsufficientStorage,
    InvalidModuleData,
    LocationUnavailable,
    ObjectError,
    ObjectNotFound,
    StorageError,
    describe_error,
    format_failures,
)
from replica import module_data as formats
from replica.checksum import keyring_from_options
from replica.copies import Copies, Reference, delete_copy, writer, writer_with_manifest
from replica.dispatcher import Dispatcher
from replica.drain import Drainer
from replica.failover import exhausted_error
from replica.fill import open_fill_counts
from replica.fanout import FanOut, read_ahead
from replica.journal import DELETE, open_journal
from replica.ledger import Ledger
from replica.location_set import LocationSet, unconfigured_error
from replica.locations import READ, WRITE, Location, Placed, limited_error
from replica.manifest import BlockHasher, HashingReader
from replica.rebalance import Rebalance
from replica.repairer import Repairer
from replica.scrub import check_copy
from replica.settings import parse_settings
from replica.statistics import journal_report, location_reports, summarize
from replica.verified import find_reference
from replica.workers import WorkerPool

__all__ = ["ReplicaStorage"]

log = logging.getLogger(__name__)

#: Numbers the instances, to name their worker threads.
_INSTANCES = itertools.count(1)

#: Seconds a reference found by ``get_size`` may be reused by the same thread's next
#: ``get_read_stream`` of the same object (see ReplicaStorage._take_reference).
REFERENCE_TTL = 1.0


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
        clock: monotonic time source for error limiting and journal
            intervals, in seconds (default :func:`time.monotonic`; tests
            pass a clock they move by hand).
        sleep: pauses between retries and of rate-limited scrubs, in
            seconds (default :func:`time.sleep`; tests pass a recorder).

    Raises:
        ConfigurationError: no locations, a location or option that cannot
            be used, duplicate names, quorum out of range, or a state
            directory that cannot hold the journal.
    """

    capabilities = MappingProxyType({"repair": True, "verified_reads": True, "scrub": True})

    def __init__(self, *locations: Any, clock: Optional[Callable[[], float]] = None,
                 sleep: Optional[Callable[[float], None]] = None, **options: Any):
        super().__init__()
        settings = self.settings = parse_settings(locations, options)
        keyring = self._keyring = keyring_from_options(
            settings.checksum, settings.checksum_key_env, settings.checksum_key_file,
            settings.checksum_old_key_env, settings.checksum_old_key_file,
            settings.checksum_require_key == "on")
        clock = clock or time.monotonic
        sleep = sleep or time.sleep
        self._lock = threading.Lock()  # guards _closed only
        self._closed = False
        self._references = threading.local()  # .last: the reference get_size found
        self._locations = LocationSet(settings.locations, settings.error_limit,
                                      settings.error_interval, owner=self, clock=clock)
        try:
            journal = open_journal(settings.state_dir, settings.journal_limit)
        except LocationUnavailable as error:
            self._locations.close()
            raise ConfigurationError("state_dir cannot hold the replica journal: %s"
                                     % error) from error
        except BaseException:
            self._locations.close()
            raise
        try:
            fill_counts = open_fill_counts(settings.state_dir)
        except LocationUnavailable as error:
            journal.close()
            self._locations.close()
            raise ConfigurationError("state_dir cannot hold the replica's fill counts: %s"
                                     % error) from error
        self._rebalance = Rebalance(self._locations, fill_counts, settings.write_quorum)
        self._integrity = settings.integrity == "on"
        if not self._integrity:
            self.capabilities = MappingProxyType(dict(type(self).capabilities,
                                                      verified_reads=False))
        pool = WorkerPool(settings.workers, name="replica-%d" % next(_INSTANCES))
        self._dispatcher = Dispatcher(
            self._locations, pool, FanOut(pool, settings.write_timeout, settings.queue_timeout),
            settings.call_timeout, settings.read_attempts, settings.read_backoff, sleep=sleep)
        self._ledger = Ledger(journal)
        counts = self._ledger.counts()
        self._ledger.hint = counts is None or any(counts.values())
        self._copies = Copies(self._locations, self._dispatcher, self._ledger, keyring)
        self._repairer = Repairer(self._locations, self._dispatcher, self._copies, self._ledger,
                                  integrity=self._integrity, sleep=sleep, keyring=keyring)
        self._drainer = Drainer(self._locations, self._ledger, self._repairer, pool,
                                settings.journal_interval, is_closed=self._is_closed,
                                clock=clock)

    def __repr__(self) -> str:
        return "ReplicaStorage(%r, write_quorum=%d)" % (
            self._locations.names, self.settings.write_quorum)

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
        # Both module_data of each location in one call, every location at once.
        answers = self._dispatcher.attempt_each(
            {location.name: (location, functools.partial(_allocate, context, location,
                                                         self._integrity))
             for location in self._locations if location.name not in self._locations.draining},
            WRITE)
        for name, (answered, answer) in answers.items():
            location = self._locations.get(name)
            if not answered:
                failures[location.name] = answer
                continue
            child, manifest_md = answer
            if not isinstance(child, str) or not child \
                    or len(child) > formats.MAX_CHILD_LENGTH:
                failures[location.name] = LocationUnavailable(
                    "location %s returned unusable module_data from new_data (a %s)"
                    % (location.name, type(child).__name__), location=location.name)
                continue
            entry = {"md": child}
            if self._integrity:
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
                % (len(copies), len(self._locations) - len(self._locations.draining),
                   self.settings.write_quorum, format_failures(failures)))
        if failures:
            log.warning("new object will have no copy at %s: %s",
                        ", ".join(failures), format_failures(failures))
        try:
            text = formats.encode(formats.new_object_id(), copies,
                                  keyed=self._integrity and self._keyring.write.keyed)
        except InvalidModuleData as error:
            raise LocationUnavailable("the locations' module_data do not fit in a replica "
                                      "module_data: %s" % error) from error
        self._ledger.count(objects_created=1)
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
        data = self._locations.layout(context, module_data).data
        self._check_open()
        present, unconfigured = self._locations.split(data)
        present = [placed for placed in present if placed[0].name not in self._locations.draining]
        failures: Dict[str, StorageError] = {
            name: LocationUnavailable("location %s is not configured any more" % name)
            for name in unconfigured}
        checks = {}
        for location, child in present:
            if not self._locations.writable(location):
                failures[location.name] = limited_error(location, WRITE)
            else:
                checks[location.name] = functools.partial(
                    check_copy, context, location, child, data.manifest_md(location.name),
                    keyring=self._keyring, owner=data)
        answers = self._dispatcher.parallel(checks)
        skipped: List[str] = []
        targets: Dict[str, Placed] = {}
        for location, child in present:
            if location.name not in answers:
                continue
            ok, value = answers[location.name]
            if not ok:
                failures[location.name] = value
                if not isinstance(value, ObjectError):  # this write cannot use the location
                    location.failed(value, "assign", WRITE)
            elif value is True:
                skipped.append(location.name)
            else:
                targets[location.name] = (location, child)
        quorum = self.settings.write_quorum
        if len(skipped) + len(targets) < quorum:
            self._ledger.count(writes_failed=1)
            raise _quorum_error(data, len(skipped), quorum, failures,
                                "nothing was written")
        hasher = BlockHasher(self._keyring.write, object_id=data.object_id) \
            if data.verified and targets else None
        manifest_failed: Set[str] = set()
        try:
            whole, rest = read_ahead(stream if hasher is None else HashingReader(stream, hasher)) \
                if targets else (b"", None)
            if whole is None:
                result = self._dispatcher.fanout.run(
                    rest, {name: writer(context, location, child)
                           for name, (location, child) in targets.items()})
            elif hasher is None:
                result = self._dispatcher.fanout.run_buffered(
                    whole, {name: writer(context, location, child)
                            for name, (location, child) in targets.items()})
            else:  # one chunk: its manifest is known, so each worker stores data and manifest
                raw = hasher.manifest().to_bytes()
                result = self._dispatcher.fanout.run_buffered(
                    whole, {name: writer_with_manifest(context, location, child,
                                                       data.manifest_md(name), raw,
                                                       manifest_failed)
                            for name, (location, child) in targets.items()})
        except BaseException:
            self._ledger.count(writes_failed=1)
            raise
        self._copies.blame_dropped(result)
        written = [name for name in targets if name not in result.failures]
        failures.update(result.failures)
        if result.incomplete:
            self._copies.delete(context, data, sorted(result.incomplete))
        if manifest_failed:
            self._copies.lost_manifests(context, data, sorted(
                manifest_failed.intersection(result.failures).difference(result.late)), failures)
        elif hasher is not None and whole is None and written:
            written = self._copies.write_manifests(context, data, written, hasher.manifest(),
                                                   failures)
        if len(skipped) + len(written) < quorum:
            self._copies.delete(context, data, written)
            self._copies.delete_late(context, data, result.late)
            self._ledger.count(writes_failed=1)
            raise _quorum_error(data, len(skipped) + len(written), quorum, failures,
                                "the %d copies this call wrote were removed" % len(written))
        holding = skipped + written
        missing = [location.name for location, _ in present if location.name not in holding]
        self._ledger.note_copies(data, holding, missing)
        self._ledger.count(writes=1, bytes_written=result.size,
                    under_replicated_writes=1 if missing or unconfigured else 0)
        if missing or unconfigured:
            log.warning("object %s stored on %d of %d locations (quorum %d); missing at %s: %s",
                        data.object_id, len(holding), len(data.copies), quorum,
                        ", ".join(missing + unconfigured), format_failures(failures))
        self._drainer.after_call(context)

    def available(self, context: Optional[dict], module_data: str) -> bool:
        """Tell whether every location holds its copy.

        False as soon as one location lacks its copy or cannot tell (error,
        error-limited), so that the platform sends the data again and
        :meth:`assign` fills the gaps.

        Returns:
            bool: True only when every configured location that should hold
            the object answers True: those named in ``module_data`` and the
            added ones that support placement (draining locations are not
            required; see :mod:`replica.placement`).

        Raises:
            InvalidModuleData: ``module_data`` is not a replica's.
            LocationUnavailable: no location could answer at all.
        """
        data = self._locations.layout(context, module_data).data
        self._check_open()
        present, unconfigured = self._locations.split(data)
        if not present:
            raise unconfigured_error(data, unconfigured)
        required = [placed for placed in present
                    if placed[0].name not in self._locations.draining]
        present = required or present  # only draining copies left: they must answer
        deep = self.settings.verify_available == "deep"
        checks = {location.name: functools.partial(check_copy, context, location, child,
                                                   data.manifest_md(location.name), deep,
                                                   self._keyring, data)
                  for location, child in present if not location.is_limited(READ)}
        answers = self._dispatcher.parallel(checks)
        answered = {name: value for name, (ok, value) in answers.items() if ok}
        if not answered:
            failures = {name: value for name, (_, value) in answers.items()}
            failures.update((location.name, limited_error(location, READ))
                            for location, _ in present if location.name not in answers)
            raise LocationUnavailable("no location could tell whether object %s is stored: %s"
                                      % (data.object_id, format_failures(failures)))
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
        data = self._locations.layout(context, module_data).data
        self._check_open()
        if self._integrity and data.verified:
            stream = self._copies.open_verified(context, data, self._locations.candidates(data),
                                                self._take_reference(module_data))
            self._ledger.count(reads=1, verified_reads=1)
        else:
            stream = self._copies.open_unverified(context, data, self._locations.candidates(data))
            self._ledger.count(reads=1, unverified_reads=1)
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
        data = self._locations.layout(context, module_data).data
        self._check_open()
        self._ledger.bury(data.object_id)
        present, unconfigured = self._locations.split(data)
        if unconfigured:
            log.warning("object %s: copies at %s are not deleted: those locations are not "
                        "configured any more", data.object_id, ", ".join(unconfigured))
        calls = {}
        deferred: Dict[str, StorageError] = {}
        for location, child in present:
            if not self._locations.writable(location):
                deferred[location.name] = limited_error(location, WRITE)
            else:
                calls[location.name] = functools.partial(
                    delete_copy, context, location, child, data.manifest_md(location.name))
        for name, (ok, value) in self._dispatcher.parallel(calls, WRITE).items():
            if ok or isinstance(value, ObjectNotFound):
                continue
            if isinstance(value, InvalidModuleData):
                log.error("object %s: location %s rejects its own module_data (%s); its copy, if "
                          "any, is left in place", data.object_id, name, value)
                continue
            deferred[name] = value
        self._ledger.forget_copies(data.object_id)
        unrecorded = {}
        for name, error in deferred.items():
            recorded = self._ledger.add(DELETE, name, data)
            if recorded:
                log.warning("object %s: delete at %s deferred (%s)", data.object_id, name, error)
            else:
                unrecorded[name] = error
        self._ledger.count(deletes=1, deferred_deletes=len(deferred) - len(unrecorded))
        if unrecorded:
            raise LocationUnavailable(
                "object %s: could not delete the copies at %s and could not record the deletes "
                "for later (journal full or unwritable); call delete again: %s"
                % (data.object_id, ", ".join(unrecorded), format_failures(unrecorded)))
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
        data = self._locations.layout(context, module_data).data
        self._check_open()
        failures: Dict[str, StorageError] = {}
        if self._integrity and data.verified:
            candidates = self._copies.verified_candidates(data, self._locations.candidates(data))
            start, manifest, manifests = find_reference(
                context, module_data, candidates, self._dispatcher.attempt, failures,
                functools.partial(self._ledger.is_buried, data.object_id), self._keyring)
            self._references.last = Reference(module_data, data.object_id, candidates, start,
                                              manifest, manifests, dict(failures),
                                              time.monotonic())
            return manifest.size
        for location, child in self._locations.candidates(data):
            try:
                size = self._dispatcher.attempt(location, functools.partial(
                    location.call, context, "get_size", child))
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
            capacity, last error, error counts, the child's statistics, and
            ``draining``, ``placement`` and ``fill`` from the repair pass,
            see :meth:`replica.rebalance.Rebalance.statistics`),
            ``repair_pass``, ``draining`` (None, or whether each draining
            location can be removed), ``workers``, ``operations`` and
            ``options``.
        """
        try:
            return self._statistics(context)
        except Exception as error:  # statistics must never raise; report instead
            log.exception("building replica statistics failed")
            return {"capacity": self.capacity(), "replicas": len(self._locations),
                    "degraded": True, "error": describe_error(error)}

    def repair(self, context: Optional[dict], module_data: Optional[str] = None,
               rate: Optional[float] = None) -> Dict[str, Any]:
        """Refill and fix one object's copies, or replay the whole journal.

        With ``module_data``: every configured location (error-limited ones
        too) is checked, including locations the module_data does not name:
        those that support placement get their copy at ``new_data_for``
        (see :mod:`replica.placement`); draining locations are never
        refilled. The stored module_data does not change. Objects with
        manifests are scrubbed (every copy read and verified, at most
        ``rate`` bytes per second when given); damaged
        copies are deleted (manifest, then data) and, like missing ones,
        rewritten from verified blocks with their manifest. Older objects:
        every location is asked whether it holds its copy, and those that do
        not get one, streamed from a copy (unverified). Without: pending
        deletes and missing or damaged copies recorded in the journal are
        retried; an error-limited location is probed with its first entry
        and skipped for the rest of this repair if that fails; then every
        location's own ``repair(context)`` is called (when its module has
        one), which removes the temporaries of writes cut off by a crash;
        this also starts a new repair pass for the fill counts (``vsm
        repair`` runs it first).

        Returns:
            dict: with ``module_data``: ``object``, ``present``, ``repaired``,
            ``failed``, ``unreachable``, ``not_configured``, ``placed``
            (locations the module_data does not name that now hold a copy),
            ``not_placeable`` (location -> why it cannot receive the object),
            ``below_quorum_without_draining`` (0/1, while a location is
            draining; see :mod:`replica.rebalance`), and for objects
            with manifests the scrub's ``ok``, ``damaged``, ``missing``,
            ``unverified``, ``bytes_checked``; without:
            counts of ``deletes`` and ``copies`` done/failed/obsolete,
            ``skipped_locations``, the ``remaining`` journal counts and
            ``locations`` (name -> that location's own repair report, or
            ``{"error": ...}`` / ``{"skipped": ...}``).

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
            self._rebalance.start_pass()
            summary = self._drainer.replay_all(context, self.settings.queue_timeout)
            summary["locations"] = self._repairer.sweep_locations(
                context, skip=summary["skipped_locations"])
            self._ledger.count(repairs=1)
            return summary
        layout = self._locations.layout(context, module_data)
        data = layout.data
        present, unconfigured = self._locations.split(data)
        if not present:
            raise unconfigured_error(data, unconfigured)
        report = self._repairer.repair_object(context, data, None, self.settings.queue_timeout,
                                              True, rate)
        report.update(object=data.object_id, not_configured=unconfigured)
        _retiring_is_not_missing(report, self._locations.draining)
        self._rebalance.count(layout, report)
        self._ledger.count(repairs=1)
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
        layout = self._locations.layout(context, module_data)
        data = layout.data
        self._check_open()
        present, unconfigured = self._locations.split(data)
        if not present:
            raise unconfigured_error(data, unconfigured)
        report, _, _ = self._repairer.scrub(context, data, present, rate)
        report["not_placeable"] = dict(layout.unplaced)
        report.update(object=data.object_id, not_configured=unconfigured)
        _retiring_is_not_missing(report, self._locations.draining)
        self._ledger.count(scrubs=1)
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
        self._dispatcher.shutdown(timeout=self.settings.call_timeout)
        drained = self._drainer.lock.acquire(timeout=self.settings.call_timeout)
        if not drained:
            log.warning("closing the journal while a journal replay is still running")
        try:
            self._ledger.close()
        finally:
            if drained:
                self._drainer.lock.release()
        self._rebalance.close()
        self._locations.close()

    # -- helpers -------------------------------------------------------------

    def _statistics(self, context: Optional[dict]) -> Dict[str, Any]:
        reports = location_reports(context, list(self._locations), self._dispatcher.parallel)
        journal = journal_report(self._ledger.journal)
        extra = self._rebalance.statistics(context, reports)
        extra.update(workers=self._dispatcher.pool.stats(), operations=self._ledger.counters(),
                     options=self.settings.describe())
        return summarize(reports, self.settings.write_quorum, journal, extra)

    def _take_reference(self, module_data: str) -> Optional[Reference]:
        """Return (once) the copy this thread's ``get_size`` just found for ``module_data``.

        A host asks ``get_size`` and then opens the object: the open reuses
        that reference instead of loading a manifest and asking for the size
        again (issue 10). Not when it is older than REFERENCE_TTL seconds, or
        the object was deleted through this replica meanwhile; a copy that
        vanished otherwise is handled by the stream as during any read.
        """
        reference = getattr(self._references, "last", None)
        self._references.last = None
        if reference is None or reference.module_data != module_data \
                or time.monotonic() - reference.found > REFERENCE_TTL \
                or self._ledger.is_buried(reference.object_id):
            return None
        return reference

    def _is_closed(self) -> bool:
        with self._lock:
            return self._closed

    def _check_open(self) -> None:
        if self._is_closed():
            raise LocationUnavailable("this ReplicaStorage is closed; the host must use the new "
                                      "instance")


def _allocate(context: Optional[dict], location: Location,
              with_manifest: bool) -> Tuple[Any, Any]:
    """Ask ``location`` for a copy's module_data and, when ``with_manifest``, its manifest's.

    Returns:
        tuple: (data module_data, manifest module_data or None), unchecked.

    Raises:
        StorageError: from the location's ``new_data``.
    """
    child = location.call(context, "new_data")
    manifest_md = location.call(context, "new_data") if with_manifest else None
    return child, manifest_md


def _retiring_is_not_missing(report: Dict[str, Any], draining: FrozenSet[str]) -> None:
    """Leave draining locations out of a report's ``missing``: they are not refilled, so a
    copy they lack is no problem (the fill counts say ``draining`` for them)."""
    if draining and isinstance(report.get("missing"), list):
        report["missing"] = [name for name in report["missing"] if name not in draining]


def _quorum_error(data: formats.ReplicaData, copies: int, quorum: int,
                  failures: Dict[str, StorageError], what: str) -> StorageError:
    """Return the error of a write below its quorum; ``failures`` become its ``failures``."""
    message = ("object %s: only %d of %d copies could be stored, write_quorum is %d; %s. "
               "Failures: %s" % (data.object_id, copies, len(data.copies), quorum, what,
                                 format_failures(failures)))
    full = failures and all(isinstance(error, InsufficientStorage)
                            for error in failures.values())
    kind = InsufficientStorage if full else LocationUnavailable
    return kind(message, failures=failures)
