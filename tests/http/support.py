"""Shared fixtures for the HTTPStorage tests: real servers on 127.0.0.1."""
import os
import shutil
import tempfile
import unittest
import uuid

from modules.testing.webdav import WebDAVServer
from replica.http import HTTPStorage
from tests.http.quirky_server import QuirkyDAVServer

USER = "alice"
#: A password distinctive enough to be searched for in errors, logs and statistics.
PASSWORD = "pw-" + uuid.uuid4().hex
PASSWORD_ENV = "HTTP_STORAGE_TEST_PASSWORD"


class DAVServerCase(unittest.TestCase):
    """One wsgidav subprocess (basic auth alice/PASSWORD) per test class.

    ``self.make_storage(*args, **kwargs)`` returns an HTTPStorage on a fresh
    collection of its own (closed after the test).
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="http-storage-dav-")
        cls.server = WebDAVServer(cls.root, user=USER, password=PASSWORD).start()
        os.environ[PASSWORD_ENV] = PASSWORD

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        shutil.rmtree(cls.root, ignore_errors=True)
        os.environ.pop(PASSWORD_ENV, None)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if not self.server.running:  # a test stopped it and failed before restarting
            self.server.start()

    def new_collection(self) -> str:
        """Create a collection under the server root; return its URL."""
        name = "c-" + uuid.uuid4().hex[:12]
        os.mkdir(os.path.join(self.root, name))
        return self.server.url + name + "/"

    def collection_dir(self, storage: HTTPStorage) -> str:
        """The local directory behind ``storage``'s base URL."""
        return os.path.join(self.root, storage.base_url[len(self.server.url):].strip("/"))

    def make_storage(self, *args, base_url=None, **kwargs) -> HTTPStorage:
        if not any(isinstance(a, str) and a.startswith(("username=", "user=", "token"))
                   for a in args) and "username" not in kwargs and "token" not in kwargs:
            kwargs.setdefault("username", USER)
            kwargs.setdefault("password_env", PASSWORD_ENV)
        kwargs.setdefault("sleep", lambda seconds: None)
        storage = HTTPStorage(base_url or self.new_collection(), *args, **kwargs)
        self.addCleanup(storage.close)
        return storage


class QuirkyServerCase(unittest.TestCase):
    """One in-process quirky wsgidav server per class; quirks reset and a fresh
    collection ``self.store`` (URL path ``/<store>/``) for every test."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="http-storage-quirky-")
        cls.server = QuirkyDAVServer(cls.root).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.server.reset()
        self.store = "s-" + uuid.uuid4().hex[:12]
        os.mkdir(os.path.join(self.root, self.store))
        self.sleeps = []

    @property
    def base_url(self) -> str:
        return self.server.url + self.store + "/"

    def make_storage(self, *args, **kwargs) -> HTTPStorage:
        kwargs.setdefault("sleep", self.sleeps.append)
        storage = HTTPStorage(self.base_url, *args, **kwargs)
        self.addCleanup(storage.close)
        return storage

    @staticmethod
    def retries(storage: HTTPStorage) -> int:
        """How many times ``storage`` retried a request (its statistics' retry counter)."""
        return storage.statistics(None)["requests"]["retries"]

    def object_path(self, module_data: str) -> str:
        return os.path.join(self.root, self.store, *module_data.split("/"))
