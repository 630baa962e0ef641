"""The conformance kit against HTTPStorage on real WebDAV servers."""
import shutil
import tempfile
import unittest

from modules.testing import StorageModuleTestBase
from replica.http import HTTPStorage
from tests.http.support import DAVServerCase, PASSWORD_ENV, USER
from tests.http.quirky_server import QuirkyDAVServer


class TestHTTPStorageConformance(StorageModuleTestBase, DAVServerCase):
    """wsgidav (cheroot, subprocess) with basic authentication, configured by strings."""

    def make_module(self):
        storage = HTTPStorage(self.new_collection(), "username=%s" % USER,
                              "password_env=%s" % PASSWORD_ENV, "timeout=10",
                              sleep=lambda seconds: None)
        return storage

    def take_storage_away(self):
        """The server goes away (killed like a crash) while the module stays open."""
        self.server.stop()

    def give_storage_back(self):
        if not self.server.running:
            self.server.start()


class TestHTTPStorageConformanceRangeIgnored(StorageModuleTestBase, unittest.TestCase):
    """A server that ignores Range (200 with the whole body) still passes the kit."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="http-storage-norange-")
        cls.server = QuirkyDAVServer(cls.root).start()
        cls.server.ignore_range = True
        cls.server.head_without_length = True

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def make_module(self):
        return HTTPStorage(self.server.url, "timeout=10")


if __name__ == "__main__":
    unittest.main()
