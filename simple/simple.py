"""The sample Vendor Storage Module: objects as files in a local directory.

Written to be copied. The habits it shows:

* it never creates its storage directory: a missing mount point must fail
  loudly, not fill the root disk;
* module_data is a value the module generated and validates strictly before
  touching the disk;
* writes stream in chunks into a temporary file next to the object's file
  (``.tmp-<name>-<random>``), are fsynced and renamed into place, and are
  removed on any failure; a process killed mid-write leaves its temporary
  behind, which :meth:`SimpleStorage.repair` removes once it is older than
  ``temp_grace`` and ``statistics`` counts meanwhile;
* every OS error is translated to an SDK error in one place
  (:func:`modules.fs_errors.convert_os_errors`).
"""
import logging
import os
import re
import threading
import time
from types import MappingProxyType
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

from modules import StorageModule
from modules.errors import (
    InvalidModuleData,
    LocationUnavailable,
    StorageError,
)
from modules.fs_errors import convert_os_errors
from modules.keys import SHARDED_KEY, new_sharded_key, sharded_key_for
from modules.options import Option, OptionParser
from modules.streams import FileReadStream, read_source_chunk

__all__ = ["SimpleStorage"]

log = logging.getLogger(__name__)

#: Bytes read from the source per call in ``assign``.
CHUNK_SIZE = 1024 * 1024

_TEMP_PREFIX = ".tmp-"
#: Seconds a count of temporaries is reused by ``statistics`` (counting walks
#: every object directory, so it is not repeated on every call).
TEMP_COUNT_INTERVAL = 60.0
#: Seconds a temporary may be old before ``repair`` removes it (writes in
#: progress never take that long between two chunks).
DEFAULT_TEMP_GRACE = 3600.0
_SHARD = re.compile(r"\A[0-9a-f]{2}\Z")

#: SimpleStorage's options (see :mod:`modules.options` for the syntax).
_OPTIONS = OptionParser("SimpleStorage", [
    Option("storage_dir", "str", required=True, positional=True,
           help="the path of an existing directory"),
    Option("temp_grace", "duration", default=DEFAULT_TEMP_GRACE, minimum=0.001, maximum="365d",
           aliases=("upload_grace",),
           help="age after which repair() removes a temporary file of an unfinished write"),
])


