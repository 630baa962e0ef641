"""Shared pieces of the CryptStorage tests: keys in the environment, real directories."""
import base64
import os
import shutil
import tempfile
import threading
import unittest
from typing import List

from simple.simple import SimpleStorage

#: Environment variables the tests put keys in (removed again after each test).
KEY_ENV = "VSM_CRYPT_TEST_KEY"
OLD_KEY_ENV = "VSM_CRYPT_TEST_OLD_KEY"


def new_key_text() -> str:
    """Return a fresh 32-byte key as base64."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def set_key(test: unittest.TestCase, name: str = KEY_ENV, text: str = None) -> str:
    """Put a key into ``os.environ[name]`` for the test; return its text."""
    text = text or new_key_text()
    previous = os.environ.get(name)
    os.environ[name] = text

    def restore():
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous

    test.addCleanup(restore)
    return text


def temp_dir(test: unittest.TestCase, prefix: str = "vsm-crypt-") -> str:
    """Return a new directory removed after the test."""
    path = tempfile.mkdtemp(prefix=prefix)
    test.addCleanup(shutil.rmtree, path, True)
    return path


def files_under(directory: str) -> List[str]:
    """Return every regular file under ``directory``."""
    found = []
    for root, _, names in os.walk(directory):
        found.extend(os.path.join(root, name) for name in names)
    return found


class CountingStorage(SimpleStorage):
    """A SimpleStorage that counts the bytes its read streams return (for cost checks)."""

    def __init__(self, storage_dir):
        super().__init__(storage_dir)
        self.bytes_read = 0
        self.streams_opened = 0
        self._count_lock = threading.Lock()

    def get_read_stream(self, context, module_data):
        stream = super().get_read_stream(context, module_data)
        with self._count_lock:
            self.streams_opened += 1
        original = stream.read

        def counted(size=-1):
            data = original(size)
            with self._count_lock:
                self.bytes_read += len(data)
            return data

        stream.read = counted
        return stream

    def reset(self) -> None:
        with self._count_lock:
            self.bytes_read = 0
            self.streams_opened = 0


def inner_path(storage_dir: str, module_data: str) -> str:
    """Return the file under ``storage_dir`` holding a CryptStorage-over-simple object."""
    inner = module_data.split(":", 2)[2]
    return os.path.join(storage_dir, inner)

