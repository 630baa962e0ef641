"""16 clients at once against one host: every byte intact, nothing left behind."""
import concurrent.futures
import hashlib
import os
import random
import threading
import unittest

import requests

from tests.host.support import AUTH, TIMEOUT, HostTestCase, replica_available, stored_files

CLIENTS = 16


@unittest.skipUnless(replica_available(), "the replica module is not importable")
class TestSixteenClients(HostTestCase):

    create_defaults = True

    def test_sixteen_clients_write_read_overwrite_and_delete(self):
        barrier = threading.Barrier(CLIENTS)
        shared_versions = {}

        def client(number: int):
            rng = random.Random(number)
            session = requests.Session()
            session.auth = AUTH
            base = self.host.url + "/objects/mirror/"
            mine = {}
            try:
                barrier.wait(timeout=30)
                for index in range(3):
                    data = rng.randbytes(rng.randrange(1, 1_500_000))
                    key = "client-%02d/object-%d" % (number, index)
                    response = session.put(base + key, data=data, timeout=TIMEOUT)
                    assert response.status_code == 201, response.text
                    mine[key] = data
                version = rng.randbytes(200_000 + number)
                shared_versions[hashlib.sha256(version).hexdigest()] = version
                response = session.put(base + "shared", data=version, timeout=TIMEOUT)
                assert response.status_code in (200, 201), response.text
                for key, data in mine.items():
                    got = session.get(base + key, timeout=TIMEOUT)
                    assert got.content == data, "%s came back different" % key
                    first = rng.randrange(len(data))
                    part = session.get(base + key, headers={"Range": "bytes=%d-" % first},
                                       timeout=TIMEOUT)
                    assert part.content == data[first:], "range of %s differs" % key
                doomed = "client-%02d/object-0" % number
                assert session.delete(base + doomed, timeout=TIMEOUT).status_code == 204
                del mine[doomed]
                return mine
            finally:
                session.close()

        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(client, range(CLIENTS)))

        expected = {key: data for result in results for key, data in result.items()}
        self.assertEqual(len(expected), CLIENTS * 2)
        for key, data in expected.items():
            self.assertEqual(self.host.request("GET", "/objects/mirror/" + key).content, data, key)
        shared = self.host.request("GET", "/objects/mirror/shared")
        self.assertIn(hashlib.sha256(shared.content).hexdigest(), shared_versions,
                      "the shared key holds one client's complete version")
        for name in ("loc-a", "loc-b", "loc-c"):
            files = stored_files(os.path.join(self.host.data_dir, "locations", name))
            self.assertEqual(len(files), CLIENTS * 2 + 1,
                             "%s must hold exactly the live objects (no leftovers)" % name)
        self.assertEqual(self.host.app.registry._active, {}, "every lease is released")
