"""``S3Storage``: the contract methods on an S3-compatible bucket.

The layers, one file each: :mod:`~replica.s3.options` (arguments),
:mod:`~replica.s3.client` (the boto3 client, botocore's retry layer),
:mod:`~replica.s3.errors` (every botocore failure mapped in one place),
:mod:`~replica.s3.upload` (single PUT or multipart, aborted on failure) and
:mod:`~replica.s3.stream` (seekable ranged reads).

Objects are stored under ``<prefix><module_data>`` where module_data is a
sharded key ``xx/yy/<32 hex>`` computed locally: :meth:`S3Storage.new_data`
never contacts the service, so an object created while the service is down
can still get its copy there later.
"""
import contextlib
import datetime
import logging
import os
import re
import threading
import time
from types import MappingProxyType
from typing import Any, BinaryIO, Dict, Iterator, Optional

from modules import StorageModule
from modules.errors import (
    InsufficientStorage,
    InvalidModuleData,
    LocationUnavailable,
    ObjectNotFound,
    StorageError,
)
from modules.keys import SHARDED_KEY, new_sharded_key
from modules.redaction import redact_text
from modules.reports import STATUS_OK, STATUS_UNAVAILABLE, Statistics
from replica.s3.client import make_clients
from replica.s3.errors import converted, is_not_found
from replica.s3.options import S3Config, parse_options
from replica.s3.stream import S3ReadStream
from replica.s3.upload import Uploader

__all__ = ["S3Storage", "BUCKET_CHECK_INTERVAL"]

log = logging.getLogger(__name__)

#: Seconds during which a bucket found to exist is not asked again (a HEAD
#: answering 404 cannot tell a missing key from a missing bucket).
BUCKET_CHECK_INTERVAL = 30.0

_OBJECT_ID = re.compile(r"\A[0-9a-f]{32}\Z")


