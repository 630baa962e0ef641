"""HTTPStorage over https: verification on by default, a private CA bundle, the opt-out."""
import io
import os
import shutil
import subprocess
import tempfile
import unittest

from modules.errors import LocationUnavailable
from replica.http import HTTPStorage
from tests.http.quirky_server import QuirkyDAVServer

OPENSSL = shutil.which("openssl")


@unittest.skipUnless(OPENSSL, "needs the openssl command to make a test certificate")
class TestTLS(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="http-storage-tls-")
        cls.cert = os.path.join(cls.work, "cert.pem")
        key = os.path.join(cls.work, "key.pem")
        subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", key, "-out", cls.cert, "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        root = os.path.join(cls.work, "root")
        os.makedirs(os.path.join(root, "store"))
        cls.server = QuirkyDAVServer(root, tls=(cls.cert, key)).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.work, ignore_errors=True)
        super().tearDownClass()

    def storage(self, *options):
        storage = HTTPStorage(self.server.url + "store/", "retries=0", *options)
        self.addCleanup(storage.close)
        return storage

    def roundtrip(self, storage):
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(b"over tls"))
        with storage.get_read_stream(None, module_data) as stream:
            self.assertEqual(stream.read(), b"over tls")

    def test_unknown_certificate_is_refused_by_default(self):
        storage = self.storage()
        with self.assertRaises(LocationUnavailable) as caught:
            storage.available(None, storage.new_data(None))
        self.assertIn("TLS", str(caught.exception))
        self.assertIn("ca_bundle", str(caught.exception))
        self.assertFalse(caught.exception.retryable, "a bad certificate does not heal by itself")

    def test_private_ca_bundle(self):
        self.roundtrip(self.storage("ca_bundle=" + self.cert))

    def test_explicit_opt_out(self):
        self.roundtrip(self.storage("verify_tls=false"))


if __name__ == "__main__":
    unittest.main()
