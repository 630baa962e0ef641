"""The at-rest format of :class:`~replica.crypt.CryptStorage`: header, chunks, nonces.

An encrypted object is a 40-byte header followed by chunks::

    header  = b"VSMC" | version (1) | algorithm (1) | chunk shift (1) | 0 (1)
              | key id (8) | salt (16) | nonce prefix (7) | 0 (1)
    chunk i = AES-256-GCM(object key, nonce_i, plaintext_i, aad) -> ciphertext_i | tag (16)

This is the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár
("Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance",
CRYPTO 2015), as used by Tink's streaming AEAD and age:

* ``nonce_i = nonce prefix (7) | i (4, big-endian) | last (1: 1 for the last
  chunk, else 0)``: reordering chunks changes their index, dropping the end
  turns a non-last chunk into the last one; both fail authentication;
* the **object key** is HKDF-SHA256(master key, salt, info = "vsm-crypt v1 "
  + object id): every object has its own key, so nonces never repeat under
  one key however many objects are written, and a chunk or a whole object
  moved under another object's module_data (another object id) does not
  decrypt;
* ``aad = header | object id``: any change to the header is detected by the
  first chunk read.

Every chunk but the last holds exactly ``chunk size`` plaintext bytes; the
last holds 1 to ``chunk size`` (0 only for an empty object, which is one
empty chunk). So the plaintext size follows from the stored size alone
(:func:`plaintext_size`) and the chunks holding any byte range are known
without reading anything else (:func:`chunk_offset`).
"""
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["HEADER_SIZE", "TAG_SIZE", "Header", "plaintext_size", "ciphertext_size",
           "chunk_count", "chunk_offset", "nonce", "object_key", "DEFAULT_CHUNK_SIZE",
           "MIN_CHUNK_SIZE", "MAX_CHUNK_SIZE", "MAX_WRITE_CHUNK_SIZE", "FormatError"]

MAGIC = b"VSMC"
VERSION = 1
#: Algorithm byte: AES-256-GCM.
AES_256_GCM = 1
HEADER_SIZE = 40
TAG_SIZE = 16
SALT_SIZE = 16
PREFIX_SIZE = 7
#: Plaintext bytes per chunk written by default (256 KiB).
DEFAULT_CHUNK_SIZE = 256 * 1024
MIN_CHUNK_SIZE = 4 * 1024
#: The largest chunk a header may declare (chunks of at most 1 MiB).
MAX_CHUNK_SIZE = 1024 * 1024
#: The largest chunk size new objects may be written with: a read of a few bytes that
#: straddles two chunks then costs at most 2 x (512 KiB + 16) + 40 bytes < 2 MiB.
MAX_WRITE_CHUNK_SIZE = 512 * 1024

_LAYOUT = struct.Struct(">4sBBBx8s16s7sx")
assert _LAYOUT.size == HEADER_SIZE


class FormatError(ValueError):
    """The stored bytes are not an object in this format (the caller reports DataCorrupted)."""


@dataclass(frozen=True)
class Header:
    """The parsed header of one encrypted object."""

    key_id: bytes
    salt: bytes
    prefix: bytes
    chunk_size: int
    raw: bytes

    @classmethod
    def new(cls, key_id: bytes, chunk_size: int) -> "Header":
        """Return a header with a fresh random salt and nonce prefix (``os.urandom``)."""
        salt, prefix = os.urandom(SALT_SIZE), os.urandom(PREFIX_SIZE)
        raw = _LAYOUT.pack(MAGIC, VERSION, AES_256_GCM, chunk_size.bit_length() - 1, key_id,
                           salt, prefix)
        return cls(key_id, salt, prefix, chunk_size, raw)

    @classmethod
    def parse(cls, raw: bytes) -> "Header":
        """Parse 40 header bytes.

        Raises:
            FormatError: too short, wrong magic, unknown version or
                algorithm, or a chunk size out of range.
        """
        if len(raw) < HEADER_SIZE:
            raise FormatError("it is %d bytes long, shorter than the %d-byte header"
                              % (len(raw), HEADER_SIZE))
        magic, version, algorithm, shift, key_id, salt, prefix = _LAYOUT.unpack(raw[:HEADER_SIZE])
        if magic != MAGIC:
            raise FormatError("it does not start with an encryption header (not encrypted by "
                              "CryptStorage, or damaged)")
        if version != VERSION or algorithm != AES_256_GCM:
            raise FormatError("its header has version %d, algorithm %d; this version reads "
                              "version %d, algorithm %d" % (version, algorithm, VERSION,
                                                            AES_256_GCM))
        chunk_size = 1 << shift
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise FormatError("its header gives a chunk size of 2**%d bytes" % shift)
        return cls(key_id, salt, prefix, chunk_size, bytes(raw[:HEADER_SIZE]))


def object_key(master: bytes, header: Header, object_id: str) -> bytes:
    """Return the object's own 32-byte key: HKDF-SHA256(master, salt, 'vsm-crypt v1 ' + id)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=header.salt,
                info=b"vsm-crypt v1 " + object_id.encode("ascii")).derive(master)


def nonce(header: Header, index: int, last: bool) -> bytes:
    """Return the 12-byte nonce of chunk ``index``: prefix | index | last flag."""
    return header.prefix + struct.pack(">IB", index, 1 if last else 0)


def chunk_count(plaintext: int, chunk_size: int) -> int:
    """Return the number of chunks of an object of ``plaintext`` bytes (at least 1)."""
    return max(1, -(-plaintext // chunk_size))


def ciphertext_size(plaintext: int, chunk_size: int) -> int:
    """Return the stored size of an object of ``plaintext`` bytes."""
    return HEADER_SIZE + plaintext + TAG_SIZE * chunk_count(plaintext, chunk_size)


def plaintext_size(stored: int, chunk_size: int) -> int:
    """Return the plaintext size of an object stored in ``stored`` bytes.

    Raises:
        FormatError: no object in this format has that size (it was truncated
            or extended by other than whole chunks).
    """
    body = stored - HEADER_SIZE
    if body < TAG_SIZE:
        raise FormatError("it is %d bytes long, too short to hold even an empty object" % stored)
    full, rest = divmod(body, chunk_size + TAG_SIZE)
    if rest == 0:
        return full * chunk_size
    if rest < TAG_SIZE or (rest == TAG_SIZE and full > 0):
        raise FormatError("its length %d does not end on a chunk (truncated or extended)" % stored)
    return full * chunk_size + rest - TAG_SIZE


def chunk_offset(index: int, chunk_size: int) -> int:
    """Return where chunk ``index`` starts in the stored object."""
    return HEADER_SIZE + index * (chunk_size + TAG_SIZE)
