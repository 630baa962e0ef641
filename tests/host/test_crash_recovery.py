"""Crash recovery converges (issue 11 item 3): a real ``kill -9`` of ``vsm serve`` during PUTs."""
import contextlib
import hashlib
import io
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import unittest
from unittest import mock

import requests

from modules.cli import main
from simple.simple import _TEMP_PREFIX
from tests.host.support import AUTH, CONFIG, PASSWORD, HostProcess, replica_available, \
    stored_files

WRITERS = 6
SIZE = 64 * 1024
RUN_SECONDS = 1.5


@unittest.skipUnless(replica_available(), "the replica module is not installed")
class TestKillDuringPuts(unittest.TestCase):
    """After kill -9 and a restart: acknowledged objects read back; everything can be removed."""

    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="vsm-crash-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)

    def start(self) -> HostProcess:
        host = HostProcess(self.data_dir)
        self.addCleanup(host.stop)
        return host

    def write_until_killed(self, host: HostProcess):
        """PUT distinct keys from several threads; kill -9 the server meanwhile."""
        acknowledged = {}
        lock = threading.Lock()
        stop = threading.Event()

        def writer(number: int):
            session = requests.Session()
            session.auth = AUTH
            for sequence in range(10000):
                if stop.is_set():
                    return
                key = "w%d/%05d" % (number, sequence)
                body = os.urandom(SIZE)
                try:
                    answer = session.put("%s/objects/mirror/%s" % (host.url, key), data=body,
                                         timeout=(2, 10))
                except requests.RequestException:
                    return  # the server died under this request: not acknowledged
                if answer.status_code == 201:
                    with lock:
                        acknowledged[key] = hashlib.sha256(body).hexdigest()
                # Overwrite some keys to leave retired data behind as well.
                if sequence % 3 == 0:
                    try:
                        answer = session.put("%s/objects/mirror/%s" % (host.url, key),
                                             data=body, timeout=(2, 10))
                    except requests.RequestException:
                        return

        threads = [threading.Thread(target=writer, args=(number,)) for number in range(WRITERS)]
        for thread in threads:
            thread.start()
        time.sleep(RUN_SECONDS)
        host.process.kill()  # SIGKILL: no cleanup of any kind
        host.process.wait(10)
        stop.set()
        for thread in threads:
            thread.join(30)
        return acknowledged

    def intents(self):
        with contextlib.closing(sqlite3.connect(os.path.join(self.data_dir,
                                                             "host.sqlite3"))) as db:
            return db.execute("SELECT COUNT(*) FROM garbage WHERE kind='intent'").fetchone()[0]

    def test_restart_reads_back_and_everything_can_be_removed(self):
        first = self.start()
        acknowledged = self.write_until_killed(first)
        self.assertGreater(len(acknowledged), 5, "the writers got too little done")
        # Six writers were busy: some PUTs were cut off between their intent and their commit.
        self.assertGreater(self.intents(), 0, "the kill found no write in progress")

        host = self.start()
        session = requests.Session()
        session.auth = AUTH
        for key, digest in sorted(acknowledged.items()):
            answer = session.get("%s/objects/mirror/%s" % (host.url, key), timeout=10)
            self.assertEqual(answer.status_code, 200, key)
            self.assertEqual(hashlib.sha256(answer.content).hexdigest(), digest, key)

        # The intents of the killed process are collected at start, without waiting a day.
        deadline = time.monotonic() + 15
        while self.intents() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.intents(), 0, "intents of the killed process were not collected")

        after = ""
        for _ in range(1000):  # pages of 1000 keys: far more than the writers can store
            page = session.get("%s/objects/mirror/" % host.url, params={"after": after},
                               timeout=10).json()
            for item in page["objects"]:
                answer = session.delete("%s/objects/mirror/%s" % (host.url, item["key"]),
                                        timeout=10)
                self.assertEqual(answer.status_code, 204)
            if not page["next"]:
                break
            after = page["next"]

        out, err = io.StringIO(), io.StringIO()
        with mock.patch.dict(os.environ, {"VSM_ADMIN_PASSWORD": PASSWORD, "VSM_URL": host.url}), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["repair", "--no-progress"])
        self.assertEqual(code, 0, out.getvalue() + err.getvalue())
        self.assertIn("mirror: deletions:", out.getvalue())

        details = session.get(host.url + CONFIG + "mirror", timeout=10).json()
        self.assertEqual(details["pending_deletions"], 0, details.get("pending_by_kind"))
        answer = session.delete(host.url + CONFIG + "mirror", timeout=10)
        self.assertEqual(answer.status_code, 204, answer.text)

        # No data (nor manifest) file is left in any location. Stale temporaries of the
        # killed writes are the module's own repair to sweep (simple's repair is being
        # added separately): only data files are checked here.
        for name in ("loc-a", "loc-b", "loc-c"):
            directory = os.path.join(self.data_dir, "locations", name)
            leftovers = [path for path in stored_files(directory, manifests=True)
                         if not os.path.basename(path).startswith(_TEMP_PREFIX)]
            self.assertEqual(leftovers, [], name)
