"""Encryption keys for :class:`~replica.crypt.CryptStorage`: loading, key ids, rotation.

A key is 32 bytes (AES-256). It is read from an environment variable
(``key_env=NAME``) or a file (``key_file=PATH``) holding it as 64 hex
characters or as base64 (44 characters), or, for files only, as exactly 32
raw bytes. Older keys, for reading only, are given the same way with
``old_key_env`` / ``old_key_file``.

Each key has a **key id**: the first 8 bytes of HMAC-SHA256(key,
``"vsm-crypt key id"``). It is written into every object's header so that a
read picks the right key after rotation; it reveals nothing about the key
(HMAC is a pseudo-random function). Keys never appear in ``repr``, logs or
errors: messages name the variable or file and the key id only.
"""
import base64
import binascii
import hashlib
import hmac
import os
import re
from typing import Dict, Iterable, List, Optional, Tuple

from modules.errors import ConfigurationError

__all__ = ["KEY_SIZE", "KeyRing", "key_id_of", "load_key"]

#: Bytes in a key (AES-256).
KEY_SIZE = 32
#: Bytes in a key id.
KEY_ID_SIZE = 8

_HEX = re.compile(r"\A[0-9a-fA-F]{64}\Z")
_MAX_KEY_FILE = 4096


def key_id_of(key: bytes) -> bytes:
    """Return the 8-byte id of ``key`` (HMAC-SHA256(key, 'vsm-crypt key id')[:8])."""
    return hmac.new(key, b"vsm-crypt key id", hashlib.sha256).digest()[:KEY_ID_SIZE]


def _decode_text(text: str, where: str) -> bytes:
    text = text.strip()
    if _HEX.match(text):
        return bytes.fromhex(text)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_SIZE:
        raise ConfigurationError(
            "the key in %s is not usable: give 32 bytes as 64 hex characters or as base64 (for "
            "example the output of 'python3 -c \"import os,base64; print(base64.b64encode("
            "os.urandom(32)).decode())\"')" % where)
    return key


def load_key(env: Optional[str] = None, path: Optional[str] = None,
             environ: Optional[Dict[str, str]] = None) -> bytes:
    """Return the 32-byte key from the environment variable ``env`` or the file ``path``.

    Raises:
        ConfigurationError: the variable is not set or empty, the file cannot
            be read, or its text is not 32 bytes as hex or base64 (messages
            name the variable or file, never the value).
    """
    if (env is None) == (path is None):
        raise ConfigurationError("give a key either as an environment variable or as a file")
    if env is not None:
        environ = os.environ if environ is None else environ
        if not isinstance(env, str) or not env.strip():
            raise ConfigurationError("key_env must name an environment variable")
        value = environ.get(env.strip())
        if not value or not value.strip():
            raise ConfigurationError("environment variable %s (key_env) is not set or empty; "
                                     "set it to a 32-byte key in hex or base64" % env.strip())
        return _decode_text(value, "environment variable %s" % env.strip())
    if not isinstance(path, str) or not path.strip():
        raise ConfigurationError("key_file must be the path of a file holding the key")
    try:
        with open(path, "rb") as file:
            raw = file.read(_MAX_KEY_FILE + 1)
    except OSError as error:
        raise ConfigurationError("cannot read key file %s: %s" % (
            path, error.strerror or type(error).__name__)) from None
    if len(raw) == KEY_SIZE:  # neither hex (64) nor base64 (44) text has 32 characters
        return raw
    if len(raw) > _MAX_KEY_FILE:
        raise ConfigurationError("key file %s is too large to hold one key" % path)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigurationError("key file %s holds neither 32 raw bytes nor a key in hex or "
                                 "base64" % path) from None
    return _decode_text(text, "key file %s" % path)


class KeyRing:
    """The current key (for writing) and older keys (for reading), by key id.

    Args:
        current: (key, where) of the key new objects are encrypted with.
        old: (key, where) of keys still accepted for reading.

    Raises:
        ConfigurationError: two different configured keys share a key id
            (practically impossible unless a key is configured twice).
    """

    def __init__(self, current: Tuple[bytes, str], old: Iterable[Tuple[bytes, str]] = ()):
        self.current_id = key_id_of(current[0])
        self._keys: Dict[bytes, bytes] = {self.current_id: current[0]}
        self._where: Dict[bytes, str] = {self.current_id: current[1]}
        for key, where in old:
            key_id = key_id_of(key)
            if key_id in self._keys:
                if self._keys[key_id] != key:  # pragma: no cover - a 64-bit collision
                    raise ConfigurationError("keys from %s and %s share a key id"
                                             % (self._where[key_id], where))
                continue  # the same key twice (e.g. current also listed as old): harmless
            self._keys[key_id] = key
            self._where[key_id] = where

    def __repr__(self) -> str:
        return "KeyRing(current=%s, readable=%s)" % (self.current_id.hex(), self.key_ids())

    @property
    def current(self) -> bytes:
        """The key new objects are encrypted with."""
        return self._keys[self.current_id]

    def get(self, key_id: bytes) -> Optional[bytes]:
        """Return the key with ``key_id``, or None when it is not configured."""
        return self._keys.get(key_id)

    def key_ids(self) -> List[str]:
        """Return every configured key id in hex, the current one first."""
        return [key_id.hex() for key_id in self._keys]
