"""The conformance kit (with the per-capability checks) against CryptStorage (issue 13).

CryptStorage over ``simple`` (inline JSON spec), over HTTP (a real WsgiDAV
server, configured as an inline spec with credentials from the environment)
and over a replica of three simple locations (a named module).
"""
import json
import os
import unittest

from modules.context import make_context
from modules.testing import CapabilityChecks, StorageModuleTestBase
from replica.crypt import CryptStorage
from replica.replica import ReplicaStorage
from tests.crypt.support import KEY_ENV, set_key, temp_dir
from tests.http.support import DAVServerCase, PASSWORD_ENV, USER


class TestCryptOverSimple(CapabilityChecks, StorageModuleTestBase, unittest.TestCase):
    """An inline spec of a simple location; the key in an environment variable."""

    def make_module(self):
        set_key(self)
        spec = {"module": "simple.simple.SimpleStorage", "args": [temp_dir(self)], "name": "disk"}
        return CryptStorage(json.dumps(spec), "key_env=%s" % KEY_ENV)


class TestCryptOverSimpleSmallChunks(CapabilityChecks, StorageModuleTestBase, unittest.TestCase):
    """A file:// URL and 4 KiB chunks: many chunk boundaries inside every kit object."""

    def make_module(self):
        set_key(self)
        return CryptStorage("file://%s" % temp_dir(self), key_env=KEY_ENV, chunk_size=4096)


class TestCryptOverHTTP(CapabilityChecks, StorageModuleTestBase, DAVServerCase):
    """A real WsgiDAV server with basic authentication."""

    def make_module(self):
        set_key(self)
        spec = {"module": "replica.http.HTTPStorage", "name": "dav",
                "args": [self.new_collection(), "username=%s" % USER,
                         "password_env=%s" % PASSWORD_ENV, "timeout=10"]}
        return CryptStorage(json.dumps(spec), "key_env=%s" % KEY_ENV)


class TestCryptOverReplica(CapabilityChecks, StorageModuleTestBase, unittest.TestCase):
    """A named replica of three simple locations: repair and scrub are forwarded."""

    def make_module(self):
        set_key(self)
        root = temp_dir(self)
        for name in ("a", "b", "c"):
            os.mkdir(os.path.join(root, name))
        self._replica = ReplicaStorage(*("file://%s/%s" % (root, name) for name in "abc"))
        self.addCleanup(self._replica.close)
        return CryptStorage("mirror", "key_env=%s" % KEY_ENV)

    def make_context(self):
        return make_context({"mirror": self._replica})

    def setUp(self):
        super().setUp()
        # A wrapper learns a named inner module's capabilities at its first call with a
        # context (docs/module-authors.md, "Writing a wrapper"); hosts ask for statistics
        # when they load a module, and so does this test before the kit reads them.
        self.module.statistics(self.context)

    def test_capabilities_follow_the_replica(self):
        self.store(b"x")
        capabilities = self.module.capabilities
        self.assertTrue(capabilities["repair"])
        self.assertTrue(capabilities["scrub"])
        self.assertTrue(capabilities["verified_reads"])


if __name__ == "__main__":
    unittest.main()
