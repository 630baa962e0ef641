"""MOVE's Destination behind a TLS-terminating proxy (case 06, issue 12).

A WebDAV server behind a proxy that terminates TLS sees plain http and
refuses an ``https://`` Destination (nginx 400, Apache and wsgidav 502), so
every upload failed at MOVE. HTTPStorage now falls back once to the
path-absolute form RFC 4918 section 10.3 allows, and keeps the form that
worked; when both are refused the error names the cause.

The proxy is emulated without nginx: the quirky wsgidav server serves https
but tells wsgidav the request came over http (``backend_scheme``), exactly
what the backend of a TLS-terminating proxy sees; wsgidav's own MOVE then
refuses the https:// Destination. A test with real nginx runs when nginx
(with its dav module) and openssl are installed, and skips otherwise.
"""
import io
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from modules.errors import LocationUnavailable
from replica.http import HTTPStorage
from tests.http.quirky_server import QuirkyDAVServer
from tests.http.support import QuirkyServerCase

OPENSSL = shutil.which("openssl")
NGINX = shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx")


def make_certificate(directory: str):
    """Write a self-signed certificate for 127.0.0.1; return (certificate, key) paths."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return cert, key


@unittest.skipUnless(OPENSSL, "needs the openssl command to make a test certificate")
class TestBehindTLSProxy(unittest.TestCase):
    """https to the client, http to wsgidav: the situation of case 06."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="http-storage-proxy-")
        cls.cert, key = make_certificate(cls.work)
        cls.root = os.path.join(cls.work, "root")
        os.makedirs(cls.root)
        cls.server = QuirkyDAVServer(cls.root, tls=(cls.cert, key)).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.work, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        self.server.reset()
        self.server.backend_scheme = "http"
        self.store = "s-%d-%s" % (os.getpid(), self.id().rsplit(".", 1)[1][:40])
        os.mkdir(os.path.join(self.root, self.store))

    def storage(self, *options):
        storage = HTTPStorage(self.server.url + self.store + "/", "ca_bundle=" + self.cert,
                              *options, sleep=lambda seconds: None)
        self.addCleanup(storage.close)
        return storage

    def test_uploads_work_and_the_accepted_form_is_kept(self):
        """Case 06: every write failed at MOVE behind a TLS-terminating proxy."""
        storage = self.storage("retries=0")
        first, second = storage.new_data(None), storage.new_data(None)
        storage.assign(None, first, io.BytesIO(b"first"))
        storage.assign(None, second, io.BytesIO(b"second"))
        moves = self.server.recorded("MOVE")
        self.assertTrue(moves[0]["destination"].startswith("https://"))
        self.assertEqual(moves[1]["destination"], "/%s/%s" % (self.store, first))
        self.assertEqual(moves[2]["destination"], "/%s/%s" % (self.store, second),
                         "the path-absolute form is used at once once known")
        self.assertEqual(len(moves), 3)
        with storage.get_read_stream(None, first) as stream:
            self.assertEqual(stream.read(), b"first")
        self.assertEqual(storage.get_size(None, second), 6)
        self.assertEqual(storage.statistics(None)["destination"], "path")

    def test_server_refusing_both_forms_gets_an_error_naming_the_cause(self):
        """Apache behind a TLS proxy refuses https:// (502) and a path (400): say why."""
        self.server.refuse_path_destination = True
        storage = self.storage("retries=0")
        module_data = storage.new_data(None)
        with self.assertRaises(LocationUnavailable) as caught:
            storage.assign(None, module_data, io.BytesIO(b"x"))
        message = str(caught.exception)
        self.assertIn("Destination", message)
        self.assertIn("TLS", message)
        self.assertIn("proxy", message)
        self.assertNotIn("write access", message)
        self.assertEqual(caught.exception.status, 502)
        self.assertFalse(storage.available(None, module_data))
        shard = os.path.join(self.root, self.store, *module_data.split("/")[:2])
        self.assertEqual(os.listdir(shard), [], "the temporary was not deleted")
        self.assertEqual(storage.statistics(None)["destination"], "unknown")

    def test_forced_absolute_form_is_not_changed(self):
        storage = self.storage("retries=0", "destination=absolute")
        with self.assertRaises(LocationUnavailable) as caught:
            storage.assign(None, storage.new_data(None), io.BytesIO(b"x"))
        self.assertEqual(len(self.server.recorded("MOVE")), 1)
        self.assertIn("destination=auto", str(caught.exception))
        self.assertEqual(caught.exception.status, 502)


