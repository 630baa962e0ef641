"""The object endpoints: ``/objects/<policy>/<key>``.

``policy`` names a configured module; ``(policy, key)`` identifies an
object. Bodies stream both ways in chunks; the index row is written only
after the module stored the data, and data the index stops using is
destroyed only once no read can still use it (:mod:`modules.host.pins`,
:mod:`modules.host.garbage`). Conditional requests follow RFC 9110
section 13 (:mod:`modules.host.conditions`); representation headers and
``X-Object-Meta-*`` are stored with the object (:mod:`modules.host.metadata`).
"""
import json
import logging
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import unquote

from werkzeug.http import http_date

from modules.errors import (
    DataCorrupted,
    InvalidModuleData,
    LocationUnavailable,
    StorageError,
)

from modules.host.conditions import PreconditionFailed, Preconditions, etag_of, last_modified_of
from modules.host.garbage import GarbageCollector
from modules.host.http import (
    READ_CHUNK_SIZE,
    BodyReader,
    FileResponse,
    HttpError,
    Request,
    Response,
    empty_response,
    json_response,
    streamed_response,
)
from modules.host.metadata import META_PREFIX, content_type, merged, stored_headers
from modules.host.pins import ReadPins
from modules.host.ranges import Unsatisfiable, parse_range
from modules.host.registry import Lease, UnknownModule
from modules.host.store import BorrowedDataGone, ObjectRecord, Store

__all__ = ["ObjectService", "split_object_path", "MAX_KEY_BYTES"]

log = logging.getLogger(__name__)

#: The longest key accepted, in UTF-8 bytes.
MAX_KEY_BYTES = 4096

#: The most rows one listing request returns.
MAX_LIST_LIMIT = 10000

#: A listing page ends once its objects' descriptions reach about this many bytes of JSON
#: (``next`` then continues it): 10000 objects with 4096-byte keys and full metadata are
#: over 100 MiB, and concurrent listings of 3000 such objects took a worker from 53 MiB to
#: 660 MiB.
MAX_LIST_BYTES = 4 * 1024 * 1024

#: Index rows read at once while a listing page is filled.
_LIST_BATCH = 200

_PREFIX = "/objects/"
_DEFAULT_TYPE = "application/octet-stream"

_Check = Optional[Callable[[Optional[ObjectRecord]], None]]


def split_object_path(path: str) -> Tuple[str, str]:
    """Split ``/objects/<policy>/<key>`` into ``(policy, key)``; key may be ``''``.

    Raises:
        HttpError: 400 when the path has no policy or the key is too long.
    """
    if not path.startswith(_PREFIX):
        raise HttpError(400, "object paths look like /objects/<policy>/<key>, got %r" % path[:200])
    policy, separator, key = path[len(_PREFIX):].partition("/")
    if not policy or not separator:
        raise HttpError(400, "object paths look like /objects/<policy>/<key>; the policy (a "
                             "configured module name) is missing")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise HttpError(400, "keys are at most %d bytes of UTF-8" % MAX_KEY_BYTES)
    return policy, key


