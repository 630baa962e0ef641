"""ReplicaStorage over two local directories and one WebDAV location (issue 4's scenarios).

The HTTP location is a real wsgidav server in a subprocess, with basic
authentication; the tests kill it in the middle of writes and reads and
start it again on the same port and directory.
"""
import io
import json
import os
import shutil
import tempfile
import unittest

from modules.testing import StorageModuleTestBase, payload
from replica.replica import ReplicaStorage
from tests.http.support import DAVServerCase, PASSWORD, PASSWORD_ENV, USER

MIB = 1024 * 1024


class ReplicaOverHTTPCase(DAVServerCase):
    """Builds ``remote`` (HTTP, listed first so reads prefer it), ``a`` and ``b`` (local)."""

    def make_replica(self, *options) -> ReplicaStorage:
        local = tempfile.mkdtemp(prefix="replica-over-http-")
        self.addCleanup(shutil.rmtree, local, True)
        self.local_dirs = [os.path.join(local, name) for name in ("a", "b")]
        for directory in self.local_dirs:
            os.mkdir(directory)
        self.remote_url = self.new_collection()
        remote = json.dumps({"module": "replica.http.HTTPStorage", "name": "remote",
                             "args": [self.remote_url, "username=" + USER,
                                      "password_env=" + PASSWORD_ENV, "timeout=5",
                                      "retries=1", "retry_backoff=0"]})
        replica = ReplicaStorage(remote, "file://%s#a" % self.local_dirs[0],
                                 "file://%s#b" % self.local_dirs[1], "write_quorum=2",
                                 "read_backoff=0", *options)
        self.addCleanup(replica.close)
        return replica

    def remote_files(self):
        """Complete objects on the WebDAV server (temporaries excluded): {name: bytes}."""
        root = os.path.join(self.root, self.remote_url[len(self.server.url):].strip("/"))
        found = {}
        for directory, _, names in os.walk(root):
            for name in names:
                if not name.startswith("."):
                    with open(os.path.join(directory, name), "rb") as file:
                        found[name] = file.read()
        return found

    def location_health(self, replica, name):
        stats = replica.statistics(None)
        json.dumps(stats)
        (entry,) = [entry for entry in stats["locations"] if entry["name"] == name]
        return entry


class TestReplicaOverHTTPConformance(StorageModuleTestBase, ReplicaOverHTTPCase):
    """The conformance kit passes for a replica with an HTTP location."""

    def make_module(self):
        return self.make_replica()


class TestReplicaWhenTheServerStops(ReplicaOverHTTPCase):
    def test_writes_reach_quorum_and_repair_fills_the_copy_after_restart(self):
        replica = self.make_replica()
        data = payload(2 * MIB + 5, seed=1)
        self.server.stop()
        try:
            module_data = replica.new_data(None)
            replica.assign(None, module_data, io.BytesIO(data))
            with replica.get_read_stream(None, module_data) as stream:
                self.assertEqual(stream.read(), data)
            remote = self.location_health(replica, "remote")
            self.assertIn(remote["health"], ("down", "error-limited"))
            self.assertEqual(remote["statistics"]["status"], "unavailable")
            self.assertIn("cannot reach", remote["statistics"]["reason"])
            stats_text = json.dumps(replica.statistics(None))
            self.assertNotIn(PASSWORD, stats_text)
        finally:
            self.server.start()
        self.assertEqual(self.remote_files(), {}, "nothing reached the stopped server")
        summary = replica.repair(None, module_data)
        json.dumps(summary)
        self.assertIn(data, self.remote_files().values(), "repair did not fill the HTTP copy")
        self.assertEqual(self.location_health(replica, "remote")["health"], "ok")

    def test_server_stopped_in_the_middle_of_a_write(self):
        replica = self.make_replica()
        server = self.server
        data = payload(6 * MIB, seed=2)

        class StopsTheServer(io.RawIOBase):
            """Yields ``data`` and kills the server after 2 MiB."""

            def __init__(self):
                super().__init__()
                self.position = 0

            def readable(self):
                return True

            def readinto(self, buffer):
                if self.position >= 2 * MIB and server.running:
                    server.stop()
                chunk = data[self.position:self.position + min(len(buffer), 256 * 1024)]
                buffer[:len(chunk)] = chunk
                self.position += len(chunk)
                return len(chunk)

        module_data = replica.new_data(None)
        try:
            replica.assign(None, module_data, StopsTheServer())
            self.assertFalse(server.running)
            with replica.get_read_stream(None, module_data) as stream:
                self.assertEqual(stream.read(), data)
        finally:
            server.start()
        self.assertNotIn(data, self.remote_files().values())
        replica.repair(None)  # the journal remembers the missing copy
        replica.repair(None, module_data)
        self.assertIn(data, self.remote_files().values())

    def test_reads_fall_back_and_a_read_in_progress_resumes_from_a_local_copy(self):
        replica = self.make_replica()
        # Larger than the socket buffers can hold (up to 32 MiB on loopback), so that
        # stopping the server really cuts the response being read.
        data = payload(48 * MIB + 333, seed=3)
        module_data = replica.new_data(None)
        replica.assign(None, module_data, io.BytesIO(data))
        self.assertIn(data, self.remote_files().values())

        with replica.get_read_stream(None, module_data) as stream:
            self.assertEqual(getattr(stream, "location", "remote"), "remote",
                             "the HTTP copy, listed first, is read first")
            first = stream.read(MIB + 7)
            self.server.stop()
            try:
                rest = stream.read()
            finally:
                self.server.start()
            self.assertEqual(first + rest, data, "the resumed read differs")
            self.assertGreaterEqual(stream.failovers, 1, "the read never left the HTTP copy")
            self.assertNotEqual(stream.location, "remote")

        self.server.stop()
        try:
            self.assertEqual(replica.get_size(None, module_data), len(data))
            with replica.get_read_stream(None, module_data) as stream:
                stream.seek(MIB)
                self.assertEqual(stream.read(1000), data[MIB:MIB + 1000])
            self.assertNotEqual(self.location_health(replica, "remote")["health"], "ok")
        finally:
            self.server.start()

    def test_wrong_password_on_the_http_location(self):
        local = tempfile.mkdtemp(prefix="replica-over-http-")
        self.addCleanup(shutil.rmtree, local, True)
        wrong = "nope-" + PASSWORD
        os.environ["REPLICA_HTTP_WRONG_PASSWORD"] = wrong
        self.addCleanup(os.environ.pop, "REPLICA_HTTP_WRONG_PASSWORD", None)
        remote = json.dumps({"module": "replica.http.HTTPStorage", "name": "remote",
                             "args": [self.new_collection(), "username=" + USER,
                                      "password_env=REPLICA_HTTP_WRONG_PASSWORD"]})
        os.mkdir(os.path.join(local, "a"))
        os.mkdir(os.path.join(local, "b"))
        replica = ReplicaStorage(remote, "file://%s/a#a" % local, "file://%s/b#b" % local,
                                 "write_quorum=2")
        self.addCleanup(replica.close)
        module_data = replica.new_data(None)
        replica.assign(None, module_data, io.BytesIO(b"data"))
        stats = replica.statistics(None)
        text = json.dumps(stats)
        self.assertNotIn(wrong, text)
        self.assertNotIn(wrong, repr(replica))
        (entry,) = [e for e in stats["locations"] if e["name"] == "remote"]
        self.assertNotEqual(entry["health"], "ok")


if __name__ == "__main__":
    unittest.main()