class S3Storage(StorageModule):
    """Store each object as one S3 object under ``s3://bucket/prefix``.

    Args:
        *args, **kwargs: ``"s3://bucket/prefix"`` and ``name=value`` options
            (see :mod:`replica.s3.options` and ``docs/s3.md``).

    Raises:
        ConfigurationError: an option is missing, unknown or unusable (the
            message names it; never a secret). The constructor never
            contacts the service.
    """

    capabilities = MappingProxyType(dict(
        StorageModule.capabilities,
        repair=True,      # repair() aborts stale multipart uploads
        retries=True,     # botocore retries transient failures; callers must not again
        placement=True,   # new_data_for() is deterministic
    ))

    def __init__(self, *args, **kwargs):
        super().__init__()
        self._config: S3Config = parse_options(args, kwargs)
        if self._config.verify is False:
            log.warning("%s: verify_tls=false, the service's certificate is not checked",
                        self._config.location)
        self._lock = threading.Lock()
        self._connection_pid = os.getpid()
        self._connection = self._connect()
        self._usage_lock = threading.Lock()
        self._bucket_seen_at: Optional[float] = None
        self._usage: Optional[int] = None
        self._usage_measured_at = 0.0
        self._counters = {"writes": 0, "reads": 0, "deletes": 0, "bytes_written": 0,
                          "errors": 0, "aborted_uploads": 0}

    def __repr__(self) -> str:
        return "S3Storage(%s)" % ", ".join(
            "%s=%r" % item for item in self._config.shown().items())

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self._config.bucket

    @property
    def prefix(self) -> str:
        """The key prefix inside the bucket: ``""`` or ending with ``/``."""
        return self._config.prefix

    @property
    def location(self) -> str:
        """``s3://bucket/prefix`` (and `` at <endpoint_url>``): how errors name this storage."""
        return self._config.location

    # -- the contract -----------------------------------------------------------

    def new_data(self, context: Optional[dict]) -> str:
        """Return a new key ``'xx/yy/<32 hex>'`` (no request to the service).

        Returns:
            str: the module_data for a new object.
        """
        return new_sharded_key()

    def new_data_for(self, context: Optional[dict], object_id: str) -> str:
        """Return ``'xx/yy/<object_id>'``: the same for the same id everywhere (no request).

        Raises:
            InvalidModuleData: ``object_id`` is not 32 lowercase hex characters.
        """
        if not isinstance(object_id, str) or not _OBJECT_ID.match(object_id):
            raise InvalidModuleData("object id %r is not 32 lowercase hex characters"
                                    % (object_id if not isinstance(object_id, str)
                                       else object_id[:80],), location=self.location)
        return "%s/%s/%s" % (object_id[:2], object_id[2:4], object_id)

    def assign(self, context: Optional[dict], module_data: str, stream: BinaryIO) -> None:
        """Stream ``stream`` to the object: one PUT up to ``part_size``, else a multipart upload.

        Memory is bounded by ``part_size`` x (``upload_concurrency`` + 1). On any
        failure nothing becomes visible (see :mod:`replica.s3.upload`).

        Returns:
            None.

        Raises:
            InvalidModuleData: ``module_data`` is not one of ours.
            SourceStreamError: the source failed or is not binary.
            InsufficientStorage: the service refused the size, or ``quota`` is used up.
            AuthenticationFailed: the credentials were refused (the message says
                which options to check).
            LocationUnavailable: the service failed (after botocore's retries), or
                the bucket does not exist.
        """
        key = self._key(module_data)
        limit = None
        if self._config.quota is not None:
            limit = self._config.quota - self._measured_usage()
            if limit <= 0:
                raise InsufficientStorage("%s: quota=%d bytes is used up" % (
                    self.location, self._config.quota), location=self.location)
        # Service failures are counted by _errors; a failing source is the caller's, not ours.
        written = self._current().uploader.upload(key, stream, module_data=module_data, limit=limit)
        self._count(writes=1, bytes_written=written)
        with self._usage_lock:
            if self._usage is not None:
                self._usage += written

    def available(self, context: Optional[dict], module_data: str) -> bool:
        """Return True when the object exists (one HEAD request).

        Raises:
            InvalidModuleData: ``module_data`` is not one of ours.
            AuthenticationFailed: the credentials were refused.
            LocationUnavailable: the service cannot be asked, or the bucket is missing.
        """
        try:
            self._head(module_data)
        except ObjectNotFound:
            self._require_bucket()
            return False
        return True

    def get_read_stream(self, context: Optional[dict], module_data: str) -> S3ReadStream:
        """Open the object with one GET; seeks re-ask with a Range (see :mod:`replica.s3.stream`).

        Returns:
            S3ReadStream: seekable; close it (or use ``with``).

        Raises:
            ObjectNotFound: no object for ``module_data``.
            InvalidModuleData: ``module_data`` is not one of ours.
            AuthenticationFailed: the credentials were refused.
            LocationUnavailable: the service failed, or the bucket is missing.
        """
        key = self._key(module_data)
        with self._errors("GET s3://%s/%s" % (self._config.bucket, key), module_data):
            client = self._current().client
            response = client.get_object(Bucket=self._config.bucket, Key=key)
        self._count(reads=1)
        return S3ReadStream(client, self._config.bucket, key,
                            int(response["ContentLength"]), response.get("ETag"),
                            response["Body"], errors=self._errors, location=self.location,
                            module_data=module_data, resumes=self._config.retries)

    def delete(self, context: Optional[dict], module_data: str) -> None:
        """Delete the object; an object already gone is fine (S3 answers 204 either way).

        Raises:
            InvalidModuleData: ``module_data`` is not one of ours.
            AuthenticationFailed: the credentials were refused.
            LocationUnavailable: the service failed, or the bucket is missing.
        """
        key = self._key(module_data)
        with self._errors("DELETE s3://%s/%s" % (self._config.bucket, key), module_data):
            self._current().client.delete_object(Bucket=self._config.bucket, Key=key)
        self._count(deletes=1)

    def get_size(self, context: Optional[dict], module_data: str) -> int:
        """Return the object's size from a HEAD request.

        Raises:
            ObjectNotFound: no object for ``module_data``.
            InvalidModuleData: ``module_data`` is not one of ours.
            AuthenticationFailed: the credentials were refused.
            LocationUnavailable: the service failed, or the bucket is missing.
        """
        try:
            return int(self._head(module_data)["ContentLength"])
        except ObjectNotFound:
            self._require_bucket()
            raise

    def statistics(self, context: Optional[dict]) -> Statistics:
        """Report reachability (one HEAD of the bucket, one attempt), usage and counters.

        Never raises. S3 reports no capacity: ``capacity`` is all -1 with
        ``capacity_reason``, unless ``quota`` is set (then ``total`` is the
        quota and ``used`` the bytes listed under the prefix, measured at most
        every ``usage_refresh`` seconds).

        Returns:
            Statistics: ``location``, ``bucket``, ``prefix``, ``endpoint_url``,
            ``status`` (``ok``/``unavailable``), ``reason`` (when
            unavailable), ``capacity``, ``capacity_reason`` (without quota),
            ``operations`` and ``options`` (secrets masked).
        """
        with self._lock:
            operations = dict(self._counters)
        result: Statistics = {  # type: ignore[typeddict-unknown-key]  (our own keys too)
            "location": self.location,
            "bucket": self._config.bucket,
            "prefix": self._config.prefix,
            "endpoint_url": self._config.endpoint_url,
            "operations": operations,
            "options": self._config.shown(),
            "capacity": self.capacity(),
        }
        try:
            with self._errors("HEAD bucket s3://%s" % self._config.bucket, None, count=False):
                try:
                    self._current().probe.head_bucket(Bucket=self._config.bucket)
                except Exception as error:
                    if is_not_found(error):
                        raise self._missing_bucket() from error
                    raise
            if self._config.quota is not None:
                used = self._measured_usage()
                result["capacity"] = self.capacity(self._config.quota,
                                                   max(0, self._config.quota - used), used)
        except StorageError as error:
            result.update(status=STATUS_UNAVAILABLE, reason=redact_text(error))
        else:
            result["status"] = STATUS_OK
        if self._config.quota is None:
            result["capacity_reason"] = ("S3 reports no capacity; give quota= to bound and "
                                         "report the bytes stored under the prefix")
        return result

    def repair(self, context: Optional[dict], module_data: Optional[str] = None) -> Dict[str, Any]:
        """Abort multipart uploads under the prefix older than ``upload_grace``.

        Uploads that could not be aborted when their write failed (the
        service had gone away) are invisible but stored and billed; this
        removes them. Uploads this instance is still sending are kept.

        Args:
            module_data: limit the work to that object's key; None for the whole prefix.

        Returns:
            dict: ``aborted_uploads`` and ``kept_uploads`` (recent or in progress).

        Raises:
            InvalidModuleData: ``module_data`` is given and not one of ours.
            AuthenticationFailed: the credentials were refused.
            LocationUnavailable: the service failed, or the bucket is missing.
        """
        prefix = self._key(module_data) if module_data is not None else self._config.prefix
        cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
            seconds=self._config.upload_grace)
        connection = self._current()
        active = connection.uploader.active_uploads()
        aborted = kept = 0
        paginator = connection.client.get_paginator("list_multipart_uploads")
        with self._errors("list multipart uploads in s3://%s/%s" % (
                self._config.bucket, prefix), module_data):
            for page in paginator.paginate(Bucket=self._config.bucket, Prefix=prefix):
                for upload in page.get("Uploads") or ():
                    initiated = upload.get("Initiated")
                    if upload["UploadId"] in active or (
                            isinstance(initiated, datetime.datetime) and initiated > cutoff):
                        kept += 1
                        continue
                    connection.client.abort_multipart_upload(
                        Bucket=self._config.bucket, Key=upload["Key"],
                        UploadId=upload["UploadId"])
                    aborted += 1
        if aborted:
            log.info("%s: aborted %d stale multipart upload(s)", self.location, aborted)
            self._count(aborted_uploads=aborted)
        return {"aborted_uploads": aborted, "kept_uploads": kept}

    def close(self) -> None:
        """Stop the part-sending threads and close the connection pools."""
        with self._lock:
            connection, pid = self._connection, self._connection_pid
        if pid == os.getpid():  # a forked child must not close its parent's sockets
            connection.close()

    # -- helpers ------------------------------------------------------------------

    def _connect(self) -> "_Connection":
        client, probe = make_clients(self._config)
        uploader = Uploader(client, self._config.bucket, part_size=self._config.part_size,
                            concurrency=self._config.upload_concurrency, errors=self._errors,
                            location=self.location)
        return _Connection(client, probe, uploader)

    def _current(self) -> "_Connection":
        """The clients and uploader of this process; rebuilt once in a forked child.

        ``vsm serve --workers N`` may create the module before forking: the
        parent's pooled sockets and part-sending threads must not be used
        by the children (threads do not survive ``fork``).
        """
        with self._lock:
            if self._connection_pid != os.getpid():
                self._connection = self._connect()
                self._connection_pid = os.getpid()
            return self._connection

    def _key(self, module_data) -> str:
        if not isinstance(module_data, str) or not SHARDED_KEY.match(module_data):
            shown = module_data if not isinstance(module_data, str) else module_data[:80]
            raise InvalidModuleData(
                "%r is not module_data produced by S3Storage (expected 'xx/yy/<32 hex>')"
                % (shown,), module_data=module_data, location=self.location)
        return self._config.prefix + module_data

    def _head(self, module_data: str) -> Dict[str, Any]:
        key = self._key(module_data)
        with self._errors("HEAD s3://%s/%s" % (self._config.bucket, key), module_data):
            return self._current().client.head_object(Bucket=self._config.bucket, Key=key)

    def _require_bucket(self) -> None:
        """Raise unless the bucket exists (asked at most every BUCKET_CHECK_INTERVAL seconds)."""
        with self._lock:
            seen = self._bucket_seen_at
        if seen is not None and time.monotonic() - seen < BUCKET_CHECK_INTERVAL:
            return
        with self._errors("HEAD bucket s3://%s" % self._config.bucket, None):
            try:
                self._current().client.head_bucket(Bucket=self._config.bucket)
            except Exception as error:
                if is_not_found(error):
                    raise self._missing_bucket() from error
                raise
        with self._lock:
            self._bucket_seen_at = time.monotonic()

    def _missing_bucket(self) -> LocationUnavailable:
        return LocationUnavailable(
            "%s: the bucket %r does not exist; create it, or fix the bucket name or "
            "endpoint_url (S3Storage never creates buckets)" % (self.location, self._config.bucket),
            location=self.location)

    def _measured_usage(self) -> int:
        """Bytes stored under the prefix, listed at most every ``usage_refresh`` seconds."""
        with self._usage_lock:
            if self._usage is not None and \
                    time.monotonic() - self._usage_measured_at < self._config.usage_refresh:
                return self._usage
            total = 0
            paginator = self._current().client.get_paginator("list_objects_v2")
            with self._errors("list s3://%s/%s" % (self._config.bucket, self._config.prefix),
                              None):
                for page in paginator.paginate(Bucket=self._config.bucket,
                                               Prefix=self._config.prefix):
                    total += sum(int(item.get("Size") or 0) for item in page.get("Contents") or ())
            self._usage, self._usage_measured_at = total, time.monotonic()
            return total

    @contextlib.contextmanager
    def _errors(self, operation: str, module_data: Optional[str] = None,
                count: bool = True) -> Iterator[None]:
        try:
            with converted(operation, location=self.location,
                           credentials=self._config.credentials_source,
                           module_data=module_data, timeout=self._config.timeout):
                yield
        except StorageError as error:
            if count and not isinstance(error, (ObjectNotFound, InvalidModuleData)):
                self._count(errors=1)
            raise

    def _count(self, **increments: int) -> None:
        with self._lock:
            for key, value in increments.items():
                self._counters[key] += value


class _Connection:
    """The boto3 clients and the uploader of one process (see ``S3Storage._current``)."""

    def __init__(self, client, probe, uploader: Uploader):
        self.client = client
        self.probe = probe
        self.uploader = uploader

    def close(self) -> None:
        self.uploader.close()
        for client in (self.client, self.probe):
            client.close()
