"""Repair steps the provisioning API runs for ``vsm repair``.

A repair is driven by the client in steps, so that it can show progress and
no request runs for hours:

* ``{}`` (the journal step): the write intents of processes that are gone
  are collected, data no index row and no read uses any more is destroyed
  (deletions left pending included, see :mod:`modules.host.garbage`), then
  ``module.repair(context)`` (a replica drains its journal of missed
  writes and deletes, and a module sweeps its stale temporaries);
* ``{"after": KEY, "limit": N}`` (an objects step): ``module.repair(context,
  module_data)`` for the next N objects of the policy in key order;
* ``{"after": KEY, "limit": N, "scrub": true}`` (a scrub step, for modules
  whose ``capabilities['scrub']`` is True): ``module.scrub(context,
  module_data)`` for the next N objects; it changes nothing.

Objects and scrub steps take ``"rate"`` (bytes per second) for modules
that can scrub: reading is paced to it, so a whole-store pass does not
starve live traffic.
"""
import logging
from typing import Any, Dict, List

from modules.errors import StorageError, Unsupported
from modules.reports import add_counts

from modules.host.garbage import GarbageCollector
from modules.host.http import HttpError
from modules.host.registry import Lease
from modules.host.store import ObjectRecord, Store

__all__ = ["RepairService", "MAX_STEP"]

log = logging.getLogger(__name__)

#: The most objects one step repairs.
MAX_STEP = 1000

#: Pending deletions retried per journal step.
GARBAGE_PER_STEP = 1000


class RepairService:
    """Run repair steps against the modules of ``store``."""

    def __init__(self, store: Store, collector: GarbageCollector):
        self._store = store
        self._collector = collector

    def run(self, lease: Lease, name: str, body: Dict[str, Any]) -> Dict[str, Any]:
        """Run the step ``body`` describes for module ``name``.

        Returns:
            dict: for the journal step ``{"module", "step": "journal",
            "supported", "summary" (the module's own report), "error" (why
            the module's repair failed, or None), "deletions":
            {"done", "failed", "collected", "still_read", "destroyed": {kind:
            n}, "errors": [...]}, "pending", "objects"}``; for an
            objects step ``{"module", "step": "objects", "done", "next",
            "total", "summary", "failed": [{"key", "error"}], "damaged",
            "changed"}`` (``changed``: objects overwritten or deleted while
            the step ran, whose failures or problems are not reported).

        Raises:
            HttpError: 400 for a malformed body.
            Unsupported: the module has nothing to repair (objects step) and
                there were no pending deletions (journal step).
            UnknownModule, ConfigurationError: the module cannot be used.
        """
        if "after" in body or "limit" in body or body.get("scrub"):
            return self._objects_step(lease, name, body)
        if set(body) - {"step"}:
            raise HttpError(400, 'a repair body is {} (journal step) or {"after": KEY, '
                                 '"limit": N} (objects step, with "scrub": true and "rate": '
                                 'bytes per second for a scrub)')
        return self._journal_step(lease, name)

    def _journal_step(self, lease: Lease, name: str) -> Dict[str, Any]:
        module, context = lease.module(name), lease.context(name)
        sweep = self._collector.run(lease, name, limit=GARBAGE_PER_STEP)
        done = sum(sweep.destroyed.values())
        supported = bool(module.capabilities.get("repair"))
        summary = None
        module_error = None
        if supported:
            try:
                summary = module.repair(context)
            except StorageError as error:  # keep the deletions' report; say what failed
                log.warning("repair of module %r failed: %s", name, error)
                module_error = "%s: %s" % (type(error).__name__, error)
        elif not (done or sweep.failed or sweep.still_read or sweep.collected):
            raise Unsupported("module %r (%s) has nothing to repair" % (
                name, type(module).__name__))
        return {
            "module": name,
            "step": "journal",
            "supported": supported,
            "summary": summary,
            "error": module_error,
            "deletions": {"done": done, "failed": len(sweep.failed),
                          "collected": sweep.collected, "still_read": sweep.still_read,
                          "destroyed": dict(sweep.destroyed),
                          "errors": [item["error"] for item in sweep.failed[:20]]},
            "pending": self._store.count_garbage(name),
            "objects": self._store.count_objects(name),
        }

    def _objects_step(self, lease: Lease, name: str, body: Dict[str, Any]) -> Dict[str, Any]:
        after, limit = body.get("after") or "", body.get("limit", 100)
        if not isinstance(after, str):
            raise HttpError(400, '"after" must be a key (a string)')
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_STEP:
            raise HttpError(400, '"limit" must be an integer from 1 to %d' % MAX_STEP)
        scrub, rate = bool(body.get("scrub")), body.get("rate")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                                 or rate <= 0):
            raise HttpError(400, '"rate" must be a positive number of bytes per second')
        module, context = lease.module(name), lease.context(name)
        can_scrub = bool(module.capabilities.get("scrub"))
        if scrub and not can_scrub:
            raise Unsupported("module %r (%s) cannot scrub (verify its copies)" % (
                name, type(module).__name__))
        if not scrub and not module.capabilities.get("repair"):
            raise Unsupported("module %r (%s) has nothing to repair" % (
                name, type(module).__name__))
        options = {"rate": rate} if rate is not None and can_scrub else {}
        action = module.scrub if scrub else module.repair
        summary: Dict[str, Any] = {}
        failed: List[Dict[str, str]] = []
        damaged: List[Dict[str, Any]] = []
        changed = 0
        # Pinned like a read: data an overwrite or a delete retires during the step is not
        # destroyed under the module's repair or scrub (which would see copies vanish, or
        # refill a copy of data that is being destroyed and leave it behind).
        pin = self._collector.reading()
        try:
            rows = self._store.list_objects(name, after=after, limit=limit)
            for row in rows:
                try:
                    result = action(context, row.module_data, **options)
                except StorageError as error:
                    if self._changed(name, row):
                        changed += 1
                        continue
                    log.warning("%s of %s/%s failed: %s", "scrub" if scrub else "repair", name,
                                row.key, error)
                    failed.append({"key": row.key,
                                   "error": "%s: %s" % (type(error).__name__, error)})
                    continue
                problems = _problems(result)
                if problems and self._changed(name, row):
                    changed += 1  # overwritten or deleted meanwhile: not damage
                    continue
                add_counts(summary, result)
                if problems:
                    damaged.append(dict(problems, key=row.key))
        finally:
            pin.release()
        return {
            "module": name,
            "step": "scrub" if scrub else "objects",
            "damaged": damaged,
            "done": len(rows),
            "next": rows[-1].key if len(rows) == limit else None,
            "total": self._store.count_objects(name),
            "summary": summary,
            "failed": failed,
            "changed": changed,
        }

    def _changed(self, name: str, row: ObjectRecord) -> bool:
        """Return True when ``row``'s key no longer holds its module_data (overwritten or
        deleted while the step ran): what the module found is no object's problem."""
        current = self._store.get_object(name, row.key)
        return current is None or current.module_data != row.module_data


def _problems(report: Any) -> Dict[str, Any]:
    """Return what a scrub or repair report says is still wrong with one object (or {})."""
    if not isinstance(report, dict):
        return {}
    problems = {key: report[key] for key in ("damaged", "missing", "unreachable", "failed")
                if report.get(key)}
    repaired = set(report.get("repaired") or ())
    if repaired:
        for key in ("damaged", "missing"):
            value = problems.get(key)
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if k not in repaired}
            elif isinstance(value, list):
                value = [k for k in value if k not in repaired]
            if value:
                problems[key] = value
            else:
                problems.pop(key, None)
    return problems
