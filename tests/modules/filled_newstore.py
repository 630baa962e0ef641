"""A small working ``newstore/newstore.py``: what a vendor writes into ``vsm new``'s skeleton.

The end-to-end tests (tests/modules/test_new_module.py) copy this file over
the generated ``newstore/newstore.py``. It stores each object as a file in
one existing directory, with the SDK's helpers.
"""
import os
import uuid
from typing import Any, Dict, Optional

from modules import StorageModule
from modules.errors import ConfigurationError, InvalidModuleData, LocationUnavailable
from modules.fs_errors import convert_os_errors
from modules.keys import SHARDED_KEY, new_sharded_key
from modules.streams import FileReadStream, read_source_chunk

__all__ = ["NewStorage"]


class NewStorage(StorageModule):
    """Objects as files under ``storage_dir`` (which must exist)."""

    def __init__(self, storage_dir=None):
        super().__init__()
        if not isinstance(storage_dir, str) or not storage_dir.strip():
            raise ConfigurationError("NewStorage needs storage_dir, an existing directory")
        self.storage_dir = os.path.abspath(storage_dir)

    def new_data(self, context):
        return new_sharded_key()

    def assign(self, context, module_data, stream):
        path = self._path(module_data)
        temp = "%s.tmp-%s" % (path, uuid.uuid4().hex)
        with convert_os_errors(self.storage_dir, module_data):
            try:
                with _create(temp) as file:
                    done = 0
                    while True:
                        chunk = read_source_chunk(stream, 1 << 20, done)
                        if not chunk:
                            break
                        file.write(chunk)
                        done += len(chunk)
                os.replace(temp, path)
            except BaseException:
                if os.path.exists(temp):
                    os.unlink(temp)
                raise

    def available(self, context, module_data):
        path = self._path(module_data)
        return os.path.isfile(path)

    def get_read_stream(self, context, module_data):
        path = self._path(module_data)
        with convert_os_errors(self.storage_dir, module_data, missing_is_not_found=True):
            file = open(path, "rb", buffering=0)
        return FileReadStream(file, os.fstat(file.fileno()).st_size, location=self.storage_dir)

    def delete(self, context, module_data):
        path = self._path(module_data)
        with convert_os_errors(self.storage_dir, module_data):
            try:
                os.unlink(path)
            except FileNotFoundError:
                return
            for directory in (os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
                try:
                    os.rmdir(directory)
                except OSError:
                    break

    def get_size(self, context, module_data):
        path = self._path(module_data)
        with convert_os_errors(self.storage_dir, module_data, missing_is_not_found=True):
            return os.stat(path).st_size

    def statistics(self, context) -> Dict[str, Any]:
        try:
            self._require_storage()
            vfs = os.statvfs(self.storage_dir)
        except (LocationUnavailable, OSError) as error:
            return {"capacity": self.capacity(), "status": "unavailable", "reason": str(error)}
        total, free = vfs.f_blocks * vfs.f_frsize, vfs.f_bavail * vfs.f_frsize
        return {"capacity": self.capacity(total, free, total - vfs.f_bfree * vfs.f_frsize),
                "status": "ok"}

    def _path(self, module_data: Optional[str]) -> str:
        if not isinstance(module_data, str) or not SHARDED_KEY.match(module_data):
            raise InvalidModuleData("%r is not NewStorage module_data" % (module_data,),
                                    module_data=module_data)
        self._require_storage()
        return os.path.join(self.storage_dir, *module_data.split("/"))

    def _require_storage(self) -> None:
        if not os.path.isdir(self.storage_dir):
            raise LocationUnavailable("%s is missing: mount it or create it" % self.storage_dir,
                                      location=self.storage_dir)


def _create(path: str):
    """Open the new file ``path``, creating its directory; a concurrent delete may remove it."""
    for attempt in range(5):
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            return open(path, "xb")
        except FileNotFoundError:
            if attempt == 4:
                raise
