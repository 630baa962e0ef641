"""HTTP plumbing for the host: requests, JSON responses and error statuses.

Requests and responses are Werkzeug's (:class:`werkzeug.wrappers.Request`
and ``Response``): header parsing (``Range``, ``If-Match``, dates, ETags),
``HEAD`` handling and the WSGI calling convention come from there. What is
ours: the strict UTF-8 path (Werkzeug replaces invalid bytes; a key must
not change silently), 411 for a body of unknown length, a bounded JSON
parser, and :func:`error_status`, the one place where SDK errors become
HTTP statuses.
"""
import hashlib
import io
import json
import logging
import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

from werkzeug.wrappers import Request as _WerkzeugRequest
from werkzeug.wrappers import Response as _WerkzeugResponse

from modules.errors import (
    AuthenticationFailed,
    ConfigurationError,
    DataCorrupted,
    InsufficientStorage,
    InvalidModuleData,
    LocationUnavailable,
    ObjectNotFound,
    SourceStreamError,
    StorageError,
    Unsupported,
)

__all__ = ["HttpError", "Request", "Response", "FileResponse", "error_status", "json_response",
           "empty_response", "streamed_response",
           "BodyReader", "READ_CHUNK_SIZE", "MAX_JSON_BODY", "MAX_JSON_DEPTH"]

log = logging.getLogger(__name__)

#: Bytes read from request bodies and module read streams per call.
READ_CHUNK_SIZE = 1024 * 1024

#: The largest JSON request body the host accepts (configuration, repair).
MAX_JSON_BODY = 1024 * 1024

#: The deepest nesting of arrays and objects a JSON request body may have.
MAX_JSON_DEPTH = 32

_REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content",
    304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 411: "Length Required",
    412: "Precondition Failed", 413: "Payload Too Large", 415: "Unsupported Media Type",
    416: "Range Not Satisfiable", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable", 507: "Insufficient Storage",
}


class HttpError(Exception):
    """An error answer: ``status`` with a JSON body ``{"error", "message", ...}``."""

    def __init__(self, status: int, message: str, error: Optional[str] = None,
                 headers: Optional[List[Tuple[str, str]]] = None, **details):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error or _REASONS.get(status, "Error").replace(" ", "")
        self.headers = list(headers or [])
        self.details = details

    def body(self) -> Dict[str, Any]:
        """Return the JSON body of the answer."""
        body = {"error": self.error, "message": self.message}
        body.update(self.details)
        return body


def _over_the_limit(error: Exception) -> bool:
    """Tell whether reading a request body failed because it is over the size limit.

    cheroot knows the limit of a chunked body only while reading it, and says
    so with ``MaxSizeExceeded`` or ``IOError('Request Entity Too Large')``
    (cheroot/server.py, ``ChunkedRFile``); there is no other signal.
    """
    return (type(error).__name__ == "MaxSizeExceeded"
            or (isinstance(error, OSError) and error.args == ("Request Entity Too Large",)))


def error_status(error: BaseException) -> int:
    """Return the HTTP status for an SDK error (500 for anything unexpected)."""
    if isinstance(error, ObjectNotFound):
        return 404
    if isinstance(error, InsufficientStorage):
        return 507
    if isinstance(error, AuthenticationFailed):
        return 503  # the storage refused the host's credentials, not the client's
    if isinstance(error, LocationUnavailable):
        return 503
    if isinstance(error, Unsupported):
        return 501
    if isinstance(error, SourceStreamError):
        return 400
    if isinstance(error, InvalidModuleData):
        return 500  # the index holds something the module rejects
    if isinstance(error, ConfigurationError):
        return 503  # a stored configuration cannot be used; the administrator must fix it
    if isinstance(error, DataCorrupted):
        return 500
    return 500


class Response(_WerkzeugResponse):
    """A Werkzeug response without a default ``Content-Type`` (204s carry none).

    Call it as a WSGI application: ``response(environ, start_response)``;
    ``call_on_close(f)`` runs ``f`` when the server closes the body.
    """

    default_mimetype = None


