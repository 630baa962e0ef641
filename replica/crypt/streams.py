"""Streams of :class:`~replica.crypt.CryptStorage`: encrypting a source, decrypting a read.

Both work one chunk at a time (see :mod:`replica.crypt.format`): memory is
bounded by a few chunks whatever the object's size.
"""
import io
from typing import Callable, Optional, Tuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from modules.errors import DataCorrupted, StorageError
from modules.streams import ReadStream, read_source_chunk
from replica.crypt import format as fmt

__all__ = ["EncryptingSource", "DecryptingStream", "read_exactly"]

#: Chunks decrypted by one primitive read at most (bounds memory to ~1 MiB per stream).
_CHUNKS_PER_READ = 4


class EncryptingSource(io.RawIOBase):
    """A binary stream of the encrypted form of ``source`` (header, then chunks).

    Given to the inner module's ``assign`` in place of the source. A chunk is
    sealed only once the next byte (or the end) is seen, so that the last
    chunk carries the last flag. Errors of the source are raised as
    :class:`~modules.errors.SourceStreamError` (see
    :func:`modules.streams.read_source_chunk`).

    Args:
        source: the plaintext stream given to ``CryptStorage.assign``.
        header: the new object's header.
        key: the object's own key (:func:`~replica.crypt.format.object_key`).
        aad: the associated data of every chunk (header | object id).
        on_chunk: called with the plaintext size of each sealed chunk.
    """

    def __init__(self, source, header: fmt.Header, key: bytes, aad: bytes,
                 on_chunk: Optional[Callable[[int], None]] = None):
        super().__init__()
        self._source = source
        self._header = header
        self._aead = AESGCM(key)
        self._aad = aad
        self._chunk_size = header.chunk_size
        self._pending = bytearray()
        self._output = memoryview(header.raw)
        self._index = 0
        self._read = 0
        self._source_done = False
        self._finished = False
        self._on_chunk = on_chunk

    def readable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        """Return up to ``size`` ciphertext bytes (at most one chunk); ``b''`` at the end."""
        while not self._output:
            if self._finished:
                return b""
            self._seal_next()
        if size is None or size < 0 or size >= len(self._output):
            data, self._output = self._output, memoryview(b"")
        else:
            data, self._output = self._output[:size], self._output[size:]
        return bytes(data)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _seal_next(self) -> None:
        size = self._chunk_size
        while len(self._pending) <= size and not self._source_done:
            piece = read_source_chunk(self._source, size + 1 - len(self._pending), self._read)
            if not piece:
                self._source_done = True
                break
            self._read += len(piece)
            self._pending += piece
        last = self._source_done and len(self._pending) <= size
        plaintext = bytes(self._pending[:size])
        del self._pending[:size]
        self._output = memoryview(self._aead.encrypt(fmt.nonce(self._header, self._index, last),
                                                     plaintext, self._aad))
        if self._on_chunk is not None:
            self._on_chunk(len(plaintext))
        self._index += 1
        self._finished = last


class DecryptingStream(ReadStream):
    """A seekable plaintext stream over an inner stream of an encrypted object.

    Reading ``n`` bytes at ``k`` reads and authenticates only the chunks that
    hold them; the last decrypted chunk is kept for the next read. Any
    authentication failure raises :class:`~modules.errors.DataCorrupted`:
    wrong bytes are never returned.

    Args:
        inner: the inner module's read stream, positioned after the header.
        header: the object's parsed header.
        key: the object's own key.
        aad: header | object id.
        size: the plaintext size.
        describe: a short name of the object for messages.
        rewrite: turns an inner stream's error into the wrapper's SDK error.
        on_failure: called once per authentication failure (statistics).
        on_bytes: called with the plaintext bytes of each batch of chunks
            decrypted (statistics).
    """

    def __init__(self, inner, header: fmt.Header, key: bytes, aad: bytes, size: int,
                 describe: str, rewrite: Callable[[BaseException], StorageError],
                 on_failure: Optional[Callable[[], None]] = None,
                 on_bytes: Optional[Callable[[int], None]] = None):
        super().__init__(size)
        self._inner = inner
        self._inner_position = fmt.HEADER_SIZE
        self._header = header
        self._aead = AESGCM(key)
        self._aad = aad
        self._chunk_size = header.chunk_size
        self._chunks = fmt.chunk_count(size, header.chunk_size)
        self._describe = describe
        self._rewrite = rewrite
        self._on_failure = on_failure
        self._on_bytes = on_bytes
        self._cached: Tuple[int, bytes] = (-1, b"")

    def authenticate_first_chunk(self) -> None:
        """Read and authenticate chunk 0 now (for an empty object, which no read touches).

        Raises:
            DataCorrupted: it fails authentication.
        """
        sealed = self._read_inner(fmt.HEADER_SIZE,
                                  min(self._chunk_size, self._size) + fmt.TAG_SIZE)
        self._cached = (0, self._open(0, sealed))

    def _read_at(self, position: int, size: int) -> bytes:
        chunk_size = self._chunk_size
        first = position // chunk_size
        if self._cached[0] == first:
            plain = self._cached[1]
            start = position - first * chunk_size
            return plain[start:start + size]
        last = min(self._chunks - 1, (position + size - 1) // chunk_size,
                   first + _CHUNKS_PER_READ - 1)
        begin = fmt.chunk_offset(first, chunk_size)
        end = min(fmt.chunk_offset(last + 1, chunk_size),
                  fmt.HEADER_SIZE + self._size + self._chunks * fmt.TAG_SIZE)
        sealed = memoryview(self._read_inner(begin, end - begin))
        parts = []
        for index in range(first, last + 1):
            offset = (index - first) * (chunk_size + fmt.TAG_SIZE)
            piece = sealed[offset:offset + chunk_size + fmt.TAG_SIZE]
            parts.append(self._open(index, piece))
        self._cached = (last, parts[-1])
        if self._on_bytes is not None:
            self._on_bytes(sum(len(part) for part in parts))
        plain = parts[0] if len(parts) == 1 else b"".join(parts)
        start = position - first * chunk_size
        return plain[start:start + size]

    def _open(self, index: int, sealed) -> bytes:
        try:
            return self._aead.decrypt(fmt.nonce(self._header, index, index == self._chunks - 1),
                                      sealed, self._aad)
        except InvalidTag:
            if self._on_failure is not None:
                self._on_failure()
            raise DataCorrupted(
                "%s: chunk %d of %d fails authentication: the stored ciphertext was changed, "
                "truncated, extended, reordered, swapped with another object's, or encrypted "
                "with a different key under the same key id" % (
                    self._describe, index, self._chunks)) from None

    def _read_inner(self, position: int, size: int) -> bytes:
        try:
            if position != self._inner_position:
                self._inner.seek(position)
                self._inner_position = position
            data = read_exactly(self._inner, size)
        except (StorageError, OSError) as error:
            self._inner_position = -1  # unknown after a failure: seek next time
            raise self._rewrite(error) from error
        self._inner_position += len(data)
        if len(data) != size:
            raise DataCorrupted("%s ends %d bytes early: the stored ciphertext was truncated"
                                % (self._describe, size - len(data)))
        return data

    def _release(self) -> None:
        self._cached = (-1, b"")
        self._inner.close()


def read_exactly(stream, size: int) -> bytes:
    """Read ``size`` bytes from ``stream`` (fewer only at its end), looping over short reads."""
    data = stream.read(size)
    if len(data) >= size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        piece = stream.read(size - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)