class ObjectService:
    """Handlers for ``/objects/...``; each returns a :class:`Response`.

    Args:
        store: the index.
        pins: this process's in-flight reads (GETs pin what they look up).
        collector: destroys data the index stops using, when no read can
            still use it.
        chunk_size: bytes per read of a module stream.
    """

    def __init__(self, store: Store, pins: ReadPins, collector: GarbageCollector,
                 chunk_size: int = READ_CHUNK_SIZE):
        self._store = store
        self._pins = pins
        self._collector = collector
        self._chunk_size = chunk_size

    def handle(self, request: Request, lease: Lease) -> Response:
        """Dispatch on method and path.

        Returns:
            Response: the answer.

        Raises:
            HttpError: client errors (400, 404, 405, 411, 412, 416 ...).
            StorageError: from the module, mapped by the caller.
        """
        policy, key = split_object_path(request.path)
        if key == "":
            if request.method in ("GET", "HEAD"):
                return self.list(request, policy)
            raise HttpError(400, "a key is needed after /objects/%s/" % policy)
        if request.method in ("GET", "HEAD"):
            return self.get(request, lease, policy, key)
        if request.method == "PUT":
            if request.header("X-Copy-From") is not None:
                return self.copy(request, lease, policy, key)
            return self.put(request, lease, policy, key)
        if request.method == "DELETE":
            return self.delete(request, lease, policy, key)
        raise HttpError(405, "objects support GET, HEAD, PUT and DELETE",
                        headers=[("Allow", "GET, HEAD, PUT, DELETE")])

    # -- reading ----------------------------------------------------------

    def get(self, request: Request, lease: Lease, policy: str, key: str) -> Response:
        """GET or HEAD one object, honouring a single ``Range`` and the conditional headers.

        The read is pinned before the key is looked up: an overwrite or a
        delete meanwhile does not destroy the data until the response ends.

        Returns:
            Response: 200, 206, 304 or 416; GET bodies stream from the module.

        Raises:
            HttpError: 404 when the key is not in the index; 412 for a false
                ``If-Match``/``If-Unmodified-Since``.
            ObjectNotFound, LocationUnavailable, DataCorrupted: from the module.
        """
        pin = self._pins.begin()
        try:
            response = self._get(request, lease, policy, key)
        except BaseException:
            pin.release()
            raise
        response.call_on_close(pin.release)
        return response

    def _get(self, request: Request, lease: Lease, policy: str, key: str) -> Response:
        record = self._record(policy, key)
        module, context = _module(lease, policy)
        headers = _object_headers(record)
        conditions = Preconditions(request)
        try:
            conditions.check(record)
        except PreconditionFailed as failed:
            if failed.status != 304:
                raise
            return empty_response(304, headers)
        size = module.get_size(context, record.module_data)
        if size != record.size:
            raise DataCorrupted("%s/%s holds %d bytes in module %r, but %d were stored"
                                % (policy, key, size, policy, record.size),
                                module_data=record.module_data, location=policy)
        byte_range = None
        if conditions.range_applies(record):
            try:
                byte_range = parse_range(request.header("Range"), size)
            except Unsatisfiable:
                raise HttpError(416, "the range %r lies outside the object's %d bytes"
                                % (request.header("Range")[:100], size),
                                headers=[("Content-Range", "bytes */%d" % size)]) from None
        if byte_range is None:
            status, first, length = 200, 0, size
        else:
            status, first, length = 206, byte_range[0], byte_range[1] - byte_range[0] + 1
            headers.append(("Content-Range", "bytes %d-%d/%d" % (byte_range + (size,))))
        headers.append(("Content-Length", str(length)))
        if request.method == "HEAD" or length == 0:
            return Response([], status=status, headers=headers)  # keeps our Content-Length
        stream = module.get_read_stream(context, record.module_data)
        try:
            if first:
                stream.seek(first)
            descriptor = _descriptor(stream) if "wsgi.file_wrapper" in request.environ else None
            if descriptor is not None:
                return FileResponse(_FileBody(stream, descriptor, first, length), status,
                                    headers)
            body = _StreamBody(stream, length, self._chunk_size, "%s/%s" % (policy, key))
            body.prefetch()
        except BaseException:
            stream.close()
            raise
        return streamed_response(status, headers, body)

    def list(self, request: Request, policy: str) -> Response:
        """List keys of ``policy``: ``?prefix=&after=&limit=`` (at most 10000).

        A page holds ``limit`` objects, or fewer once their descriptions reach
        :data:`MAX_LIST_BYTES` of JSON; ``next`` says where to go on.

        Returns:
            Response: 200 with ``{"policy", "objects": [...], "next"}``; pass
            ``next`` as ``after`` for the following page (null at the end).

        Raises:
            HttpError: 404 for an unknown policy, 400 for a bad limit.
        """
        if self._store.get_module(policy) is None:
            raise HttpError(404, "no module is configured under the name %r" % policy)
        text = request.query.get("limit", "1000").strip()
        if not text.isdigit() or not text.isascii() or len(text) > 6:
            raise HttpError(400, "limit must be a number from 1 to %d" % MAX_LIST_LIMIT)
        limit = int(text)
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise HttpError(400, "limit must be between 1 and %d" % MAX_LIST_LIMIT)
        prefix, after = request.query.get("prefix", ""), request.query.get("after", "")
        if len(prefix.encode("utf-8", "replace")) > MAX_KEY_BYTES or \
                len(after.encode("utf-8", "replace")) > MAX_KEY_BYTES:
            raise HttpError(400, "prefix and after are keys: at most %d bytes" % MAX_KEY_BYTES)
        described: List[Dict[str, Any]] = []
        used, cursor, more = 0, after, False
        while not more and len(described) < limit:
            batch = min(limit - len(described), _LIST_BATCH)
            rows = self._store.list_objects(policy, prefix=prefix, after=cursor,
                                            limit=batch + 1)
            for row in rows[:batch]:
                entry = _describe(row)
                cost = len(json.dumps(entry, default=str))
                if described and used + cost > MAX_LIST_BYTES:
                    more = True
                    break
                described.append(entry)
                used += cost
                cursor = row.key
            if len(rows) <= batch:
                break  # no row after this batch: the end of the listing
            more = more or len(described) >= limit
        return json_response(200, {
            "policy": policy,
            "objects": described,
            "next": cursor if more else None,
        }, head=request.method == "HEAD")

    # -- writing ----------------------------------------------------------

    def put(self, request: Request, lease: Lease, policy: str, key: str) -> Response:
        """Store the request body as ``policy/key``, replacing any previous object.

        Preconditions are checked before the body is read (a 412 costs no
        upload) and again in the transaction that switches the index.

        Returns:
            Response: 201 (new) or 200 (replaced) with the object's description.

        Raises:
            HttpError: 400 (metadata over its limits), 404 (unknown policy),
                411 (no length), 412 (a precondition is false).
            SourceStreamError: the client's body ended early.
            InsufficientStorage, LocationUnavailable: from the module.
        """
        module, context = _module(lease, policy)
        check = self._preconditions(request, policy, key)
        headers = stored_headers(request)
        kind = content_type(request)
        reader = request.body_reader()
        module_data = _checked_module_data(module.new_data(context), policy)
        intent = self._store.add_intent(policy, module_data, str(self._pins.identity()))
        try:
            module.assign(context, module_data, reader)
            if not reader.at_end() or reader.read(1):
                raise DataCorrupted("module %r returned from assign without reading the whole "
                                    "body (a bug in the module)" % policy, location=policy)
        except BaseException as error:
            # A module that could not reach its storage before touching the body stored
            # nothing: no garbage to keep (so a never-reachable module can be deleted).
            unreached = reader.read_calls == 0 and isinstance(error, LocationUnavailable)
            self._abandon(lease, intent, stored_nothing=unreached)
            if reader.too_large:  # whatever the module made of the refused read
                raise HttpError(413, "the request body is larger than this server accepts "
                                     "(vsm serve --max-body-size); nothing was stored") from error
            raise
        record = ObjectRecord(policy=policy, key=key, module_data=module_data,
                              size=reader.bytes_read, created=time.time(),
                              sha256=reader.sha256(), content_type=kind, headers=headers)
        return self._commit(lease, record, intent, check)

    def copy(self, request: Request, lease: Lease, policy: str, key: str) -> Response:
        """Server-side copy from ``X-Copy-From: /objects/<policy>/<key>``.

        Into the same module: ``get_size``, then the source's read stream
        into ``new_data`` and ``assign``. Into another module: the seeds'
        ``available(source module_data)`` first; True records the copy as
        borrowing the source's data (nothing is sent); otherwise the data is
        streamed under the target's own ``new_data`` (never the source's
        module_data: the two modules may share storage). The source's stored
        headers and metadata are copied; those given with the request
        replace them name by name.

        Returns:
            Response: 201 or 200 with the new object's description.

        Raises:
            HttpError: 400 (bad header), 404 (no such source object), 412.
            DataCorrupted: the source's bytes do not match its size or checksum.
            StorageError: from either module.
        """
        source_policy, source_key = split_object_path(_decode_copy_source(request))
        if not source_key:
            raise HttpError(400, "X-Copy-From must name an object, not a policy")
        check = self._preconditions(request, policy, key)
        given = stored_headers(request)
        pin = self._pins.begin()  # the source must not be destroyed while it is copied
        try:
            return self._copy(request, lease, policy, key, source_policy, source_key, check,
                              given)
        finally:
            pin.release()

    def _copy(self, request: Request, lease: Lease, policy: str, key: str, source_policy: str,
              source_key: str, check: _Check, given) -> Response:
        source = self._record(source_policy, source_key, "copy source ")
        source_module, source_context = _module(lease, source_policy)
        module, context = _module(lease, policy)
        size = source_module.get_size(source_context, source.module_data)
        if size != source.size:
            raise DataCorrupted("copy source %s/%s holds %d bytes, but %d were stored"
                                % (source_policy, source_key, size, source.size),
                                module_data=source.module_data, location=source_policy)
        present = None
        # A policy never holds one module_data twice through borrowing: when its last
        # owning row goes, a borrower in the same policy is not handed the data, which
        # was then left behind for good (a copy chain s1 -> s2 -> s1 over shared storage).
        if source_policy != policy and not self._store.is_referenced(policy,
                                                                     source.module_data):
            try:
                present = module.available(context, source.module_data)
            except InvalidModuleData:
                present = None  # the target keeps data under its own module_data
        base = dict(policy=policy, key=key, size=size, created=time.time(),
                    sha256=source.sha256,
                    content_type=content_type(request) if request.header("Content-Type")
                    else source.content_type, headers=merged(source.headers, given))
        if present is True:
            log.info("copy %s/%s -> %s/%s: module %r already holds the data", source_policy,
                     source_key, policy, key, policy)
            try:
                return self._commit(lease, ObjectRecord(module_data=source.module_data,
                                                        borrowed=True, **base), None, check,
                                    require_owner=True)
            except BorrowedDataGone:
                # The source was deleted or overwritten while the copy was made: its data
                # is garbage, destroyed once this request's pin is released. Copy the
                # bytes now, while the pin still keeps them readable.
                log.info("copy %s/%s -> %s/%s: the source went while the copy was made; "
                         "copying the data instead", source_policy, source_key, policy, key)
        return self._stream_copy(lease, request, policy, key, source_module, source_context,
                                 source, size, base, check)

    def _stream_copy(self, lease: Lease, request: Request, policy: str, key: str,
                     source_module, source_context, source: ObjectRecord, size: int,
                     base: Dict[str, Any], check: _Check) -> Response:
        """Stream ``source``'s data into new module_data of ``policy`` and commit ``key``."""
        module, context = _module(lease, policy)
        source_policy, source_key = source.policy, source.key
        # Not the same module_data, even though the seeds' replication would
        # assign under it: two policies may share storage (one location in two
        # mirrors), and an object holding the source's module_data there would
        # destroy the source's data when it is deleted or its write fails.
        module_data = _checked_module_data(module.new_data(context), policy)
        intent = self._store.add_intent(policy, module_data, str(self._pins.identity()))
        try:
            with source_module.get_read_stream(source_context, source.module_data) as stream:
                reader = BodyReader(stream, size, short_error=_short_source(source_policy))
                module.assign(context, module_data, reader)
            if not reader.at_end():
                raise DataCorrupted("module %r returned from assign without reading the whole "
                                    "source (a bug in the module)" % policy, location=policy)
            if source.sha256 and reader.sha256() != source.sha256:
                raise DataCorrupted("copy source %s/%s does not match its checksum; the copy "
                                    "was discarded" % (source_policy, source_key),
                                    module_data=source.module_data, location=source_policy)
        except BaseException:
            self._abandon(lease, intent)
            raise
        return self._commit(lease, ObjectRecord(module_data=module_data, **base), intent, check)

    def delete(self, request: Request, lease: Lease, policy: str, key: str) -> Response:
        """Remove ``policy/key`` from the index, then destroy its data.

        The data is destroyed once no read can still use it; a module that
        cannot delete now leaves it for ``vsm repair``. The object is gone
        either way.

        Returns:
            Response: 204.

        Raises:
            HttpError: 404 when the key is not in the index; 412 for a false
                precondition.
        """
        conditions = Preconditions(request)
        record, garbage = self._store.delete_object(
            policy, key, precondition=conditions.check if conditions else None)
        if record is None:
            raise HttpError(404, "no object %r under policy %r" % (key, policy))
        if garbage is not None:
            self._collector.destroy(lease, garbage)
        return empty_response(204)

    # -- helpers ----------------------------------------------------------

    def _preconditions(self, request: Request, policy: str, key: str) -> _Check:
        """Check a write's preconditions now; return the check to repeat at commit (or None)."""
        conditions = Preconditions(request)
        if not conditions:
            return None
        conditions.check(self._store.get_object(policy, key))
        return conditions.check

    def _record(self, policy: str, key: str, what: str = "") -> ObjectRecord:
        record = self._store.get_object(policy, key)
        if record is None:
            raise HttpError(404, "no %sobject %r under policy %r" % (what, key, policy))
        return record

    def _commit(self, lease: Lease, record: ObjectRecord, intent: Optional[int],
                check: _Check, require_owner: bool = False) -> Response:
        try:
            replaced, garbage = self._store.put_object(record, intent, precondition=check,
                                                       require_owner=require_owner)
        except BaseException:
            if intent is not None:
                self._abandon(lease, intent)
            raise
        if garbage is not None:
            self._collector.destroy(lease, garbage)
        return json_response(200 if replaced else 201, _describe(record),
                             headers=[("ETag", etag_of(record))] if record.sha256 else [])

    def _abandon(self, lease: Lease, intent: int, stored_nothing: bool = False) -> None:
        """Turn a failed write's intent into garbage and try to delete it now."""
        try:
            item = self._store.drop_intent(intent, garbage=not stored_nothing)
        except StorageError:
            log.exception("could not record an abandoned write (left as an intent)")
            return
        if item is not None:
            self._collector.destroy(lease, item)


