"""GETs of objects stored in real files go out through ``wsgi.file_wrapper`` (PEP 3333).

A server that sends files itself (``vsm serve``: ``sendfile(2)``) gets the
descriptor and the absolute offset and sends ``Content-Length`` bytes; the
test plays that server with ``os.pread``, which, like ``sendfile``, takes the
offset explicitly. Other servers (waitress, in the rest of the suite) read
the same body.
"""
import os
import shutil
import tempfile
import unittest
from base64 import b64encode

from werkzeug.test import EnvironBuilder

from modules.host import make_app
from tests.host.support import AUTH

_HEADERS = {"Authorization": "Basic " + b64encode(("%s:%s" % AUTH).encode()).decode()}


class _SendingWrapper:
    """A PEP 3333 file wrapper that a zero-copy server would hand to sendfile(2)."""

    def __init__(self, filelike, block_size):
        self.filelike = filelike
        self.block_size = block_size

    def send(self, count: int) -> bytes:
        """Return the ``count`` bytes sendfile(descriptor, offset=tell(), count) would send."""
        return os.pread(self.filelike.fileno(), count, self.filelike.tell())

    def close(self):
        self.filelike.close()


class TestFileWrapper(unittest.TestCase):

    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="vsm-wrapper-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)
        self.app = make_app(self.data_dir, admin_password=AUTH[1])
        self.addCleanup(self.app.close)
        self.data = os.urandom(300000)
        status, _, body = self.call("PUT", {}, self.data)
        body.close()
        self.assertEqual(status, 201)

    def call(self, method, headers, data=b"", path="/objects/loc-a/file"):
        environ = EnvironBuilder(path=path, method=method, data=data,
                                 headers=dict(_HEADERS, **headers)).get_environ()
        environ["wsgi.file_wrapper"] = _SendingWrapper
        started = {}

        def start_response(status, response_headers, exc_info=None):
            started.update(status=int(status.split()[0]), headers=dict(response_headers))

        body = self.app(environ, start_response)
        return started["status"], started["headers"], body

    def test_whole_object_and_ranges_are_sent_from_the_file(self):
        for headers, expected, status in (({}, self.data, 200),
                                          ({"Range": "bytes=1000-1999"}, self.data[1000:2000],
                                           206),
                                          ({"Range": "bytes=-10"}, self.data[-10:], 206)):
            with self.subTest(headers=headers):
                code, response_headers, body = self.call("GET", headers)
                self.assertEqual(code, status)
                self.assertIsInstance(body, _SendingWrapper)
                count = int(response_headers["Content-Length"])
                self.assertEqual(body.send(count), expected)
                body.close()
        self.assertEqual(self.app.registry._active, {}, "every lease was released")
        self.assertEqual(self.app.pins.in_flight(), 0, "every read pin was released")

    def test_a_server_that_reads_gets_only_the_window(self):
        code, response_headers, body = self.call("GET", {"Range": "bytes=5-9"})
        self.assertEqual(code, 206)
        chunks = []
        for _ in range(10):
            chunk = body.filelike.read(3)
            if not chunk:
                break
            chunks.append(chunk)
        body.close()
        self.assertEqual(b"".join(chunks), self.data[5:10])
        self.assertEqual(self.app.pins.in_flight(), 0)

    def test_a_stream_without_a_file_is_streamed(self):
        status, _, body = self.call("PUT", {}, b"abc", path="/objects/mirror/copies")
        body.close()
        self.assertEqual(status, 201)
        status, _, body = self.call("GET", {}, path="/objects/mirror/copies")
        self.assertEqual(status, 200)
        self.assertNotIsInstance(body, _SendingWrapper, "a replica's stream has no descriptor")
        self.assertEqual(b"".join(body), b"abc")
        body.close()
        self.assertEqual(self.app.pins.in_flight(), 0)
