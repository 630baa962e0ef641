"""A seekable read stream over ranged HTTP ``GET`` requests.

One streaming response is kept open and read from while reads are
sequential; ``seek`` only moves the position, and the next read asks again
with ``Range: bytes=<position>-``. A server that ignores ``Range`` (200
instead of 206) is read from the start and the bytes before the position are
skipped. A failure in the middle of a response (connection reset, early
end) drops the response and re-requests from the current position, up to the
storage's retry limit, so a long read survives a brief outage. A timeout is
raised at once (:mod:`replica.http.retry`: the caller does better to read
another copy). ``Content-Range`` and ``Content-Length`` are parsed by
:mod:`replica.http.headers`.
"""
import logging
from typing import Callable, Optional

import requests
import tenacity

from modules.errors import DataCorrupted, LocationUnavailable
from modules.streams import ReadStream
from replica.http.errors import is_transport_error, transport_error
from replica.http.headers import content_length, content_range

__all__ = ["HTTPReadStream"]

log = logging.getLogger(__name__)


class HTTPReadStream(ReadStream):
    """Read ``size`` bytes at ``url`` through ranged GETs (see the module docstring).

    Args:
        size: the object's size (from ``HEAD``).
        open_range: ``open_range(position)`` sends ``GET`` with
            ``Range: bytes=<position>-`` and returns the streaming response,
            whose status is 200, 206 or 416 (other statuses and transport
            failures are raised as SDK errors by the caller's mapper).
        url, location, module_data: named in error messages.
        retrying: the storage's tenacity policy (it re-opens the response at
            the current position after a transient failure), or None for no
            retries.
        chunk_size: bytes read and discarded per call when skipping.
    """

    def __init__(self, size: int, open_range: Callable[[int], requests.Response], *, url: str,
                 location: str, module_data: str,
                 retrying: Optional[tenacity.Retrying],
                 chunk_size: int = 1024 * 1024, timeout=None):
        super().__init__(size)
        self._open_range = open_range
        self._url = url
        self._location = location
        self._module_data = module_data
        self._retrying = retrying
        self._chunk_size = chunk_size
        self._timeout = timeout
        self._response: Optional[requests.Response] = None
        self._response_position = -1
        #: Requests sent so far (observable by tests and statistics).
        self.requests = 0

    def __repr__(self) -> str:
        return "<HTTPReadStream %s size=%d position=%d%s>" % (
            self._url, self._size, self._position, " closed" if self.closed else "")

    # -- the primitive ----------------------------------------------------

    def _read_at(self, position: int, size: int) -> bytes:
        if self._retrying is None:
            return self._read_once(position, size)
        return self._retrying(self._read_once, position, size)

    def _release(self) -> None:
        self._drop()

    # -- helpers ----------------------------------------------------------

    def _read_once(self, position: int, size: int) -> bytes:
        if self._response is None or self._response_position != position:
            self._open(position)
        data = self._read_response(size)
        if not data:
            self._drop()
            raise LocationUnavailable(
                "GET %s: the response ended at byte %d, before the object's %d bytes; the "
                "connection was cut" % (self._url, position, self._size),
                location=self._location)
        self._response_position += len(data)
        return data

    def _open(self, position: int) -> None:
        self._drop()
        response = self._open_range(position)
        self.requests += 1
        try:
            if response.status_code == 206:
                start = self._check_content_range(response, position)
                self._response = response
                self._response_position = start
                if start < position:
                    self._skip(position - start)
            elif response.status_code == 200:
                length = content_length(response.headers)
                if length is not None and length != self._size:
                    raise DataCorrupted(
                        "GET %s returned %s bytes but the object has %d; it changed underneath"
                        % (self._url, length, self._size), module_data=self._module_data,
                        location=self._location)
                if position:
                    log.debug("%s ignores Range; skipping %d bytes", self._url, position)
                self._response = response
                self._response_position = 0
                self._skip(position)
            else:  # 416: nothing at or after position, yet position < size
                raise DataCorrupted(
                    "GET %s: the server has no byte %d (416 Range Not Satisfiable) although the "
                    "object had %d bytes; it was truncated" % (self._url, position, self._size),
                    module_data=self._module_data, location=self._location)
        except BaseException:
            if self._response is response:
                self._drop()
            else:
                response.close()
            raise

    def _check_content_range(self, response: requests.Response, position: int) -> int:
        parsed = content_range(response.headers)
        if parsed is None or parsed.start is None:
            raise LocationUnavailable(
                "GET %s: 206 Partial Content with an unusable Content-Range %r" % (
                    self._url, response.headers.get("Content-Range", "")[:100]),
                location=self._location)
        start, total = parsed.start, parsed.total
        if total is not None and total != self._size:
            raise DataCorrupted(
                "GET %s: the object now has %s bytes, not %d; it changed underneath" % (
                    self._url, total, self._size), module_data=self._module_data,
                location=self._location)
        if start > position:
            raise LocationUnavailable(
                "GET %s: asked for bytes from %d, the server sent them from %d" % (
                    self._url, position, start), location=self._location)
        return start

    def _skip(self, count: int) -> None:
        while count > 0:
            data = self._read_response(min(count, self._chunk_size))
            if not data:
                self._drop()
                raise LocationUnavailable("GET %s: the response ended while skipping to the "
                                          "requested position" % self._url,
                                          location=self._location)
            count -= len(data)
            self._response_position += len(data)

    def _read_response(self, size: int) -> bytes:
        try:
            return self._response.raw.read(size)
        except Exception as error:
            if not is_transport_error(error):
                raise
            self._drop()
            raise transport_error("GET", self._url, error, location=self._location,
                                  timeout=self._timeout) from error

    def _drop(self) -> None:
        response, self._response = self._response, None
        self._response_position = -1
        if response is not None:
            try:
                response.close()
            except Exception as error:  # closing a broken connection may fail again
                log.debug("closing the response for %s failed: %s", self._url, error)
