"""Encryption at rest as a wrapper module: :class:`CryptStorage` (see ``docs/crypt.md``).

``replica.crypt.format`` is the at-rest format, ``replica.crypt.keys`` the
keys and their rotation, ``replica.crypt.streams`` the encrypting and
decrypting streams, ``replica.crypt.storage`` the module.
"""
from replica.crypt.storage import CryptStorage

__all__ = ["CryptStorage"]
