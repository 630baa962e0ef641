"""``replica.http.HTTPStorage``: a location reached over HTTP (WebDAV); the contract methods.

Objects are plain files under a base collection URL, stored and read with
the HTTP methods WebDAV servers (nginx's dav module, Apache mod_dav, wsgidav,
most NAS units) understand:

* ``assign``: ``MKCOL`` for missing shard collections (only below the base
  URL), a streaming ``PUT`` to a temporary name in the same collection, a
  ``HEAD`` that checks the stored size, then ``MOVE`` with ``Overwrite: T``
  into place. An interrupted upload never leaves bytes under the key; the
  temporary is deleted on failure, and ``repair`` removes the ones a killed
  process left behind.
* ``available`` and ``get_size``: ``HEAD``; ``delete``: ``DELETE`` (404 is fine).
* ``get_read_stream``: ``HEAD``, then ranged ``GET``\\ s
  (:class:`replica.http.stream.HTTPReadStream`).
* ``statistics``: ``PROPFIND`` (depth 0) for the RFC 4331 quota properties,
  plus request, error and latency counters.

The layers: :mod:`replica.http.options` (configuration),
:mod:`replica.http.transport` (the session; statuses and failures become SDK
errors in :mod:`replica.http.errors`; retries follow
:mod:`replica.http.retry`), :mod:`replica.http.webdav` (the verbs),
:mod:`replica.http.upload` (the request body) and
:mod:`replica.http.temporaries` (temporary uploads and their sweep).
See docs/http.md.
"""
import io
import logging
import threading
from types import MappingProxyType
from typing import Any, BinaryIO, Callable, Dict, Optional
from urllib.parse import urlsplit

import requests

from modules import StorageModule
from modules.errors import (
    AuthenticationFailed,
    InvalidModuleData,
    LocationUnavailable,
    ObjectNotFound,
    SourceStreamError,
    StorageError,
)
from modules.keys import SHARDED_KEY, new_sharded_key, sharded_key_for
from modules.redaction import redact_text
from modules.reports import STATUS_OK, STATUS_UNAVAILABLE, RepairReport
from replica.http.headers import content_length
from replica.http.options import HTTPOptions, parse_options
from replica.http.retry import make_discard_retrying
from replica.http.stream import HTTPReadStream
from replica.http.temporaries import TEMP_PREFIX, Sweeper, temporary_name
from replica.http.transport import Transport
from replica.http.upload import SizedSourceBody, SourceBody, measure_source, source_error
from replica.http.webdav import WebDAV

__all__ = ["HTTPStorage"]

log = logging.getLogger(__name__)

#: Pauses (seconds) before checking again for a temporary that an aborted PUT may still create.
_DISCARD_PAUSES = (0.1, 0.3)


