"""The streaming content digest of :class:`~replica.dedup.DedupStorage`.

**SHA-256, with the size.** Deduplication returns one object's bytes for
another whenever their digests are equal, so the digest must make a
collision impossible in practice even when an adversary chooses the
contents (a tenant uploading crafted files). xxh3-128, the manifests'
checksum, detects accidental damage but is not collision-resistant: colliding
inputs can be constructed. SHA-256 is (no collision has ever been found), and
with the SHA extensions (``sha_ni``) of current x86 and ARM processors,
``hashlib`` hashes at well over 1 GB/s per core, as fast as the storage
below it. The size is kept beside the digest and compared too.
"""
import hashlib
import io
from typing import Optional

from modules.streams import read_source_chunk

__all__ = ["DIGEST_NAME", "HashingSource", "new_hash"]

#: The algorithm's name, as stored in the index (``sha256:<hex>``).
DIGEST_NAME = "sha256"


def new_hash():
    """Return a fresh hash object of :data:`DIGEST_NAME`."""
    return hashlib.sha256()


class HashingSource(io.RawIOBase):
    """Pass ``source`` through unchanged while hashing it and counting its bytes.

    Given to the inner module's ``assign``. Source failures are raised as
    :class:`~modules.errors.SourceStreamError` (text instead of bytes too).
    """

    def __init__(self, source):
        super().__init__()
        self._source = source
        self._hash = new_hash()
        self.size = 0
        self.finished = False

    def readable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is None or size < 0:
            size = 1024 * 1024
        chunk = read_source_chunk(self._source, size, self.size)
        if chunk:
            self._hash.update(chunk)
            self.size += len(chunk)
        else:
            self.finished = True
        return chunk

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def digest(self) -> str:
        """Return ``"sha256:<hex>"`` of everything read so far."""
        return "%s:%s" % (DIGEST_NAME, self._hash.hexdigest())
