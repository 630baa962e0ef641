"""``replica.http.HTTPStorage``: a storage location reached over HTTP (WebDAV).

Objects are plain files under a base collection URL, stored and read with
the HTTP methods WebDAV servers (nginx's dav module, Apache mod_dav, wsgidav,
most NAS units) understand:

* ``assign``: ``MKCOL`` for missing shard collections (only below the base
  URL), a streaming ``PUT`` to a temporary name in the same collection, a
  ``HEAD`` that checks the stored size, then ``MOVE`` with ``Overwrite: T``
  into place. An interrupted upload never leaves bytes under the key; the
  temporary is deleted on failure.
* ``available`` and ``get_size``: ``HEAD``; ``delete``: ``DELETE`` (404 is fine).
* ``get_read_stream``: ``HEAD``, then ranged ``GET``\\ s
  (:class:`replica.http_stream.HTTPReadStream`).
* ``statistics``: ``PROPFIND`` (depth 0) for the RFC 4331 quota properties,
  plus request, error and latency counters.

Configuration is described in :mod:`replica.http_options` and docs/http.md.
Statuses and transport failures become SDK errors in
:mod:`replica.http_errors` only; retries follow :mod:`replica.http_retry`.
"""
import collections
import io
import logging
import re
import threading
import time
import uuid
from typing import Any, BinaryIO, Callable, Dict, Iterable, Optional
from urllib.parse import urlsplit
from xml.etree import ElementTree

import requests
import requests.adapters

from modules import StorageModule
from modules.keys import SHARDED_KEY, new_sharded_key
from modules.errors import (
    AuthenticationFailed,
    InvalidModuleData,
    LocationUnavailable,
    ObjectNotFound,
    SourceStreamError,
    StorageError,
)
from replica.http.auth import make_auth
from replica.http.errors import status_error, transport_error
from replica.http.options import HTTPOptions, parse_options
from replica.http.retry import make_retrying
from replica.http.stream import HTTPReadStream
from replica.http.upload import SizedSourceBody, SourceBody, measure_source, source_error

__all__ = ["HTTPStorage"]

log = logging.getLogger(__name__)

_TEMP_PREFIX = ".upload-"
_DAV = "{DAV:}"
_PROPFIND_QUOTA = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                   b'<D:propfind xmlns:D="DAV:"><D:prop>'
                   b'<D:quota-available-bytes/><D:quota-used-bytes/>'
                   b'</D:prop></D:propfind>')
#: Most bytes of a response body read for its own sake (PROPFIND, error pages).
_MAX_SMALL_BODY = 256 * 1024
#: Pauses before checking again for a temporary that a failed upload may still create.
_DISCARD_PAUSES = (0.1, 0.3)
#: Latencies kept for the percentiles in ``statistics``.
_LATENCY_WINDOW = 1000


