"""Module instances: one per configured module per process, replaced on change.

A request takes a :class:`Lease` for its whole life (including a streamed
response body). Instances are created on first use from the stored
configuration. When a configuration changes (in this process or another one
sharing the database) the instance is retired together with every instance
that resolved it through ``context['func']['getModule']``; a retired
instance is ``close()``\\ d once no lease that might still use it is left.
"""
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

from modules import StorageModule
from modules.context import make_context
from modules.errors import ConfigurationError
from modules.loader import load_module

from modules.host import forking
from modules.host.store import ModuleConfig, Store

__all__ = ["ModuleRegistry", "Lease", "UnknownModule"]

log = logging.getLogger(__name__)


class UnknownModule(ConfigurationError):
    """No module is configured under the requested name."""


@dataclass
class _Entry:
    revision: int
    instance: StorageModule
    context: dict
    dependents: Set[str] = field(default_factory=set)


class Lease:
    """A request's right to use module instances until :meth:`release`.

    Usable as a context manager. Thread-confined: one request, one lease.
    """

    def __init__(self, registry: "ModuleRegistry", epoch: int):
        self._registry = registry
        self._epoch = epoch
        self._released = False

    def module(self, name: str) -> StorageModule:
        """Return the instance of configured module ``name``.

        Raises:
            UnknownModule: no module is configured under ``name``.
            ConfigurationError: its stored configuration cannot be instantiated.
        """
        return self._registry._instance(name).instance

    def context(self, name: str) -> dict:
        """Return the context to pass to module ``name``'s methods."""
        return self._registry._instance(name).context

    def release(self) -> None:
        """End the lease (idempotent); retired instances it kept alive may be closed."""
        if not self._released:
            self._released = True
            self._registry._release(self._epoch)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


class ModuleRegistry:
    """The configured module instances of one process, over ``store``."""

    def __init__(self, store: Store):
        self._store = store
        self._lock = threading.Lock()
        self._entries: Dict[str, _Entry] = {}
        self._creating: Dict[str, threading.Lock] = {}
        self._generation: Optional[int] = None
        self._epoch = 0
        self._active: Counter = Counter()
        self._retired: List[Tuple[int, str, StorageModule]] = []
        self._closed = False
        forking.register(self)

    # -- leases -----------------------------------------------------------

    def lease(self) -> Lease:
        """Pick up configuration changes and return a new lease.

        Raises:
            LocationUnavailable: the database cannot be read.
        """
        self.refresh()
        with self._lock:
            epoch = self._epoch
            self._active[epoch] += 1
        return Lease(self, epoch)

    def _before_fork(self) -> None:
        """Retire every instance (closed once no request uses it; at once in a process that
        serves nothing, as a pre-forking server's parent): children start without any."""
        with self._lock:
            if self._closed:
                return
            for name in list(self._entries):
                self._retire(name)
            self._generation = None
            closable = self._closable()
        _close_all(closable)

    def _after_fork_in_child(self) -> None:
        """Forget the parent's instances (their threads and connections stayed in the
        parent; closing them here could disturb it): the child creates its own."""
        self._lock = threading.Lock()
        self._entries = {}
        self._creating = {}
        self._retired = []
        self._active = Counter()
        self._generation = None

    def _release(self, epoch: int) -> None:
        with self._lock:
            self._active[epoch] -= 1
            if self._active[epoch] <= 0:
                del self._active[epoch]
            closable = self._closable()
        _close_all(closable)

    def _closable(self) -> List[Tuple[str, StorageModule]]:
        """Remove and return retired instances no active lease can use (lock held)."""
        oldest = min(self._active) if self._active else None
        ready = [(name, instance) for epoch, name, instance in self._retired
                 if oldest is None or epoch < oldest]
        self._retired = [item for item in self._retired if not (oldest is None or item[0] < oldest)]
        return ready

    # -- configuration changes ------------------------------------------

    def refresh(self) -> None:
        """Retire instances whose configuration changed since they were created.

        Raises:
            LocationUnavailable: the database cannot be read.
        """
        generation = self._store.generation()
        with self._lock:
            if generation == self._generation:
                return
        configs = {config.name: config for config in self._store.list_modules()}
        with self._lock:
            for name, entry in list(self._entries.items()):
                config = configs.get(name)
                if config is None or config.revision != entry.revision:
                    self._retire(name)
            self._generation = generation
            closable = self._closable()
        _close_all(closable)

    def install(self, config: ModuleConfig, instance: StorageModule) -> None:
        """Use ``instance`` (already built from ``config``) for ``config.name`` from now on."""
        with self._lock:
            if self._closed:
                closable = [(config.name, instance)]
            else:
                self._retire(config.name)
                self._entries[config.name] = self._new_entry(config.name, config.revision, instance)
                closable = self._closable()
        _close_all(closable)

    def forget(self, name: str) -> None:
        """Retire the instance of ``name`` (its configuration was removed)."""
        with self._lock:
            self._retire(name)
            closable = self._closable()
        _close_all(closable)

    def _retire(self, name: str, seen: Optional[Set[str]] = None) -> None:
        """Move ``name`` and what depends on it to the retired list (lock held)."""
        seen = set() if seen is None else seen
        if name in seen:
            return
        seen.add(name)
        entry = self._entries.pop(name, None)
        if entry is None:
            return
        self._retired.append((self._epoch, name, entry.instance))
        self._epoch += 1
        for dependent in sorted(entry.dependents):
            self._retire(dependent, seen)

    # -- instances --------------------------------------------------------

    def loaded(self) -> Dict[str, StorageModule]:
        """Return the instances created so far, by name."""
        with self._lock:
            return {name: entry.instance for name, entry in self._entries.items()}

    def _instance(self, name: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                return entry
        if self._store.get_module(name) is None:
            known = ", ".join(item.name for item in self._store.list_modules()) or "none"
            raise UnknownModule("no module is configured under the name %r (configured: %s)"
                                % (name, known))
        with self._lock:
            creating = self._creating.setdefault(name, threading.Lock())
        try:
            with creating:
                return self._create(name)
        finally:
            with self._lock:
                if self._creating.get(name) is creating:
                    del self._creating[name]

    def _create(self, name: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                return entry
        config = self._store.get_module(name)
        if config is None:
            raise UnknownModule("module %r was removed while it was being loaded" % name)
        try:
            instance = load_module(config.module, config.args)
        except ConfigurationError as error:
            raise ConfigurationError("module %r cannot be created from its stored "
                                     "configuration: %s" % (name, error)) from error
        with self._lock:
            if self._closed:
                _close_all([(name, instance)])
                raise ConfigurationError("the host is shutting down")
            entry = self._new_entry(name, config.revision, instance)
            self._entries[name] = entry
            return entry

    def _new_entry(self, name: str, revision: int, instance: StorageModule) -> _Entry:
        def resolve(dependency: str) -> StorageModule:
            target = self._instance(dependency)
            with self._lock:
                target.dependents.add(name)
            return target.instance

        return _Entry(revision, instance, make_context(resolve))

    def close(self) -> None:
        """Close every instance, retired or live (the process is stopping)."""
        with self._lock:
            self._closed = True
            closable = [(name, entry.instance) for name, entry in self._entries.items()]
            closable += [(name, instance) for _, name, instance in self._retired]
            self._entries.clear()
            self._retired.clear()
        _close_all(closable)


def _close_all(instances: List[Tuple[str, StorageModule]]) -> None:
    for name, instance in instances:
        try:
            instance.close()
        except Exception:
            log.exception("closing module %r failed", name)
        else:
            log.debug("closed an instance of module %r", name)
