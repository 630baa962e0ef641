"""16 clients at once against one host: every byte intact, nothing left behind."""
import concurrent.futures
import hashlib
import os
import random
import threading
import time
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
        # Data retired while a read still used it is destroyed shortly after that read ends
        # (issue 11 item 1): wait for it, boundedly.
        deadline = time.monotonic() + 15
        for name in ("loc-a", "loc-b", "loc-c"):
            directory = os.path.join(self.host.data_dir, "locations", name)
            while len(stored_files(directory)) != CLIENTS * 2 + 1 and \
                    time.monotonic() < deadline:
                time.sleep(0.1)
            files = stored_files(directory)
            self.assertEqual(len(files), CLIENTS * 2 + 1,
                             "%s must hold exactly the live objects (no leftovers)" % name)
        self.assertEqual(self.host.app.store.count_garbage("mirror"), 0)
        self.assertEqual(self.host.app.registry._active, {}, "every lease is released")

    def test_location_lost_and_restored_under_load(self):
        """Eight clients keep writing and reading while loc-c disappears; nothing is lost,
        and after the directory is back, repair restores all three copies."""
        location = os.path.join(self.host.data_dir, "locations", "loc-c")
        done_before_break = threading.Semaphore(0)
        broken = threading.Event()
        stored = {}
        lock = threading.Lock()

        def client(number: int):
            rng = random.Random(100 + number)
            session = requests.Session()
            session.auth = AUTH
            try:
                for index in range(8):
                    if index == 2:
                        done_before_break.release()
                        assert broken.wait(timeout=60), "the location was never broken"
                    key = "load-%02d-%d" % (number, index)
                    data = rng.randbytes(rng.randrange(1, 400_000))
                    response = session.put(self.host.url + "/objects/mirror/" + key, data=data,
                                           timeout=TIMEOUT)
                    assert response.status_code == 201, response.text
                    with lock:
                        stored[key] = data
                    with lock:
                        key, data = rng.choice(sorted(stored.items()))
                    got = session.get(self.host.url + "/objects/mirror/" + key, timeout=TIMEOUT)
                    assert got.status_code == 200 and got.content == data, key
            finally:
                session.close()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(client, number) for number in range(8)]
            for _ in range(8):
                self.assertTrue(done_before_break.acquire(timeout=60))
            os.rename(location, location + ".lost")
            broken.set()
            for future in futures:
                future.result()

        stats = self.host.request("GET", "/cdmi/system_configuration/vendor_modules/mirror") \
            .json()["statistics"]
        self.assertTrue(stats["degraded"])
        os.rename(location + ".lost", location)
        self.assertEqual(self.host.request(
            "POST", "/cdmi/system_configuration/vendor_modules/mirror/repair", json={})
            .status_code, 200)
        step = self.host.request("POST", "/cdmi/system_configuration/vendor_modules/mirror/repair",
                                 json={"after": "", "limit": 1000}).json()
        self.assertEqual(step["failed"], [])
        for name in ("loc-a", "loc-b", "loc-c"):
            files = stored_files(os.path.join(self.host.data_dir, "locations", name))
            self.assertEqual(len(files), len(stored), name)
        for key, data in stored.items():
            self.assertEqual(self.host.request("GET", "/objects/mirror/" + key).content, data)
