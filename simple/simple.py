"""The sample Vendor Storage Module: objects as files in a local directory.

Written to be copied. The habits it shows:

* it never creates its storage directory: a missing mount point must fail
  loudly, not fill the root disk;
* module_data is a value the module generated and validates strictly before
  touching the disk;
* writes stream in chunks into a temporary file on the same filesystem,
  are fsynced and renamed into place, and are removed on any failure;
* every OS error is translated to an SDK error in one place
  (:func:`modules.fs_errors.convert_os_errors`).
"""
import logging
import os
import threading
import uuid
from typing import Any, BinaryIO, Dict, Optional

from modules import StorageModule
from modules.errors import (
    ConfigurationError,
    InvalidModuleData,
    LocationUnavailable,
    StorageError,
)
from modules.fs_errors import convert_os_errors
from modules.keys import SHARDED_KEY, new_sharded_key
from modules.streams import FileReadStream, read_source_chunk

__all__ = ["SimpleStorage"]

log = logging.getLogger(__name__)

#: Bytes read from the source per call in ``assign``.
CHUNK_SIZE = 1024 * 1024

_TEMP_PREFIX = ".tmp-"


class SimpleStorage(StorageModule):
    """Store each object as one file under ``storage_dir``.

    Args:
        storage_dir: an existing, writable directory (typically a mount
            point). It is never created: while it is missing every operation
            raises :class:`LocationUnavailable` and ``statistics`` reports
            the reason.

    Raises:
        ConfigurationError: ``storage_dir`` is not a non-empty string path.
    """

    def __init__(self, storage_dir=None, **kwargs):
        super().__init__()
        if kwargs:
            raise ConfigurationError("SimpleStorage takes one argument, storage_dir; unknown: %s"
                                     % ", ".join(sorted(kwargs)))
        if isinstance(storage_dir, os.PathLike):
            storage_dir = os.fspath(storage_dir)
        if not isinstance(storage_dir, str) or not storage_dir.strip():
            raise ConfigurationError(
                "SimpleStorage needs storage_dir, the path of an existing directory; got %r"
                % (storage_dir,))
        if "\0" in storage_dir:
            raise ConfigurationError("storage_dir must not contain NUL characters")
        self.storage_dir = os.path.abspath(storage_dir)
        self._lock = threading.Lock()
        self._counters = {"writes": 0, "reads": 0, "deletes": 0, "bytes_written": 0, "errors": 0}

    def __repr__(self) -> str:
        return "SimpleStorage(%r)" % self.storage_dir

    # -- the contract -----------------------------------------------------

    def new_data(self, context: Optional[dict]) -> str:
        """Return a new sharded relative path, e.g. ``'3f/a0/3fa0...'`` (no disk access).

        Returns:
            str: the module_data for a new object.
        """
        return new_sharded_key()

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
        self._require_storage_dir()
        directory = os.path.dirname(path)
        with self._converted(module_data):
            temp_path = os.path.join(directory, "%s%s-%s" % (
                _TEMP_PREFIX, os.path.basename(path), uuid.uuid4().hex[:8]))
            fd = _create_in_shard(directory, temp_path)
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
            ``status``, ``reason`` (when unavailable) and ``operations``.
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
        result.update(capacity=self.capacity(total, free, used), status="ok")
        return result

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

    def _converted(self, module_data, missing_is_not_found=False):
        return convert_os_errors(self.storage_dir, module_data, missing_is_not_found)

    def _count(self, **increments) -> None:
        with self._lock:
            for key, value in increments.items():
                self._counters[key] += value


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


def _create_in_shard(directory: str, temp_path: str) -> int:
    """Create the shard ``directory`` and the new file ``temp_path`` in it; return its fd.

    A delete in another thread or process removes shard directories it
    empties (:func:`_remove_empty_shards`), possibly between our ``makedirs``
    and ``open``: then the directory is created again, a bounded number of
    times. OS errors propagate.
    """
    for attempt in range(_SHARD_ATTEMPTS):
        try:  # makedirs too: the parent shard may go between its two mkdir calls
            os.makedirs(directory, exist_ok=True)
            return os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            if attempt == _SHARD_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


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
