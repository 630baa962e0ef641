"""Repairing one object's copies: scrubbing them, rewriting damaged or missing ones.

:class:`Repairer` is the replica's repair machinery, used by
``ReplicaStorage.repair``, ``ReplicaStorage.scrub`` and the journal replay
(:mod:`replica.drain`):

* objects with manifests are scrubbed (every copy read and verified), then
  damaged and missing copies are deleted and rewritten from verified blocks
  of the other copies (rebuilding a copy block by block when none is intact);
* older objects (no manifests, or ``integrity=off``) are refilled: locations
  lacking their copy get one streamed from a copy that exists.

It receives the replica's named parts (locations, dispatcher, copies,
ledger), so that writes, deletes and the journal behave the same on every
path, and it can be tested on its own.
"""
import functools
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from modules.errors import (
    DataCorrupted,
    LocationUnavailable,
    ObjectNotFound,
    StorageError,
    describe_error,
    format_failures,
)
from replica import module_data as formats
from replica.copies import Copies, delete_copy, writer
from replica.dispatcher import Dispatcher
from replica.ledger import Ledger
from replica.location_set import LocationSet
from replica.locations import WRITE, Placed, limited_error
from replica.manifest import Manifest
from replica.placement import PLACED
from replica.scrub import DAMAGED, MISSING, UNREACHABLE, UNVERIFIED, CopyReport, Pacer, verify_copy
from replica.scrub import OK as COPY_OK
from replica.verified import find_reference

__all__ = ["Repairer"]

log = logging.getLogger(__name__)


