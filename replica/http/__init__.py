"""WebDAV locations over HTTP: :class:`replica.http.HTTPStorage`.

The package is split by layer (see docs/http.md): ``storage`` (the contract
methods), ``transport`` (the session: requests sent, statuses checked,
counted), ``webdav`` (MKCOL, MOVE, PROPFIND, size by HEAD), ``stream`` (the
ranged read stream), ``upload`` (the request body), ``errors`` (statuses and
failures to SDK errors), ``retry`` (the tenacity policies), ``options``,
``auth``, ``headers`` (Content-Length, Content-Range) and ``temporaries``
(temporary uploads and their sweep). Configurations store the dotted path
``replica.http.HTTPStorage``.
"""
from replica.http.storage import HTTPStorage

__all__ = ["HTTPStorage"]