class _StreamBody:
    """The WSGI body of a GET: ``length`` bytes from an open read stream.

    ``close()`` (called by the server through the response) closes the stream.
    """

    def __init__(self, stream, length: int, chunk_size: int, name: str):
        self._stream = stream
        self._remaining = length
        self._chunk_size = chunk_size
        self._name = name
        self._first: Optional[bytes] = None

    def prefetch(self) -> None:
        """Read the first chunk now, so storage errors still get a proper status."""
        self._first = self._read()

    def _read(self) -> bytes:
        data = self._stream.read(min(self._chunk_size, self._remaining))
        if not data:
            raise DataCorrupted("%s ended %d bytes before its size" % (self._name, self._remaining))
        self._remaining -= len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        while self._remaining > 0:
            try:
                data = self._read()
            except StorageError as error:
                # A location failing mid-answer is an operational event, not a bug: one
                # line (the server closes the connection without another report).
                log.error("reading %s failed after the response started, %d bytes before its "
                          "end; the client gets a short body: %s: %s", self._name,
                          self._remaining, type(error).__name__, error)
                raise
            except Exception:
                log.exception("reading %s failed after the response started; the client gets "
                              "a short body", self._name)
                raise
            yield data

    def close(self) -> None:
        """Close the read stream."""
        try:
            self._stream.close()
        except Exception:
            log.exception("closing the read stream of %s failed", self._name)


