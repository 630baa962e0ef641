"""``FaultyStorage``: wrap a real storage module and make it fail on command.

For tests of modules that compose others (replication, caching, ...) and
for module authors who want to see their module survive real failures::

    inner = SimpleStorage(directory)
    faulty = FaultyStorage(inner, name="dc1")
    faulty.fail("get_read_stream")                  # raise LocationUnavailable
    faulty.fail("write", after_bytes=1 << 20)       # assign fails after 1 MiB
    faulty.fail("read", after_bytes=4096, times=1)  # one read stream breaks at 4 KiB
    faulty.hang("write", after_bytes=0)             # assign stops consuming
    faulty.report_capacity(total=100, free=0, used=100)
    faulty.down(); faulty.up()                      # unreachable / healthy again
    faulty.calls["assign"]                          # how often each method was called

Fault points are the module methods (``new_data``, ``assign``,
``available``, ``get_read_stream``, ``delete``, ``get_size``,
``statistics``, ``repair``, ``new_data_for``) plus ``"write"`` (reading the source inside
``assign``, so the wrapped module sees its source fail and must discard the
partial copy), ``"stored"`` (after the wrapped ``assign`` stored the data,
before it returns: a slow or failed commit) and ``"read"`` (reading a
stream it returned). A fault fires
for ``times`` calls (forever when None) and, for ``read``/``write``, once
``after_bytes`` bytes have passed. Hangs block until ``seconds`` pass or
:meth:`FaultyStorage.release` / :meth:`FaultyStorage.clear` /
:meth:`FaultyStorage.close` is called, then the call carries on normally.
"""
import collections
import copy
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO, Dict, Optional, Union

from modules import StorageModule
from modules.errors import DataCorrupted, LocationUnavailable, StorageError
from modules.loader import load_module
from modules.streams import ReadStream

__all__ = ["FaultyStorage", "FAULT_POINTS"]

_METHODS = ("new_data", "assign", "available", "get_read_stream", "delete", "get_size",
            "statistics", "repair", "new_data_for")
#: Every name :meth:`FaultyStorage.fail` and :meth:`FaultyStorage.hang` accept.
FAULT_POINTS = _METHODS + ("read", "write", "stored")

ErrorSpec = Union[None, BaseException, type]


@dataclass
class _Fault:
    kind: str                   # "fail" or "hang"
    error: ErrorSpec = None
    seconds: Optional[float] = None
    after_bytes: Optional[int] = None
    times: Optional[int] = None


