"""Read streams: what ``get_read_stream`` returns.

:class:`ReadStream` gives a module a complete, seekable, context-managed
stream from one primitive, ``_read_at(position, size)``, so that every module
handles ``seek``/``tell``/``read(-1)``/EOF the same way.
"""
import io
import os
from typing import Optional

from modules.errors import DataCorrupted, LocationUnavailable, SourceStreamError, StorageError

__all__ = ["ReadStream", "FileReadStream", "read_source_chunk"]

#: Largest piece a single primitive call is asked for when reading to the end.
DEFAULT_CHUNK_SIZE = 1024 * 1024


class ReadStream(io.RawIOBase):
    """A read-only, seekable byte stream of known size.

    Subclasses implement :meth:`_read_at` and may override :meth:`_release`
    (called once by :meth:`close`). Seeking only moves the position; the next
    read starts there. Seeking past the end is allowed and reads return
    ``b''`` there, as with files.
    """

    def __init__(self, size: int):
        super().__init__()
        self._size = int(size)
        self._position = 0

    @property
    def size(self) -> int:
        """The number of bytes in the stream."""
        return self._size

    # -- the primitive ----------------------------------------------------

    def _read_at(self, position: int, size: int) -> bytes:
        """Return up to ``size`` (> 0) bytes starting at ``position`` (< size).

        Must return at least one byte; raise an SDK error on failure.
        """
        raise NotImplementedError

    def _release(self) -> None:
        """Free whatever the stream holds (files, connections)."""

    # -- io interface -----------------------------------------------------

    def readable(self) -> bool:
        """Return True: the stream can be read."""
        return True

    def seekable(self) -> bool:
        """Return True: the stream can seek."""
        return True

    def tell(self) -> int:
        """Return the current position."""
        self._check_open()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` relative to start, current position or end.

        Returns:
            int: the new position.

        Raises:
            ValueError: the stream is closed, ``whence`` is unknown or the
                resulting position is negative.
        """
        self._check_open()
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._position + offset
        elif whence == io.SEEK_END:
            target = self._size + offset
        else:
            raise ValueError("invalid whence %r (use 0, 1 or 2)" % (whence,))
        if target < 0:
            raise ValueError("cannot seek to negative position %d" % target)
        self._position = int(target)
        return self._position

    def read(self, size: Optional[int] = -1) -> bytes:
        """Read ``size`` bytes, fewer only at the end (all that remain when -1 or None).

        A read that fails leaves the position where it was.

        Returns:
            bytes: ``b''`` only at the end of the stream.

        Raises:
            ValueError: the stream is closed.
            StorageError: the storage failed (the subclass's SDK error).
        """
        self._check_open()
        remaining = self._size - self._position
        if size is None or size < 0:
            size = remaining
        size = min(size, remaining)
        if size <= 0:
            return b""
        data = self._read_at(self._position, min(size, DEFAULT_CHUNK_SIZE))
        self._position += len(data)
        if len(data) == size:
            return data
        parts = [data]
        size -= len(data)
        start = self._position - len(data)
        try:
            while size > 0:  # the primitive may return less than asked: keep going
                data = self._read_at(self._position, min(size, DEFAULT_CHUNK_SIZE))
                self._position += len(data)
                size -= len(data)
                parts.append(data)
        except BaseException:
            self._position = start  # a failed read consumes nothing: the caller may retry
            raise
        return b"".join(parts)

    def readinto(self, buffer) -> int:
        """Read into a writable buffer; return the number of bytes read."""
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        """Read everything from the position to the end."""
        return self.read(-1)

    def close(self) -> None:
        """Release the stream's resources; further reads raise ValueError."""
        if not self.closed:
            try:
                self._release()
            finally:
                super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed stream")


class FileReadStream(ReadStream):
    """A :class:`ReadStream` over an open local file (unbuffered reads, one fd).

    OS errors are reported as :class:`LocationUnavailable` naming ``location``.
    """

    def __init__(self, file, size: int, location: Optional[str] = None):
        super().__init__(size)
        self._file = file
        self._file_position = 0
        self._location = location

    def _read_at(self, position: int, size: int) -> bytes:
        try:
            if position != self._file_position:
                self._file.seek(position)
            data = self._file.read(size)
        except OSError as error:
            raise LocationUnavailable("reading %s failed: %s" % (
                self._location or "a stored file", os.strerror(error.errno) if error.errno else error),
                location=self._location) from error
        if not data:
            raise DataCorrupted(
                "%s ended at byte %d, before its size %d (the file was changed underneath)" % (
                    self._location or "the stored file", position, self._size),
                location=self._location)
        self._file_position = position + len(data)
        return data

    def _release(self) -> None:
        self._file.close()

    def fileno(self) -> int:
        """Return the open file's descriptor, for zero-copy senders (``sendfile(2)``).

        The descriptor's own offset is not the stream's position: use
        :meth:`tell` and pass offsets explicitly (``os.sendfile`` does).
        """
        self._check_open()
        return self._file.fileno()


def read_source_chunk(source, size: int, done: int = 0) -> bytes:
    """Read up to ``size`` bytes from the source stream given to ``assign``.

    ``done`` (bytes read so far) only goes into error messages.

    Returns:
        bytes: a chunk (``b''`` at the end); a ``bytearray`` or
        ``memoryview`` from the source is copied, since sources may reuse
        their buffers.

    Raises:
        SourceStreamError: the source raised (chained as ``__cause__``),
            returned None (a non-blocking stream) or text.
        StorageError: SDK errors raised by the source pass through.
    """
    try:
        chunk = source.read(size)
    except StorageError:
        raise
    except Exception as error:
        raise SourceStreamError("reading the source stream failed after %d bytes: %s: %s" % (
            done, type(error).__name__, error)) from error
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    if chunk is None:
        raise SourceStreamError("the source stream returned None (a non-blocking stream?); "
                                "assign needs a blocking binary stream")
    raise SourceStreamError("assign needs a binary stream, but read() returned %s; open files "
                            "in 'rb' mode" % type(chunk).__name__)
