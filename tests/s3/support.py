"""Shared fixtures for the S3Storage tests: one SeaweedFS server per test class."""
import os
import unittest
import uuid

from replica.s3 import S3Storage
from tests.s3.seaweedfs import SeaweedFS

#: Environment variables holding the test server's credentials (set per class).
ACCESS_KEY_ENV = "VSM_TEST_S3_ACCESS_KEY"
SECRET_KEY_ENV = "VSM_TEST_S3_SECRET_KEY"
BUCKET = "vsm-tests"


class S3ServerCase(unittest.TestCase):
    """Starts ``cls.server`` (SeaweedFS) with bucket :data:`BUCKET`; stops it by PID after.

    ``self.make_storage(*args)`` returns an S3Storage on a fresh prefix of
    that bucket (closed after the test), with short timeouts and no retries
    unless the test asks otherwise.
    """

    server: SeaweedFS

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = SeaweedFS()
        try:
            cls.server.start()
            cls.server.create_bucket(BUCKET)
        except BaseException:
            cls.server.close()
            raise
        os.environ[ACCESS_KEY_ENV] = cls.server.access_key
        os.environ[SECRET_KEY_ENV] = cls.server.secret_key

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        os.environ.pop(ACCESS_KEY_ENV, None)
        os.environ.pop(SECRET_KEY_ENV, None)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if not self.server.running:  # a test stopped it and failed before restarting
            self.server.start()

    def storage_args(self, prefix=None, bucket=BUCKET):
        """The arguments of an S3Storage on this server (a fresh prefix unless given)."""
        prefix = prefix or "t-" + uuid.uuid4().hex[:12]
        return ["s3://%s/%s" % (bucket, prefix), "endpoint_url=" + self.server.endpoint_url,
                "access_key_env=" + ACCESS_KEY_ENV, "secret_key_env=" + SECRET_KEY_ENV,
                "addressing=path"]

    def make_storage(self, *args, prefix=None, bucket=BUCKET, **kwargs) -> S3Storage:
        options = list(args)
        for name, default in (("retries", "0"), ("timeout", "10")):
            if not any(str(arg).startswith(name + "=") for arg in options) and name not in kwargs:
                options.append("%s=%s" % (name, default))
        storage = S3Storage(*self.storage_args(prefix, bucket), *options, **kwargs)
        self.addCleanup(storage.close)
        return storage

    def keys(self, prefix=""):
        """Every key in the bucket under ``prefix`` (through an independent client)."""
        client = self.server.client()
        try:
            keys = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                         Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents") or ())
            return keys
        finally:
            client.close()

    def pending_uploads(self, prefix=""):
        """The unfinished multipart uploads under ``prefix``."""
        client = self.server.client()
        try:
            answer = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
            return answer.get("Uploads") or []
        finally:
            client.close()