class FaultyStorage(StorageModule):
    """A storage module that delegates to ``inner`` and injects faults on command.

    Args:
        inner: the module to wrap; or None and give ``module`` (dotted path)
            and ``args`` so it can be configured through the loader.
        module: dotted path of the module to create when ``inner`` is None.
        args: its arguments (list or dict).
        name: the location name used in injected errors.

    Thread-safe: faults may be changed while other threads use the module.
    """

    def __init__(self, inner: Optional[StorageModule] = None, module: Optional[str] = None,
                 args: Any = None, name: str = "faulty"):
        super().__init__()
        self._owns_inner = inner is None
        self.inner = inner if inner is not None else load_module(module, args)
        self.name = name
        self.capabilities = self.inner.capabilities
        self._lock = threading.Lock()
        self._faults: Dict[str, _Fault] = {}
        self._capacity: Optional[Dict[str, int]] = None
        self._release = threading.Event()
        #: method or fault point -> number of calls (``read``/``write``: chunk reads).
        self.calls: "collections.Counter[str]" = collections.Counter()

    def __repr__(self) -> str:
        return "FaultyStorage(%r, name=%r)" % (self.inner, self.name)

    # -- commands -----------------------------------------------------------

    def fail(self, point: str, error: ErrorSpec = None, *, after_bytes: Optional[int] = None,
             times: Optional[int] = None) -> None:
        """Make ``point`` raise ``error`` (default: LocationUnavailable naming this location).

        ``error`` may be an exception class (instantiated with a message) or
        an instance (a copy is raised each time).

        Raises:
            ValueError: unknown point, or ``after_bytes`` for a method.
        """
        self._set(point, _Fault("fail", error=error, after_bytes=after_bytes, times=times))

    def hang(self, point: str, seconds: Optional[float] = None, *,
             after_bytes: Optional[int] = None, times: Optional[int] = None) -> None:
        """Make ``point`` block for ``seconds`` (until released when None), then carry on.

        Raises:
            ValueError: unknown point, or ``after_bytes`` for a method.
        """
        self._set(point, _Fault("hang", seconds=seconds, after_bytes=after_bytes, times=times))

    def down(self, error: ErrorSpec = None) -> None:
        """Make every method that reaches the storage fail (the location is unreachable).

        ``new_data`` and ``new_data_for`` are left working: allocating
        module_data is local for most modules (``simple``, HTTP); use
        ``fail("new_data")`` to break it too.
        """
        for point in _METHODS:
            if point not in ("new_data", "new_data_for"):
                self.fail(point, error)

    def up(self) -> None:
        """Remove every fault (same as :meth:`clear`)."""
        self.clear()

    def report_capacity(self, total: Optional[int] = None, free: Optional[int] = None,
                        used: Optional[int] = None) -> None:
        """Make ``statistics`` report this capacity (all None: the real one again)."""
        with self._lock:
            if total is None and free is None and used is None:
                self._capacity = None
            else:
                self._capacity = self.capacity(
                    -1 if total is None else total, -1 if free is None else free,
                    -1 if used is None else used)

    def release(self) -> None:
        """Let every hung call carry on now."""
        with self._lock:
            event, self._release = self._release, threading.Event()
        event.set()

    def clear(self, point: Optional[str] = None) -> None:
        """Remove the fault at ``point`` (every fault when None) and release hangs."""
        with self._lock:
            if point is None:
                self._faults.clear()
                self._capacity = None
            else:
                self._faults.pop(point, None)
        self.release()

    # -- the contract ---------------------------------------------------------

    def new_data(self, context: Optional[dict]) -> str:
        """Delegate after injecting faults; see :meth:`modules.StorageModule.new_data`."""
        self._enter("new_data")
        return self.inner.new_data(context)

    def new_data_for(self, context: Optional[dict], object_id: str) -> str:
        """Delegate after injecting faults (the inner module's placement capability is kept)."""
        self._enter("new_data_for")
        return self.inner.new_data_for(context, object_id)

    def assign(self, context: Optional[dict], module_data: str, stream: BinaryIO) -> None:
        """Delegate with a source that can fail or hang ("write" faults)."""
        self._enter("assign")
        self.inner.assign(context, module_data, _FaultySource(self, stream))
        self._trigger("stored", None)

    def available(self, context: Optional[dict], module_data: str) -> bool:
        """Delegate after injecting faults."""
        self._enter("available")
        return self.inner.available(context, module_data)

    def get_read_stream(self, context: Optional[dict], module_data: str) -> ReadStream:
        """Delegate; the stream can fail or hang ("read" faults)."""
        self._enter("get_read_stream")
        stream = self.inner.get_read_stream(context, module_data)
        size = getattr(stream, "size", None)
        if not isinstance(size, int):
            try:
                size = self.inner.get_size(context, module_data)
            except BaseException:
                stream.close()
                raise
        return _FaultyReadStream(self, stream, size)

    def delete(self, context: Optional[dict], module_data: str) -> None:
        """Delegate after injecting faults."""
        self._enter("delete")
        self.inner.delete(context, module_data)

    def get_size(self, context: Optional[dict], module_data: str) -> int:
        """Delegate after injecting faults."""
        self._enter("get_size")
        return self.inner.get_size(context, module_data)

    def statistics(self, context: Optional[dict]) -> Dict[str, Any]:
        """Delegate (this one raises too when told to), with the capacity set by report_capacity."""
        self._enter("statistics")
        result = dict(self.inner.statistics(context))
        with self._lock:
            if self._capacity is not None:
                result["capacity"] = dict(self._capacity)
        return result

    def repair(self, context: Optional[dict], module_data: Optional[str] = None) -> Dict[str, Any]:
        """Delegate after injecting faults."""
        self._enter("repair")
        return self.inner.repair(context, module_data)

    def close(self) -> None:
        """Release hangs; close the inner module when this wrapper created it."""
        self.clear()
        if self._owns_inner:
            self.inner.close()

    # -- internals ------------------------------------------------------------

    def _set(self, point: str, fault: _Fault) -> None:
        if point not in FAULT_POINTS:
            raise ValueError("unknown fault point %r; use one of %s"
                             % (point, ", ".join(FAULT_POINTS)))
        if fault.after_bytes is not None and point not in ("read", "write"):
            raise ValueError("after_bytes applies to 'read' and 'write' only")
        with self._lock:
            self._faults[point] = fault

    def _enter(self, point: str) -> None:
        with self._lock:
            self.calls[point] += 1
        self._trigger(point, None)

    def _trigger(self, point: str, passed: Optional[int]) -> None:
        """Fire the fault at ``point`` if it applies (``passed``: bytes so far for read/write)."""
        with self._lock:
            fault = self._faults.get(point)
            if fault is None:
                return
            if fault.after_bytes is not None and (passed is None or passed < fault.after_bytes):
                return
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[point]
            event = self._release
        if fault.kind == "hang":
            event.wait(fault.seconds)
            return
        raise self._error(fault.error, point)

    def _limit(self, point: str, passed: int, size: int) -> int:
        """Return how many bytes may pass before the fault at ``point`` is due."""
        with self._lock:
            fault = self._faults.get(point)
            if fault is None or fault.after_bytes is None or size < 0:
                return size
            return max(1, min(size, fault.after_bytes - passed)) \
                if passed < fault.after_bytes else size

    def _error(self, error: ErrorSpec, point: str) -> BaseException:
        message = "injected fault at %s in %s" % (self.name, point)
        if error is None:
            return LocationUnavailable(message, location=self.name)
        if isinstance(error, BaseException):
            return copy.copy(error)
        if isinstance(error, type) and issubclass(error, StorageError):
            try:
                return error(message, location=self.name)
            except TypeError:
                return error(message)
        return error(message)


