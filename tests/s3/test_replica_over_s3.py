"""ReplicaStorage over two local directories and one S3 location on SeaweedFS (issue 12).

The tests kill ``weed`` (SIGKILL) in the middle of a write and of a read, and
start it again on the same ports and directory; ``repair`` then refills the
S3 copy.
"""
import io
import json
import os
import shutil
import tempfile
import unittest

from modules.testing import payload
from replica.replica import ReplicaStorage
from replica.settings import parse_settings
from tests.s3.support import ACCESS_KEY_ENV, BUCKET, SECRET_KEY_ENV, S3ServerCase

MIB = 1024 * 1024


class ReplicaOverS3Case(S3ServerCase):
    """Builds ``s3`` (listed first, so reads prefer it), ``a`` and ``b`` (local)."""

    def make_replica(self, *options) -> ReplicaStorage:
        local = tempfile.mkdtemp(prefix="replica-over-s3-")
        self.addCleanup(shutil.rmtree, local, True)
        self.local_dirs = [os.path.join(local, name) for name in ("a", "b")]
        for directory in self.local_dirs:
            os.mkdir(directory)
        self.s3_args = self.storage_args() + ["part_size=5MiB", "retries=1", "timeout=5"]
        self.prefix = self.s3_args[0][len("s3://%s/" % BUCKET):] + "/"
        remote = json.dumps({"module": "replica.s3.S3Storage", "name": "s3",
                             "args": self.s3_args})
        replica = ReplicaStorage(remote, "file://%s#a" % self.local_dirs[0],
                                 "file://%s#b" % self.local_dirs[1], "write_quorum=2",
                                 "read_backoff=0", *options)
        self.addCleanup(replica.close)
        return replica

    def s3_objects(self):
        """Complete objects under the replica's S3 prefix: a list of their bytes."""
        client = self.server.client()
        try:
            return [client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                    for key in self.keys(self.prefix)]
        finally:
            client.close()

    def location_health(self, replica, name):
        stats = replica.statistics(None)
        json.dumps(stats)
        (entry,) = [entry for entry in stats["locations"] if entry["name"] == name]
        return entry