class _FileBody:
    """The bytes ``[start, start + length)`` of a module stream over a real file, for
    ``wsgi.file_wrapper``.

    A server that sends files itself gets the descriptor (:meth:`fileno`)
    and the absolute offset (:meth:`tell`), and passes both to
    ``sendfile(2)``, which does not move the stream; any other server reads
    it, within the window only. :meth:`close` closes the stream, then runs
    ``on_close`` (the pin and lease releases).
    """

    def __init__(self, stream, descriptor: int, start: int, length: int):
        self._stream = stream
        self._descriptor = descriptor
        self._position = start
        self._end = start + length
        self.on_close: List[Callable[[], None]] = []

    def fileno(self) -> int:
        """Return the file descriptor of the stored file."""
        return self._descriptor

    def tell(self) -> int:
        """Return the absolute offset the next byte comes from."""
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move within the window (whence 0: absolute offset, 1: relative, 2: from its end)."""
        base = {0: 0, 1: self._position, 2: self._end}[whence]
        self._position = max(0, min(base + offset, self._end))
        return self._position

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes of the window (b'' at its end)."""
        remaining = self._end - self._position
        if size is None or size < 0 or size > remaining:
            size = remaining
        if size <= 0:
            return b""
        self._stream.seek(self._position)
        data = self._stream.read(size)
        self._position += len(data)
        return data

    def close(self) -> None:
        """Close the stream, then run ``on_close`` (each one even if another fails)."""
        try:
            self._stream.close()
        except Exception:
            log.exception("closing a read stream failed")
        callbacks, self.on_close = self.on_close, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a close callback of a file response failed")