class TestDestinationForms(QuirkyServerCase):
    """Without a proxy: the absolute form is kept; a path form can be forced."""

    def test_apache_like_server_keeps_the_absolute_form(self):
        self.server.refuse_path_destination = True
        storage = self.make_storage()
        for _ in range(2):
            storage.assign(None, storage.new_data(None), io.BytesIO(b"abc"))
        moves = self.server.recorded("MOVE")
        self.assertEqual(len(moves), 2)
        self.assertTrue(all(m["destination"].startswith("http://") for m in moves))
        self.assertEqual(storage.statistics(None)["destination"], "absolute")

    def test_forced_path_form(self):
        storage = self.make_storage("destination=path")
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(b"abc"))
        (move,) = self.server.recorded("MOVE")
        self.assertEqual(move["destination"], "/%s/%s" % (self.store, module_data))
        self.assertEqual(storage.get_size(None, module_data), 3)

    def test_transient_502_on_the_first_move_then_path_refused_is_retried(self):
        """A passing 502 while the form is unknown, on a server that refuses paths: retried."""
        self.server.refuse_path_destination = True
        self.server.fail_next("MOVE", 502)
        storage = self.make_storage("retries=2")
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(b"abc"))
        destinations = [m["destination"][:1] for m in self.server.recorded("MOVE")]
        self.assertEqual(destinations, ["h", "/", "h"])
        self.assertEqual(storage.statistics(None)["destination"], "absolute")
        self.assertEqual(storage.get_size(None, module_data), 3)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _nginx_has_dav() -> bool:
    if not NGINX:
        return False
    try:
        version = subprocess.run([NGINX, "-V"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return "http_dav_module" in version.stderr


@unittest.skipUnless(OPENSSL and _nginx_has_dav(),
                     "needs nginx with its dav module and openssl (.ci/run installs them)")
class TestRealNginxBehindTLSProxy(unittest.TestCase):
    """Case 06 with real nginx: a plain-http dav server behind an nginx TLS proxy."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="http-storage-nginx-")
        cls.cert, key = make_certificate(cls.work)
        cls.processes = []
        dav_port, tls_port = _free_port(), _free_port()
        root = os.path.join(cls.work, "dav-root")
        os.makedirs(os.path.join(root, "store"))
        cls.processes.append(cls.start_nginx("dav", """
  server {
    listen 127.0.0.1:%d;
    root %s;
    location /store/ {
      dav_methods PUT DELETE MKCOL MOVE COPY;
      dav_access user:rw;
      client_max_body_size 0;
    }
  }""" % (dav_port, root)))
        cls.processes.append(cls.start_nginx("proxy", """
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    client_max_body_size 0;
    location /store/ {
      proxy_pass http://127.0.0.1:%d;
      proxy_set_header Host $http_host;
    }
  }""" % (tls_port, cls.cert, key, dav_port)))
        if not (cls.wait_port(dav_port) and cls.wait_port(tls_port)):
            cls.tearDownClass()
            raise unittest.SkipTest("nginx did not start")
        cls.base_url = "https://127.0.0.1:%d/store/" % tls_port

    @classmethod
    def tearDownClass(cls):
        for process in reversed(cls.processes):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        cls.processes = []
        shutil.rmtree(cls.work, ignore_errors=True)
        super().tearDownClass()

    @classmethod
    def start_nginx(cls, name: str, server_block: str) -> subprocess.Popen:
        directory = os.path.join(cls.work, name)
        os.makedirs(directory)
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = os.path.join(directory, "nginx.conf")
        with open(conf, "w") as file:
            file.write("%sworker_processes 1;\ndaemon off;\npid %s/nginx.pid;\n"
                       "error_log %s/error.log;\nevents { worker_connections 64; }\n"
                       "http {\n  access_log off;\n  client_body_temp_path %s;\n"
                       "  proxy_temp_path %s;\n%s\n}\n"
                       % (user, directory, directory, directory, directory, server_block))
        return subprocess.Popen([NGINX, "-c", conf, "-e", os.path.join(directory, "error.log")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @staticmethod
    def wait_port(port: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def test_roundtrip_through_the_tls_proxy(self):
        """Case 06: nginx's dav module answered 400 to the https:// Destination."""
        storage = HTTPStorage(self.base_url, "ca_bundle=" + self.cert, "retries=0")
        self.addCleanup(storage.close)
        data = os.urandom(300000)
        for _ in range(2):
            module_data = storage.new_data(None)
            storage.assign(None, module_data, io.BytesIO(data))
            with storage.get_read_stream(None, module_data) as stream:
                self.assertEqual(stream.read(), data)
        stats = storage.statistics(None)
        self.assertEqual(stats["destination"], "path")
        self.assertEqual(stats["requests"]["by_method"]["MOVE"], 3,
                         "one refused absolute MOVE, then the path form only")


if __name__ == "__main__":
    unittest.main()