class TestReplicaOverS3(ReplicaOverS3Case):
    """One server for these tests; they kill and restart it."""

    def test_killed_in_the_middle_of_a_multipart_write_then_repair_refills(self):
        replica = self.make_replica()
        server = self.server
        data = payload(12 * MIB + 9, seed=2)

        class KillsTheServer(io.RawIOBase):
            """Yields ``data`` and kills weed after 11 MiB (the first 5 MiB part is sent)."""

            def __init__(self):
                super().__init__()
                self.position = 0

            def readable(self):
                return True

            def readinto(self, buffer):
                if self.position >= 11 * MIB and server.running:
                    server.stop()
                chunk = data[self.position:self.position + min(len(buffer), 256 * 1024)]
                buffer[:len(chunk)] = chunk
                self.position += len(chunk)
                return len(chunk)

        module_data = replica.new_data(None)
        try:
            replica.assign(None, module_data, KillsTheServer())
            self.assertFalse(server.running)
            with replica.get_read_stream(None, module_data) as stream:
                self.assertEqual(stream.read(), data)
            s3 = self.location_health(replica, "s3")
            self.assertNotEqual(s3["health"], "ok")
            text = json.dumps(replica.statistics(None)) + repr(replica)
            self.assertNotIn(server.secret_key, text)
        finally:
            server.start()
        self.assertNotIn(data, self.s3_objects(), "a partial upload became visible")
        replica.repair(None)  # the journal remembers the missing copy
        replica.repair(None, module_data)
        self.assertIn(data, self.s3_objects(), "repair did not refill the S3 copy")
        # The upload that could not be aborted while weed was dead goes at the S3 repair.
        from replica.s3 import S3Storage
        cleaner = S3Storage(*self.s3_args, "upload_grace=0")
        self.addCleanup(cleaner.close)
        cleaner.repair(None)
        self.assertEqual(self.pending_uploads(self.prefix), [])

    def test_killed_in_the_middle_of_a_read_which_fails_over_with_identical_bytes(self):
        replica = self.make_replica()
        # Larger than the socket buffers can hold, so that killing weed cuts the answer.
        data = payload(40 * MIB + 333, seed=3)
        module_data = replica.new_data(None)
        replica.assign(None, module_data, io.BytesIO(data))
        self.assertIn(data, self.s3_objects())

        with replica.get_read_stream(None, module_data) as stream:
            self.assertEqual(getattr(stream, "location", "s3"), "s3",
                             "the S3 copy, listed first, is read first")
            first = stream.read(MIB + 7)
            self.server.stop()
            try:
                rest = stream.read()
                self.assertEqual(first + rest, data, "the failed-over read differs")
                self.assertGreaterEqual(stream.failovers, 1, "the read never left the S3 copy")
                self.assertNotEqual(stream.location, "s3")
                self.assertEqual(replica.get_size(None, module_data), len(data))
                with replica.get_read_stream(None, module_data) as again:
                    again.seek(MIB)
                    self.assertEqual(again.read(1000), data[MIB:MIB + 1000])
            finally:
                self.server.start()

    def test_endpoint_and_credentials_from_the_standard_aws_variables(self):
        variables = {"AWS_ENDPOINT_URL_S3": self.server.endpoint_url,
                     "AWS_ACCESS_KEY_ID": os.environ[ACCESS_KEY_ENV],
                     "AWS_SECRET_ACCESS_KEY": os.environ[SECRET_KEY_ENV],
                     "AWS_DEFAULT_REGION": "us-east-1"}
        for name, value in variables.items():
            self.addCleanup(os.environ.__setitem__, name, os.environ[name]) \
                if name in os.environ else self.addCleanup(os.environ.pop, name, None)
            os.environ[name] = value
        local = tempfile.mkdtemp(prefix="replica-over-s3-")
        self.addCleanup(shutil.rmtree, local, True)
        replica = ReplicaStorage("s3://%s/bare#cloud" % BUCKET, "file://%s#a" % local,
                                 "write_quorum=2")
        self.addCleanup(replica.close)
        module_data = replica.new_data(None)
        replica.assign(None, module_data, io.BytesIO(b"via the environment"))
        client = self.server.client()
        self.addCleanup(client.close)
        stored = [client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                  for key in self.keys("bare/")]
        self.assertIn(b"via the environment", stored)
        with replica.get_read_stream(None, module_data) as stream:
            self.assertEqual(stream.read(), b"via the environment")


class TestBareS3URL(unittest.TestCase):
    """``s3://bucket/prefix#name`` in the replica's arguments (no server needed)."""

    def test_parsed_into_an_s3_location(self):
        settings = parse_settings(["s3://bkt/some/prefix#cloud", "file:///tmp/a#a"], {})
        spec = settings.locations[0]
        self.assertEqual((spec.name, spec.kind, spec.module), ("cloud", "s3",
                                                               "replica.s3.S3Storage"))
        self.assertEqual(spec.args, ["s3://bkt/some/prefix"])
        unnamed = parse_settings(["s3://bkt/p", "file:///tmp/a#a"], {}).locations[0]
        self.assertEqual(unnamed.name, "s3://bkt/p")

    def test_credentials_port_or_query_in_the_url_are_refused_and_not_shown(self):
        from modules.errors import ConfigurationError
        for url in ("s3://AKID:s3cret@bkt/p#x", "s3://bkt:9000/p#x", "s3://bkt/p?s3cret=1#x",
                    "s3:///p#x"):
            with self.subTest(url=url):
                with self.assertRaises(ConfigurationError) as caught:
                    parse_settings([url], {})
                self.assertIn("s3://bucket/prefix", str(caught.exception))
                self.assertNotIn("s3cret", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
