"""The conformance kit against the sample ``simple`` module."""
import shutil
import tempfile
import unittest

from modules.testing import StorageModuleTestBase
from simple.simple import SimpleStorage


class TestSimpleStorageConformance(StorageModuleTestBase, unittest.TestCase):
    def make_module(self):
        directory = tempfile.mkdtemp(prefix="vsm-simple-")
        self.addCleanup(shutil.rmtree, directory, True)
        return SimpleStorage(directory)


if __name__ == "__main__":
    unittest.main()
