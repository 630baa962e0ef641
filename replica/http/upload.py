"""The streaming request body of an HTTPStorage upload, and its source's failures.

requests sends an iterable body chunk by chunk: with ``Content-Length`` when
the body has a length (a seekable source), with chunked transfer encoding
otherwise. Errors raised by the source while the body is being sent must not
be mistaken for network failures (urllib3 would wrap an ``OSError`` from the
source as a connection error), so :class:`SourceBody` keeps the source's
error and raises a private marker instead; :func:`source_error` turns it back
into the SDK error once the request has been abandoned.
"""
import io
import logging
from typing import BinaryIO, Callable, Iterator, Optional, Tuple

from modules.errors import SourceStreamError, StorageError

__all__ = ["SourceBody", "SizedSourceBody", "measure_source", "source_error"]

log = logging.getLogger(__name__)


class _SourceFailed(Exception):
    """Raised inside the body iterator; deliberately not an OSError."""


class SourceBody:
    """Iterate over ``source.read(chunk_size)`` until ``b''``; count what was sent.

    ``error`` holds the source's exception (or a SourceStreamError for a
    text stream or a wrong length) once iteration has failed.
    """

    def __init__(self, source: BinaryIO, chunk_size: int, length: Optional[int] = None):
        self._source = source
        self._chunk_size = chunk_size
        self._length = length
        self.sent = 0
        self.error: Optional[BaseException] = None

    def __iter__(self) -> Iterator[bytes]:
        self.sent = 0
        self.error = None
        while True:
            want = self._chunk_size
            if self._length is not None:
                # Ask for one byte more than declared at the end, to notice a longer source.
                want = max(1, min(want, self._length - self.sent + 1))
            try:
                chunk = self._source.read(want)
            except Exception as error:
                self._fail(error)
            if chunk is None:  # a non-blocking raw stream with nothing ready
                self._fail(SourceStreamError(
                    "the source stream returned None (non-blocking?); give a blocking binary "
                    "stream"))
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                self._fail(SourceStreamError(
                    "assign needs a binary stream, but read() returned %s; open files in 'rb' "
                    "mode" % type(chunk).__name__))
            if not chunk:
                break
            self.sent += len(chunk)
            if self._length is not None and self.sent > self._length:
                self._fail(SourceStreamError(
                    "the source stream is longer than the %d bytes it measured" % self._length))
            yield bytes(chunk) if not isinstance(chunk, bytes) else chunk
        if self._length is not None and self.sent != self._length:
            self._fail(SourceStreamError(
                "the source stream ended after %d of the %d bytes it measured" % (
                    self.sent, self._length)))

    def _fail(self, error: BaseException) -> None:
        self.error = error
        raise _SourceFailed("the source stream failed") from error


class SizedSourceBody(SourceBody):
    """A :class:`SourceBody` of known length: requests sends ``Content-Length``."""

    def __len__(self) -> int:
        return self._length


def measure_source(source: BinaryIO) -> Tuple[Optional[int], Optional[Callable[[], None]]]:
    """Return ``(bytes remaining, rewind)`` for a seekable source, ``(None, None)`` otherwise.

    ``rewind()`` moves the source back to where it was, for a retry.
    """
    try:
        if not callable(getattr(source, "seekable", None)) or not source.seekable():
            return None, None
        start = source.tell()
        source.seek(0, io.SEEK_END)
        end = source.tell()
        source.seek(start)
    except Exception as error:  # a stream that claims to seek but cannot: stream it once
        log.debug("source claims to be seekable but is not (%s: %s); it will not be retried",
                  type(error).__name__, error)
        return None, None
    if not isinstance(start, int) or not isinstance(end, int) or end < start:
        return None, None

    def rewind() -> None:
        source.seek(start)

    return end - start, rewind


def source_error(body: SourceBody) -> Optional[StorageError]:
    """Return the SDK error for the source's failure recorded in ``body``, or None.

    SDK errors raised by the source pass through as they are; anything else
    becomes :class:`SourceStreamError` with the original as ``__cause__``.
    """
    error = body.error
    if error is None:
        return None
    if isinstance(error, StorageError):
        return error
    wrapped = SourceStreamError("reading the source stream failed after %d bytes: %s: %s" % (
        body.sent, type(error).__name__, error))
    wrapped.__cause__ = error
    return wrapped