class HTTPStorage(StorageModule):
    """Store each object as one file under a WebDAV collection URL.

    Args:
        base_url: the collection, e.g. ``"https://nas.example/dav/store/"``
            (first positional argument). It must exist; the shard
            collections below it are created as needed.
        **options: see :mod:`replica.http.options` (each also accepted as a
            ``"name=value"`` positional string): ``username``/``user`` with
            ``password`` or ``password_env``; ``token`` or ``token_env``;
            ``verify_tls`` (default true), ``ca_bundle``; ``timeout``,
            ``connect_timeout`` (5 s), ``read_timeout`` (30 s); ``retries``
            (3), ``retry_backoff`` (0.2 s), ``retry_max_wait`` (5 s);
            ``pool_size`` (10); ``chunk_size`` (1 MiB); ``upload_grace``
            (3600 s); ``destination`` (``auto``); ``sleep`` (keyword only,
            replaces ``time.sleep`` between retries).

    Raises:
        ConfigurationError: an option is missing, unknown or malformed, or a
            secret's environment variable is not set.
    """

    #: Retries transient failures itself (callers must not retry its calls again),
    #: places objects deterministically (new_data_for) and sweeps stale temporaries (repair).
    capabilities = MappingProxyType(dict(StorageModule.capabilities, retries=True,
                                         placement=True, repair=True))

    def __init__(self, *args, **kwargs):
        super().__init__()
        options = parse_options(args, kwargs)
        self._options: HTTPOptions = options
        self.base_url = options.base_url
        self._transport = Transport(options)
        self._webdav = WebDAV(self._transport, options.destination)
        self._sweeper = Sweeper(self._webdav, self.base_url, options.upload_grace)
        self._discard_retrying = make_discard_retrying(
            _DISCARD_PAUSES, is_closed=lambda: self._transport.closed, sleep=options.sleep)
        self._lock = threading.Lock()
        self._known_collections = set()
        self._uploading = 0  # temporaries this instance is writing now
        _warn_insecure(options)

    def __repr__(self) -> str:
        return "HTTPStorage(%r, auth=%s)" % (self.base_url, self._options.auth_description)

    # -- the contract -----------------------------------------------------

    def new_data(self, context: Optional[dict]) -> str:
        """Return a new sharded key ``'xx/yy/<32 hex>'`` below the base URL (no request).

        Returns:
            str: the module_data for a new object.
        """
        return new_sharded_key()

    def new_data_for(self, context: Optional[dict], object_id: str) -> str:
        """Return the key of object ``object_id``: ``'xx/yy/<object_id>'`` (no request).

        The same id gives the same key in every process and on every node
        (capability ``placement``), so a replica can place a copy of an
        existing object here and find it again.

        Returns:
            str: the module_data, e.g. ``'3f/a0/3fa0...'`` for ``'3fa0...'``.

        Raises:
            InvalidModuleData: ``object_id`` is not 32 lowercase hex characters.
        """
        return sharded_key_for(object_id)

    def assign(self, context: Optional[dict], module_data: str, stream: BinaryIO) -> None:
        """Upload ``stream`` to a temporary name, check its size, and MOVE it into place.

        The body is streamed in ``chunk_size`` pieces (``Content-Length``
        when the source is seekable, chunked transfer otherwise); the upload
        is retried only when the source can be rewound.

        Returns:
            None.

        Raises:
            InvalidModuleData: ``module_data`` is not one of ours.
            SourceStreamError: the source failed or is not a binary stream
                (SDK errors from the source pass through).
            AuthenticationFailed: the server refused the credentials.
            InsufficientStorage: the server is full (507) or refused the size (413).
            LocationUnavailable: the server cannot be reached or failed
                (LocationTimeout when it did not answer in time; a MOVE whose
                Destination was refused names the TLS-proxy cause).
        """
        url = self._object_url(module_data)
        self._transport.check_open()
        if isinstance(stream, io.TextIOBase):
            raise SourceStreamError("assign needs a binary stream, got a text stream (%s); open "
                                    "files in 'rb' mode" % type(stream).__name__)
        collection_url = url.rsplit("/", 1)[0] + "/"
        temp_url = collection_url + temporary_name(module_data.rsplit("/", 1)[1])
        length, rewind = measure_source(stream)
        self._ensure_collections(module_data)
        with self._lock:
            self._uploading += 1
        try:
            sent = self._upload(temp_url, stream, length, rewind, module_data)
            self._check_stored_size(temp_url, sent)
            self._move(temp_url, url, sent, module_data)
        except AuthenticationFailed:
            raise  # nothing was stored, and a DELETE would be refused as well
        except BaseException:
            self._discard(temp_url)
            raise
        finally:
            with self._lock:
                self._uploading -= 1
        self._transport.count(writes=1, bytes_written=sent)

    def available(self, context: Optional[dict], module_data: str) -> bool:
        """Tell whether a complete copy is stored (``HEAD``).

        Returns:
            bool: True when the server has the object.

        Raises:
            InvalidModuleData: ``module_data`` is not one of ours.
            AuthenticationFailed: the server refused the credentials.
            LocationUnavailable: the server cannot be asked now.
        """
        url = self._object_url(module_data)
        try:
            self._transport.request("HEAD", url, module_data=module_data, ok=(200,)).close()
        except ObjectNotFound:
            return False
        return True

    def get_read_stream(self, context: Optional[dict], module_data: str) -> HTTPReadStream:
        """Return a seekable stream over the object (``HEAD`` now, ranged ``GET`` on reading).

        Returns:
            HTTPReadStream: close it (or use ``with``); reads raise
            LocationUnavailable, LocationTimeout or DataCorrupted (the object
            changed size underneath).

        Raises:
            ObjectNotFound: the server has no such object.
            InvalidModuleData: ``module_data`` is not one of ours.
            AuthenticationFailed: the server refused the credentials.
            LocationUnavailable: the server cannot be reached.
        """
        url = self._object_url(module_data)
        size = self._webdav.size(url, module_data)

        def open_range(position: int) -> requests.Response:
            return self._transport.send("GET", url, module_data=module_data, ok=(200, 206, 416),
                                        headers={"Range": "bytes=%d-" % position}, stream=True)

        self._transport.count(reads=1)
        return HTTPReadStream(size, open_range, url=url, location=self.base_url,
                              module_data=module_data, retrying=self._transport.retrying,
                              chunk_size=self._options.chunk_size,
                              timeout=self._transport.timeout)

    def delete(self, context: Optional[dict], module_data: str) -> None:
        """Delete the object (``DELETE``); an object already gone is fine.

        Returns:
            None.

        Raises:
            InvalidModuleData: ``module_data`` is not one of ours.
            AuthenticationFailed: the server refused the credentials.
            LocationUnavailable: the server cannot be reached or failed.
        """
        url = self._object_url(module_data)
        self._transport.check_open()
        if self._webdav.delete(url) != 404:
            self._transport.count(deletes=1)

    def get_size(self, context: Optional[dict], module_data: str) -> int:
        """Return the object's size from ``HEAD`` (or a one-byte ranged GET without one).

        Returns:
            int: the number of bytes a full read returns.

        Raises:
            ObjectNotFound: the server has no such object.
            InvalidModuleData: ``module_data`` is not one of ours.
            AuthenticationFailed: the server refused the credentials.
            LocationUnavailable: the server cannot be reached or sent no size.
        """
        return self._webdav.size(self._object_url(module_data), module_data)

    def statistics(self, context: Optional[dict]) -> Dict[str, Any]:
        """Report quota from ``PROPFIND`` and this instance's request counters; never raises.

        Returns:
            dict: ``capacity`` (total/free/used bytes, -1 unknown, with
            ``capacity_reason`` when unknown), ``base_url``, ``status``
            (``'ok'`` or ``'unavailable'``, :data:`modules.reports.STATUSES`),
            ``reason`` and ``cause`` (``'unreachable'``, ``'auth_failed'``,
            ``'closed'`` or ``'unexpected'``) when not ok, ``auth`` (the scheme only), ``destination``
            (the MOVE Destination form in use: ``'absolute'``, ``'path'`` or
            ``'unknown'`` before the first upload), ``temporaries``
            (``uploading``: this instance's uploads in progress; ``files``,
            ``bytes``, ``as_of`` and ``complete`` as counted by the last
            full ``repair`` sweep, absent before one: counting them means
            listing every shard collection, too costly for each call),
            ``requests`` (counts by method, errors by kind, retries),
            ``latency_ms`` (count, mean, p50, p95, max over the last
            requests) and ``last_error``.
        """
        result: Dict[str, Any] = {"base_url": self.base_url,
                                  "auth": self._options.auth_description}
        try:
            capacity, reason = self._quota()
            result.update(status=STATUS_OK, capacity=capacity)
            if reason:
                result["capacity_reason"] = reason
        except StorageError as error:
            cause = "auth_failed" if isinstance(error, PermissionError) else "unreachable"
            if self._transport.closed:
                cause = "closed"
            result.update(status=STATUS_UNAVAILABLE, cause=cause, reason=redact_text(error),
                          capacity=self.capacity(),
                          capacity_reason="the server could not be asked")
        except Exception as error:  # statistics must never raise; say what happened
            log.exception("statistics for %s failed unexpectedly", self.base_url)
            result.update(status=STATUS_UNAVAILABLE, cause="unexpected", capacity=self.capacity(),
                          reason=redact_text("%s: %s" % (type(error).__name__, error)),
                          capacity_reason="the server could not be asked")
        result["destination"] = self._webdav.destination_style
        with self._lock:
            temporaries: Dict[str, Any] = {"uploading": self._uploading}
        temporaries.update(self._sweeper.last_count() or {})
        result["temporaries"] = temporaries
        result.update(self._transport.snapshot())
        return result

    def repair(self, context: Optional[dict], module_data: Optional[str] = None,
               rate: Optional[float] = None) -> Dict[str, Any]:
        """Remove temporary uploads older than ``upload_grace`` (left by killed writers).

        Lists the shard collections with ``PROPFIND`` (``Depth: 1``): one
        request for the base collection and one per shard collection (only
        ``module_data``'s shard when given). Fresh temporaries are counted
        and left alone: another process may be writing them. ``rate`` is
        accepted and ignored: the sweep reads no object data.

        Returns:
            dict: a :class:`modules.reports.RepairReport` (``reclaimed``:
            temporaries removed; ``remaining``: temporaries kept for a later
            sweep; ``failed``: URL -> error for listings or deletes that
            failed) plus ``temporaries``, the counts of
            :meth:`replica.http.temporaries.Sweeper.sweep`. When the server
            does not answer PROPFIND (nginx without dav-ext), ``temporaries``
            has ``complete`` False and a ``reason``.

        Raises:
            InvalidModuleData: ``module_data`` is given and not one of ours.
            AuthenticationFailed: the server refused the credentials.
            LocationUnavailable: the base collection cannot be listed.
        """
        shard = None
        if module_data is not None:
            self._object_url(module_data)
            shard = module_data.rsplit("/", 1)[0]
        self._transport.check_open()
        try:
            report = self._sweeper.sweep(shard)
        except LocationUnavailable as error:
            if error.status not in (405, 501):
                raise
            return dict(RepairReport().to_dict(), temporaries={
                "complete": False, "found": 0, "removed": 0,
                "reason": "the server does not list collections (PROPFIND answered %d); remove "
                          "'%s*' files older than %g s on the server itself"
                          % (error.status, TEMP_PREFIX, self._options.upload_grace)})
        failed = report.pop("errors")
        summary = RepairReport(reclaimed=report["removed"],
                               remaining=report["fresh"] + report["undated"],
                               failed=failed).to_dict()
        summary["temporaries"] = report
        return summary

    def close(self) -> None:
        """Close the connection pool; later calls raise LocationUnavailable.

        So do reads of streams opened before that need a new request; close
        them as well.
        """
        self._transport.close()

    # -- assign's steps ---------------------------------------------------

    def _ensure_collections(self, module_data: str) -> None:
        """MKCOL ``xx/`` and ``xx/yy/`` below the base URL unless known to exist."""
        first, second, _ = SHARDED_KEY.match(module_data).groups()
        leaf = "%s/%s/" % (first, second)
        with self._lock:
            if leaf in self._known_collections:
                return
        for relative in ("%s/" % first, leaf):
            # Created, or 405: it exists already (another writer won the race).
            self._webdav.make_collection(self.base_url + relative)
        with self._lock:
            self._known_collections.add(leaf)

    def _forget_collections(self, module_data: str) -> None:
        first, second, _ = SHARDED_KEY.match(module_data).groups()
        with self._lock:
            self._known_collections.discard("%s/%s/" % (first, second))

    def _upload(self, temp_url: str, stream: BinaryIO, length: Optional[int],
                rewind: Optional[Callable[[], None]], module_data: str) -> int:
        """PUT the source to ``temp_url``; return the bytes sent. Retried only with ``rewind``."""
        state = {"first": True}

        def attempt() -> int:
            if not state["first"]:
                rewind()
            state["first"] = False
            if length is not None:
                body = SizedSourceBody(stream, self._options.chunk_size, length)
            else:
                body = SourceBody(stream, self._options.chunk_size)
            try:
                response = self._transport.send("PUT", temp_url, ok=(200, 201, 204), data=body)
            except Exception as error:
                failed = source_error(body)
                if failed is not None:
                    raise failed from failed.__cause__
                if isinstance(error, StorageError) and error.status == 409:
                    # The shard collection vanished (server wiped?): create it again; the
                    # next attempt (if the source can be rewound) finds it.
                    self._forget_collections(module_data)
                    self._ensure_collections(module_data)
                    raise LocationUnavailable(
                        "PUT %s: the shard collection had vanished on the server; it was "
                        "created again" % temp_url, location=self.base_url) from error
                raise
            response.close()
            return body.sent

        if rewind is None:
            return attempt()
        return self._transport.call(attempt)

    def _check_stored_size(self, temp_url: str, sent: int) -> None:
        """HEAD the temporary: a server that kept a truncated body must not get it moved."""
        response = self._transport.request("HEAD", temp_url, ok=(200,))
        response.close()
        stored = content_length(response.headers)
        if stored is not None and stored != sent:
            raise LocationUnavailable(
                "PUT %s: the server stored %d of the %d bytes sent; the upload was discarded"
                % (temp_url, stored, sent), location=self.base_url)

    def _move(self, temp_url: str, url: str, sent: int, module_data: str) -> None:
        """MOVE the temporary onto the key, overwriting (the bytes are the same)."""
        try:
            self._webdav.move(temp_url, url)
        except ObjectNotFound:
            # A retried MOVE whose first attempt succeeded finds no source: check the target.
            try:
                stored = self._webdav.size(url, module_data)
            except ObjectNotFound:
                stored = None
            if stored != sent:
                raise LocationUnavailable(
                    "MOVE %s: the uploaded temporary vanished before it reached %s" % (
                        temp_url, url), location=self.base_url) from None

    def _discard(self, temp_url: str) -> None:
        """Best-effort DELETE of an upload's temporary; never raises.

        After an aborted PUT the server may still be working on it and create
        the temporary only after a first DELETE found nothing (404), so a 404
        is checked again after short pauses (the discard policy of
        :mod:`replica.http.retry`). What is still left is removed by
        :meth:`repair` once older than ``upload_grace``.
        """
        if self._transport.closed:
            return
        try:
            self._discard_retrying(self._webdav.delete, temp_url, retry=False)
        except StorageError as error:
            log.warning("could not delete the temporary upload %s (repair removes it once it "
                        "is older than %g s): %s", temp_url, self._options.upload_grace, error)

    # -- helpers ----------------------------------------------------------

    def _quota(self):
        """Return (capacity dict, reason or None) from PROPFIND on the base URL (no retries)."""
        available, used, status = self._webdav.quota(self.base_url)
        if status is not None:
            return self.capacity(), "the server does not support PROPFIND (%d)" % status
        if available is None and used is None:
            return self.capacity(), "the server reports no RFC 4331 quota properties"
        total = available + used if available is not None and used is not None else -1
        capacity = self.capacity(total, -1 if available is None else available,
                                 -1 if used is None else used)
        reason = None if total >= 0 else "the server reports only part of the quota"
        return capacity, reason

    def _object_url(self, module_data) -> str:
        match = SHARDED_KEY.match(module_data) if isinstance(module_data, str) else None
        if not match or match.group(3)[:2] != match.group(1) or \
                match.group(3)[2:4] != match.group(2):
            shown = module_data[:80] if isinstance(module_data, str) else module_data
            if not isinstance(module_data, (str, int, float, type(None), bytes)):
                shown = type(module_data).__name__
            raise InvalidModuleData(
                "%r is not module_data produced by HTTPStorage (expected 'xx/yy/<32 hex>')"
                % (shown,), module_data=module_data, location=self.base_url)
        return self.base_url + module_data


def _warn_insecure(options: HTTPOptions) -> None:
    parts = urlsplit(options.base_url)
    if parts.scheme == "https" and options.verify is False:
        log.warning("HTTPStorage %s does not verify the server's TLS certificate "
                    "(verify_tls=false); prefer ca_bundle=", options.base_url)
    if parts.scheme == "http" and options.auth_description != "none" and \
            parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        log.warning("HTTPStorage %s sends %s credentials over plain http; use https",
                    options.base_url, options.auth_description.split("(")[0])
