"""The integrity manifest stored with each copy: size, block digests, whole digest.

A manifest is a small JSON document (format version 1)::

    {"v": 1, "algorithm": "sha256", "block_size": 1048576, "size": 3145733,
     "blocks": ["<hex>", ...], "digest": "<hex>", "written_at": 1700000000.0,
     "check": "<hex>"}

* ``blocks[i]`` is the SHA-256 of bytes ``[i * block_size, (i + 1) * block_size)``
  (the last block may be shorter; a 0-byte object has no block);
* ``digest`` (the whole-object digest) is the SHA-256 **of the concatenated
  binary block digests**, not of the bytes themselves, so that the data is
  hashed once; ``sha256sum`` of a copy does not give it;
* ``check`` is the SHA-256 of the canonical JSON of every other field, so a
  damaged manifest is detected like a damaged block.

:class:`BlockHasher` computes a manifest while the data passes (the writer's
source, wrapped in :class:`HashingReader`, feeds it chunk by chunk; hashlib
releases the GIL for large buffers, so hashing overlaps the writers).
"""
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, List, Tuple

from modules.errors import DataCorrupted

__all__ = ["Manifest", "BlockHasher", "HashingReader", "parse", "ALGORITHM", "BLOCK_SIZE",
           "MAX_MANIFEST_BYTES"]

#: The digest algorithm (hashlib name).
ALGORITHM = "sha256"
#: Bytes per verified block.
BLOCK_SIZE = 1024 * 1024
#: Manifest format version.
VERSION = 1
#: The largest manifest read back (about 70 bytes per MiB of data: 1 TiB ~ 70 MiB).
MAX_MANIFEST_BYTES = 256 * 1024 * 1024

_DIGEST_HEX = 64


@dataclass(frozen=True)
class Manifest:
    """What a copy must hold (see the module docstring).

    Attributes:
        size: the object's size in bytes.
        block_size: bytes per block.
        blocks: hex digest of each block, in order.
        digest: hex digest of the concatenated binary block digests.
        written_at: Unix time the manifest was computed.
        algorithm: hashlib algorithm name.
    """

    size: int
    block_size: int
    blocks: Tuple[str, ...]
    digest: str
    written_at: float
    algorithm: str = ALGORITHM

    def block_count(self) -> int:
        """Return the number of blocks."""
        return len(self.blocks)

    def block_length(self, index: int) -> int:
        """Return the length in bytes of block ``index``."""
        start = index * self.block_size
        return max(0, min(self.block_size, self.size - start))

    def verify_block(self, index: int, data: bytes) -> bool:
        """Return True when ``data`` is exactly block ``index`` as written."""
        if len(data) != self.block_length(index):
            return False
        return hmac.compare_digest(hashlib.new(self.algorithm, data).hexdigest(),
                                   self.blocks[index])

    def same_object(self, other: "Manifest") -> bool:
        """Return True when ``other`` describes the same bytes (digest, size, blocks)."""
        return (self.size, self.block_size, self.digest, self.algorithm) == \
            (other.size, other.block_size, other.digest, other.algorithm)

    def to_bytes(self) -> bytes:
        """Return the manifest as the UTF-8 JSON stored at a location."""
        fields = self._fields()
        fields["check"] = _check(fields)
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def _fields(self) -> dict:
        return {"v": VERSION, "algorithm": self.algorithm, "block_size": self.block_size,
                "size": self.size, "blocks": list(self.blocks), "digest": self.digest,
                "written_at": self.written_at}


def parse(raw: bytes, where: str = "a location") -> Manifest:
    """Parse and check a stored manifest.

    Returns:
        Manifest: the manifest, self-check and digests verified.

    Raises:
        DataCorrupted: the bytes are not an intact manifest of this format.
    """
    try:
        fields = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DataCorrupted("the manifest at %s is not JSON (damaged)" % where) from None
    if not isinstance(fields, dict) or fields.get("v") != VERSION:
        raise DataCorrupted("the manifest at %s is not a version %d manifest" % (where, VERSION))
    check = fields.pop("check", None)
    if not isinstance(check, str) or not hmac.compare_digest(check, _check(fields)):
        raise DataCorrupted("the manifest at %s fails its own check (damaged)" % where)
    try:
        manifest = Manifest(size=fields["size"], block_size=fields["block_size"],
                            blocks=tuple(fields["blocks"]), digest=fields["digest"],
                            written_at=float(fields["written_at"]),
                            algorithm=fields["algorithm"])
        valid = (isinstance(manifest.size, int) and manifest.size >= 0
                 and isinstance(manifest.block_size, int) and manifest.block_size > 0
                 and manifest.algorithm == ALGORITHM
                 and len(manifest.blocks) == -(-manifest.size // manifest.block_size)
                 and all(isinstance(b, str) and len(b) == _DIGEST_HEX for b in manifest.blocks)
                 and manifest.digest == _whole(manifest.blocks))
    except (KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        raise DataCorrupted("the manifest at %s has missing or inconsistent fields" % where)
    return manifest


class BlockHasher:
    """Compute a :class:`Manifest` from data fed in pieces of any size."""

    def __init__(self, block_size: int = BLOCK_SIZE):
        self._block_size = block_size
        self._blocks: List[str] = []
        self._current = hashlib.new(ALGORITHM)
        self._filled = 0
        self.size = 0

    def update(self, data: Any) -> None:
        """Add the next bytes of the object (bytes, bytearray or memoryview)."""
        view = memoryview(data).cast("B")
        offset = 0
        while offset < len(view):
            take = min(len(view) - offset, self._block_size - self._filled)
            self._current.update(view[offset:offset + take])
            self._filled += take
            offset += take
            if self._filled == self._block_size:
                self._blocks.append(self._current.hexdigest())
                self._current = hashlib.new(ALGORITHM)
                self._filled = 0
        self.size += len(view)

    def manifest(self) -> Manifest:
        """Return the manifest of everything fed so far."""
        blocks = list(self._blocks)
        if self._filled:
            blocks.append(self._current.hexdigest())
        return Manifest(size=self.size, block_size=self._block_size, blocks=tuple(blocks),
                        digest=_whole(blocks), written_at=round(time.time(), 3))


class HashingReader:
    """Wrap a source stream: every chunk read is also fed to a :class:`BlockHasher`.

    Only ``read`` is offered (what the fan-out uses). Non-binary results are
    passed through unhashed for the caller to reject.
    """

    def __init__(self, source: Any, hasher: BlockHasher):
        self._source = source
        self.hasher = hasher

    def read(self, size: int = -1) -> Any:
        """Read from the source and hash what it returned."""
        chunk = self._source.read(size)
        if isinstance(chunk, (bytes, bytearray, memoryview)):
            self.hasher.update(chunk)
        return chunk


def _whole(blocks: Any) -> str:
    whole = hashlib.new(ALGORITHM)
    for block in blocks:
        whole.update(bytes.fromhex(block))
    return whole.hexdigest()


def _check(fields: dict) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()
