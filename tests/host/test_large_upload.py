"""A 200 MiB object through ``vsm serve`` (a separate process) with bounded server memory."""
import hashlib
import os
import random
import shutil
import tempfile
import unittest

import requests

from tests.host.support import AUTH, HostProcess, replica_available

MIB = 1024 * 1024
SIZE = 200 * MIB
#: Growth of the server's peak RSS allowed while it moves the object (well below its size).
MAX_GROWTH = 64 * MIB


def generated(size: int, seed: int, digest):
    """Yield ``size`` pseudo-random bytes in 1 MiB pieces, hashing them into ``digest``."""
    rng = random.Random(seed)
    piece = rng.randbytes(MIB)
    sent = 0
    while sent < size:
        chunk = piece[:min(MIB, size - sent)]
        chunk = bytes([sent // MIB % 256]) + chunk[1:]  # every MiB different
        digest.update(chunk)
        sent += len(chunk)
        yield chunk


class SizedBody:
    """A file-like body with a length, so requests sends Content-Length (not chunked)."""

    def __init__(self, size: int, seed: int):
        self.len = size
        self.digest = hashlib.sha256()
        self._chunks = generated(size, seed, self.digest)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while len(self._buffer) < max(size, 1):
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size is None or size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


@unittest.skipUnless(replica_available(), "the replica module is not importable")
@unittest.skipUnless(os.path.exists("/proc/self/status"), "peak RSS is read from /proc (Linux)")
class TestLargeUpload(unittest.TestCase):

    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="vsm-large-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)
        spool = os.path.join(self.data_dir, "spool")
        os.mkdir(spool)
        self.server = HostProcess(os.path.join(self.data_dir, "data"), args=["--spool-dir", spool])
        self.addCleanup(self.server.stop)
        self.session = requests.Session()
        self.session.auth = AUTH
        self.addCleanup(self.session.close)

    def test_200_mib_round_trip_with_bounded_server_memory(self):
        url = self.server.url + "/objects/mirror/big.bin"
        warm = self.session.put(self.server.url + "/objects/mirror/warm", data=os.urandom(MIB),
                                timeout=(5, 120))
        self.assertEqual(warm.status_code, 201, warm.text)
        self.assertEqual(len(self.session.get(self.server.url + "/objects/mirror/warm",
                                              timeout=(5, 120)).content), MIB)
        baseline = self.server.peak_rss()

        body = SizedBody(SIZE, seed=7)
        response = self.session.put(url, data=body, timeout=(5, 300))
        self.assertEqual(response.status_code, 201, response.text)
        self.assertEqual(response.json()["size"], SIZE)
        self.assertEqual(response.json()["sha256"], body.digest.hexdigest())
        after_upload = self.server.peak_rss()

        digest = hashlib.sha256()
        received = 0
        with self.session.get(url, stream=True, timeout=(5, 300)) as download:
            self.assertEqual(download.status_code, 200)
            for chunk in download.iter_content(MIB):
                digest.update(chunk)
                received += len(chunk)
        self.assertEqual(received, SIZE)
        self.assertEqual(digest.hexdigest(), body.digest.hexdigest())
        after_download = self.server.peak_rss()

        chunked_digest = hashlib.sha256()
        chunked = self.session.put(url, data=generated(SIZE // 2, 8, chunked_digest),
                                   timeout=(5, 300))
        self.assertEqual(chunked.status_code, 200, chunked.text)
        self.assertEqual(chunked.json()["sha256"], chunked_digest.hexdigest())
        after_chunked = self.server.peak_rss()

        for label, peak in (("upload", after_upload), ("download", after_download),
                            ("chunked upload", after_chunked)):
            self.assertLess(peak - baseline, MAX_GROWTH,
                            "server peak RSS grew by %.0f MiB during the %s of a %d MiB object"
                            % ((peak - baseline) / MIB, label, SIZE // MIB))
        self.assertEqual(os.listdir(os.path.join(self.data_dir, "spool")), [],
                         "the server's spooled request bodies are removed")