class HTTPStorage(StorageModule):
    """Store each object as one file under a WebDAV collection URL.

    Args:
        base_url: the collection, e.g. ``"https://nas.example/dav/store/"``
            (first positional argument). It must exist; the shard
            collections below it are created as needed.
        **options: see :mod:`replica.http_options` (each also accepted as a
            ``"name=value"`` positional string): ``username``/``user`` with
            ``password`` or ``password_env``; ``token`` or ``token_env``;
            ``verify_tls`` (default true), ``ca_bundle``; ``timeout``,
            ``connect_timeout`` (5 s), ``read_timeout`` (30 s); ``retries``
            (3), ``retry_backoff`` (0.2 s), ``retry_max_wait`` (5 s);
            ``pool_size`` (10); ``chunk_size`` (1 MiB); ``sleep`` (keyword
            only, replaces ``time.sleep`` between retries).

    Raises:
        ConfigurationError: an option is missing, unknown or malformed, or a
            secret's environment variable is not set.
    """

    def __init__(self, *args, **kwargs):
        super().__init__()
        options = parse_options(args, kwargs)
        self._options: HTTPOptions = options
        self.base_url = options.base_url
        self._timeout = options.timeout
        self._session = requests.Session()
        self._session.trust_env = False  # no .netrc credentials or proxy settings by surprise
        self._session.auth = make_auth(options.username, options.password, options.token)
        self._session.verify = options.verify
        self._session.headers.update({"Accept-Encoding": "identity",
                                      "User-Agent": "vendor-storage-modules HTTPStorage"})
        adapter = requests.adapters.HTTPAdapter(pool_connections=1,
                                                pool_maxsize=options.pool_size,
                                                max_retries=0, pool_block=False)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._lock = threading.Lock()
        self._known_collections = set()
        self._closed = False
        self._counters: Dict[str, Any] = {
            "requests": 0, "errors": 0, "retries": 0, "writes": 0, "reads": 0, "deletes": 0,
            "bytes_written": 0, "by_method": collections.Counter(),
            "errors_by_kind": collections.Counter(),
        }
        self._latencies = collections.deque(maxlen=_LATENCY_WINDOW)
        self._last_error: Optional[Dict[str, Any]] = None
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
                (LocationTimeout when it did not answer in time).
        """
        url = self._object_url(module_data)
        self._check_open()
        if isinstance(stream, io.TextIOBase):
            raise SourceStreamError("assign needs a binary stream, got a text stream (%s); open "
                                    "files in 'rb' mode" % type(stream).__name__)
        collection_url = url.rsplit("/", 1)[0] + "/"
        temp_url = "%s%s%s-%s" % (collection_url, _TEMP_PREFIX, module_data.rsplit("/", 1)[1],
                                  uuid.uuid4().hex[:12])
        length, rewind = measure_source(stream)
        self._ensure_collections(module_data)
        try:
            sent = self._upload(temp_url, stream, length, rewind, module_data)
            self._check_stored_size(temp_url, sent, module_data)
            self._move(temp_url, url, sent, module_data)
        except AuthenticationFailed:
            raise  # nothing was stored, and a DELETE would be refused as well
        except BaseException:
            self._discard(temp_url)
            raise
        self._count(writes=1, bytes_written=sent)

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
            self._request("HEAD", url, module_data=module_data, ok=(200,)).close()
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
        size = self._size(url, module_data)

        def open_range(position: int) -> requests.Response:
            return self._request("GET", url, module_data=module_data, ok=(200, 206, 416),
                                 headers={"Range": "bytes=%d-" % position}, stream=True,
                                 retry=False)

        self._count(reads=1)
        return HTTPReadStream(size, open_range, url=url, location=self.base_url,
                              module_data=module_data, retrying=self._stream_retrying,
                              chunk_size=self._options.chunk_size, timeout=self._timeout)

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
        self._check_open()
        try:
            self._request("DELETE", url, module_data=module_data, ok=(200, 202, 204)).close()
        except ObjectNotFound:
            return
        self._count(deletes=1)

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
        return self._size(self._object_url(module_data), module_data)

    def statistics(self, context: Optional[dict]) -> Dict[str, Any]:
        """Report quota from ``PROPFIND`` and this instance's request counters; never raises.

        Returns:
            dict: ``capacity`` (total/free/used bytes, -1 unknown, with
            ``capacity_reason`` when unknown), ``base_url``, ``status``
            (``'ok'``, ``'unavailable'``, ``'auth_failed'`` or ``'closed'``),
            ``reason`` when not ok, ``auth`` (the scheme only), ``requests``
            (counts by method, errors by kind, retries), ``latency_ms``
            (count, mean, p50, p95, max over the last requests) and
            ``last_error``.
        """
        result: Dict[str, Any] = {"base_url": self.base_url,
                                  "auth": self._options.auth_description}
        try:
            capacity, reason = self._quota()
            result.update(status="ok", capacity=capacity)
            if reason:
                result["capacity_reason"] = reason
        except StorageError as error:
            status = "auth_failed" if isinstance(error, PermissionError) else "unavailable"
            if self._closed:
                status = "closed"
            result.update(status=status, reason=str(error), capacity=self.capacity(),
                          capacity_reason="the server could not be asked")
        except Exception as error:  # statistics must never raise; say what happened
            log.exception("statistics for %s failed unexpectedly", self.base_url)
            result.update(status="unavailable", capacity=self.capacity(),
                          reason="%s: %s" % (type(error).__name__, error),
                          capacity_reason="the server could not be asked")
        result.update(self._counter_snapshot())
        return result

    def close(self) -> None:
        """Close the connection pool; later calls raise LocationUnavailable.

        So do reads of streams opened before that need a new request; close
        them as well.
        """
        with self._lock:
            self._closed = True
        self._session.close()

    # -- requests ---------------------------------------------------------

    def _request(self, method: str, url: str, *, ok: Iterable[int],
                 module_data: Optional[str] = None, retry: bool = True,
                 stream: bool = False, **kwargs) -> requests.Response:
        """Send one request (retried if ``retry``); return the response if its status is ok.

        Without ``stream`` the (small) body is read and dropped, so the
        connection returns to the pool; with it, the caller reads the body.
        Callers close every response.
        """
        if not retry:
            return self._send(method, url, ok, module_data, stream, kwargs)
        return self._retrying("%s %s" % (method, url))(
            self._send, method, url, ok, module_data, stream, kwargs)

    def _send(self, method: str, url: str, ok: Iterable[int], module_data: Optional[str],
              stream: bool, kwargs: Dict[str, Any]) -> requests.Response:
        self._check_open()
        started = time.monotonic()
        try:
            response = self._session.request(method, url, timeout=self._timeout,
                                             allow_redirects=False, stream=True, **kwargs)
        except requests.RequestException as error:
            mapped = transport_error(method, url, error, location=self.base_url,
                                     timeout=self._timeout)
            self._record(method, url, started, mapped)
            raise mapped from error
        if response.status_code not in ok:
            mapped = status_error(method, url, response, location=self.base_url,
                                  module_data=module_data)
            # Some servers (wsgidav's 401, many proxies' 5xx) send a body even to HEAD,
            # which would be read as the next response: such connections are not reused.
            reusable = method != "HEAD" or response.status_code in (404, 410)
            _close_quietly(response, read=reusable)
            self._record(method, url, started, mapped, status=response.status_code)
            raise mapped
        if not stream:
            try:
                _read_small(response)  # a small body: read, so the connection is reused
            except Exception as error:
                _close_quietly(response)
                mapped = transport_error(method, url, error, location=self.base_url,
                                         timeout=self._timeout)
                self._record(method, url, started, mapped)
                raise mapped from error
        self._record(method, url, started, None, status=response.status_code)
        return response

    def _retrying(self, what: str):
        return make_retrying(self._options.retries + 1, self._options.retry_backoff,
                             self._options.retry_max_wait, sleep=self._options.sleep,
                             on_retry=self._on_retry, what=what)

    def _stream_retrying(self):
        """Retrying for one read of a stream (None when retries are off)."""
        if self._options.retries < 1:
            return None
        return self._retrying("reading")

    def _on_retry(self, error: BaseException) -> None:
        self._count(retries=1)

    # -- assign's steps ---------------------------------------------------

    def _ensure_collections(self, module_data: str) -> None:
        """MKCOL ``xx/`` and ``xx/yy/`` below the base URL unless known to exist."""
        first, second, _ = SHARDED_KEY.match(module_data).groups()
        leaf = "%s/%s/" % (first, second)
        with self._lock:
            if leaf in self._known_collections:
                return
        for relative in ("%s/" % first, leaf):
            url = self.base_url + relative
            # 201 created; 405 it exists already (another writer won the race).
            response = self._request("MKCOL", url, ok=(200, 201, 204, 405))
            response.close()
            if response.status_code == 405:
                log.debug("collection %s exists", url)
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
                response = self._send("PUT", temp_url, (200, 201, 204), None, False,
                                      {"data": body})
            except Exception as error:
                failed = source_error(body)
                if failed is not None:
                    raise failed from failed.__cause__
                if getattr(error, "http_status", None) == 409:
                    # The shard collection vanished (server wiped?): create it again.
                    self._forget_collections(module_data)
                    self._ensure_collections(module_data)
                    error.retryable = True
                raise
            response.close()
            return body.sent

        if rewind is None:
            return attempt()
        return self._retrying("PUT %s" % temp_url)(attempt)

    def _check_stored_size(self, temp_url: str, sent: int, module_data: str) -> None:
        """HEAD the temporary: a server that kept a truncated body must not get it moved."""
        response = self._request("HEAD", temp_url, ok=(200,))
        response.close()
        stored = _content_length(response)
        if stored is not None and stored != sent:
            raise LocationUnavailable(
                "PUT %s: the server stored %d of the %d bytes sent; the upload was discarded"
                % (temp_url, stored, sent), location=self.base_url)

    def _move(self, temp_url: str, url: str, sent: int, module_data: str) -> None:
        """MOVE the temporary onto the key, overwriting (the bytes are the same)."""
        headers = {"Destination": url, "Overwrite": "T"}
        try:
            self._request("MOVE", temp_url, ok=(200, 201, 204), headers=headers).close()
        except ObjectNotFound:
            # A retried MOVE whose first attempt succeeded finds no source: check the target.
            try:
                stored = self._size(url, module_data)
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
        is checked again after short pauses.
        """
        pauses = list(_DISCARD_PAUSES)
        while not self._closed:
            try:
                response = self._request("DELETE", temp_url, ok=(200, 202, 204, 404), retry=False)
            except StorageError as error:
                log.warning("could not delete the temporary upload %s (it is never read; delete "
                            "'%s*' files later): %s", temp_url, _TEMP_PREFIX, error)
                return
            response.close()
            if response.status_code != 404 or not pauses:
                return
            time.sleep(pauses.pop(0))  # a real pause: the server is finishing the aborted PUT

    # -- helpers ----------------------------------------------------------

    def _size(self, url: str, module_data: str) -> int:
        response = self._request("HEAD", url, module_data=module_data, ok=(200,))
        response.close()
        length = _content_length(response)
        if length is not None:
            return length
        # No Content-Length on HEAD: ask for the first byte; Content-Range has the total.
        response = self._request("GET", url, module_data=module_data, ok=(206, 416, 200),
                                 headers={"Range": "bytes=0-0"}, stream=True)
        _close_quietly(response, read=response.status_code != 200)
        match = re.match(r"\s*bytes\s+(?:\d+-\d+|\*)/(\d+)\s*\Z",
                         response.headers.get("Content-Range", ""))
        if match:
            return int(match.group(1))
        if response.status_code == 200:
            length = _content_length(response)
            if length is not None:
                return length
        raise LocationUnavailable("%s: the server reports no size for the object (no "
                                  "Content-Length, no Content-Range)" % url,
                                  location=self.base_url)

    def _quota(self):
        """Return (capacity dict, reason or None) from PROPFIND on the base URL (no retries)."""
        response = self._request(
            "PROPFIND", self.base_url, ok=(207, 200, 405, 501), retry=False, data=_PROPFIND_QUOTA,
            headers={"Depth": "0", "Content-Type": "application/xml; charset=utf-8"},
            stream=True)
        try:
            body = _read_small(response)
        except Exception as error:
            raise transport_error("PROPFIND", self.base_url, error, location=self.base_url,
                                  timeout=self._timeout) from error
        finally:
            response.close()
        if response.status_code in (405, 501):
            return self.capacity(), "the server does not support PROPFIND (%d)" % (
                response.status_code)
        available, used = _parse_quota(body)
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

    def _check_open(self) -> None:
        if self._closed:
            raise LocationUnavailable("HTTPStorage for %s was closed" % self.base_url,
                                      location=self.base_url)

    def _record(self, method: str, url: str, started: float, error: Optional[BaseException],
                status: Optional[int] = None) -> None:
        elapsed = time.monotonic() - started
        with self._lock:
            self._counters["requests"] += 1
            self._counters["by_method"][method] += 1
            self._latencies.append(elapsed)
            if error is not None:
                self._counters["errors"] += 1
                self._counters["errors_by_kind"][type(error).__name__] += 1
                self._last_error = {"time": time.time(), "method": method,
                                    "error": type(error).__name__, "message": str(error)[:500]}
        if error is None:
            log.debug("%s %s -> %s in %.1f ms", method, url, status, elapsed * 1000)
        else:
            log.debug("%s %s failed after %.1f ms: %s", method, url, elapsed * 1000, error)

    def _count(self, **increments) -> None:
        with self._lock:
            for key, value in increments.items():
                if key in self._counters:
                    self._counters[key] += value

    def _counter_snapshot(self) -> Dict[str, Any]:
        with self._lock:
            counters = dict(self._counters)
            counters["by_method"] = dict(counters["by_method"])
            counters["errors_by_kind"] = dict(counters["errors_by_kind"])
            latencies = sorted(self._latencies)
            last_error = dict(self._last_error) if self._last_error else None
        latency = {"count": len(latencies)}
        if latencies:
            latency.update(
                mean=round(1000 * sum(latencies) / len(latencies), 3),
                p50=round(1000 * latencies[len(latencies) // 2], 3),
                p95=round(1000 * latencies[min(len(latencies) - 1,
                                               int(len(latencies) * 0.95))], 3),
                max=round(1000 * latencies[-1], 3))
        return {"requests": counters, "latency_ms": latency, "last_error": last_error}


def _read_small(response: requests.Response) -> bytes:
    """Read a small body completely (the connection then returns to the pool).

    A body larger than the limit is cut and its connection closed.
    """
    data = response.raw.read(_MAX_SMALL_BODY + 1)
    if len(data) > _MAX_SMALL_BODY:
        response.close()
        return data[:_MAX_SMALL_BODY]
    return data


def _close_quietly(response: requests.Response, read: bool = False) -> None:
    try:
        if read:
            _read_small(response)
    except Exception as error:
        log.debug("reading an error body failed: %s", error)
    finally:
        try:
            response.close()
        except Exception as error:
            log.debug("closing a response failed: %s", error)


def _content_length(response: requests.Response) -> Optional[int]:
    value = response.headers.get("Content-Length")
    if value is not None and value.strip().isdigit():
        return int(value)
    return None


def _parse_quota(body: bytes):
    """Return (available, used) from a PROPFIND multistatus; None for missing or bad values."""
    if not body or b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        return None, None
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as error:
        log.warning("PROPFIND answer is not XML (%s); quota unknown", error)
        return None, None
    values = {}
    for propstat in root.iter(_DAV + "propstat"):
        status = propstat.findtext(_DAV + "status") or ""
        if " 200 " not in status + " ":
            continue
        for prop in propstat.iter(_DAV + "prop"):
            for name in ("quota-available-bytes", "quota-used-bytes"):
                element = prop.find(_DAV + name)
                text = (element.text or "").strip() if element is not None else ""
                if text.isdigit():
                    values[name] = int(text)
    return values.get("quota-available-bytes"), values.get("quota-used-bytes")


def _warn_insecure(options: HTTPOptions) -> None:
    parts = urlsplit(options.base_url)
    if parts.scheme == "https" and options.verify is False:
        log.warning("HTTPStorage %s does not verify the server's TLS certificate "
                    "(verify_tls=false); prefer ca_bundle=", options.base_url)
    if parts.scheme == "http" and options.auth_description != "none" and \
            parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        log.warning("HTTPStorage %s sends %s credentials over plain http; use https",
                    options.base_url, options.auth_description.split("(")[0])
