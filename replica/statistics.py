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
import functools
import json
import logging
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from modules import UNKNOWN, StorageModule
from modules.errors import StorageError, describe_error
from replica.journal import COPY, DELETE, Journal
from replica.locations import DOWN, ERROR_LIMITED, OK, Location

__all__ = ["child_capacity", "journal_report", "json_safe", "location_reports", "summarize"]

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
        "temporaries": _temporaries(locations),
        "locations": report,
    }
    result.update(extra)
    return result


def _temporaries(locations: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Sum the children's ``temporaries`` (files, bytes); list locations that do not say."""
    files = size = 0
    unknown = []
    for entry in locations:
        child = entry.get("statistics")
        counted = child.get("temporaries") if isinstance(child, Mapping) else None
        if isinstance(counted, Mapping) and all(
                isinstance(counted.get(key), int) and not isinstance(counted.get(key), bool)
                and counted.get(key) >= 0 for key in ("files", "bytes")):
            files += counted["files"]
            size += counted["bytes"]
        else:
            unknown.append(entry["name"])
    return {"files": files, "bytes": size, "unknown": unknown}


def location_reports(context: Optional[dict], locations: Sequence[Location],
                     parallel: Callable[[Dict[str, Callable[[], Any]]],
                                        Dict[str, Tuple[bool, Any]]]) -> List[Dict[str, Any]]:
    """Ask every location for its statistics (through ``parallel``); never raises for a child.

    Args:
        context: the platform context (resolves named modules).
        locations: the configured locations, in configured order.
        parallel: runs one call per location name at once and returns
            name -> (True, value) or (False, error) (the replica's ``_parallel``).

    Returns:
        list: one dict per location (its health snapshot plus ``capacity``,
        ``statistics`` and ``reason``), in the form :func:`summarize` takes.
    """
    calls = {}
    errors: Dict[str, StorageError] = {}
    for location in locations:
        try:
            module = location.module(context)
        except Exception as error:  # a platform resolver may raise anything
            errors[location.name] = location.translate(error, "getModule")
            continue
        calls[location.name] = functools.partial(_child_statistics, location, module, context)
    results = parallel(calls)
    reports = []
    for location in locations:
        snapshot = location.snapshot()
        ok, value = results.get(location.name, (False, errors.get(location.name)))
        entry = dict(snapshot, capacity=None, statistics=None, reason=None)
        if not ok:
            entry["reason"] = describe_error(value)
            if snapshot["health"] != ERROR_LIMITED:
                entry["health"] = DOWN
        else:
            entry["statistics"] = json_safe(value)
            entry["capacity"] = child_capacity(value)
            status = value.get("status") if isinstance(value, dict) else None
            if status not in (None, "ok", OK):
                entry["reason"] = str(value.get("reason") or "status %s" % status)
                if snapshot["health"] != ERROR_LIMITED:
                    entry["health"] = DOWN
        reports.append(entry)
    return reports


def journal_report(journal: Journal) -> Dict[str, Any]:
    """Describe the journal: durability, path, limit, dropped and pending entries.

    Returns:
        dict: ``durable``, ``path``, ``limit``, ``dropped``, ``copies`` and
        ``deletes`` (-1 each, with ``error``, when the journal cannot be
        read), and a ``note`` when it is kept in memory only. Never raises.
    """
    report = {"durable": journal.durable, "path": journal.path,
              "limit": journal.limit, "dropped": journal.dropped}
    try:
        counts = journal.counts()
        report.update(copies=counts[COPY], deletes=counts[DELETE])
    except StorageError as error:
        report.update(copies=-1, deletes=-1, error=describe_error(error))
    if not journal.durable:
        report["note"] = "kept in memory and lost on restart; set state_dir to keep it"
    return report


def _child_statistics(location: Location, module: StorageModule,
                      context: Optional[dict]) -> Any:
    """Call a child's statistics without touching its health; translate failures."""
    try:
        return module.statistics(context)
    except Exception as error:  # statistics of a broken child: report, never raise
        translated = location.translate(error, "statistics")
        raise translated from error
