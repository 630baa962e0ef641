"""Streaming uploads: one ``PutObject`` for small objects, a multipart upload above ``part_size``.

Memory stays bounded: at most ``part_size`` bytes are buffered for a single
PUT, and at most ``concurrency + 1`` parts per multipart upload (one being
read from the source, the others being sent). Storing is all or nothing: a
single PUT is only sent once the whole source has been read, and a multipart
upload becomes an object only at ``CompleteMultipartUpload``; on any failure
(the source, the service, a quota) the upload is aborted. An upload that
cannot be aborted (the service went away) stays invisible and is aborted
later by ``S3Storage.repair`` once older than its grace period.
"""
import concurrent.futures
import logging
import threading
from typing import Any, Callable, ContextManager, Dict, FrozenSet, List, Optional, Set

from modules.errors import (
    ConfigurationError, InsufficientStorage, LocationUnavailable, StorageError,
)
from modules.redaction import redact_text
from modules.streams import read_source_chunk
from replica.s3.options import MAX_PARTS

__all__ = ["Uploader"]

log = logging.getLogger(__name__)


class Uploader:
    """Send objects to one bucket (see the module docstring).

    Args:
        client: the botocore S3 client (thread-safe).
        bucket: the bucket's name.
        part_size: bytes per part; objects smaller than this go in one PUT.
        concurrency: parts of one upload sent at the same time (1: no threads).
        errors: ``errors(operation, module_data)`` returns the context manager
            that maps botocore failures to SDK errors.
        location: named in error messages.
    """

    def __init__(self, client, bucket: str, *, part_size: int, concurrency: int,
                 errors: Callable[..., ContextManager], location: str):
        self._client = client
        self._bucket = bucket
        self._part_size = part_size
        self._concurrency = concurrency
        self._errors = errors
        self._location = location
        self._lock = threading.Lock()
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._closed = False
        self._active: Set[str] = set()

    def active_uploads(self) -> FrozenSet[str]:
        """The ids of the multipart uploads this instance is sending right now."""
        with self._lock:
            return frozenset(self._active)

    def close(self) -> None:
        """Stop the part-sending threads (after the parts in flight)."""
        with self._lock:
            executor, self._executor = self._executor, None
            self._closed = True
        if executor is not None:
            executor.shutdown(wait=True)

    def upload(self, key: str, stream, *, module_data: str,
               limit: Optional[int] = None) -> int:
        """Store everything read from ``stream`` as ``key``.

        Args:
            key: the object key.
            stream: a binary stream, read in chunks until ``b''``.
            module_data: named in errors.
            limit: the most bytes allowed (the rest of a quota), or None.

        Returns:
            int: the number of bytes stored.

        Raises:
            SourceStreamError: the source failed or is not binary (nothing stored).
            InsufficientStorage: the source is longer than ``limit`` (nothing stored).
            ConfigurationError: the object needs more than 10000 parts; raise part_size.
            LocationUnavailable, LocationTimeout, AuthenticationFailed: the
                service failed (see :func:`replica.s3.errors.s3_error`).
        """
        first = self._read_part(stream, 0, limit)
        if len(first) < self._part_size:
            with self._errors("PUT s3://%s/%s" % (self._bucket, key), module_data):
                self._client.put_object(Bucket=self._bucket, Key=key, Body=first)
            return len(first)
        return self._multipart(key, stream, first, module_data, limit)

    # -- multipart -------------------------------------------------------------

    def _multipart(self, key: str, stream, first: bytes, module_data: str,
                   limit: Optional[int]) -> int:
        operation = "multipart PUT s3://%s/%s" % (self._bucket, key)
        with self._errors(operation, module_data):
            upload_id = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=key)["UploadId"]
        with self._lock:
            self._active.add(upload_id)
        pending: Set[concurrent.futures.Future] = set()
        parts: List[Dict[str, Any]] = []
        try:
            number, data, done = 1, first, 0
            while data:
                if number > MAX_PARTS:
                    raise ConfigurationError(
                        "%s: the object is larger than %d parts of part_size=%d bytes; raise "
                        "part_size" % (operation, MAX_PARTS, self._part_size))
                pending.add(self._submit(key, upload_id, number, data, module_data))
                done += len(data)
                if len(pending) >= self._concurrency:  # a slot frees when ANY part is sent
                    finished, pending = concurrent.futures.wait(
                        pending, return_when=concurrent.futures.FIRST_COMPLETED)
                    parts.extend(future.result() for future in finished)
                number += 1
                data = self._read_part(stream, done, limit)
            finished, pending = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_EXCEPTION)
            parts.extend(future.result() for future in finished)
            parts.sort(key=lambda part: part["PartNumber"])
            with self._errors(operation, module_data):
                self._client.complete_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=upload_id,
                    MultipartUpload={"Parts": parts})
            return done
        except BaseException:
            for future in pending:
                future.cancel()
            concurrent.futures.wait(pending)  # never abort while a part is still being sent
            self._abort(key, upload_id)
            raise
        finally:
            with self._lock:
                self._active.discard(upload_id)

    def _submit(self, key: str, upload_id: str, number: int, data: bytes,
                module_data: str) -> concurrent.futures.Future:
        if self._concurrency == 1:
            future: concurrent.futures.Future = concurrent.futures.Future()
            try:
                future.set_result(self._send_part(key, upload_id, number, data, module_data))
            except BaseException as error:  # delivered through result(), as from a thread
                future.set_exception(error)
            return future
        return self._pool().submit(self._send_part, key, upload_id, number, data, module_data)

    def _send_part(self, key: str, upload_id: str, number: int, data: bytes,
                   module_data: str) -> Dict[str, Any]:
        with self._errors("PUT part %d of s3://%s/%s" % (number, self._bucket, key), module_data):
            answer = self._client.upload_part(Bucket=self._bucket, Key=key, UploadId=upload_id,
                                              PartNumber=number, Body=data)
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        # With checksum=when_supported each part carries a CRC that Complete must repeat.
        part.update((name, value) for name, value in answer.items()
                    if name.startswith("Checksum") and name != "ChecksumType")
        return part

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            with self._errors("abort multipart upload of s3://%s/%s" % (self._bucket, key),
                              None):
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=key,
                                                    UploadId=upload_id)
        except StorageError as error:
            log.warning("%s: could not abort an unfinished multipart upload (%s); repair() "
                        "aborts it once it is older than upload_grace",
                        self._location, redact_text(error))

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise LocationUnavailable("%s: this S3Storage was closed" % self._location,
                                          location=self._location)
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self._concurrency, thread_name_prefix="s3-part")
            return self._executor

    # -- the source --------------------------------------------------------------

    def _read_part(self, stream, done: int, limit: Optional[int]) -> bytes:
        chunks = []
        size = 0
        while size < self._part_size:
            # Ask for the rest of the part at once: a file answers in one read (no copy when
            # joining); a socket answers what it has.
            chunk = read_source_chunk(stream, self._part_size - size, done + size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and done + size > limit:
                raise InsufficientStorage(
                    "s3://%s: the object is larger than the %d bytes left of quota=" % (
                        self._bucket, limit), location=self._location)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
