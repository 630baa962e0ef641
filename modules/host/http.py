"""HTTP plumbing for the host: requests, JSON responses and error statuses.

:func:`error_status` is the one place where SDK errors become HTTP
statuses.
"""
import hashlib
import io
import json
import logging
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import parse_qs

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

__all__ = ["HttpError", "Request", "Response", "error_status", "json_response", "BodyReader",
           "READ_CHUNK_SIZE"]

log = logging.getLogger(__name__)

#: Bytes read from request bodies and module read streams per call.
READ_CHUNK_SIZE = 1024 * 1024

#: The largest JSON request body the host accepts (configuration, repair).
MAX_JSON_BODY = 1024 * 1024

_REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content",
    304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 411: "Length Required",
    412: "Precondition Failed", 413: "Payload Too Large", 415: "Unsupported Media Type",
    416: "Range Not Satisfiable", 500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable", 507: "Insufficient Storage",
}

StartResponse = Callable[[str, List[Tuple[str, str]]], Any]


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


def status_line(status: int) -> str:
    """Return ``'404 Not Found'`` for 404."""
    return "%d %s" % (status, _REASONS.get(status, "Unknown"))


class Response:
    """A status, headers and a body iterable, given to ``start_response`` by :meth:`send`."""

    def __init__(self, status: int, headers: Optional[List[Tuple[str, str]]] = None,
                 body: Iterable[bytes] = ()):
        self.status = status
        self.headers = list(headers or [])
        self.body = body

    def send(self, start_response: StartResponse) -> Iterable[bytes]:
        """Call ``start_response`` and return the body iterable."""
        start_response(status_line(self.status), self.headers)
        return self.body


def json_response(status: int, data: Any, headers: Optional[List[Tuple[str, str]]] = None,
                  head: bool = False) -> Response:
    """Return a JSON response (no body when ``head``)."""
    payload = json.dumps(data, indent=1, sort_keys=True, default=str).encode("utf-8") + b"\n"
    all_headers = [("Content-Type", "application/json; charset=utf-8"),
                   ("Content-Length", str(len(payload))), ("Cache-Control", "no-store")]
    all_headers.extend(headers or [])
    return Response(status, all_headers, [] if head else [payload])


def empty_response(status: int, headers: Optional[List[Tuple[str, str]]] = None) -> Response:
    """Return a response without a body (e.g. 204)."""
    return Response(status, [("Content-Length", "0")] + list(headers or []), [])


class Request:
    """The parts of a WSGI environ the host uses, decoded."""

    def __init__(self, environ: Dict[str, Any]):
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        raw_path = environ.get("PATH_INFO", "") or "/"
        try:
            # PEP 3333: PATH_INFO carries the URL-decoded bytes as latin-1.
            self.path = raw_path.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            raise HttpError(400, "the request path is not valid UTF-8 (percent-encode keys as "
                                 "UTF-8)") from None
        self.query = {name: values[-1] for name, values in parse_qs(
            environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}

    def header(self, name: str) -> Optional[str]:
        """Return request header ``name`` (e.g. ``'Range'``) or None."""
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            value = self.environ.get(key)
        else:
            value = self.environ.get("HTTP_" + key)
        return value if value not in (None, "") else None

    def content_length(self) -> Optional[int]:
        """Return the declared body length, or None when the body is delimited otherwise.

        Raises:
            HttpError: 400 for a malformed Content-Length.
        """
        value = self.header("Content-Length")
        if value is None:
            return None
        try:
            length = int(value)
        except ValueError:
            raise HttpError(400, "Content-Length %r is not a number" % value) from None
        if length < 0:
            raise HttpError(400, "Content-Length must not be negative")
        return length

    def body_reader(self) -> "BodyReader":
        """Return a reader over the request body.

        Raises:
            HttpError: 411 when the body has neither a length nor an end marker.
        """
        length = self.content_length()
        if length is None and not self.environ.get("wsgi.input_terminated"):
            raise HttpError(411, "send Content-Length (or a chunked body)")
        return BodyReader(self.environ["wsgi.input"], length)

    def read_json(self) -> Any:
        """Read and parse a JSON request body.

        Raises:
            HttpError: 400 (not JSON), 411, 413 (larger than 1 MiB).
        """
        reader = self.body_reader()
        data = reader.read(MAX_JSON_BODY + 1)
        if len(data) > MAX_JSON_BODY:
            raise HttpError(413, "the JSON body is larger than %d bytes" % MAX_JSON_BODY)
        if not data.strip():
            raise HttpError(400, "the request needs a JSON body")
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise HttpError(400, "the body is not valid JSON: %s" % error) from None


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

    def readable(self) -> bool:
        """Return True."""
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        """Read up to ``size`` bytes (all when -1); ``b''`` at the end of the body.

        Raises:
            SourceStreamError: the client's body ended before Content-Length.
        """
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
