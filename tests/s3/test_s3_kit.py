"""The conformance kit passes for S3Storage on a real SeaweedFS server (issue 12)."""
import unittest

from modules.testing import StorageModuleTestBase
from tests.s3.support import S3ServerCase


class TestS3StorageConformance(StorageModuleTestBase, S3ServerCase):
    def make_module(self):
        return self.make_storage("retries=2")

    def destroy_module(self, module):
        module.close()


if __name__ == "__main__":
    unittest.main()