class SimpleStorage(StorageModule):
    """Store each object as one file under ``storage_dir``.

    Args:
        storage_dir: an existing, writable directory (typically a mount
            point), given positionally (``SimpleStorage("/srv/objects")``),
            as ``"storage_dir=/srv/objects"`` or as a keyword. It is never
            created: while it is missing every operation raises
            :class:`LocationUnavailable` and ``statistics`` reports the reason.
        temp_grace: age (a duration: seconds, or ``30m``, ``2h``; default 1 h;
            ``upload_grace`` is the same option, as HTTPStorage and
            S3Storage call it) after which a temporary file of an unfinished
            write counts as left over (its writer was killed) and
            :meth:`repair` removes it.

    Raises:
        ConfigurationError: ``storage_dir`` is missing or not a non-empty
            one-line path, ``temp_grace`` is not a positive duration, or an
            unknown option is given (see :mod:`modules.options`).
    """

    #: Sweeps its leftovers (:meth:`repair`); offers deterministic placement
    #: (:meth:`new_data_for`).
    capabilities = MappingProxyType(dict(StorageModule.capabilities, repair=True,
                                         placement=True))

    def __init__(self, *args, **kwargs):
        super().__init__()
        settings = _OPTIONS.parse(args, kwargs)
        self.storage_dir = os.path.abspath(settings.storage_dir)
        self.temp_grace = float(settings.temp_grace)
        self._lock = threading.Lock()
        self._counters = {"writes": 0, "reads": 0, "deletes": 0, "bytes_written": 0, "errors": 0}
        self._temporaries_counted: Optional[Tuple[float, Dict[str, int]]] = None

    def __repr__(self) -> str:
        return "SimpleStorage(%r)" % self.storage_dir

    # -- the contract -----------------------------------------------------

    def new_data(self, context: Optional[dict]) -> str:
        """Return a new sharded relative path, e.g. ``'3f/a0/3fa0...'`` (no disk access).

        Returns:
            str: the module_data for a new object.
        """
        return new_sharded_key()

    def new_data_for(self, context: Optional[dict], object_id: str) -> str:
        """Return the sharded path of object ``object_id``: ``'ab/cd/abcd...'`` (no disk access).

        The same id gives the same path in every process and on every node
        (capability ``placement``), so a replica can place a copy of an
        existing object here and find it again.

        Returns:
            str: the module_data, e.g. ``'3f/a0/3fa0...'`` for ``'3fa0...'``.

        Raises:
            InvalidModuleData: ``object_id`` is not 32 lowercase hex characters.
        """
        return sharded_key_for(object_id)

    def assign(self, context: Optional[dict], module_data: str, stream: BinaryIO) -> None:
        """Stream ``stream`` into the object's file: temp file, fsync, rename.

        Returns:
            None.

        Raises:
            InvalidModuleData: ``module_data`` is not one of ours.
            InsufficientStorage: the filesystem is full (nothing is left behind).
            LocationUnavailable: the directory is missing or unusable.
            SourceStreamError: the source failed or yields text, not bytes.
        """
        path = self._object_path(module_data)
        directory = os.path.dirname(path)
        temp_path = os.path.join(directory, "%s%s-%s" % (
            _TEMP_PREFIX, os.path.basename(path), os.urandom(4).hex()))
        try:
            fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:  # a new shard (or no storage directory: checked first)
            self._require_storage_dir()
            with self._converted(module_data):
                fd = _create_in_shard(directory, temp_path, self.storage_dir)
        except OSError:
            self._require_storage_dir()
            with self._converted(module_data):
                raise
        try:
            with os.fdopen(fd, "wb", buffering=0) as temp_file, self._converted(module_data):
                written = _copy_stream(stream, temp_file)
                os.fsync(temp_file.fileno())
            with self._converted(module_data):
                os.replace(temp_path, path)
                _fsync_directory(directory)
        except BaseException:
            _remove_quietly(temp_path)
            self._count(errors=1)
            raise
        self._count(writes=1, bytes_written=written)

    def available(self, context: Optional[dict], module_data: str) -> bool:
        """Return True when the object's file exists.

        Raises:
            InvalidModuleData: ``module_data`` is not one of ours.
            LocationUnavailable: the storage directory is missing or unusable.
        """
        path = self._object_path(module_data)
        self._require_storage_dir()
        with self._converted(module_data):
            try:
                os.stat(path)
            except FileNotFoundError:
                return False
        return True

    def get_read_stream(self, context: Optional[dict], module_data: str) -> FileReadStream:
        """Open the object's file.

        Returns:
            FileReadStream: seekable; close it (or use ``with``).

        Raises:
            ObjectNotFound: no file for ``module_data``.
            InvalidModuleData: ``module_data`` is not one of ours.
            LocationUnavailable: the storage directory is missing or unusable.
        """
        path = self._object_path(module_data)
        self._require_storage_dir()
        with self._converted(module_data, missing_is_not_found=True):
            file = open(path, "rb", buffering=0)
            try:
                size = os.fstat(file.fileno()).st_size
            except BaseException:
                file.close()
                raise
        self._count(reads=1)
        return FileReadStream(file, size, location=self.storage_dir)

    def delete(self, context: Optional[dict], module_data: str) -> None:
        """Remove the object's file; an already missing file is fine.

        Raises:
            InvalidModuleData: ``module_data`` is not one of ours.
            LocationUnavailable: the storage directory is missing or unusable.
        """
        path = self._object_path(module_data)
        self._require_storage_dir()
        with self._converted(module_data):
            try:
                os.unlink(path)
            except FileNotFoundError:
                deleted = False  # already gone; a failed assign may have left its shard
            else:
                deleted = True
        _remove_empty_shards(os.path.dirname(path), self.storage_dir)
        if deleted:
            self._count(deletes=1)

    def get_size(self, context: Optional[dict], module_data: str) -> int:
        """Return the file's size in bytes.

        Raises:
            ObjectNotFound: no file for ``module_data``.
            InvalidModuleData: ``module_data`` is not one of ours.
            LocationUnavailable: the storage directory is missing or unusable.
        """
        path = self._object_path(module_data)
        self._require_storage_dir()
        with self._converted(module_data, missing_is_not_found=True):
            return os.stat(path).st_size

    def statistics(self, context: Optional[dict]) -> Dict[str, Any]:
        """Report capacity from ``statvfs`` and this instance's operation counters.

        Never raises: an unusable directory gives -1 capacities, ``status``
        ``'unavailable'`` and the ``reason``.

        Returns:
            dict: ``capacity`` (total/free/used bytes), ``storage_dir``,
            ``status``, ``reason`` (when unavailable), ``operations`` and
            ``temporaries`` (``files`` and ``bytes`` of unfinished writes, in
            progress or left over by a killed writer; counted at most once
            every TEMP_COUNT_INTERVAL seconds and after each ``repair``;
            -1 when they cannot be counted).
        """
        with self._lock:
            operations = dict(self._counters)
        result: Dict[str, Any] = {
            "storage_dir": self.storage_dir,
            "operations": operations,
        }
        try:
            self._require_storage_dir()
            with self._converted(None):
                vfs = os.statvfs(self.storage_dir)
        except StorageError as error:
            result.update(capacity=self.capacity(), status="unavailable", reason=str(error))
            return result
        total = vfs.f_blocks * vfs.f_frsize
        free = vfs.f_bavail * vfs.f_frsize
        used = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize
        result.update(capacity=self.capacity(total, free, used), status="ok",
                      temporaries=self._count_temporaries())
        return result

    def repair(self, context: Optional[dict], module_data: Optional[str] = None,
               rate: Optional[float] = None) -> Dict[str, Any]:
        """Remove temporary files of writes that were cut off (the writer was killed).

        Only temporaries older than ``temp_grace`` seconds (by their
        modification time) are removed: a younger one may belong to a write
        in progress in another process. Every object directory is searched
        for files named like this module's temporaries; with ``module_data``,
        only that object's. ``rate`` is accepted and ignored (nothing is read).

        Returns:
            dict: a :class:`modules.reports.RepairReport` shape: ``reclaimed``
            (temporaries removed), ``failed`` (file -> why it could not be
            removed), ``repaired``/``present`` (empty) and ``remaining`` (0);
            plus ``temporaries_removed``, ``bytes_removed`` and
            ``temporaries_kept`` (younger than the grace period).

        Raises:
            ObjectNotFound: with ``module_data``, no file is stored for it
                (after its temporaries were swept): the object's data is
                lost, and ``vsm repair`` must say so rather than count it as
                checked.
            InvalidModuleData: ``module_data`` is not one of ours.
            LocationUnavailable: the storage directory is missing or unusable.
        """
        prefix = _TEMP_PREFIX
        directories = None
        if module_data is not None:
            path = self._object_path(module_data)
            prefix += os.path.basename(path) + "-"
            directories = [os.path.dirname(path)]
        self._require_storage_dir()
        removed = removed_bytes = kept = 0
        failed: Dict[str, str] = {}
        oldest_kept = time.time() - self.temp_grace
        with self._converted(None):
            for path, size, mtime in self._temporaries(prefix, directories):
                if mtime > oldest_kept:
                    kept += 1
                    continue
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue  # its writer finished or another sweep took it
                except OSError as error:
                    failed[os.path.relpath(path, self.storage_dir)] = str(
                        error.strerror or error)
                    continue
                removed += 1
                removed_bytes += size
                _remove_empty_shards(os.path.dirname(path), self.storage_dir)
        with self._lock:
            self._temporaries_counted = None  # count again at the next statistics
        if removed:
            log.warning("removed %d left-over temporary file(s) (%d bytes) under %s",
                        removed, removed_bytes, self.storage_dir)
        if module_data is not None:
            with self._converted(module_data, missing_is_not_found=True):
                os.stat(self._object_path(module_data))
        return {"repaired": [], "present": [], "failed": failed, "reclaimed": removed,
                "remaining": 0, "temporaries_removed": removed, "bytes_removed": removed_bytes,
                "temporaries_kept": kept}

    # -- helpers ----------------------------------------------------------

    def _object_path(self, module_data) -> str:
        if not isinstance(module_data, str) or not SHARDED_KEY.match(module_data):
            shown = module_data if not isinstance(module_data, str) else module_data[:80]
            raise InvalidModuleData(
                "%r is not module_data produced by SimpleStorage (expected 'xx/yy/<32 hex>')"
                % (shown,), module_data=module_data, location=self.storage_dir)
        return os.path.join(self.storage_dir, *module_data.split("/"))

    def _require_storage_dir(self) -> None:
        if not os.path.isdir(self.storage_dir):
            what = "is not a directory" if os.path.exists(self.storage_dir) else "does not exist"
            raise LocationUnavailable(
                "storage directory %s %s (is the volume mounted? SimpleStorage never creates it)"
                % (self.storage_dir, what), location=self.storage_dir)

    def _count_temporaries(self) -> Dict[str, int]:
        """Count files and bytes of temporaries (-1s when they cannot be counted).

        The count is reused for TEMP_COUNT_INTERVAL seconds: it walks every
        object directory.
        """
        now = time.monotonic()
        with self._lock:
            counted = self._temporaries_counted
        if counted is not None and now - counted[0] < TEMP_COUNT_INTERVAL:
            return dict(counted[1])
        files = size = 0
        try:
            for _, length, _ in self._temporaries(_TEMP_PREFIX):
                files += 1
                size += length
        except OSError as error:
            log.debug("counting temporaries under %s failed: %s", self.storage_dir, error)
            return {"files": -1, "bytes": -1}
        result = {"files": files, "bytes": size}
        with self._lock:
            self._temporaries_counted = (now, result)
        return dict(result)

    def _temporaries(self, prefix: str, directories: Optional[List[str]] = None
                     ) -> List[Tuple[str, int, float]]:
        """Return (path, size, mtime) of files whose names start with ``prefix``.

        Looks in ``directories``, by default every ``xx/yy`` object directory.
        """
        if directories is None:
            directories = _shard_directories(self.storage_dir)
        found = []
        for directory in directories:
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                if not entry.name.startswith(prefix):
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # its writer finished meanwhile
                found.append((entry.path, info.st_size, info.st_mtime))
        return found

    def _converted(self, module_data, missing_is_not_found=False):
        return convert_os_errors(self.storage_dir, module_data, missing_is_not_found)

    def _count(self, **increments) -> None:
        with self._lock:
            for key, value in increments.items():
                self._counters[key] += value


