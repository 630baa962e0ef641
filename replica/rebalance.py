"""What repair passes say about a mirror that grows or shrinks: fill and drain.

:class:`Rebalance` turns each object repair into per-location fill counts
(:mod:`replica.fill`) and answers, for the statistics, how many objects each
location holds, how far an added location is filled, and whether a
``draining`` location can be removed. The copying itself is the repairer's
(copies on added locations are placed by :mod:`replica.placement`, and
draining locations are never refilled); this part only counts and reports.

Rule for removal (the same as Swift's "every partition has its replicas
elsewhere before a device leaves the ring"): a draining location can go when
a repair pass over every object found none whose copies outside the draining
locations are fewer than ``write_quorum``.
"""
import logging
from typing import Any, Dict, List, Optional

from modules.errors import StorageError
from replica.fill import DRAINING, HOLDS, MISSING, NEEDED, UNPLACEABLE, FillCounts, safe_report
from replica.location_set import LocationSet
from replica.placement import Layout, supports_placement

__all__ = ["Rebalance"]

log = logging.getLogger(__name__)

_NO_PLACEMENT = ("cannot receive objects created before it was added (its module has no "
                 "'placement' capability)")


class Rebalance:
    """Count repair passes per location and report fill and drain progress.

    Args:
        locations: the replica's locations (names, draining marks, modules).
        counts: where the counters live (memory, or shared through ``state_dir``).
        write_quorum: the copies every object must keep.
    """

    def __init__(self, locations: LocationSet, counts: FillCounts, write_quorum: int):
        self._locations = locations
        self._counts = counts
        self._quorum = write_quorum

    def start_pass(self) -> None:
        """Begin a repair pass (``repair(context)``, ``vsm repair``'s first step); never raises."""
        self._call("start a pass in", self._counts.start_pass)

    def count(self, layout: Layout, report: Dict[str, Any]) -> None:
        """Count one repaired object; add the grow and drain facts to its repair ``report``.

        Adds ``placed`` (locations the object's module_data does not name
        that now hold its copy), ``not_placeable`` (location -> why it
        cannot receive the object) and, while a location is draining,
        ``below_quorum_without_draining`` (1 when the copies outside the
        draining locations are fewer than ``write_quorum``, else 0). Never
        raises: counters that cannot be written are logged.
        """
        draining = self._locations.draining
        holding = set(report.get("present") or ()) | set(report.get("repaired") or ())
        holding &= set(self._locations.names)
        states: Dict[str, str] = {}
        for name in self._locations.names:
            if name in holding:
                states[name] = HOLDS
            elif name in draining:
                states[name] = DRAINING
            elif name in layout.unplaced:
                states[name] = UNPLACEABLE
            else:
                states[name] = MISSING
        kept = holding - draining
        needed = [name for name in sorted(holding) if len(kept - {name}) < self._quorum]
        report["placed"] = [name for name in layout.placed if name in holding]
        report["not_placeable"] = dict(layout.unplaced)
        if draining:
            at_risk = len(kept) < self._quorum
            report["below_quorum_without_draining"] = 1 if at_risk else 0
            if at_risk:
                log.warning("object %s has %d copies outside the draining locations %s "
                            "(write_quorum %d): do not remove them yet",
                            layout.data.object_id, len(kept), ", ".join(sorted(draining)),
                            self._quorum)
        self._call("count in", self._counts.record, states, needed)

    def statistics(self, context: Optional[dict],
                   reports: List[Dict[str, Any]]) -> Dict[str, Any]:
        """Add ``draining``, ``placement`` and ``fill`` to each location report (in place).

        Per location: ``draining`` (bool), ``placement`` (True, False, or
        None when its module cannot be resolved now), ``placement_note``
        when False, and ``fill``: from the current repair pass (the last one
        while the current has counted nothing), ``objects`` repaired in it,
        how many the location ``holds``, is ``missing``, cannot receive
        (``unplaceable``), has no copy because it is ``draining``, holds a
        copy still ``needed`` for write_quorum, ``started`` (seconds since
        the epoch) and ``progress`` (holds / objects; None before any
        repair). The host divides ``holds`` by the objects in its index.

        Returns:
            dict: ``repair_pass`` (both passes' raw counts, or ``error``) and
            ``draining``: None when no location is draining, else
            ``objects`` and per draining location ``needed`` and
            ``removable`` (that pass repaired objects and none needs the
            copy; it must have covered the whole index, which the host
            checks by comparing ``objects`` with it). Never raises.
        """
        fill = safe_report(self._counts, self._locations.names)
        shown = _shown_pass(fill)
        for entry in reports:
            entry.update(self._location_facts(context, entry["name"], shown))
        return {"repair_pass": fill, "draining": self._drain_report(shown)}

    def close(self) -> None:
        """Close the counters."""
        self._counts.close()

    def _location_facts(self, context: Optional[dict], name: str,
                        shown: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        try:
            placement: Optional[bool] = supports_placement(
                self._locations.get(name).module(context))
        except Exception:  # a platform resolver may raise anything: unknown for now
            placement = None
        facts: Dict[str, Any] = {"draining": name in self._locations.draining,
                                 "placement": placement, "fill": None}
        if placement is False:
            facts["placement_note"] = _NO_PLACEMENT
        if shown:
            counts = dict(shown["locations"].get(name) or {})
            objects = shown["objects"]
            counts.update(objects=objects, started=shown["started"],
                          progress=round(counts.get(HOLDS, 0) / objects, 4) if objects else None)
            facts["fill"] = counts
        return facts

    def _drain_report(self, shown: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
        if not self._locations.draining:
            return None
        objects = shown.get("objects", 0) if shown else 0
        locations = {}
        for name in sorted(self._locations.draining):
            needed = (shown["locations"].get(name) or {}).get(NEEDED) if shown else None
            locations[name] = {"needed": needed, "removable": bool(objects) and needed == 0}
        return {"objects": objects, "locations": locations}

    @staticmethod
    def _call(action: str, function, *args: Any) -> None:
        try:
            function(*args)
        except StorageError as error:
            log.error("could not %s the replica's fill counts: %s", action, error)


def _shown_pass(fill: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Return the pass statistics show: the current one, or the last while the current
    has counted nothing (None when there is neither, or the counts cannot be read)."""
    chosen = fill.get("current")
    if not chosen or not chosen.get("objects"):
        chosen = fill.get("last") or chosen
    return chosen