class _FaultySource:
    """The source handed to the inner ``assign``: counts bytes, fails or hangs on command."""

    def __init__(self, owner: FaultyStorage, source: BinaryIO):
        self._owner = owner
        self._source = source
        self._passed = 0

    def read(self, size: int = -1) -> bytes:
        with self._owner._lock:
            self._owner.calls["write"] += 1
        self._owner._trigger("write", self._passed)
        data = self._source.read(self._owner._limit("write", self._passed, size))
        if data:
            self._passed += len(data)
        return data

    def readable(self) -> bool:
        return True


class _FaultyReadStream(ReadStream):
    """A read stream over the inner one that fails or hangs on command."""

    def __init__(self, owner: FaultyStorage, inner: Any, size: int):
        super().__init__(size)
        self._owner = owner
        self._inner = inner
        self._passed = 0

    def _read_at(self, position: int, size: int) -> bytes:
        with self._owner._lock:
            self._owner.calls["read"] += 1
        self._owner._trigger("read", self._passed)
        size = self._owner._limit("read", self._passed, size)
        if self._inner.tell() != position:
            self._inner.seek(position)
        data = self._inner.read(size)
        if not data:
            raise DataCorrupted("the copy at %s ended at byte %d, before its size %d"
                                % (self._owner.name, position, self._size),
                                location=self._owner.name)
        self._passed += len(data)
        return data

    def _release(self) -> None:
        self._inner.close()