def _descriptor(stream) -> Optional[int]:
    """Return the descriptor of a read stream over a real file, or None (then it is read)."""
    fileno = getattr(stream, "fileno", None)
    if fileno is None:
        return None
    try:
        return fileno()
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both
        return None


def _module(lease: Lease, policy: str):
    """Return ``(module, context)`` of ``policy``; an unknown policy is a 404."""
    try:
        return lease.module(policy), lease.context(policy)
    except UnknownModule as error:
        raise HttpError(404, str(error), error="UnknownPolicy") from None


def _checked_module_data(module_data: Any, policy: str) -> str:
    if not isinstance(module_data, str) or not module_data:
        raise DataCorrupted("module %r returned %s from new_data, not a non-empty str (a bug in "
                            "the module)" % (policy, type(module_data).__name__), location=policy)
    return module_data


def _decode_copy_source(request: Request) -> str:
    value = request.header("X-Copy-From") or ""
    path = value.split("?", 1)[0]
    try:
        return unquote(path, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise HttpError(400, "X-Copy-From is not percent-encoded UTF-8") from None


def _short_source(policy: str):
    def error(message: str) -> DataCorrupted:
        return DataCorrupted("the copy source in module %r is shorter than its size: %s"
                             % (policy, message), location=policy)
    return error


def _object_headers(record: ObjectRecord) -> List[Tuple[str, str]]:
    """Return the headers of a GET, HEAD or 304 for ``record`` (without lengths)."""
    stored = list(record.headers)
    headers = [("Content-Type", record.content_type or _DEFAULT_TYPE),
               ("Accept-Ranges", "bytes"),
               ("Last-Modified", http_date(last_modified_of(record)))]
    if not any(name.lower() == "cache-control" for name, _ in stored):
        headers.append(("Cache-Control", "no-cache"))
    if record.sha256:
        headers.append(("ETag", etag_of(record)))
    return headers + stored


def _describe(record: ObjectRecord) -> Dict[str, Any]:
    return {
        "policy": record.policy,
        "key": record.key,
        "size": record.size,
        "created": record.created,
        "sha256": record.sha256,
        "content_type": record.content_type or _DEFAULT_TYPE,
        "headers": {name: value for name, value in record.headers
                    if not name.startswith(META_PREFIX)},
        "metadata": {name[len(META_PREFIX):]: value for name, value in record.headers
                     if name.startswith(META_PREFIX)},
    }
