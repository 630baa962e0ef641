"""The checksum algorithms of integrity manifests, and the keys of the keyed ones.

A manifest names the algorithm its digests were made with, so a replica
verifies every manifest ever written (``sha256`` before this option existed)
whatever it writes now. What each choice protects against (see
``docs/replica.md``, "Choosing the checksum"):

========================  ===========  ==============================================
``checksum=``             speed/core   detects
========================  ===========  ==============================================
``xxh3-128`` (default)    ~14 GB/s     bit rot, truncation, torn and misplaced writes
``sha256``                ~1.5 GB/s    the same (cryptographic, but unkeyed: anyone
                                       who can rewrite a copy can rewrite its manifest)
``blake3``                ~3 GB/s      the same as sha256
``blake3-keyed``          ~3 GB/s      also deliberate changes by someone without the
                                       key (copy and manifest rewritten together,
                                       copies swapped between objects)
``hmac-sha256``           ~1.5 GB/s    the same as blake3-keyed, with hashlib only
========================  ===========  ==============================================

Storage systems check for bit rot with fast non-cryptographic checksums
(Ceph BlueStore crc32c, Btrfs crc32c/xxhash, ZFS fletcher4): a cryptographic
hash only adds protection when its key is secret, because a manifest sits
next to its data. xxHash (XXH3, 128 bits) comes from the ``xxhash`` package
and BLAKE3 from the optional ``blake3`` package; SHA-256 and HMAC from the
standard library.
"""
import base64
import binascii
import hashlib
import hmac
import os
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from modules.errors import ConfigurationError, DataCorrupted

__all__ = ["Checksum", "Keyring", "keyring_from_options", "ALGORITHMS", "ALIASES", "KEYED",
           "DEFAULT",
           "load_key", "key_id"]

#: The algorithm new manifests use unless ``checksum=`` says otherwise.
DEFAULT = "xxh3-128"
#: Every algorithm a manifest may name, and the hex length of its digests.
ALGORITHMS: Mapping[str, int] = {"xxh3-128": 32, "sha256": 64, "blake3": 64,
                                 "blake3-keyed": 64, "hmac-sha256": 64}
#: Other names accepted for the algorithms (the stored name is always the canonical one).
ALIASES: Mapping[str, str] = {"xxh3": "xxh3-128", "xxh128": "xxh3-128",
                              "keyed-blake3": "blake3-keyed", "hmac": "hmac-sha256"}
#: The algorithms that need a secret key.
KEYED = frozenset({"blake3-keyed", "hmac-sha256"})
#: Bytes of a key (BLAKE3's keyed mode takes exactly 32).
KEY_BYTES = 32


class Checksum:
    """One algorithm (and key, for the keyed ones): hashes blocks and checks manifests.

    Args:
        algorithm: a name from :data:`ALGORITHMS`.
        key: the 32-byte key of a keyed algorithm (None otherwise).

    Raises:
        ConfigurationError: unknown algorithm, a keyed one without a key, or
            ``blake3`` without the ``blake3`` package installed.
    """

    def __init__(self, algorithm: str, key: Optional[bytes] = None):
        algorithm = ALIASES.get(algorithm, algorithm)
        if algorithm not in ALGORITHMS:
            raise ConfigurationError("unknown checksum %r; choose one of %s"
                                     % (algorithm, ", ".join(ALGORITHMS)))
        if (algorithm in KEYED) != (key is not None):
            raise ConfigurationError(
                "checksum=%s %s a key (checksum_key_env= or checksum_key_file=)"
                % (algorithm, "needs" if algorithm in KEYED else "takes no"))
        self.algorithm = algorithm
        self.hex_length = ALGORITHMS[algorithm]
        self._key = key
        #: Names the key without revealing it (None for unkeyed algorithms).
        self.key_id = key_id(key) if key is not None else None
        self._new: Callable[[], Any] = _constructor(algorithm, key)

    def __repr__(self) -> str:
        return "Checksum(%r%s)" % (self.algorithm,
                                   ", key_id=%r" % self.key_id if self.key_id else "")

    @property
    def keyed(self) -> bool:
        """True when digests cannot be made without the key."""
        return self._key is not None

    def new(self) -> Any:
        """Return a fresh incremental hasher (``update(data)``, ``hexdigest()``)."""
        return self._new()

    def hexdigest(self, data: Any) -> str:
        """Return the hex digest of one buffer (bytes, bytearray or memoryview)."""
        hasher = self._new()
        hasher.update(data)
        return hasher.hexdigest()

    def seal(self, canonical: bytes) -> str:
        """Return the ``check`` of a manifest's canonical JSON.

        SHA-256 for unkeyed algorithms (detects accidental damage), HMAC-SHA-256
        with the key for keyed ones (detects changes made without the key).
        """
        if self._key is None:
            return hashlib.sha256(canonical).hexdigest()
        return hmac.new(self._key, canonical, "sha256").hexdigest()


