"""A real WebDAV server in a thread, with the quirks and faults real servers show.

wsgidav over a directory, served by cheroot on 127.0.0.1, behind a WSGI
middleware the tests steer: ignore ``Range`` (200 instead of 206), send
``HEAD`` without ``Content-Length``, answer the next N requests of a method
with a status, keep only part of a ``PUT`` body and still answer 201, demand
a bearer token, see another scheme than the client used (as a server behind
a TLS-terminating proxy does), refuse a path-absolute ``Destination`` (as
Apache mod_dav does). Every request is recorded (method, path, a few headers) so
tests can see what the client sent.
"""
import threading
from typing import Dict, List, Optional, Tuple

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from wsgidav.wsgidav_app import WsgiDAVApp

__all__ = ["QuirkyDAVServer"]

_RECORDED_HEADERS = ("HTTP_RANGE", "CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING",
                     "HTTP_DESTINATION", "HTTP_OVERWRITE", "HTTP_DEPTH")


class QuirkyDAVServer:
    """wsgidav over ``root`` at ``http://127.0.0.1:<port>/`` with steerable faults.

    ``tls=(certificate file, key file)`` serves https instead.
    """

    def __init__(self, root: str, tls: Optional[Tuple[str, str]] = None):
        self.root = root
        self._scheme = "https" if tls else "http"
        self.ignore_range = False
        self.head_without_length = False
        self.bearer_token: Optional[str] = None
        #: Keep only this many bytes of each PUT body (then answer as usual).
        self.truncate_put_to: Optional[int] = None
        #: The scheme wsgidav is told the request came with ("http" behind a TLS proxy).
        self.backend_scheme: Optional[str] = None
        #: Answer 400 to MOVE/COPY whose Destination is not an absolute URL (Apache mod_dav).
        self.refuse_path_destination = False
        #: Answer every PROPFIND with 207 and this body (hostile or broken XML).
        self.propfind_body: Optional[bytes] = None
        self._failures: List[list] = []
        self._lock = threading.Lock()
        self.requests: List[Dict[str, str]] = []
        config = {
            "host": "127.0.0.1", "port": 0,
            "provider_mapping": {"/": root},
            "simple_dc": {"user_mapping": {"*": True}},
            "http_authenticator": {"accept_basic": True, "accept_digest": False,
                                   "default_to_digest": False},
            "verbose": 1, "logging": {"enable": False}, "dir_browser": {"enable": False},
            "block_size": 256 * 1024,
        }
        self._dav = WsgiDAVApp(config)
        self._server = wsgi.Server(("127.0.0.1", 0), self._app, numthreads=8)
        if tls:
            self._server.ssl_adapter = BuiltinSSLAdapter(tls[0], tls[1])
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return "%s://127.0.0.1:%d/" % (self._scheme, self._server.bind_addr[1])

    def fail_next(self, method: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``method`` with ``status``."""
        with self._lock:
            self._failures.append([method, status, times])

    def recorded(self, method: Optional[str] = None) -> List[Dict[str, str]]:
        """Return the recorded requests (of ``method`` only, when given)."""
        with self._lock:
            return [r for r in self.requests if method is None or r["method"] == method]

    def clear(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self.requests.clear()

    def reset(self) -> None:
        """Drop every quirk and fault and forget the recorded requests."""
        with self._lock:
            self.ignore_range = False
            self.head_without_length = False
            self.bearer_token = None
            self.truncate_put_to = None
            self.backend_scheme = None
            self.refuse_path_destination = False
            self.propfind_body = None
            self._failures.clear()
            self.requests.clear()

    def start(self) -> "QuirkyDAVServer":
        self._server.prepare()
        self._thread = threading.Thread(target=self._server.serve, daemon=True,
                                        name="quirky-dav")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "QuirkyDAVServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- the middleware ---------------------------------------------------

    def _app(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        record = {"method": method, "path": environ.get("PATH_INFO", ""),
                  "authorization": environ.get("HTTP_AUTHORIZATION", "")}
        for name in _RECORDED_HEADERS:
            if name in environ:
                record[name.replace("HTTP_", "").lower()] = environ[name]
        with self._lock:
            self.requests.append(record)
            status = None
            for rule in self._failures:
                if rule[0] == method and rule[2] > 0:
                    rule[2] -= 1
                    status = rule[1]
                    break
        if self.refuse_path_destination and method in ("MOVE", "COPY") and \
                environ.get("HTTP_DESTINATION", "").startswith("/"):
            status = 400
        if self.bearer_token is not None and \
                environ.get("HTTP_AUTHORIZATION") != "Bearer " + self.bearer_token:
            status = 401
        if status is not None:
            _drain(environ)
            start_response("%d Injected" % status, [("Content-Type", "text/plain"),
                                                    ("Content-Length", "8")])
            return [] if method == "HEAD" else [b"injected"]  # no body on HEAD
        if method == "PROPFIND" and self.propfind_body is not None:
            _drain(environ)
            start_response("207 Multi-Status", [
                ("Content-Type", "application/xml"),
                ("Content-Length", str(len(self.propfind_body)))])
            return [self.propfind_body]
        if self.backend_scheme is not None:
            environ["wsgi.url_scheme"] = self.backend_scheme
        if self.ignore_range:
            environ.pop("HTTP_RANGE", None)
        if method == "PUT" and self.truncate_put_to is not None:
            environ["wsgi.input"] = _Truncated(environ["wsgi.input"], self.truncate_put_to)
        if method == "HEAD" and self.head_without_length:
            def start_without_length(status_line, headers, exc_info=None):
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                return start_response(status_line, headers, exc_info)
            return self._dav(environ, start_without_length)
        return self._dav(environ, start_response)


def _drain(environ) -> None:
    stream = environ["wsgi.input"]
    while stream.read(65536):
        pass


class _Truncated:
    """wsgi.input that hands the application only the first ``limit`` bytes (reads all)."""

    def __init__(self, stream, limit: int):
        self._stream = stream
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        while True:
            data = self._stream.read(size if size and size > 0 else 65536)
            if not data:
                return b""
            if self._left > 0:
                kept = data[:self._left]
                self._left -= len(kept)
                return kept
            # Past the limit: swallow the rest of the body.
