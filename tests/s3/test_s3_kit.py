"""The conformance kit passes for S3Storage on a real SeaweedFS server (issue 12)."""
import unittest

from modules.testing import StorageModuleTestBase
from tests.s3.support import S3ServerCase


class TestS3StorageConformance(StorageModuleTestBase, S3ServerCase):
    def make_module(self):
        return self.make_storage("retries=1")

    def destroy_module(self, module):
        module.close()

    def take_storage_away(self):
        """The storage goes away as a remote one does: the server is killed."""
        self.server.stop()

    def give_storage_back(self):
        self.server.start()


if __name__ == "__main__":
    unittest.main()
