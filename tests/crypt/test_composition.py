"""Composition (issue 13): a mirror of encrypted locations, encryption over a mirror.

Capabilities propagate: CryptStorage over a replica offers ``repair`` and
``scrub`` by forwarding them, and a damaged copy below it is found and
repaired through the wrapper.
"""
import io
import json
import os
import unittest

from modules.context import make_context
from modules.errors import InvalidModuleData
from modules.testing import CapabilityChecks, StorageModuleTestBase
from replica.crypt import CryptStorage
from replica.replica import ReplicaStorage
from simple.simple import SimpleStorage
from tests.crypt.support import KEY_ENV, files_under, set_key, temp_dir

SECRET = b"TOP-SECRET-LEDGER-LINE;"


def crypt_spec(directory: str, name: str) -> str:
    return json.dumps({"module": "replica.crypt.CryptStorage", "name": name,
                       "args": ["file://%s" % directory, "key_env=%s" % KEY_ENV]})


class TestMirrorOfEncryptedLocations(CapabilityChecks, StorageModuleTestBase, unittest.TestCase):
    """A replica whose three locations are each CryptStorage over a directory."""

    def make_module(self):
        set_key(self)
        self.dirs = [temp_dir(self) for _ in range(3)]
        return ReplicaStorage(*(crypt_spec(path, "enc-%d" % index)
                                for index, path in enumerate(self.dirs)), "write_quorum=3")

    def test_every_copy_is_ciphertext_and_a_damaged_copy_is_not_served(self):
        data = SECRET * 3000
        module_data = self.store(data)
        for directory in self.dirs:
            stored = b"".join(open(path, "rb").read() for path in files_under(directory))
            self.assertGreater(len(stored), len(data))
            self.assertNotIn(b"TOP-SECRET", stored)
        victim = [path for path in files_under(self.dirs[0])][0]
        with open(victim, "r+b") as file:
            file.seek(1000)
            file.write(b"\0" * 8)
        for _ in range(3):
            self.assertStoredEqual(module_data, data)


class TestEncryptionOverAMirror(unittest.TestCase):
    """CryptStorage over a named replica: repair and scrub are forwarded."""

    def setUp(self):
        set_key(self)
        self.root = temp_dir(self)
        for name in "abc":
            os.mkdir(os.path.join(self.root, name))
        self.replica = ReplicaStorage(*("file://%s/%s#%s" % (self.root, name, name)
                                        for name in "abc"))
        self.addCleanup(self.replica.close)
        self.context = make_context({"mirror": self.replica})
        self.crypt = CryptStorage("mirror", key_env=KEY_ENV)
        self.addCleanup(self.crypt.close)

    def store(self, data: bytes) -> str:
        module_data = self.crypt.new_data(self.context)
        self.crypt.assign(self.context, module_data, io.BytesIO(data))
        return module_data

    def test_capabilities_propagate(self):
        self.crypt.statistics(self.context)  # resolves the named inner module
        capabilities = self.crypt.capabilities
        self.assertTrue(capabilities["repair"] and capabilities["scrub"])
        self.assertEqual(capabilities["retries"], bool(self.replica.capabilities.get("retries")))

    def test_a_damaged_copy_is_found_by_scrub_and_fixed_by_repair_through_the_wrapper(self):
        data = os.urandom(300000)
        module_data = self.store(data)
        victim = files_under(os.path.join(self.root, "b"))
        victim = [path for path in victim if "manifest" not in path and
                  os.path.getsize(path) > 300000][0]
        with open(victim, "r+b") as file:
            file.seek(5000)
            file.write(b"\x55" * 16)
        report = self.crypt.scrub(self.context, module_data)
        self.assertIn("b", report["damaged"], report)
        self.assertTrue(report["authenticated"], "the copy the replica served must decrypt")
        repaired = self.crypt.repair(self.context, module_data)
        self.assertIn("b", repaired["repaired"], repaired)
        report = self.crypt.scrub(self.context, module_data)
        self.assertFalse(report["damaged"], report)
        with self.crypt.get_read_stream(self.context, module_data) as stream:
            self.assertEqual(stream.read(), data)
        backlog = self.crypt.repair(self.context)
        self.assertIsInstance(backlog, dict)


if __name__ == "__main__":
    unittest.main()


class _Placing(SimpleStorage):
    """A simple location with deterministic placement (as the grown simple module offers)."""

    capabilities = dict(ReplicaStorage.capabilities, placement=True, repair=False, scrub=False,
                        verified_reads=False)

    def new_data_for(self, context, object_id):
        if not isinstance(object_id, str) or len(object_id) != 32 or \
                any(ch not in "0123456789abcdef" for ch in object_id):
            raise InvalidModuleData("object_id must be 32 lowercase hex characters")
        return "%s/%s/%s" % (object_id[:2], object_id[2:4], object_id)


class TestPlacementPropagates(CapabilityChecks, StorageModuleTestBase, unittest.TestCase):
    """CryptStorage over a location with placement offers new_data_for itself."""

    def make_module(self):
        set_key(self)
        self._inner = _Placing(temp_dir(self))
        return CryptStorage("placing", key_env=KEY_ENV)

    def make_context(self):
        return make_context({"placing": self._inner})

    def setUp(self):
        super().setUp()
        self.module.statistics(self.context)  # resolve the named inner module

    def test_new_data_for_uses_the_given_object_id(self):
        object_id = "ab" * 16
        self.assertTrue(self.module.capabilities["placement"])
        self.assertEqual(self.module.new_data_for(self.context, object_id),
                         "crypt1:%s:ab/ab/%s" % (object_id, object_id))