def json_response(status: int, data: Any, headers: Optional[List[Tuple[str, str]]] = None,
                  head: bool = False) -> Response:
    """Return a JSON response (Werkzeug sends no body for HEAD; ``head`` is kept for callers)."""
    payload = json.dumps(data, indent=1, sort_keys=True, default=str).encode("utf-8") + b"\n"
    all_headers = [("Content-Type", "application/json; charset=utf-8"),
                   ("Cache-Control", "no-store")]
    all_headers.extend(headers or [])
    return Response(payload, status=status, headers=all_headers)


def empty_response(status: int, headers: Optional[List[Tuple[str, str]]] = None) -> Response:
    """Return a response without a body (e.g. 204)."""
    extra = [] if status == 204 or status == 304 else [("Content-Length", "0")]
    return Response(b"", status=status, headers=extra + list(headers or []))


def streamed_response(status: int, headers: List[Tuple[str, str]],
                      body: Iterable[bytes]) -> Response:
    """Return a response streaming ``body`` (its ``close()`` runs when the server closes)."""
    return Response(body, status=status, headers=headers)


class FileResponse(Response):
    """A response whose body is ``wsgi.file_wrapper(body)``, returned to the server as is.

    PEP 3333 lets a server send such a body its own way (``vsm serve``:
    ``sendfile(2)``, no copy through Python); Werkzeug's usual wrapping of
    the body would hide it from the server, so :meth:`__call__` starts the
    response and returns the wrapper itself. ``call_on_close`` callbacks
    run when the server closes it (``body.on_close``).
    """

    def __init__(self, body, status: int, headers: List[Tuple[str, str]]):
        super().__init__(None, status=status, headers=headers)
        self._body = body

    def call_on_close(self, func):
        """Run ``func`` when the server closes the body; return ``func``."""
        self._body.on_close.append(func)
        return func

    def __call__(self, environ: Dict[str, Any], start_response) -> Iterable[bytes]:
        headers = self.get_wsgi_headers(environ)
        start_response(self.status, headers.to_wsgi_list())
        return environ["wsgi.file_wrapper"](self._body, READ_CHUNK_SIZE)


class Request(_WerkzeugRequest):
    """A Werkzeug request with the host's strict path and body rules.

    Raises:
        HttpError: 400 when the path is not valid UTF-8.
    """

    def __init__(self, environ: Dict[str, Any]):
        super().__init__(environ, shallow=True)
        raw_path = environ.get("PATH_INFO", "") or "/"
        try:
            # PEP 3333: PATH_INFO carries the URL-decoded bytes as latin-1.
            self.path = raw_path.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            raise HttpError(400, "the request path is not valid UTF-8 (percent-encode keys as "
                                 "UTF-8)") from None

    @property
    def query(self) -> Dict[str, str]:
        """The query string as ``{name: last value}`` (invalid UTF-8 replaced)."""
        return {name: values[-1] for name, values in self.args.lists()}

    def header(self, name: str) -> Optional[str]:
        """Return request header ``name`` (e.g. ``'Range'``) or None when absent or empty."""
        value = self.headers.get(name)
        return value if value not in (None, "") else None

    def declared_length(self) -> Optional[int]:
        """Return the declared body length, or None when the body is delimited otherwise.

        Raises:
            HttpError: 400 for a malformed Content-Length (RFC 9110 section 8.6).
        """
        value = self.header("Content-Length")
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit() or not value.isascii():
            raise HttpError(400, "Content-Length %r is not a number of bytes" % value[:40])
        return int(value)

    def body_reader(self) -> "BodyReader":
        """Return a reader over the request body.

        Raises:
            HttpError: 411 when the body has neither a length nor an end
                marker (RFC 9110 section 15.5.12).
        """
        length = self.declared_length()
        if length is None and not self._chunked():
            raise HttpError(411, "send Content-Length (or a chunked body)")
        return BodyReader(self.environ["wsgi.input"], length)

    def _chunked(self) -> bool:
        # Not wsgi.input_terminated alone: waitress sets it on every request, bodies or not.
        # Servers that de-chunk either set CONTENT_LENGTH (waitress) or keep the header.
        return "chunked" in (self.header("Transfer-Encoding") or "").lower()

    def has_body(self) -> bool:
        """Return True when the request announces a body (a length above 0, or chunked)."""
        length = self.declared_length()
        if length is not None:
            return length > 0
        return self._chunked()

    def read_json(self) -> Any:
        """Read and parse a JSON request body.

        Returns:
            The parsed value: nesting at most :data:`MAX_JSON_DEPTH` deep,
            strings without lone UTF-16 surrogates.

        Raises:
            HttpError: 400 (not JSON, too deep, lone surrogates), 411, 413
                (larger than 1 MiB).
        """
        reader = self.body_reader()
        data = reader.read(MAX_JSON_BODY + 1)
        if len(data) > MAX_JSON_BODY:
            raise HttpError(413, "the JSON body is larger than %d bytes" % MAX_JSON_BODY)
        return parse_json(data)


