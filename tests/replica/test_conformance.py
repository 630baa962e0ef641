"""The SDK's conformance kit against the replica, configured the ways administrators do."""
import json
import os
import unittest

from modules.context import make_context
from modules.testing import StorageModuleTestBase
from replica.replica import ReplicaStorage
from simple.simple import SimpleStorage
from tests.replica.helpers import temp_dir


class TestReplicaInlineSpecs(StorageModuleTestBase, unittest.TestCase):
    """Three simple locations given as inline JSON specs (as the platform's args list)."""

    def make_module(self):
        root = temp_dir(self)
        specs = []
        for name in ("dc1-a", "dc1-b", "dc2-a"):
            os.mkdir(os.path.join(root, name))
            specs.append(json.dumps({"module": "simple.simple.SimpleStorage",
                                     "args": [os.path.join(root, name)], "name": name}))
        return ReplicaStorage(*specs, "write_quorum=2")


class TestReplicaNamedModules(StorageModuleTestBase, unittest.TestCase):
    """Three simple locations configured as separate modules, resolved through getModule."""

    def make_module(self):
        root = temp_dir(self)
        self._children = {}
        for name in ("store-a", "store-b", "store-c"):
            os.mkdir(os.path.join(root, name))
            self._children[name] = SimpleStorage(os.path.join(root, name))
        return ReplicaStorage("store-a", "store-b", "store-c")

    def make_context(self):
        return make_context(dict(self._children))


class TestReplicaFileUrls(StorageModuleTestBase, unittest.TestCase):
    """Three file:// URL locations, one named by a fragment, with a durable journal."""

    def make_module(self):
        root = temp_dir(self)
        for name in ("a", "b", "c", "state"):
            os.mkdir(os.path.join(root, name))
        return ReplicaStorage("file://%s/a" % root, "file://%s/b#bee" % root,
                              "file://%s/c" % root, "state_dir=%s/state" % root)


if __name__ == "__main__":
    unittest.main()
