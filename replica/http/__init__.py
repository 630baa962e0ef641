"""WebDAV locations over HTTP: :class:`replica.http.HTTPStorage`.

The package is split by layer (see docs/http.md): ``storage`` (the contract
methods), ``auth``, ``errors`` (status and transport mapping), ``options``,
``retry``, ``stream`` (the ranged read stream) and ``upload`` (the request
body). Configurations store the dotted path ``replica.http.HTTPStorage``.
"""
from replica.http.storage import HTTPStorage

__all__ = ["HTTPStorage"]
