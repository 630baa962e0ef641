"""Aggregate per-location statistics into the replica's statistics.

Capacity is that of the most constrained healthy location (the one with the
least free bytes), because every copy must fit on every location; GlusterFS
and Linux md report a mirror the same way. Locations whose capacity is
unknown (-1, or their statistics failed) are left out of the minimum and
listed in ``capacity_unknown``, never counted as 0. Locations that are not
healthy (down or error-limited) are left out of the minimum too: the
platform cannot count on their space. ``raw`` sums what is
known, for administrators who want the physical totals.
"""
import json
import logging
from typing import Any, Dict, List, Mapping, Optional

from modules import UNKNOWN
from replica.locations import OK

__all__ = ["child_capacity", "json_safe", "summarize"]

log = logging.getLogger(__name__)

_FIELDS = ("total", "free", "used")


def child_capacity(child_stats: Any) -> Optional[Dict[str, int]]:
    """Return a child's capacity triple when it is fully known, else None.

    Returns:
        dict or None: ``{'total', 'free', 'used'}`` as ints >= 0, or None when
        the statistics are not a dict, lack a capacity, or any field is
        unknown (-1), negative or not an int.
    """
    if not isinstance(child_stats, Mapping):
        return None
    capacity = child_stats.get("capacity")
    if not isinstance(capacity, Mapping):
        return None
    values = {}
    for field in _FIELDS:
        value = capacity.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return None
        values[field] = value
    return values


def json_safe(value: Any) -> Any:
    """Return ``value`` when it is JSON-serialisable, else a note saying it was not."""
    try:
        json.dumps(value)
    except (TypeError, ValueError) as error:
        return {"unserialisable": "%s" % type(error).__name__}
    return value


def summarize(locations: List[Dict[str, Any]], write_quorum: int, journal: Dict[str, Any],
              extra: Mapping[str, Any]) -> Dict[str, Any]:
    """Build the replica's statistics from per-location reports.

    Args:
        locations: one dict per configured location, in configured order,
            each with at least ``name``, ``health`` and ``capacity`` (a known
            triple or None); returned as they are, with ``capacity``
            rewritten to a triple (-1 when unknown).
        write_quorum: the configured quorum.
        journal: the journal's report (``copies``, ``deletes`` counts, may be
            -1 when it could not be read).
        extra: further keys copied into the result.

    Returns:
        dict: ``capacity`` and everything described in ``docs/replica.md``.
    """
    known = [entry for entry in locations if entry["capacity"] is not None]
    usable = [entry for entry in known if entry["health"] == OK]
    unknown = [entry["name"] for entry in locations if entry["capacity"] is None]
    if usable:
        tightest = min(usable, key=lambda entry: entry["capacity"]["free"])
        capacity = dict(tightest["capacity"])
        capacity_location: Optional[str] = tightest["name"]
    else:
        capacity = {"total": UNKNOWN, "free": UNKNOWN, "used": UNKNOWN}
        capacity_location = None
    raw = {field: sum(entry["capacity"][field] for entry in known) if known else UNKNOWN
           for field in _FIELDS}
    healthy = sum(1 for entry in locations if entry["health"] == OK)
    under_replicated = journal.get("copies", 0)
    report = [dict(entry, capacity=entry["capacity"] or
                   {"total": UNKNOWN, "free": UNKNOWN, "used": UNKNOWN}) for entry in locations]
    result: Dict[str, Any] = {
        "capacity": capacity,
        "capacity_location": capacity_location,
        "capacity_unknown": unknown,
        "raw": raw,
        "replicas": len(locations),
        "write_quorum": write_quorum,
        "healthy": healthy,
        "degraded": healthy < len(locations) or under_replicated != 0,
        "under_replicated": under_replicated,
        "pending_deletes": journal.get("deletes", 0),
        "journal": journal,
        "locations": report,
    }
    result.update(extra)
    return result
