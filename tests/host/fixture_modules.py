"""Modules the host tests configure by dotted path (``tests.host.fixture_modules.X``).

Each is the sample ``SimpleStorage`` with one behaviour changed, so failures
come from a real module over a real directory.
"""
import threading
from typing import List

from modules import StorageModule
from modules.context import get_module
from modules.errors import InsufficientStorage, LocationUnavailable
from simple.simple import SimpleStorage


class PickyStorage(SimpleStorage):
    """Refuses (InsufficientStorage) any object whose first bytes are ``FULL``."""

    def assign(self, context, module_data, stream):
        first = stream.read(4)
        if first == b"FULL":
            while stream.read(1024 * 1024):
                pass
            raise InsufficientStorage("no room for objects starting with FULL",
                                      location=self.storage_dir)
        return super().assign(context, module_data, _Prefixed(first, stream))


class _Prefixed:
    def __init__(self, first: bytes, stream):
        self._first = first
        self._stream = stream

    def read(self, size=-1):
        if not self._first:
            return self._stream.read(size)
        if size is None or size < 0:
            data, self._first = self._first + self._stream.read(), b""
            return data
        data, self._first = self._first[:size], self._first[size:]
        return data


class BuggyStorage(SimpleStorage):
    """``get_size`` fails with an unexpected error (a bug, not an SDK error)."""

    def get_size(self, context, module_data):
        raise ZeroDivisionError("a bug in BuggyStorage.get_size")

    def statistics(self, context):
        raise KeyError("a bug in BuggyStorage.statistics")


class TrackedStorage(SimpleStorage):
    """Records its instances and whether each was closed."""

    instances: List["TrackedStorage"] = []
    _lock = threading.Lock()

    def __init__(self, storage_dir=None, label="", **kwargs):
        super().__init__(storage_dir, **kwargs)
        self.label = label
        self.closed = False
        with TrackedStorage._lock:
            TrackedStorage.instances.append(self)

    def close(self):
        self.closed = True


class ForwardingStorage(StorageModule):
    """Stores everything in the module named ``target``, found through the context.

    It keeps the instance it resolved, as a wrapper that caches its children
    would, so the host must replace it when the target is reconfigured.
    """

    def __init__(self, target=None):
        super().__init__()
        if not isinstance(target, str) or not target:
            from modules.errors import ConfigurationError
            raise ConfigurationError("ForwardingStorage needs target, a module name")
        self.target = target
        self._resolved = None

    def _child(self, context):
        if self._resolved is None:
            self._resolved = get_module(context, self.target)
        return self._resolved

    def new_data(self, context):
        return self._child(context).new_data(context)

    def assign(self, context, module_data, stream):
        return self._child(context).assign(context, module_data, stream)

    def available(self, context, module_data):
        return self._child(context).available(context, module_data)

    def get_read_stream(self, context, module_data):
        return self._child(context).get_read_stream(context, module_data)

    def delete(self, context, module_data):
        return self._child(context).delete(context, module_data)

    def get_size(self, context, module_data):
        return self._child(context).get_size(context, module_data)

    def statistics(self, context):
        stats = dict(self._child(context).statistics(context))
        stats["target"] = self.target
        return stats


class CountedStreamsStorage(SimpleStorage):
    """Counts its read streams that are open (closed by the caller's ``close()``)."""

    open_streams = 0
    _lock = threading.Lock()

    def get_read_stream(self, context, module_data):
        stream = super().get_read_stream(context, module_data)
        original_close = stream.close
        with CountedStreamsStorage._lock:
            CountedStreamsStorage.open_streams += 1

        def close():
            if not stream.closed:
                with CountedStreamsStorage._lock:
                    CountedStreamsStorage.open_streams -= 1
            original_close()

        stream.close = close
        return stream


class FailingRepairStorage(SimpleStorage):
    """SimpleStorage whose whole-module ``repair(context)`` always fails (its journal is gone)."""

    capabilities = dict(SimpleStorage.capabilities, repair=True)

    def repair(self, context, module_data=None, **options):
        raise LocationUnavailable("the journal of this test module cannot be read",
                                  location=self.storage_dir)


#: Set by a test to let every hung ``HungStatisticsStorage.statistics()`` return.
STATISTICS_RELEASE = threading.Event()
#: One entry per ``HungStatisticsStorage.statistics()`` call started.
STATISTICS_CALLS: List[int] = []


class HungStatisticsStorage(SimpleStorage):
    """``statistics()`` waits for :data:`STATISTICS_RELEASE` (at most 30 s), as a hung location."""

    def statistics(self, context):
        STATISTICS_CALLS.append(1)
        STATISTICS_RELEASE.wait(30)
        return super().statistics(context)


class _BreakingStream:
    """A read stream that raises ``LocationUnavailable`` once ``limit`` bytes were read."""

    def __init__(self, stream, limit: int):
        self._stream = stream
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            raise LocationUnavailable("the test location went away mid-read", location="broken")
        data = self._stream.read(size if 0 <= size <= self._left else self._left)
        self._left -= len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._stream.seek(offset, whence)

    def close(self) -> None:
        self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class BreaksMidReadStorage(SimpleStorage):
    """SimpleStorage whose read streams fail after 1.5 MiB (a location lost mid-answer)."""

    def get_read_stream(self, context, module_data):
        return _BreakingStream(super().get_read_stream(context, module_data), 3 << 19)


class GatedAvailableStorage(SimpleStorage):
    """SimpleStorage whose ``available()`` waits for the test's go-ahead.

    ``entered`` is set when a call arrives; it then waits (at most 10 s) for
    ``release``. Lets a test land a delete between a copy's lookup of its
    source and the copy's commit.
    """

    entered = threading.Event()
    release = threading.Event()

    def available(self, context, module_data):
        GatedAvailableStorage.entered.set()
        GatedAvailableStorage.release.wait(10)
        return super().available(context, module_data)


class GatedRepairStorage(SimpleStorage):
    """SimpleStorage whose ``repair(context, module_data)`` waits for the test's go-ahead.

    ``entered`` is set when such a call arrives, which then waits (at most
    10 s) for ``release``; ``outcomes`` records what the repair found
    (``"ok"`` or the error's class name).
    """

    entered = threading.Event()
    release = threading.Event()
    outcomes: List[str] = []

    def repair(self, context, module_data=None, rate=None):
        if module_data is None:
            return super().repair(context)
        GatedRepairStorage.entered.set()
        GatedRepairStorage.release.wait(10)
        try:
            report = super().repair(context, module_data, rate)
        except Exception as error:
            GatedRepairStorage.outcomes.append(type(error).__name__)
            raise
        GatedRepairStorage.outcomes.append("ok")
        return report