def parse_json(data: bytes) -> Any:
    """Parse a JSON request body (see :meth:`Request.read_json`).

    Raises:
        HttpError: 400 with the reason.
    """
    if not data.strip():
        raise HttpError(400, "the request needs a JSON body")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HttpError(400, "the body is not UTF-8: %s" % error) from None
    if _nesting(text) > MAX_JSON_DEPTH:
        raise HttpError(400, "the JSON body nests arrays and objects more than %d deep"
                        % MAX_JSON_DEPTH)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise HttpError(400, "the body is not valid JSON: %s" % str(error)[:200]) from None
    if _has_surrogates(value, 0):
        raise HttpError(400, "the JSON body holds a lone UTF-16 surrogate (\\ud800-\\udfff "
                             "without its pair); send valid Unicode")
    return value


def _nesting(text: str) -> int:
    """Return how deep ``[`` and ``{`` nest in ``text``, outside strings.

    Written by hand because the json module has no depth limit: it recurses
    until RecursionError, which must not be reached on a client's input.
    """
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogates(value: Any, depth: int) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if depth > MAX_JSON_DEPTH:
        return False
    if isinstance(value, dict):
        return any(_has_surrogates(key, depth + 1) or _has_surrogates(item, depth + 1)
                   for key, item in value.items())
    if isinstance(value, list):
        return any(_has_surrogates(item, depth + 1) for item in value)
    return False


class BodyReader(io.RawIOBase):
    """A binary stream over a request body that counts and hashes what it yields.

    With a declared ``length`` it reads exactly that many bytes and raises
    ``short_error`` (default :class:`SourceStreamError`) if the source ends
    early (the client's connection was lost), so a module never stores a
    truncated object. SDK errors raised by the source pass through.
    """

    def __init__(self, source, length: Optional[int], short_error=SourceStreamError):
        super().__init__()
        self._short_error = short_error
        self._source = source
        self._remaining = length
        self._hash = hashlib.sha256()
        self.bytes_read = 0
        #: How many times the consumer asked for data (0: it never touched the body).
        self.read_calls = 0
        #: True once the source refused to give more: the body is over the server's limit.
        self.too_large = False

    def readable(self) -> bool:
        """Return True."""
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        """Read up to ``size`` bytes (all when -1); ``b''`` at the end of the body.

        Raises:
            SourceStreamError: the client's body ended before Content-Length.
        """
        self.read_calls += 1
        if size is None or size < 0:
            parts = []
            while True:
                part = self.read(READ_CHUNK_SIZE)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        if self._remaining is not None:
            size = min(size, self._remaining)
        if size == 0:
            return b""
        try:
            data = self._source.read(size)
        except StorageError:
            raise
        except Exception as error:
            if _over_the_limit(error):
                self.too_large = True
                raise SourceStreamError("the request body is larger than this server accepts "
                                        "(vsm serve --max-body-size)") from error
            raise SourceStreamError("reading the source failed after %d bytes: %s: %s"
                                    % (self.bytes_read, type(error).__name__, error)) from error
        if not data and self._remaining:
            raise self._short_error("the source ended after %d bytes, %d bytes short of its "
                                    "declared length" % (self.bytes_read, self._remaining))
        if self._remaining is not None:
            self._remaining -= len(data)
        self.bytes_read += len(data)
        self._hash.update(data)
        return data

    def readinto(self, buffer) -> int:
        """Read into ``buffer``; return the number of bytes (0 at the end)."""
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def sha256(self) -> str:
        """Return the hex SHA-256 of everything read so far."""
        return self._hash.hexdigest()

    def at_end(self) -> bool:
        """Return True when a body of declared length has been read completely."""
        return self._remaining in (None, 0)
