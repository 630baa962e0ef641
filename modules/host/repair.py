"""Repair steps the provisioning API runs for ``vsm repair``.

A repair is driven by the client in steps, so that it can show progress and
no request runs for hours:

* ``{}`` (the journal step): ``module.repair(context)`` (a replica drains
  its journal of missed writes and deletes) and a retry of deletions left
  pending in the index;
* ``{"after": KEY, "limit": N}`` (an objects step): ``module.repair(context,
  module_data)`` for the next N objects of the policy in key order.
"""
import logging
from typing import Any, Dict, List

from modules.errors import StorageError, Unsupported

from modules.host.http import HttpError
from modules.host.objects import delete_garbage
from modules.host.registry import Lease
from modules.host.store import Store

__all__ = ["RepairService", "MAX_STEP"]

log = logging.getLogger(__name__)

#: The most objects one step repairs.
MAX_STEP = 1000

#: Pending deletions retried per journal step.
GARBAGE_PER_STEP = 1000


class RepairService:
    """Run repair steps against the modules of ``store``."""

    def __init__(self, store: Store):
        self._store = store

    def run(self, lease: Lease, name: str, body: Dict[str, Any]) -> Dict[str, Any]:
        """Run the step ``body`` describes for module ``name``.

        Returns:
            dict: for the journal step ``{"module", "step": "journal",
            "summary", "deletions": {"done", "failed"}, "objects"}``; for an
            objects step ``{"module", "step": "objects", "done", "next",
            "total", "summary", "failed": [{"key", "error"}]}``.

        Raises:
            HttpError: 400 for a malformed body.
            Unsupported: the module has nothing to repair (objects step) and
                there were no pending deletions (journal step).
            UnknownModule, ConfigurationError: the module cannot be used.
        """
        if "after" in body or "limit" in body:
            return self._objects_step(lease, name, body)
        if set(body) - {"step"}:
            raise HttpError(400, 'a repair body is {} (journal step) or {"after": KEY, '
                                 '"limit": N} (objects step)')
        return self._journal_step(lease, name)

    def _journal_step(self, lease: Lease, name: str) -> Dict[str, Any]:
        module, context = lease.module(name), lease.context(name)
        done = failed = 0
        for item in self._store.pending_garbage(name, limit=GARBAGE_PER_STEP):
            if delete_garbage(self._store, lease, item):
                done += 1
            else:
                failed += 1
        supported = bool(module.capabilities.get("repair"))
        summary = None
        if supported:
            summary = module.repair(context)
        elif not (done or failed):
            raise Unsupported("module %r (%s) has nothing to repair" % (
                name, type(module).__name__))
        return {
            "module": name,
            "step": "journal",
            "supported": supported,
            "summary": summary,
            "deletions": {"done": done, "failed": failed},
            "objects": self._store.count_objects(name),
        }

    def _objects_step(self, lease: Lease, name: str, body: Dict[str, Any]) -> Dict[str, Any]:
        after, limit = body.get("after") or "", body.get("limit", 100)
        if not isinstance(after, str):
            raise HttpError(400, '"after" must be a key (a string)')
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_STEP:
            raise HttpError(400, '"limit" must be an integer from 1 to %d' % MAX_STEP)
        module, context = lease.module(name), lease.context(name)
        if not module.capabilities.get("repair"):
            raise Unsupported("module %r (%s) has nothing to repair" % (
                name, type(module).__name__))
        rows = self._store.list_objects(name, after=after, limit=limit)
        summary: Dict[str, Any] = {}
        failed: List[Dict[str, str]] = []
        for row in rows:
            try:
                _add_numbers(summary, module.repair(context, row.module_data))
            except StorageError as error:
                log.warning("repairing %s/%s failed: %s", name, row.key, error)
                failed.append({"key": row.key, "error": "%s: %s" % (type(error).__name__, error)})
        return {
            "module": name,
            "step": "objects",
            "done": len(rows),
            "next": rows[-1].key if len(rows) == limit else None,
            "total": self._store.count_objects(name),
            "summary": summary,
            "failed": failed,
        }


def _add_numbers(total: Dict[str, Any], summary: Any) -> None:
    """Add the numbers of a repair summary into ``total``: lists count their items,
    nested dicts add up recursively, anything else is dropped."""
    if not isinstance(summary, dict):
        return
    for key, value in summary.items():
        if isinstance(value, dict):
            if isinstance(total.setdefault(key, {}), dict):
                _add_numbers(total[key], value)
            continue
        if isinstance(value, (list, tuple)):
            value = len(value)
        if isinstance(value, (int, float)) and isinstance(total.get(key, 0), (int, float)):
            total[key] = total.get(key, 0) + value
