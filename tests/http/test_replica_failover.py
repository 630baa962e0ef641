"""Issue 9's targets: a replica whose first location is a bad HTTP server fails over fast.

Real servers on 127.0.0.1: :class:`~modules.testing.webdav.BlackHoleServer`
(accepts connections, never answers) and a tiny server that answers 503 to
every request and counts them. The object is written by a replica whose
``remote`` location is a local directory; it is then read by a fresh replica
(another worker process, with no health history) whose ``remote`` is the bad
server, listed first.

Two targets rest on HTTPStorage's side of issue 9 (it declares
``capabilities['retries']`` and does not retry timeouts); the replica's side
is pinned by ``retries=0`` here and ``tests/replica/test_retries.py``.
"""
import io
import json
import os
import threading
import time
import unittest

from cheroot import wsgi

from modules.testing import payload
from modules.testing.webdav import BlackHoleServer
from replica.replica import ReplicaStorage
from tests.replica.helpers import MIB, temp_dir


class _Always503:
    """Answer 503 to every request on 127.0.0.1 (cheroot); ``count()`` says how many came."""

    def __init__(self):
        self._requests = 0
        self._lock = threading.Lock()
        self._server = wsgi.Server(("127.0.0.1", 0), self._app, numthreads=4)
        self._thread = threading.Thread(target=self._server.serve, name="always-503",
                                        daemon=True)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/" % self._server.bind_addr[1]

    def _app(self, environ, start_response):
        with self._lock:
            self._requests += 1
        start_response("503 Service Unavailable", [("Content-Length", "0")])
        return [b""]

    def __enter__(self):
        self._server.prepare()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.stop()
        self._thread.join(5)

    def count(self) -> int:
        with self._lock:
            return self._requests


class _BadFirstLocation(unittest.TestCase):
    def setUp(self):
        root = temp_dir(self)
        self.dirs = {name: os.path.join(root, name) for name in ("remote", "a", "b")}
        for directory in self.dirs.values():
            os.mkdir(directory)
        self.data = payload(3 * MIB, seed=9)
        writer = ReplicaStorage(*["file://%s#%s" % (path, name)
                                  for name, path in self.dirs.items()])
        try:
            self.module_data = writer.new_data(None)
            writer.assign(None, self.module_data, io.BytesIO(self.data))
        finally:
            writer.close()

    def reader(self, url, *http_args):
        remote = json.dumps({"module": "replica.http.HTTPStorage", "name": "remote",
                             "args": [url] + list(http_args)})
        replica = ReplicaStorage(remote, "file://%s#a" % self.dirs["a"],
                                 "file://%s#b" % self.dirs["b"])
        self.addCleanup(replica.close)
        return replica

    def size_and_read(self, replica):
        self.assertEqual(replica.get_size(None, self.module_data), len(self.data))
        with replica.get_read_stream(None, self.module_data) as stream:
            self.assertEqual(stream.read(), self.data)


class TestHangingFirstLocation(_BadFirstLocation):
    """Target: get_size plus a full read of 3 MiB in under 3 s (was 33 s)."""

    def measure(self, *http_args):
        with BlackHoleServer() as hole:
            replica = self.reader(hole.url, "timeout=1", *http_args)
            started = time.monotonic()
            self.size_and_read(replica)
            return time.monotonic() - started

    def test_default_http_options_fail_over_in_under_3_s(self):
        """Regression (issue 9): one get_size took 16 s and get_size plus a read 33 s."""
        self.assertLess(self.measure(), 3.0)

    def test_one_attempt_per_copy_fails_over_in_under_3_s(self):
        """Regression (issue 9): the replica retried a timed-out copy read_attempts times."""
        self.assertLess(self.measure("retries=0"), 3.0)


class TestFirstLocationAnswers503(_BadFirstLocation):
    """Target: at most the HTTP location's own retries + 1 requests per operation (was 12)."""

    retries = 2

    def test_get_size_sends_at_most_retries_plus_one_requests(self):
        """Regression (issue 9): replica attempts x HTTP attempts requests per get_size."""
        with _Always503() as server:
            replica = self.reader(server.url, "retries=%d" % self.retries, "retry_backoff=0")
            self.assertEqual(replica.get_size(None, self.module_data), len(self.data))
            self.assertLessEqual(server.count(), self.retries + 1)

    def test_opening_and_reading_sends_at_most_retries_plus_one_requests(self):
        """Regression (issue 9): replica attempts x HTTP attempts requests per open."""
        with _Always503() as server:
            replica = self.reader(server.url, "retries=%d" % self.retries, "retry_backoff=0")
            with replica.get_read_stream(None, self.module_data) as stream:
                self.assertEqual(stream.read(), self.data)
            self.assertLessEqual(server.count(), self.retries + 1)


if __name__ == "__main__":
    unittest.main()
