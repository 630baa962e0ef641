"""The conformance kit against the sample ``simple`` module."""
import shutil
import tempfile
import unittest

from modules.testing import StorageModuleTestBase
from simple.simple import SimpleStorage


class TestSimpleStorageConformance(StorageModuleTestBase, unittest.TestCase):
    def make_module(self):
        self.directory = tempfile.mkdtemp(prefix="vsm-simple-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        return SimpleStorage(self.directory)

    def storage_directory(self):
        """Enables the storage-taken-away and empty-directory checks (issue 15)."""
        return self.directory


if __name__ == "__main__":
    unittest.main()
