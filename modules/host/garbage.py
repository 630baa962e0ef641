"""Destroying data the index no longer uses: retired, aborted and crashed writes.

Rows of the ``garbage`` table (:mod:`modules.host.store`) name data to
destroy. :class:`GarbageCollector` destroys one when it is safe:

* data an overwrite or a delete retired, once no read can still use it
  (:class:`modules.host.pins.ReadPins`);
* data of a failed write at once;
* data of a write whose process is gone (``kill -9``, crash) once the
  intent is collected: by the background sweep of every serving process
  (a minute at most after start), and by ``vsm repair``.

A failed deletion is counted on its row and left for ``vsm repair``; the
background sweep only takes rows nobody tried to delete yet, so an
unreachable location is not hammered.
"""
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from modules.errors import ObjectNotFound, StorageError

from modules.host.pins import Pin, ReadPins
from modules.host.registry import Lease
from modules.host.store import GarbageItem, Store

__all__ = ["GarbageCollector", "SweepReport", "COLLECT_INTERVAL"]

log = logging.getLogger(__name__)

#: Seconds between two collections of dead writers' intents by the background sweep.
COLLECT_INTERVAL = 60.0

#: Garbage rows the background sweep looks at per round.
_SWEEP_BATCH = 200


@dataclass
class SweepReport:
    """What one pass destroyed, left and failed; JSON-ready with :meth:`to_dict`."""

    collected: int = 0  # intents of processes that are gone, turned into garbage
    destroyed: Dict[str, int] = field(default_factory=dict)  # kind -> count
    still_read: int = 0  # retired data a read may still use: left for later
    failed: List[Dict[str, str]] = field(default_factory=list)  # {"kind", "error"}

    def to_dict(self) -> Dict[str, object]:
        """Return ``{"collected", "destroyed": {kind: n}, "still_read", "failed": [...]}``."""
        return {"collected": self.collected, "destroyed": dict(self.destroyed),
                "still_read": self.still_read, "failed": list(self.failed)}


class GarbageCollector:
    """Destroy garbage of ``store`` through module instances, respecting ``pins``."""

    def __init__(self, store: Store, pins: ReadPins):
        self._store = store
        self._pins = pins
        self._last_collect = 0.0

    def reading(self) -> Pin:
        """Register a reader of several objects (a repair or scrub step) and return its pin.

        Data retired after this call is not destroyed before ``release()``:
        list the objects *after* it returns. See :meth:`ReadPins.begin`.

        Raises:
            LocationUnavailable: the database cannot be read or written.
        """
        return self._pins.begin()

    def destroy(self, lease: Lease, item: GarbageItem) -> Optional[bool]:
        """Destroy ``item``'s data unless a read may still use it or an index row uses it again.

        Returns:
            True when the item is gone, None when it was left because a
            read may still use it, False when the module failed (logged,
            counted on the row, left for ``vsm repair``).
        """
        if not self._pins.may_destroy(item):
            return None
        try:
            if not self._store.is_referenced(item.policy, item.module_data):
                try:
                    lease.module(item.policy).delete(lease.context(item.policy), item.module_data)
                except ObjectNotFound:
                    pass  # nothing was stored (a write that failed early): nothing to destroy
            self._store.garbage_done(item.id)
            return True
        except StorageError as error:
            log.warning("could not delete %s data in module %r (left for 'vsm repair'): %s",
                        item.kind, item.policy, error)
            try:
                self._store.garbage_failed(item.id, "%s: %s" % (type(error).__name__, error))
            except StorageError:
                log.exception("could not record the failed deletion")
            return False

    def collect(self, policy: Optional[str] = None) -> List[GarbageItem]:
        """Turn intents of writers that are gone into garbage; return the new items."""
        items = self._store.collect_intents(self._pins.writer_gone, policy)
        for item in items:
            log.info("collected the write intent of process %s in module %r (it is gone)",
                     item.writer, item.policy)
        return items

    def run(self, lease: Lease, policy: str, limit: int,
            retry_failed: bool = True) -> SweepReport:
        """Collect dead writers' intents of ``policy`` and destroy up to ``limit`` items.

        Returns:
            SweepReport: counts of what was done; ``failed`` lists the errors.
        """
        report = SweepReport(collected=len(self.collect(policy)))
        after = 0
        handled = 0
        while handled < limit:
            items = self._store.pending_garbage(policy, limit=min(_SWEEP_BATCH, limit - handled),
                                                after_id=after)
            if not items:
                break
            for item in items:
                after = item.id
                if item.attempts and not retry_failed:
                    continue
                handled += 1
                outcome = self.destroy(lease, item)
                if outcome is None:
                    report.still_read += 1
                elif outcome:
                    report.destroyed[item.kind] = report.destroyed.get(item.kind, 0) + 1
                else:
                    report.failed.append({"kind": item.kind, "error": self._last_error(item)})
        return report

    def _last_error(self, item: GarbageItem) -> str:
        row = self._store.get_garbage(item.id)
        return (row.last_error if row is not None else None) or "unknown error"

    def background(self, lease_factory: Callable[[], Lease]) -> Callable[[], None]:
        """Return the sweep the read pins' thread runs after each publication.

        It collects dead writers' intents and removes dead processes'
        readers rows every :data:`COLLECT_INTERVAL` seconds (the first time
        at once), and destroys garbage nobody has tried to destroy yet, a
        bounded batch per round.
        """
        def sweep() -> None:
            now = time.monotonic()
            if not self._last_collect or now - self._last_collect >= COLLECT_INTERVAL:
                self._last_collect = now
                self.collect()
                self._pins.prune()
            items = self._store.pending_garbage(limit=_SWEEP_BATCH, untried_only=True)
            if not items:
                return
            with lease_factory() as lease:
                for item in items:
                    self.destroy(lease, item)
        return sweep
