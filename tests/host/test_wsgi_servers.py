"""The application is plain WSGI: it runs under other servers, streaming request bodies."""
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import requests

from modules.host import make_app
from tests.host.support import AUTH, PASSWORD, ROOT, stored_files

try:
    from cheroot import wsgi as cheroot_wsgi
except ImportError:  # pragma: no cover - cheroot is in the test environment
    cheroot_wsgi = None


@unittest.skipIf(cheroot_wsgi is None, "cheroot is not installed")
class TestUnderCheroot(unittest.TestCase):
    """cheroot hands the application the socket's body as it arrives (no spooling)."""

    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="vsm-cheroot-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)
        self.app = make_app(self.data_dir, admin_password=PASSWORD, create_defaults=False)
        self.store_dir = os.path.join(self.data_dir, "store")
        os.mkdir(self.store_dir)
        self.server = cheroot_wsgi.Server(("127.0.0.1", 0), self.app, numthreads=4)
        self.server.prepare()
        thread = threading.Thread(target=self.server.serve, daemon=True)
        thread.start()
        self.addCleanup(self.app.close)
        self.addCleanup(thread.join, 10)
        self.addCleanup(self.server.stop)
        self.url = "http://127.0.0.1:%d" % self.server.bind_addr[1]
        self.session = requests.Session()
        self.session.auth = AUTH
        self.addCleanup(self.session.close)
        response = self.session.put(self.url + "/cdmi/system_configuration/vendor_modules/store",
                                    json={"module": "simple.simple.SimpleStorage",
                                          "args": [self.store_dir]}, timeout=10)
        self.assertEqual(response.status_code, 204, response.text)

    def test_sized_and_chunked_uploads(self):
        data = os.urandom(3 * 1024 * 1024 + 1)
        self.assertEqual(self.session.put(self.url + "/objects/store/a", data=data, timeout=30)
                         .status_code, 201)
        self.assertEqual(self.session.get(self.url + "/objects/store/a", timeout=30).content, data)
        pieces = [os.urandom(70000) for _ in range(5)]
        response = self.session.put(self.url + "/objects/store/b", data=iter(pieces), timeout=30)
        self.assertEqual(response.status_code, 201, response.text)
        self.assertEqual(response.json()["size"], 350000)
        ranged = self.session.get(self.url + "/objects/store/b", headers={"Range": "bytes=-7"},
                                  timeout=30)
        self.assertEqual(ranged.content, b"".join(pieces)[-7:])

    def test_client_vanishing_mid_upload_stores_nothing(self):
        self.session.put(self.url + "/objects/store/keep", data=b"old", timeout=10)
        header = ("PUT /objects/store/keep HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n"
                  "Content-Length: 5000000\r\n\r\n"
                  % base64.b64encode(("%s:%s" % AUTH).encode()).decode()).encode()
        with socket.create_connection(("127.0.0.1", self.server.bind_addr[1]), timeout=10) as raw:
            raw.sendall(header + os.urandom(1500000))
            time.sleep(0.2)  # let the server start storing before the client vanishes
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not self.app.store._query("SELECT 1 FROM garbage") and \
                    len(stored_files(self.store_dir)) == 1:
                break
            time.sleep(0.05)
        self.assertEqual(len(stored_files(self.store_dir)), 1, "no partial object or temp file")
        self.assertEqual(self.app.store._query("SELECT kind FROM garbage"), [])
        self.assertEqual(self.session.get(self.url + "/objects/store/keep", timeout=10).content,
                         b"old")


class TestWsgiEntryPoint(unittest.TestCase):

    def test_module_level_application_reads_the_data_dir_from_the_environment(self):
        data_dir = tempfile.mkdtemp(prefix="vsm-wsgi-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        env = dict(os.environ, VSM_DATA_DIR=data_dir, PYTHONPATH=ROOT)
        env.pop("VSM_ADMIN_PASSWORD", None)
        script = ("from modules.host.wsgi import application\n"
                  "print(application.data_dir)\n"
                  "print(callable(application))\n"
                  "application.close()\n")
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                                text=True, timeout=60, cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.split(), [data_dir, "True"])
        self.assertTrue(os.path.exists(os.path.join(data_dir, "admin-password")))
        self.assertTrue(os.path.exists(os.path.join(data_dir, "host.sqlite3")))
