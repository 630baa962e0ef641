"""The integrity manifest stored with each copy: size, block digests, whole digest.

A manifest is a small JSON document (format version 1)::

    {"v": 1, "algorithm": "xxh3-128", "block_size": 1048576, "size": 3145733,
     "blocks": ["<hex>", ...], "digest": "<hex>", "written_at": 1700000000.0,
     "check": "<hex>"}

* ``algorithm`` names the checksum (:mod:`replica.checksum`): ``xxh3-128``
  (the default for new objects), ``sha256`` (every manifest written before
  the choice existed), ``blake3``, or a keyed one (``blake3-keyed``,
  ``hmac-sha256``), whose manifests also carry ``"key": "<key id>"`` and, when
  known, ``"object": "<object id>"``;
* ``blocks[i]`` is the digest of bytes ``[i * block_size, (i + 1) * block_size)``
  (the last block may be shorter; a 0-byte object has no block);
* ``digest`` (the whole-object digest) is the digest **of the concatenated
  binary block digests**, not of the bytes themselves, so that the data is
  hashed once;
* ``check`` seals every other field: SHA-256 of their canonical JSON, or
  HMAC-SHA-256 with the key for keyed algorithms, so a damaged manifest is
  detected like a damaged block, and a keyed one cannot be rewritten, nor
  moved to another object, without the key.

:class:`BlockHasher` computes a manifest while the data passes (the writer's
source, wrapped in :class:`HashingReader`, feeds it chunk by chunk).
"""
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from modules.errors import DataCorrupted
from replica.checksum import ALGORITHMS, Checksum, Keyring

__all__ = ["Manifest", "BlockHasher", "HashingReader", "parse", "BLOCK_SIZE",
           "MAX_MANIFEST_BYTES", "DEFAULT_KEYRING"]

#: Bytes per verified block.
BLOCK_SIZE = 1024 * 1024
#: Manifest format version.
VERSION = 1
#: The largest manifest read back (about 50-70 bytes per MiB of data: 1 TiB ~ 70 MiB).
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
#: Verifies every unkeyed manifest; used when a caller gives no keyring.
DEFAULT_KEYRING = Keyring()


@dataclass(frozen=True)
class Manifest:
    """What a copy must hold (see the module docstring).

    Attributes:
        size: the object's size in bytes.
        block_size: bytes per block.
        blocks: hex digest of each block, in order.
        digest: hex digest of the concatenated binary block digests.
        written_at: Unix time the manifest was computed.
        checksum: the algorithm (and key) of the digests.
        object_id: the object the manifest was sealed for (keyed manifests),
            or None.
    """

    size: int
    block_size: int
    blocks: Tuple[str, ...]
    digest: str
    written_at: float
    checksum: Checksum = field(default_factory=lambda: DEFAULT_KEYRING.write, compare=False)
    object_id: Optional[str] = None

    @property
    def algorithm(self) -> str:
        """The checksum's name, as stored in the manifest."""
        return self.checksum.algorithm

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
        return hmac.compare_digest(self.checksum.hexdigest(data), self.blocks[index])

    def same_object(self, other: "Manifest") -> bool:
        """Return True when ``other`` describes the same bytes (digest, size, blocks)."""
        return (self.size, self.block_size, self.digest, self.algorithm) == \
            (other.size, other.block_size, other.digest, other.algorithm)

    def to_bytes(self) -> bytes:
        """Return the manifest as the UTF-8 JSON stored at a location."""
        fields = self._fields()
        fields["check"] = self.checksum.seal(_canonical(fields))
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def _fields(self) -> dict:
        fields = {"v": VERSION, "algorithm": self.algorithm, "block_size": self.block_size,
                  "size": self.size, "blocks": list(self.blocks), "digest": self.digest,
                  "written_at": self.written_at}
        if self.checksum.keyed:
            fields["key"] = self.checksum.key_id
            if self.object_id is not None:
                fields["object"] = self.object_id
        return fields


