"""The transport of HTTPStorage: one requests session, statuses checked, failures mapped, counted.

:class:`Transport` is the only place that sends requests. It keeps one
``requests.Session`` (a connection pool of ``pool_size``) per HTTPStorage,
always passes the ``(connect, read)`` timeout (requests never times out by
default), never follows redirects and ignores the environment (no ``.netrc``
credentials or proxy variables by surprise). A status outside the caller's
``ok`` set and every transport failure become SDK errors through
:mod:`replica.http.errors`; the retry policy of :mod:`replica.http.retry` is
built once, here. Requests, errors and latencies are counted for
``statistics``.
"""
import collections
import logging
import threading
import time
from typing import Any, Dict, Iterable, Optional

import requests
import requests.adapters

from modules.errors import LocationUnavailable
from replica.http.auth import make_auth
from replica.http.errors import status_error, transport_error
from replica.http.options import HTTPOptions
from replica.http.retry import make_retrying

__all__ = ["Transport", "read_small", "close_quietly", "MAX_SMALL_BODY"]

log = logging.getLogger(__name__)

#: Most bytes of a response body read for its own sake (error pages, small answers).
MAX_SMALL_BODY = 256 * 1024
#: Latencies kept for the percentiles in ``statistics``.
_LATENCY_WINDOW = 1000


class Transport:
    """Send requests to one WebDAV server for one HTTPStorage (thread-safe).

    Args:
        options: the storage's validated options (credentials, TLS, timeouts,
            pool size, retry policy, ``sleep``).
    """

    def __init__(self, options: HTTPOptions):
        self.location = options.base_url
        self.timeout = options.timeout
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
        self._closed = False
        self._counters: Dict[str, Any] = {
            "requests": 0, "errors": 0, "retries": 0, "writes": 0, "reads": 0, "deletes": 0,
            "bytes_written": 0, "by_method": collections.Counter(),
            "errors_by_kind": collections.Counter(),
        }
        self._latencies = collections.deque(maxlen=_LATENCY_WINDOW)
        self._last_error: Optional[Dict[str, Any]] = None
        #: The retry policy of this instance (None when ``retries=0``); see replica.http.retry.
        self.retrying = None
        if options.retries > 0:
            self.retrying = make_retrying(options.retries + 1, options.retry_backoff,
                                          options.retry_max_wait, sleep=options.sleep,
                                          on_retry=self._on_retry,
                                          what="HTTPStorage %s" % options.base_url)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def request(self, method: str, url: str, *, ok: Iterable[int],
                module_data: Optional[str] = None, retry: bool = True,
                stream: bool = False, **kwargs) -> requests.Response:
        """Send ``method url`` (retried if ``retry``); return the response if its status is ok.

        Without ``stream`` the (small) body is read and dropped, so the
        connection returns to the pool; with it, the caller reads the body.
        Callers close every response. ``module_data`` makes 404/410 an
        :class:`ObjectNotFound` about that object.

        Returns:
            requests.Response: with a status in ``ok``.

        Raises:
            StorageError: the SDK error for the status or the failure (see
                :mod:`replica.http.errors`), after the retries.
        """
        if not retry:
            return self.send(method, url, ok=ok, module_data=module_data, stream=stream, **kwargs)
        return self.call(self.send, method, url, ok=ok, module_data=module_data, stream=stream,
                         **kwargs)

    def call(self, function, *args, **kwargs):
        """Run ``function(*args, **kwargs)`` under the retry policy; return its result."""
        if self.retrying is None:
            return function(*args, **kwargs)
        return self.retrying(function, *args, **kwargs)

    def send(self, method: str, url: str, *, ok: Iterable[int],
             module_data: Optional[str] = None, stream: bool = False,
             **kwargs) -> requests.Response:
        """Send one request, once; see :meth:`request` for what is returned and raised."""
        self.check_open()
        started = time.monotonic()
        try:
            response = self._session.request(method, url, timeout=self.timeout,
                                             allow_redirects=False, stream=True, **kwargs)
        except requests.RequestException as error:
            mapped = transport_error(method, url, error, location=self.location,
                                     timeout=self.timeout)
            self._record(method, url, started, mapped)
            raise mapped from error
        if response.status_code not in ok:
            mapped = status_error(method, url, response, location=self.location,
                                  module_data=module_data)
            # Some servers (wsgidav's 401, many proxies' 5xx) send a body even to HEAD,
            # which would be read as the next response: such connections are not reused.
            reusable = method != "HEAD" or response.status_code in (404, 410)
            close_quietly(response, read=reusable)
            self._record(method, url, started, mapped, status=response.status_code)
            raise mapped
        if not stream:
            try:
                read_small(response)  # a small body: read, so the connection is reused
            except Exception as error:
                close_quietly(response)
                mapped = transport_error(method, url, error, location=self.location,
                                         timeout=self.timeout)
                self._record(method, url, started, mapped)
                raise mapped from error
        self._record(method, url, started, None, status=response.status_code)
        return response

    def check_open(self) -> None:
        """Raise LocationUnavailable once the transport is closed."""
        if self._closed:
            raise LocationUnavailable("HTTPStorage for %s was closed" % self.location,
                                      location=self.location)

    def close(self) -> None:
        """Close the connection pool; later requests raise LocationUnavailable."""
        with self._lock:
            self._closed = True
        self._session.close()

    # -- counters ---------------------------------------------------------

    def count(self, **increments: int) -> None:
        """Add to the named counters (``writes``, ``reads``, ``deletes``, ``bytes_written``)."""
        with self._lock:
            for key, value in increments.items():
                if key in self._counters:
                    self._counters[key] += value

    def snapshot(self) -> Dict[str, Any]:
        """Return ``requests`` (counters), ``latency_ms`` and ``last_error`` for statistics."""
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

    def _on_retry(self, error: BaseException) -> None:
        self.count(retries=1)

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


def read_small(response: requests.Response) -> bytes:
    """Read a small body completely (the connection then returns to the pool).

    A body larger than :data:`MAX_SMALL_BODY` is cut and its connection closed.

    Returns:
        bytes: at most :data:`MAX_SMALL_BODY` bytes.
    """
    data = response.raw.read(MAX_SMALL_BODY + 1)
    if len(data) > MAX_SMALL_BODY:
        response.close()
        return data[:MAX_SMALL_BODY]
    return data


def close_quietly(response: requests.Response, read: bool = False) -> None:
    """Close ``response`` (after reading its small body when ``read``); never raises."""
    try:
        if read:
            read_small(response)
    except Exception as error:
        log.debug("reading an error body failed: %s", error)
    finally:
        try:
            response.close()
        except Exception as error:
            log.debug("closing a response failed: %s", error)