def _shard_directories(storage_dir: str) -> List[str]:
    """Return the ``xx/yy`` object directories under ``storage_dir``."""
    found = []
    for first in os.scandir(storage_dir):
        if not (_SHARD.match(first.name) and first.is_dir(follow_symlinks=False)):
            continue
        try:
            seconds = list(os.scandir(first.path))
        except FileNotFoundError:
            continue
        for second in seconds:
            if _SHARD.match(second.name) and second.is_dir(follow_symlinks=False):
                found.append(second.path)
    return found


def _copy_stream(source: BinaryIO, target) -> int:
    """Copy ``source`` to ``target`` in chunks; return the byte count.

    Source failures become :class:`SourceStreamError` (see
    :func:`modules.streams.read_source_chunk`); errors from the target
    propagate as ``OSError``.
    """
    written = 0
    while True:
        chunk = read_source_chunk(source, CHUNK_SIZE, written)
        if not chunk:
            return written
        view = memoryview(chunk)
        while view:
            view = view[target.write(view):]
        written += len(chunk)


#: Attempts at creating a temporary file in a shard directory that a
#: concurrent delete may remove between ``makedirs`` and ``open``.
_SHARD_ATTEMPTS = 5


def _create_in_shard(directory: str, temp_path: str, storage_dir: str) -> int:
    """Create the shard ``directory`` and the new file ``temp_path`` in it; return its fd.

    Each shard directory created is made durable (its parent fsynced), so
    the object's own directory fsync is enough for it to survive a crash.
    A delete in another thread or process removes shard directories it
    empties (:func:`_remove_empty_shards`), possibly between our ``mkdir``
    and ``open``: then the directory is created again, a bounded number of
    times. OS errors propagate.
    """
    for attempt in range(_SHARD_ATTEMPTS):
        try:  # each level: the parent shard may go between the two mkdir calls
            _make_shards(directory, storage_dir)
            return os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            if attempt == _SHARD_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _make_shards(directory: str, storage_dir: str) -> None:
    """Create ``directory`` and missing parents below ``storage_dir``; fsync each new entry."""
    missing = []
    while directory != storage_dir and not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            pass  # another writer made it: sync anyway, it may not have yet
        _fsync_directory(os.path.dirname(path))


def _remove_empty_shards(directory: str, storage_dir: str) -> None:
    """Remove ``directory`` and its parents while empty, stopping at ``storage_dir``.

    Deleting the last object of a shard must not leave empty directories
    behind (issue 15, point 8). A shard that is not empty, already gone, or
    cannot be removed is left as it is: the delete itself succeeded.
    """
    storage_dir = os.path.abspath(storage_dir)
    while os.path.dirname(directory) and directory.startswith(storage_dir + os.sep):
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            pass
        except OSError:
            return  # not empty (ENOTEMPTY/EEXIST), or not ours to remove
        directory = os.path.dirname(directory)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        log.warning("could not remove temporary file %s: %s", path, error)