def parse(raw: bytes, where: str = "a location", keyring: Optional[Keyring] = None,
          object_id: Optional[str] = None, require_key: bool = False) -> Manifest:
    """Parse and check a stored manifest.

    Args:
        raw: the stored bytes.
        where: the location's name, for messages.
        keyring: the checksums and keys this replica accepts
            (:data:`DEFAULT_KEYRING`: every unkeyed algorithm).
        object_id: the object the manifest must belong to; a keyed manifest
            sealed for another object is refused.
        require_key: refuse a manifest without a keyed seal.

    Returns:
        Manifest: the manifest, self-check and digests verified.

    Raises:
        DataCorrupted: the bytes are not an intact manifest of this format,
            were sealed with a key this replica lacks, or belong to another
            object.
    """
    try:
        fields = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DataCorrupted("the manifest at %s is not JSON (damaged)" % where) from None
    if not isinstance(fields, dict) or fields.get("v") != VERSION:
        raise DataCorrupted("the manifest at %s is not a version %d manifest" % (where, VERSION))
    checksum = (keyring or DEFAULT_KEYRING).for_manifest(fields.get("algorithm"),
                                                         fields.get("key"), where, require_key)
    check = fields.pop("check", None)
    if not isinstance(check, str) or not hmac.compare_digest(check,
                                                             checksum.seal(_canonical(fields))):
        raise DataCorrupted("the manifest at %s fails its own check (%s)"
                            % (where, "altered, or sealed with another key" if checksum.keyed
                               else "damaged"))
    sealed_for = fields.get("object")
    if checksum.keyed and object_id is not None and sealed_for != object_id:
        raise DataCorrupted("the manifest at %s belongs to another object (%s), not %s"
                            % (where, sealed_for, object_id))
    hex_length = ALGORITHMS[checksum.algorithm]
    try:
        manifest = Manifest(size=fields["size"], block_size=fields["block_size"],
                            blocks=tuple(fields["blocks"]), digest=fields["digest"],
                            written_at=float(fields["written_at"]), checksum=checksum,
                            object_id=sealed_for if isinstance(sealed_for, str) else None)
        valid = (isinstance(manifest.size, int) and manifest.size >= 0
                 and isinstance(manifest.block_size, int) and manifest.block_size > 0
                 and len(manifest.blocks) == -(-manifest.size // manifest.block_size)
                 and all(isinstance(b, str) and len(b) == hex_length for b in manifest.blocks)
                 and manifest.digest == _whole(checksum, manifest.blocks))
    except (KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        raise DataCorrupted("the manifest at %s has missing or inconsistent fields" % where)
    return manifest


class BlockHasher:
    """Compute a :class:`Manifest` from data fed in pieces of any size.

    Args:
        checksum: the algorithm (and key) to use (default: xxh3-128).
        block_size: bytes per block.
        object_id: the object the manifest is for (sealed into keyed manifests).
    """

    def __init__(self, checksum: Optional[Checksum] = None, block_size: int = BLOCK_SIZE,
                 object_id: Optional[str] = None):
        self._checksum = checksum or DEFAULT_KEYRING.write
        self._object_id = object_id
        self._block_size = block_size
        self._blocks: List[str] = []
        self._current = self._checksum.new()
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
                self._current = self._checksum.new()
                self._filled = 0
        self.size += len(view)

    def manifest(self) -> Manifest:
        """Return the manifest of everything fed so far."""
        blocks = list(self._blocks)
        if self._filled:
            blocks.append(self._current.hexdigest())
        return Manifest(size=self.size, block_size=self._block_size, blocks=tuple(blocks),
                        digest=_whole(self._checksum, blocks), written_at=round(time.time(), 3),
                        checksum=self._checksum, object_id=self._object_id)


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


def _whole(checksum: Checksum, blocks: Any) -> str:
    return checksum.hexdigest(b"".join(bytes.fromhex(block) for block in blocks))


def _canonical(fields: dict) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")
