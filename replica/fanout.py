"""Fan one source stream out to several writers with bounded memory and back-pressure.

The caller's thread reads the source once, in chunks, and hands the same
``bytes`` objects to one :class:`ChunkChannel` per target. Each target's
writer runs on a worker of the replica's pool and reads its channel as a
binary stream (typically inside a child module's ``assign``). A channel holds
at most ``depth`` chunks, so memory stays at about ``depth + 1`` chunks
whatever the object size, and the slowest live writer sets the pace.

A writer that raises, or stops reading for longer than ``write_timeout``,
is dropped from the write: its channel is aborted, so its next read raises
:class:`~modules.errors.SourceStreamError` inside the child, which then
discards its partial copy (the SDK contract). The other writers carry on.
If the source fails, every channel is aborted and the source's error is
raised once all writers have stopped, so nothing is left anywhere.

An object already in memory (:meth:`FanOut.run_buffered`, for objects that
fit in one chunk) skips the pumping: each channel is created holding the
whole object and its end, so no writer ever waits for the producer and the
producer never waits for room (issue 10: fewer hand-offs for small objects).
"""
import collections
import concurrent.futures
import io
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Set, Tuple

from modules.errors import LocationTimeout, LocationUnavailable, SourceStreamError, StorageError
from modules.streams import read_source_chunk
from replica.workers import WorkerPool

__all__ = ["ChunkChannel", "FanOut", "FanOutResult", "read_ahead", "CHUNK_SIZE", "QUEUE_DEPTH"]

log = logging.getLogger(__name__)

#: Bytes read from the source per call.
CHUNK_SIZE = 1024 * 1024
#: Chunks buffered per writer.
QUEUE_DEPTH = 4


class _Stalled(Exception):
    """The consumer did not make room within the timeout."""