class Repairer:
    """Scrub and repair the copies of one object.

    Args:
        locations: the replica's locations.
        dispatcher: runs calls (pool, fan-out, deadlines, retries).
        copies: writes, deletes and opens copies.
        ledger: journal, tombstones and counters.
        integrity: True when objects with manifests are verified (``integrity=on``).
        sleep: pauses of a rate-limited scrub (tests inject a recorder).
    """

    def __init__(self, locations: LocationSet, dispatcher: Dispatcher, copies: Copies,
                 ledger: Ledger, integrity: bool = True,
                 sleep: Callable[[float], None] = time.sleep):
        self._locations = locations
        self._dispatcher = dispatcher
        self._copies = copies
        self._ledger = ledger
        self._integrity = integrity
        self._sleep = sleep

    def repair_object(self, context: Optional[dict], data: formats.ReplicaData,
                      only: Optional[Sequence[str]], queue_timeout: float, probe: bool,
                      rate: Optional[float] = None) -> Dict[str, Any]:
        """Repair one object: verified (manifests) or by refilling missing copies (older ones).

        ``only``: repair just the copies at these locations (None: every copy).
        ``probe``: check error-limited locations too (an administrator's repair).

        Returns:
            dict: ``present``, ``repaired``, ``failed``, ``unreachable`` (and
            the scrub's keys for objects with manifests).

        Raises:
            ObjectNotFound: no copy exists anywhere, or the object was
                deleted in this process (nothing of it is rewritten).
            LocationUnavailable: no location holding a copy can be reached.
        """
        if self._ledger.is_buried(data.object_id):
            raise ObjectNotFound("object %s was deleted; nothing to repair" % data.object_id,
                                 module_data=data.text)
        draining = self._locations.draining
        if draining:  # copies on draining locations are read from but never rewritten
            only = [name for name in (data.copies if only is None else only)
                    if name not in draining]
        if self._integrity and data.verified:
            return self._repair_verified(context, data, only, queue_timeout, probe, rate)
        return self._refill(context, data, only, queue_timeout, probe)

    def scrub(self, context: Optional[dict], data: formats.ReplicaData,
              present: Sequence[Placed], rate: Optional[float], probe: bool = True
              ) -> Tuple[Dict[str, Any], Dict[str, CopyReport], Optional[Manifest]]:
        """Verify every copy; return (report, name -> CopyReport, reference manifest or None).

        ``probe``: check error-limited locations too (else they are unreachable).
        Never raises for a problem of a copy or a location (it is in the report).
        """
        reference: Optional[Manifest] = None
        if data.verified:
            try:
                _, reference, _ = find_reference(
                    context, data.text, self._copies.verified_candidates(data, present),
                    self._dispatcher.attempt, {},
                    functools.partial(self._ledger.is_buried, data.object_id))
            except StorageError as error:
                log.debug("object %s has no readable manifest: %s", data.object_id, error)
        pacer = Pacer(rate, self._sleep)
        states: Dict[str, CopyReport] = {}
        for location, child in present:
            if not probe and location.is_limited():
                states[location.name] = CopyReport(UNREACHABLE, reason="LocationUnavailable: %s"
                                                   % limited_error(location))
                continue
            states[location.name] = verify_copy(context, location, child,
                                                data.manifest_md(location.name), reference, pacer)
        if self._ledger.is_buried(data.object_id):
            # Deleted while being scrubbed: what looks damaged has vanished (issue 9).
            for name, state in states.items():
                if state.state == DAMAGED:
                    states[name] = CopyReport(MISSING, reason="vanished: the object was deleted",
                                              has_data=False)
                    self._ledger.count(vanished_copies=1)
        report: Dict[str, Any] = {
            "size": reference.size if reference is not None else None,
            "verified": data.verified,
            "ok": [name for name, state in states.items() if state.state == COPY_OK],
            "damaged": {name: state.reason for name, state in states.items()
                        if state.state == DAMAGED},
            "missing": [name for name, state in states.items() if state.state == MISSING],
            "unverified": [name for name, state in states.items() if state.state == UNVERIFIED],
            "unreachable": {name: state.reason for name, state in states.items()
                            if state.state == UNREACHABLE},
            "bytes_checked": sum(state.bytes_checked for state in states.values()),
        }
        self._ledger.count(scrub_bytes=report["bytes_checked"],
                           damaged_copies_found=len(report["damaged"]))
        if report["damaged"]:
            log.error("object %s: damaged copies at %s", data.object_id,
                      "; ".join("%s: %s" % item for item in report["damaged"].items()))
        return report, states, reference

    def sweep_locations(self, context: Optional[dict],
                        skip: Sequence[str] = ()) -> Dict[str, Any]:
        """Call ``repair(context)`` of every location whose module declares ``repair``.

        ``skip``: names of locations not to call (found down by this repair).

        That sweeps what each child leaves behind by itself (temporaries of
        writes cut off by a crash, older than the child's grace period).
        Calls run in parallel, bounded by ``call_timeout``; the locations'
        health is not changed (a sweep is maintenance, not service).

        Returns:
            dict: location name -> the child's report, ``{"error": text}`` when
            it failed, or ``{"skipped": reason}`` when it has no repair.
        """
        reports: Dict[str, Any] = {}
        calls = {}
        for location in self._locations:
            if location.name in skip:
                reports[location.name] = {"skipped": "the location is down"}
                continue
            try:
                module = location.module(context)
            except StorageError as error:
                reports[location.name] = {"error": format_failures({location.name: error})}
                continue
            capabilities = getattr(module, "capabilities", None) or {}
            if not capabilities.get("repair"):
                reports[location.name] = {"skipped": "the module has no repair"}
                continue
            calls[location.name] = functools.partial(_child_repair, location, module, context)
        for name, (ok, value) in self._dispatcher.parallel(calls).items():
            if ok:
                reports[name] = value if isinstance(value, dict) else {"result": repr(value)[:200]}
            else:
                reports[name] = {"error": format_failures({name: value})}
        removed = sum(report.get("temporaries_removed", 0) for report in reports.values()
                      if isinstance(report.get("temporaries_removed", 0), int))
        if removed:
            self._ledger.count(temporaries_removed=removed)
        return {name: reports[name] for name in self._locations.names if name in reports}

    def _repair_verified(self, context: Optional[dict], data: formats.ReplicaData,
                         only: Optional[Sequence[str]], queue_timeout: float, probe: bool,
                         rate: Optional[float]) -> Dict[str, Any]:
        """Scrub every copy, then delete and rewrite damaged and missing ones (in scope).

        Copies are rewritten from verified blocks of the other copies. When
        no copy is intact, a damaged copy is rebuilt first from the others
        when, for every block, one of them holds it intact.

        Raises:
            ObjectNotFound: no copy exists anywhere.
            LocationUnavailable: no copy is known and some location is unreachable.
        """
        present, _ = self._locations.split(data)
        report, states, reference = self.scrub(context, data, present, rate, probe)
        by_name = {location.name: child for location, child in present}
        targets = [name for name, state in states.items() if state.state in (DAMAGED, MISSING)
                   and (only is None or name in only)]
        failures: Dict[str, StorageError] = {}
        repaired: List[str] = []
        good = list(report["ok"])
        if targets and reference is None:
            if not any(state.has_data for state in states.values()) and not report["unreachable"]:
                raise ObjectNotFound("object %s has no copy left on any location"
                                     % data.object_id, module_data=data.text)
            if not good and report["unreachable"] and not report["damaged"]:
                raise LocationUnavailable("object %s: no location holding a copy can be "
                                          "reached: %s" % (data.object_id,
                                                           report["unreachable"]))
            for name in targets:
                failures[name] = DataCorrupted("no intact manifest of the object is left; the "
                                               "copies cannot be verified",
                                               module_data=data.text, location=name)
            targets = []
        while targets:
            if good:
                batch = targets
            else:
                batch = _rebuildable(states, targets)
                if not batch:
                    for name in targets:
                        failures[name] = DataCorrupted(
                            "no copy holds an intact version of every block; cannot rebuild",
                            module_data=data.text, location=name)
                    break
            sources = [(self._locations.get(name), by_name[name])
                       for name in by_name if name not in batch
                       and states[name].state in (COPY_OK, DAMAGED)]
            done, failed = self._rewrite(context, data, sources,
                                         [(self._locations.get(name), by_name[name])
                                          for name in batch],
                                         [name for name in batch if states[name].state == DAMAGED],
                                         reference, queue_timeout)
            repaired.extend(done)
            failures.update(failed)
            good.extend(done)
            targets = [name for name in targets if name not in batch]
            if not done:
                for name in targets:
                    failures.setdefault(name, LocationUnavailable(
                        "not repaired: the copies it would be rebuilt from failed"))
                break
        repaired = self._undo_if_deleted(context, data, repaired)
        damaged_fixed = [name for name in repaired if states[name].state == DAMAGED]
        report.update(present=list(report["ok"]), repaired=repaired,
                      failed={name: describe_error(error)
                              for name, error in failures.items()})
        in_scope = set(report["unreachable"]) if only is None \
            else set(report["unreachable"]) & set(only)
        self._ledger.note_copies(data, report["present"] + repaired,
                                 sorted(set(failures) | in_scope))
        self._ledger.count(copies_repaired=len(repaired),
                           damaged_copies_repaired=len(damaged_fixed))
        if repaired:
            # filling a copy placed on an added location is routine, not a warning
            routine = all(data.copies[name].get(PLACED) and states[name].state == MISSING
                          for name in repaired)
            log.log(logging.INFO if routine else logging.WARNING,
                    "object %s: rewrote copies at %s from verified copies", data.object_id,
                    ", ".join(repaired))
        return report

    def _rewrite(self, context: Optional[dict], data: formats.ReplicaData,
                 sources: Sequence[Placed], targets: Sequence[Placed], damaged: Sequence[str],
                 reference: Manifest, queue_timeout: float):
        """Delete the damaged targets, stream verified bytes to all targets, write manifests.

        Returns:
            (list of names rewritten, dict of name -> error).
        """
        failures: Dict[str, StorageError] = {}
        if damaged:
            calls = {location.name: functools.partial(delete_copy, context, location, child,
                                                      data.manifest_md(location.name))
                     for location, child in targets if location.name in damaged}
            for name, (ok, value) in self._dispatcher.parallel(calls, WRITE).items():
                if not ok and not isinstance(value, ObjectNotFound):
                    failures[name] = value
        live = [(location, child) for location, child in targets
                if location.name not in failures]
        if not live:
            return [], failures
        try:
            source = self._copies.open_verified(context, data, sources)
        except StorageError as error:
            for location, _ in live:
                failures[location.name] = error
            return [], failures
        try:
            result = self._dispatcher.fanout.run(source, {
                location.name: writer(context, location, child) for location, child in live},
                queue_timeout=queue_timeout)
        except StorageError as error:
            for location, _ in live:
                failures[location.name] = error
            return [], failures
        finally:
            source.close()
        self._copies.blame_dropped(result)
        failures.update(result.failures)
        if result.incomplete:
            self._copies.delete(context, data, sorted(result.incomplete))
        written = [location.name for location, _ in live if location.name not in failures]
        if written:
            written = self._copies.write_manifests(context, data, written, reference, failures)
        return written, failures

    def _refill(self, context: Optional[dict], data: formats.ReplicaData,
                only: Optional[Sequence[str]], queue_timeout: float,
                probe: bool) -> Dict[str, Any]:
        """Copy the object to the locations that lack it (or to ``only`` of them).

        ``probe``: ask error-limited locations too (an administrator's repair
        right after fixing a location must not wait for the limit to expire).

        Returns:
            dict: ``present``, ``repaired``, ``failed`` and ``unreachable``.

        Raises:
            ObjectNotFound: no location holds the object.
            LocationUnavailable: no holder could be reached or read.
        """
        present, _ = self._locations.split(data)
        checks = {location.name: functools.partial(location.call, context, "available", child)
                  for location, child in present if probe or not location.is_limited()}
        answers = self._dispatcher.parallel(checks)
        holders: List[Placed] = []
        missing: List[Placed] = []
        unreachable: Dict[str, StorageError] = {}
        for location, child in present:
            ok, value = answers.get(location.name, (False, limited_error(location)))
            if not ok:
                unreachable[location.name] = value
            elif value is True:
                holders.append((location, child))
            elif only is None or location.name in only:
                missing.append((location, child))
        report: Dict[str, Any] = {
            "present": [location.name for location, _ in holders],
            "repaired": [], "failed": {},
            "unreachable": {name: describe_error(error) for name, error in unreachable.items()}}
        if missing and not holders:
            if unreachable:
                raise LocationUnavailable("object %s: no location holding a copy can be reached: "
                                          "%s" % (data.object_id, format_failures(unreachable)))
            raise ObjectNotFound("object %s has no copy left on any location" % data.object_id,
                                 module_data=data.text)
        failures: Dict[str, StorageError] = {}
        if missing:
            source = self._copies.open_unverified(context, data, holders)
            try:
                result = self._dispatcher.fanout.run(source, {
                    location.name: writer(context, location, child)
                    for location, child in missing}, queue_timeout=queue_timeout)
            finally:
                source.close()
            self._copies.blame_dropped(result)
            failures = dict(result.failures)
            if result.incomplete:
                self._copies.delete(context, data, sorted(result.incomplete))
        repaired = self._undo_if_deleted(
            context, data, [location.name for location, _ in missing if location.name not in failures])
        report["repaired"] = repaired
        report["failed"] = {name: describe_error(error) for name, error in failures.items()}
        in_scope = set(unreachable) if only is None else set(unreachable) & set(only)
        self._ledger.note_copies(data, report["present"] + repaired,
                                 sorted(set(failures) | in_scope))
        self._ledger.count(copies_repaired=len(repaired))
        if repaired:
            log.info("object %s: refilled copies at %s", data.object_id, ", ".join(repaired))
        return report

    def _undo_if_deleted(self, context: Optional[dict], data: formats.ReplicaData,
                         repaired: List[str]) -> List[str]:
        """Remove copies a repair just wrote if the object was deleted meanwhile.

        Returns:
            list: ``repaired``, or [] when the object was deleted.
        """
        if not repaired or not self._ledger.is_buried(data.object_id):
            return repaired
        log.warning("object %s was deleted while being repaired; removing the copies just "
                    "written at %s", data.object_id, ", ".join(repaired))
        self._copies.delete(context, data, repaired)
        return []


def _child_repair(location: Any, module: Any, context: Optional[dict]) -> Any:
    """Call a child's ``repair(context)`` without touching its health; translate failures."""
    try:
        return module.repair(context)
    except Exception as error:  # a child's sweep failing is reported, never raised
        translated = location.translate(error, "repair")
        if translated is error:
            raise
        raise translated from error


def _rebuildable(states: Dict[str, Any], targets: Sequence[str]) -> List[str]:
    """Return [a damaged target] whose every block is intact in some other damaged copy.

    Only copies damaged by bad blocks (right size, intact manifest) can lend blocks.
    """
    lenders = {name: set(state.bad_blocks) for name, state in states.items()
               if state.state == DAMAGED and state.lendable}
    for name in targets:
        others = [bad for other, bad in lenders.items() if other != name]
        if others and not set.intersection(*others):
            return [name]
    return []