class Keyring:
    """The checksum a replica writes with, and every checksum it can verify.

    Args:
        algorithm: the algorithm of new manifests (:data:`ALGORITHMS`).
        key: its 32-byte key when it is keyed (None otherwise).
        old_keys: 32-byte keys that still verify manifests written before a
            key change (rotation); never used to write.
        require_key: when True, a manifest without a keyed check is not
            trusted (reported as damaged): set it once every object has been
            rewritten with a key.

    Raises:
        ConfigurationError: see :class:`Checksum`.
    """

    def __init__(self, algorithm: str = DEFAULT, key: Optional[bytes] = None,
                 old_keys: Sequence[bytes] = (), require_key: bool = False):
        #: The checksum new manifests are made with.
        self.write = Checksum(algorithm, key)
        self.require_key = require_key
        self._keys: Dict[str, bytes] = {key_id(old): old for old in old_keys}
        if key is not None:
            self._keys[key_id(key)] = key
        self._cache: Dict[tuple, Checksum] = {}

    def __repr__(self) -> str:
        return "Keyring(write=%r, keys=%d)" % (self.write, len(self._keys))

    def for_manifest(self, algorithm: Any, kid: Any, where: str,
                     require_key: bool = False) -> Checksum:
        """Return the checksum that verifies a manifest naming ``algorithm`` and key id ``kid``.

        ``require_key``: refuse an unkeyed manifest for this object (its
        module_data says it was sealed with a key), whatever ``require_key``
        the keyring was made with.

        Raises:
            DataCorrupted: an unknown algorithm, a keyed manifest whose key
                this replica does not have, or an unkeyed one while keys are
                required; the message says which.
        """
        if algorithm not in KEYED and (self.require_key or require_key):
            raise DataCorrupted("the manifest at %s has no keyed seal, but %s" % (
                where, "checksum_require_key is on" if self.require_key
                else "the object was written with a keyed checksum"))
        cache_key = (algorithm, kid)
        found = self._cache.get(cache_key)
        if found is not None:
            return found
        if algorithm not in ALGORITHMS:
            raise DataCorrupted("the manifest at %s names an unknown checksum %r"
                                % (where, algorithm))
        if algorithm in KEYED:
            key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise DataCorrupted(
                    "the manifest at %s was sealed with key id %s, which this replica does not "
                    "have (give it with checksum_key_env=/checksum_key_file= or as an old key)"
                    % (where, kid))
            found = Checksum(algorithm, key)
        else:
            found = Checksum(algorithm)
        self._cache[cache_key] = found
        return found


def keyring_from_options(algorithm: str = DEFAULT, key_env: Optional[str] = None,
                         key_file: Optional[str] = None, old_key_env: Optional[str] = None,
                         old_key_file: Optional[str] = None, require_key: bool = False,
                         environ: Optional[Mapping[str, str]] = None) -> Keyring:
    """Build a :class:`Keyring` from the replica's ``checksum*`` options.

    ``old_key_env`` and ``old_key_file`` may each name several variables or
    files, separated by commas.

    Raises:
        ConfigurationError: a keyed algorithm without a key, a key without a
            keyed algorithm, or a key that cannot be read (never quoted).
    """
    algorithm = ALIASES.get(algorithm, algorithm)
    key = None
    if key_env is not None or key_file is not None:
        if algorithm not in KEYED:
            raise ConfigurationError(
                "checksum_key_env/checksum_key_file need a keyed checksum (checksum=%s)"
                % " or checksum=".join(sorted(KEYED)))
        key = load_key(key_env, key_file, environ)
    old = [load_key(env=name.strip(), environ=environ)
           for name in (old_key_env or "").split(",") if name.strip()]
    old += [load_key(path=name.strip()) for name in (old_key_file or "").split(",")
            if name.strip()]
    return Keyring(algorithm, key, old, require_key)


def key_id(key: bytes) -> str:
    """Return 16 hex characters naming ``key`` (a keyed hash of a constant; reveals nothing)."""
    return hmac.new(key, b"vsm manifest key id", "sha256").hexdigest()[:16]


def load_key(env: Optional[str] = None, path: Optional[str] = None,
             environ: Optional[Mapping[str, str]] = None) -> bytes:
    """Read a 32-byte key from an environment variable or a file.

    The value is 64 hex characters or base64 of 32 bytes; a file may also
    hold the 32 raw bytes.

    Raises:
        ConfigurationError: neither or both given, the variable is unset,
            the file is unreadable, or the value is not a 32-byte key. The
            key itself is never quoted.
    """
    if (env is None) == (path is None):
        raise ConfigurationError("give a checksum key with exactly one of checksum_key_env= "
                                 "or checksum_key_file=")
    if env is not None:
        value = (os.environ if environ is None else environ).get(env)
        if not value:
            raise ConfigurationError("the environment variable %s (checksum_key_env) is not set"
                                     % env)
        raw = value.encode("utf-8", "replace")
        where = "the environment variable %s" % env
    else:
        try:
            with open(path, "rb") as handle:
                raw = handle.read(4096)
        except OSError as error:
            raise ConfigurationError("cannot read checksum_key_file %s: %s"
                                     % (path, error.strerror or error)) from None
        if len(raw) == KEY_BYTES:
            return raw
        where = "checksum_key_file %s" % path
    text = raw.strip()
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            key = decode(text.decode("ascii"))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            continue
        if len(key) == KEY_BYTES:
            return key
    raise ConfigurationError("%s does not hold a 32-byte key (64 hex characters or base64 of "
                             "32 bytes; make one with: openssl rand -hex 32)" % where)


def _constructor(algorithm: str, key: Optional[bytes]) -> Callable[[], Any]:
    if algorithm == "xxh3-128":
        import xxhash
        return xxhash.xxh3_128
    if algorithm == "sha256":
        return hashlib.sha256
    if algorithm == "hmac-sha256":
        return lambda: hmac.new(key, digestmod="sha256")
    try:
        import blake3
    except ImportError:
        raise ConfigurationError("checksum=%s needs the blake3 package: pip install blake3"
                                 % algorithm) from None
    if algorithm == "blake3":
        return blake3.blake3
    return lambda: blake3.blake3(key=key)