class ChunkChannel(io.RawIOBase):
    """A bounded one-producer, one-consumer queue of chunks, read as a binary stream.

    The producer calls :meth:`put`, :meth:`finish` and :meth:`abort`; the
    consumer calls :meth:`read` (it is what a child's ``assign`` receives).
    Not seekable.
    """

    def __init__(self, depth: int = QUEUE_DEPTH):
        super().__init__()
        self._cond = threading.Condition()
        self._chunks: collections.deque = collections.deque()
        self._depth = depth
        self._eof = False
        self._abort: Optional[str] = None
        self._consumer_done = False
        self._chunk = b""
        self._offset = 0
        #: Bytes handed to the consumer so far.
        self.consumed = 0
        #: True once the consumer read the end of the data.
        self.reached_eof = False

    # -- producer side ----------------------------------------------------

    def put(self, chunk: bytes, timeout: float) -> bool:
        """Queue ``chunk`` (``b''`` marks the end), waiting up to ``timeout`` s for room.

        Returns:
            bool: False when the consumer has already finished (it will not
            read this chunk).

        Raises:
            _Stalled: no room within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._chunks) >= self._depth and not self._consumer_done:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Stalled()
                self._cond.wait(remaining)
            if self._consumer_done:
                return False
            if chunk:
                self._chunks.append(chunk)
            else:
                self._eof = True
            self._cond.notify_all()
            return True

    def abort(self, reason: str) -> None:
        """Make the consumer's next read raise SourceStreamError(reason); drop queued chunks."""
        with self._cond:
            if self._abort is None:
                self._abort = reason
            self._chunks.clear()
            self._cond.notify_all()

    def consumer_finished(self) -> None:
        """Called when the consumer stops for good: producers stop waiting for it."""
        with self._cond:
            self._consumer_done = True
            self._chunks.clear()
            self._cond.notify_all()

    # -- consumer side ----------------------------------------------------

    def readable(self) -> bool:
        """Return True."""
        return True

    def seekable(self) -> bool:
        """Return False: the data arrives once."""
        return False

    def tell(self) -> int:
        """Return the number of bytes read so far."""
        return self.consumed

    def read(self, size: Optional[int] = -1) -> bytes:
        """Return up to ``size`` bytes (everything left when -1/None); ``b''`` at the end.

        Raises:
            SourceStreamError: the producer aborted this channel (source
                failed, or this writer was dropped).
        """
        if size is None or size < 0:
            parts = []
            while True:
                part = self.read(CHUNK_SIZE)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        if size == 0:
            return b""
        if self._offset >= len(self._chunk):
            self._chunk = self._next_chunk()
            self._offset = 0
            if not self._chunk:
                return b""
        if self._offset == 0 and size >= len(self._chunk):
            data = self._chunk
        else:
            data = self._chunk[self._offset:self._offset + size]
        self._offset += len(data)
        self.consumed += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer``; return the number of bytes (0 at the end)."""
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        """Return everything left."""
        return self.read(-1)

    def _next_chunk(self) -> bytes:
        with self._cond:
            while not self._chunks and not self._eof and self._abort is None:
                self._cond.wait()
            if self._abort is not None:
                raise SourceStreamError(self._abort)
            if self._chunks:
                chunk = self._chunks.popleft()
                self._cond.notify_all()
                return chunk
            self.reached_eof = True
            return b""


@dataclass
class FanOutResult:
    """What happened to each target of one fan-out.

    Attributes:
        size: bytes read from the source.
        failures: target name -> the SDK error that dropped it.
        late: target name -> future of a writer that was given up on after
            the end of the data but may still finish (see :meth:`FanOut.run`).
        incomplete: targets whose writer returned normally without reading
            all the data: they may hold a truncated copy to remove.
        dropped: targets the fan-out itself gave up on (stalled, or too slow
            to finish); their writers did not report an error themselves.
    """

    size: int = 0
    failures: Dict[str, StorageError] = field(default_factory=dict)
    late: Dict[str, concurrent.futures.Future] = field(default_factory=dict)
    incomplete: Set[str] = field(default_factory=set)
    dropped: Set[str] = field(default_factory=set)


class FanOut:
    """Copies one source to several writers (see the module docstring).

    Args:
        pool: the replica's worker pool.
        write_timeout: seconds a writer may leave its channel full (or take
            to finish after the end of the data) before it is dropped.
        queue_timeout: seconds to wait for free workers before giving up.
        chunk_size: bytes read from the source per call.
        depth: chunks buffered per writer.
    """

    def __init__(self, pool: WorkerPool, write_timeout: float, queue_timeout: float,
                 chunk_size: int = CHUNK_SIZE, depth: int = QUEUE_DEPTH):
        self._pool = pool
        self._write_timeout = write_timeout
        self._queue_timeout = queue_timeout
        self._chunk_size = chunk_size
        self._depth = depth

    def run(self, source: BinaryIO, writers: Dict[str, Callable[[ChunkChannel], Any]],
            queue_timeout: Optional[float] = None) -> FanOutResult:
        """Read ``source`` once and feed every writer ``writers[name](channel)`` in parallel.

        ``queue_timeout`` overrides the configured wait for free workers
        (0: do not wait).

        Returns:
            FanOutResult: per-target failures; a target not in ``failures``
            consumed all the data and its writer returned normally.

        Raises:
            SourceStreamError: the source failed or is not binary (SDK errors
                from the source pass through); every writer was aborted and
                has stopped.
            LocationUnavailable: no workers became free within
                ``queue_timeout`` (nothing was read or written).
        """
        result = FanOutResult()
        if not writers:
            return result
        wait = self._queue_timeout if queue_timeout is None else queue_timeout
        if not self._pool.reserve(len(writers), wait):
            raise LocationUnavailable(
                "all %d replica workers stayed busy for %.0f s; raise the workers option or look "
                "for locations that hang (statistics shows busy workers)"
                % (self._pool.size, wait))
        channels: Dict[str, ChunkChannel] = {}
        futures: Dict[str, concurrent.futures.Future] = {}
        try:
            for name, writer in writers.items():
                channel = channels[name] = ChunkChannel(self._depth)
                futures[name] = self._pool.submit(_run_writer, writer, channel)
        except BaseException:
            self._pool.release(len(writers) - len(futures))
            self._abort_all(channels, futures, "the replica is closing")
            raise
        try:
            result.size = self._pump(source, channels, result.failures, result.dropped)
        except BaseException as error:
            self._abort_all(channels, futures, "the write was abandoned: %s: %s"
                            % (type(error).__name__, error))
            raise
        self._collect(channels, futures, result)
        return result

    def run_buffered(self, data: bytes, writers: Dict[str, Callable[[ChunkChannel], Any]],
                     queue_timeout: Optional[float] = None) -> FanOutResult:
        """Feed ``data`` (the whole object, already read) to every writer in parallel.

        The same as :meth:`run` over a source holding ``data``, without the
        producer loop: each channel starts full. Meant for objects of at most
        one chunk, so memory stays as with :meth:`run`.

        Returns:
            FanOutResult: as :meth:`run`.

        Raises:
            LocationUnavailable: no workers became free within ``queue_timeout``.
        """
        result = FanOutResult(size=len(data))
        if not writers:
            return result
        wait = self._queue_timeout if queue_timeout is None else queue_timeout
        if not self._pool.reserve(len(writers), wait):
            raise LocationUnavailable(
                "all %d replica workers stayed busy for %.0f s; raise the workers option or look "
                "for locations that hang (statistics shows busy workers)"
                % (self._pool.size, wait))
        channels: Dict[str, ChunkChannel] = {}
        futures: Dict[str, concurrent.futures.Future] = {}
        try:
            for name, writer in writers.items():
                channel = channels[name] = ChunkChannel(max(2, self._depth))
                if data:
                    channel.put(data, 0)
                channel.put(b"", 0)
                futures[name] = self._pool.submit(_run_writer, writer, channel)
        except BaseException:
            self._pool.release(len(writers) - len(futures))
            self._abort_all(channels, futures, "the replica is closing")
            raise
        self._collect(channels, futures, result)
        return result

    def _pump(self, source: BinaryIO, channels: Dict[str, ChunkChannel],
              failures: Dict[str, StorageError], dropped: Set[str]) -> int:
        live = dict(channels)
        total = 0
        while live:
            chunk = read_source_chunk(source, self._chunk_size, total)
            for name, channel in list(live.items()):
                try:
                    accepted = channel.put(chunk, self._write_timeout)
                except _Stalled:
                    reason = ("location %s stopped reading for %.1f s after %d bytes; dropped from "
                              "this write" % (name, self._write_timeout, channel.consumed))
                    log.warning(reason)
                    channel.abort(reason)
                    failures[name] = LocationTimeout(reason, location=name)
                    dropped.add(name)
                    accepted = False
                if not accepted:
                    del live[name]
            total += len(chunk)
            if not chunk:
                break
        return total

    def _collect(self, channels: Dict[str, ChunkChannel],
                 futures: Dict[str, concurrent.futures.Future], result: FanOutResult) -> None:
        deadline = time.monotonic() + self._write_timeout
        for name, future in futures.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                if name not in result.failures:
                    reason = ("location %s did not finish storing within %.1f s of the end of "
                              "the data; dropped from this write" % (name, self._write_timeout))
                    log.warning(reason)
                    result.failures[name] = LocationTimeout(reason, location=name)
                    result.dropped.add(name)
                channels[name].abort("dropped: did not finish in time")
                result.late[name] = future
                continue
            except StorageError as error:
                result.failures.setdefault(name, error)
                continue
            except Exception as error:  # writers translate; this is a safety net
                result.failures.setdefault(name, LocationUnavailable(
                    "location %s failed: %s: %s" % (name, type(error).__name__, error),
                    location=name))
                continue
            if name not in result.failures and not channels[name].reached_eof:
                result.incomplete.add(name)
                result.failures[name] = LocationUnavailable(
                    "location %s returned from assign after reading %d of %d bytes"
                    % (name, channels[name].consumed, result.size), location=name)

    def _abort_all(self, channels: Dict[str, ChunkChannel],
                   futures: Dict[str, concurrent.futures.Future], reason: str) -> None:
        for channel in channels.values():
            channel.abort(reason)
        deadline = time.monotonic() + self._write_timeout
        for name, future in futures.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                log.error("location %s did not stop within %.1f s after the write was abandoned; "
                          "it may keep a partial copy", name, self._write_timeout)
            except BaseException as error:  # expected: the writer was aborted
                log.debug("location %s stopped after the abort: %s: %s", name,
                          type(error).__name__, error)


def read_ahead(source: BinaryIO, limit: int = CHUNK_SIZE) -> Tuple[Optional[bytes], BinaryIO]:
    """Read up to ``limit`` bytes of ``source`` to learn whether the whole object is that small.

    Returns:
        tuple: ``(data, None)`` when the source ended within ``limit`` bytes
        (``data`` is the whole object); otherwise ``(None, stream)`` where
        ``stream`` yields the bytes already read, then the rest of ``source``.
        At most ``limit`` plus one read's bytes are held.

    Raises:
        SourceStreamError: the source failed or is not binary (SDK errors
            from the source pass through), as :func:`read_source_chunk`.
    """
    parts = []
    held = 0
    while held <= limit:
        chunk = read_source_chunk(source, limit - held + 1, held)
        if not chunk:
            return b"".join(parts), None
        parts.append(chunk)
        held += len(chunk)
    return None, _Prefixed(parts, source)


class _Prefixed:
    """A source whose first bytes were already read: those, then the rest (``read`` only)."""

    def __init__(self, parts: List[bytes], source: BinaryIO):
        self._parts = collections.deque(parts)
        self._source = source

    def read(self, size: int = -1) -> Any:
        """Return bytes read ahead first (up to ``size``), then read the source."""
        if not self._parts:
            return self._source.read(size)
        part = self._parts.popleft()
        if size is not None and 0 <= size < len(part):
            self._parts.appendleft(part[size:])
            part = part[:size]
        return part


def _run_writer(writer: Callable[[ChunkChannel], Any], channel: ChunkChannel) -> Any:
    try:
        return writer(channel)
    finally:
        channel.consumer_finished()

