"""A seekable read stream over ranged S3 ``GetObject`` requests.

The object is opened with one plain ``GetObject`` (which also gives its size
and ETag); while reads are sequential the stream keeps reading that answer.
After a ``seek`` the next read asks again with ``Range: bytes=<position>-``
and ``If-Match: <ETag>``, so a changed object is detected (412) instead of
mixing two versions. botocore's retry layer re-sends failed requests, but it
cannot resume a body it has already handed over: when an answer is cut or
stalls in the middle (a dropped connection, a server closing an idle
connection under a slow reader), the stream asks again from its position, up
to ``resumes`` times per read (the storage's ``retries``), and then reports
:class:`~modules.errors.LocationUnavailable` so that the replica moves on to
the next copy.
"""
import logging
from typing import Any, Callable, ContextManager, Optional

from botocore.exceptions import ClientError

from modules.errors import DataCorrupted, LocationUnavailable
from modules.streams import ReadStream
from replica.s3.errors import error_code

__all__ = ["S3ReadStream"]

log = logging.getLogger(__name__)


class S3ReadStream(ReadStream):
    """Read one S3 object (see the module docstring).

    Args:
        client: the botocore S3 client.
        bucket, key: the object.
        size: its size in bytes (``ContentLength`` of the first answer).
        etag: its ETag, sent as ``If-Match`` on every later request.
        body: the streaming body of the first answer, positioned at 0.
        errors: ``errors(operation)`` returns the context manager that maps
            botocore failures to SDK errors (:func:`replica.s3.errors.converted`).
        location, module_data: named in error messages.
        resumes: how many times one read may ask again from its position after
            the answer was cut or stalled (botocore retries requests, but
            cannot resume a body it has already handed over).
    """

    def __init__(self, client, bucket: str, key: str, size: int, etag: Optional[str], body: Any,
                 *, errors: Callable[[str], ContextManager], location: str, module_data: str,
                 resumes: int = 0):
        super().__init__(size)
        self._client = client
        self._bucket = bucket
        self._key = key
        self._etag = etag
        self._errors = errors
        self._location = location
        self._module_data = module_data
        self._body = body
        self._body_position = 0
        self._resumes = resumes
        #: Requests sent so far, the first included (for tests and statistics).
        self.requests = 1

    def __repr__(self) -> str:
        return "<S3ReadStream s3://%s/%s size=%d position=%d%s>" % (
            self._bucket, self._key, self._size, self._position, " closed" if self.closed else "")

    def _read_at(self, position: int, size: int) -> bytes:
        for resume in range(self._resumes + 1):
            if self._body is None or self._body_position != position:
                self._open(position)
            try:
                data = self._read_body(position, size)
            except LocationUnavailable as error:  # cut or stalled answer (not 4xx, not corrupt)
                if resume == self._resumes:
                    raise
                log.info("%s; asking again from byte %d", error, position)
                continue
            self._body_position += len(data)
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_body(self, position: int, size: int) -> bytes:
        try:
            with self._errors("GET s3://%s/%s" % (self._bucket, self._key)):
                data = self._body.read(size)
        except BaseException:
            self._drop()
            raise
        if not data:
            self._drop()
            raise LocationUnavailable(
                "GET s3://%s/%s: the answer ended at byte %d, before the object's %d bytes; the "
                "connection was cut" % (self._bucket, self._key, position, self._size),
                location=self._location)
        return data

    def _release(self) -> None:
        self._drop()

    def _open(self, position: int) -> None:
        self._drop()
        operation = "GET s3://%s/%s bytes=%d-" % (self._bucket, self._key, position)
        request = {"Bucket": self._bucket, "Key": self._key, "Range": "bytes=%d-" % position}
        if self._etag:
            request["IfMatch"] = self._etag
        self.requests += 1
        with self._errors(operation):
            try:
                response = self._client.get_object(**request)
            except ClientError as error:
                if error_code(error) not in ("InvalidRange", "416"):
                    raise
                raise DataCorrupted(
                    "%s: the service has no byte %d although the object had %d bytes; it was "
                    "truncated underneath" % (operation, position, self._size),
                    module_data=self._module_data, location=self._location) from error
        body = response["Body"]
        total = _total_size(response.get("ContentRange"))
        if total is not None and total != self._size:
            body.close()
            raise DataCorrupted("%s: the object now has %d bytes, not %d; it changed underneath"
                                % (operation, total, self._size),
                                module_data=self._module_data, location=self._location)
        self._body = body
        self._body_position = position

    def _drop(self) -> None:
        body, self._body = self._body, None
        self._body_position = -1
        if body is not None:
            try:
                body.close()
            except Exception as error:  # closing a broken connection may fail again
                log.debug("closing the answer for s3://%s/%s failed: %s", self._bucket,
                          self._key, error)


def _total_size(content_range: Optional[str]) -> Optional[int]:
    """Return the total of ``bytes a-b/total`` (RFC 9110 section 14.4), or None if unknown."""
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None
