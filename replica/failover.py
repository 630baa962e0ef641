"""The replica's read stream: one copy at a time, switching copies on failure.

:func:`open_failover_stream` opens the first copy that answers, trying the
candidates in the order given (the replica puts healthy locations first, in
configured order, and error-limited ones last). Opening a candidate goes
through ``retry(location, function)``, which retries transient errors
(:class:`~modules.errors.LocationUnavailable`); ``ObjectNotFound`` or any other error moves on to
the next candidate.

While reading, a failure of the current copy (an error, or a copy that ends
early) closes it and reopens the next candidate at the same offset, so the
caller never sees a short or broken object. A candidate whose size differs
from the first copy's is not used (it is a damaged copy). When no candidate
is left, the stream raises ``ObjectNotFound`` if every copy was missing,
``DataCorrupted`` if the rest were damaged, else ``LocationUnavailable``,
listing what each location said.
"""
import logging
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from modules.errors import (
    DataCorrupted,
    LocationUnavailable,
    ObjectNotFound,
    StorageError,
    format_failures,
)
from modules.streams import ReadStream
from replica.locations import Location

__all__ = ["FailoverReadStream", "open_failover_stream", "exhausted_error"]

log = logging.getLogger(__name__)

Candidate = Tuple[Location, str]
Retry = Callable[[Location, Callable[[], Any]], Any]


class FailoverReadStream(ReadStream):
    """A seekable read stream over several copies of one object.

    Built by :func:`open_failover_stream`; use it like any
    :class:`~modules.streams.ReadStream`. ``location`` names the copy being
    read, ``failovers`` counts switches.
    """

    def __init__(self, context: Optional[dict], module_data: str, candidates: Sequence[Candidate],
                 retry: Retry, index: int, stream: Any, size: int,
                 failures: Dict[str, StorageError],
                 on_failover: Optional[Callable[[], None]] = None):
        super().__init__(size)
        self._on_failover = on_failover
        self._context = context
        self._module_data = module_data
        self._candidates = list(candidates)
        self._retry = retry
        self._index = index
        self._stream = stream
        self._stream_position = 0
        self._failures = failures
        self.failovers = 0

    @property
    def location(self) -> Optional[str]:
        """The name of the location being read (None once every copy failed)."""
        if self._stream is None:
            return None
        return self._candidates[self._index][0].name

    def _read_at(self, position: int, size: int) -> bytes:
        while True:
            if self._stream is None:
                self._reopen(position)
            location, child_md = self._candidates[self._index]
            try:
                if self._stream_position != position:
                    self._stream.seek(position)
                    self._stream_position = position
                data = self._stream.read(size)
                if not data:
                    raise DataCorrupted(
                        "the copy at %s ended at byte %d, before the object's size %d"
                        % (location.name, position, self._size),
                        module_data=self._module_data, location=location.name)
            except Exception as error:  # any failure of this copy: switch copies
                translated = location.failed(error, "read")
                log.warning("reading object from %s failed at byte %d (%s); switching copies",
                            location.name, position, translated)
                self._failures[location.name] = translated
                self._drop_stream()
                self._index += 1
                self.failovers += 1
                if self._on_failover is not None:
                    self._on_failover()
                continue
            self._stream_position = position + len(data)
            return data

    def _reopen(self, position: int) -> None:
        index, stream, _ = _open_first(self._context, self._module_data, self._candidates,
                                       self._index, self._retry, self._failures, self._size)
        self._index, self._stream, self._stream_position = index, stream, 0
        if position:
            try:
                stream.seek(position)
            except Exception as error:  # seek failing is a failure of this copy too
                location = self._candidates[index][0]
                self._failures[location.name] = location.failed(error, "seek")
                self._drop_stream()
                self._index += 1
                return
            self._stream_position = position

    def _drop_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            _close_quietly(stream)

    def _release(self) -> None:
        self._drop_stream()


def open_failover_stream(context: Optional[dict], module_data: str,
                         candidates: Sequence[Candidate], retry: Retry,
                         on_failover: Optional[Callable[[], None]] = None) -> FailoverReadStream:
    """Open the first candidate copy that answers and return a failover stream over all.

    ``on_failover`` is called each time the stream switches copies mid-read.

    Returns:
        FailoverReadStream: positioned at 0.

    Raises:
        ObjectNotFound: no candidate has the object.
        DataCorrupted: the copies found are damaged.
        LocationUnavailable: no candidate could be read (each failure listed).
    """
    failures: Dict[str, StorageError] = {}
    index, stream, size = _open_first(context, module_data, candidates, 0, retry, failures, None)
    return FailoverReadStream(context, module_data, candidates, retry, index, stream, size,
                              failures, on_failover)


def _open_first(context: Optional[dict], module_data: str, candidates: Sequence[Candidate],
                start: int, retry: Retry, failures: Dict[str, StorageError],
                size: Optional[int]) -> Tuple[int, Any, int]:
    for index in range(start, len(candidates)):
        location, child_md = candidates[index]
        try:
            stream = retry(location, lambda: location.call(context, "get_read_stream", child_md))
        except StorageError as error:
            failures[location.name] = error
            continue
        try:
            found = _stream_size(context, location, child_md, stream, retry)
        except StorageError as error:
            _close_quietly(stream)
            failures[location.name] = error
            continue
        if size is not None and found != size:
            _close_quietly(stream)
            failures[location.name] = DataCorrupted(
                "the copy at %s holds %d bytes, not %d like the copy read first"
                % (location.name, found, size), module_data=module_data, location=location.name)
            log.warning("copy at %s has size %d, expected %d; not reading it",
                        location.name, found, size)
            continue
        return index, stream, found
    raise exhausted_error(module_data, failures)


def exhausted_error(module_data: str, failures: Dict[str, StorageError]) -> StorageError:
    """Return the error for "no location could serve the object", listing each failure.

    Returns:
        StorageError: ObjectNotFound when every location lacked the object,
        DataCorrupted when every copy found was damaged, else
        LocationUnavailable; each with ``failures`` (location -> error).
    """
    details = format_failures(failures) if failures else "no location holds a copy"
    if not failures or all(isinstance(e, ObjectNotFound) for e in failures.values()):
        return ObjectNotFound("no location holds the object (%s)" % details,
                              module_data=module_data, failures=failures)
    if all(isinstance(e, (ObjectNotFound, DataCorrupted)) for e in failures.values()):
        return DataCorrupted("no undamaged copy of the object (%s)" % details,
                             module_data=module_data, failures=failures)
    return LocationUnavailable("no location could serve the object: %s" % details,
                               failures=failures)


def _stream_size(context: Optional[dict], location: Location, child_md: str, stream: Any,
                 retry: Retry) -> int:
    size = getattr(stream, "size", None)
    if isinstance(size, int) and not isinstance(size, bool):
        return size
    return retry(location, lambda: location.call(context, "get_size", child_md))


def _close_quietly(stream: Any) -> None:
    try:
        stream.close()
    except Exception as error:  # closing a failed copy must not hide the real failure
        log.debug("closing a read stream failed: %s: %s", type(error).__name__, error)
