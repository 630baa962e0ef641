"""Reads pin what they read (issue 11 item 1, case 04-get-during-overwrite).

While clients overwrite a key that always exists, every read gets the
complete old or the complete new bytes; the retired data is destroyed once
the reads are over, and nothing is left behind.
"""
import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from base64 import b64encode
from collections import Counter

from modules.host.pins import ReadPins
from modules.host.processes import current_process, identity_of
from modules.host.store import ObjectRecord, Store
from tests.host.support import AUTH, HostProcess, HostTestCase, replica_available, stored_files

_AUTHORIZATION = "Basic " + b64encode(("%s:%s" % AUTH).encode()).decode()

READS = 5000  # per policy: 10,000 reads in all
SIZE = 2048
TIME_CAP = 60.0  # seconds per policy; the loop ends at READS long before on an idle machine


class _Connection:
    """One keep-alive HTTP/1.1 connection to the test host (http.client: no session overhead)."""

    def __init__(self, url: str):
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        self._connection = http.client.HTTPConnection(host, int(port), timeout=30)

    def request(self, method: str, path: str, body: bytes = None):
        headers = {"Authorization": _AUTHORIZATION}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        self._connection.request(method, path, body=body, headers=headers)
        response = self._connection.getresponse()
        return response.status, response.read()

    def close(self):
        self._connection.close()


class TestReadsDuringOverwrites(HostTestCase):
    """Issue 11 item 1: GETs racing overwrites of the same key got 404/500."""

    create_defaults = True

    def hammer(self, policy: str) -> Counter:
        path = "/objects/%s/hot" % policy
        versions = [bytes([value]) * SIZE for value in range(256)]
        known = {hashlib.sha256(version).hexdigest() for version in versions}
        self.assertEqual(self.host.request("PUT", path, data=versions[0]).status_code, 201)
        outcomes: Counter = Counter()
        lock = threading.Lock()
        stop = threading.Event()
        deadline = time.monotonic() + TIME_CAP
        reads = [0]

        def writer(offset: int):
            connection = _Connection(self.host.url)
            try:
                for number in range(100000):
                    if stop.is_set() or time.monotonic() > deadline:
                        return
                    status, _ = connection.request("PUT", path,
                                                   versions[(number * 2 + offset) % 256])
                    if status not in (200, 201):
                        with lock:
                            outcomes["PUT %d" % status] += 1
            finally:
                connection.close()

        def reader():
            connection = _Connection(self.host.url)
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    status, body = connection.request("GET", path)
                    if status != 200:
                        outcome = status
                    elif hashlib.sha256(body).hexdigest() not in known:
                        outcome = "200 with %d unknown bytes" % len(body)
                    else:
                        outcome = 200
                    with lock:
                        outcomes[outcome] += 1
                        reads[0] += 1
                        if reads[0] >= READS:
                            stop.set()
            finally:
                connection.close()

        threads = [threading.Thread(target=writer, args=(offset,)) for offset in (0, 1)]
        threads += [threading.Thread(target=reader) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIME_CAP + 30)
        stop.set()
        return outcomes

    def assert_every_read_succeeded(self, policy: str, directories):
        outcomes = self.hammer(policy)
        self.assertEqual(set(outcomes), {200}, outcomes)
        self.assertGreaterEqual(outcomes[200], READS, "the time cap ended the run early")
        # Retired data is destroyed once the reads are over: one object, one file per location.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if all(len(stored_files(directory)) == 1 for directory in directories):
                break
            time.sleep(0.2)
        for directory in directories:
            self.assertEqual(len(stored_files(directory)), 1, directory)
        self.assertEqual(self.host.app.store.count_garbage(policy), 0)

    def location(self, name: str) -> str:
        return os.path.join(self.host.data_dir, "locations", name)

    def test_loc_a(self):
        self.assert_every_read_succeeded("loc-a", [self.location("loc-a")])

    @unittest.skipUnless(replica_available(), "the replica module is not installed")
    def test_mirror(self):
        self.assert_every_read_succeeded("mirror", [self.location(name) for name in
                                                    ("loc-a", "loc-b", "loc-c")])


class TestReadPinsAcrossProcesses(unittest.TestCase):
    """The rule on its own: two ReadPins over one database stand for two serving processes."""

    def setUp(self):
        directory = tempfile.mkdtemp(prefix="vsm-pins-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.store = Store(os.path.join(directory, "host.sqlite3"))
        self.addCleanup(self.store.close)

    def pins(self, identify=current_process) -> ReadPins:
        pins = ReadPins(self.store, interval=3600, identify=identify)  # publish when told to
        self.addCleanup(pins.close)
        pins.start()
        return pins

    def retire(self, key: str, module_data: str):
        self.store.put_object(ObjectRecord("p", key, module_data, 1, time.time()))
        return self.store.delete_object("p", key)[1]

    def test_a_read_in_this_process_holds_what_it_looked_up(self):
        pins = self.pins()
        self.store.put_object(ObjectRecord("p", "k", "old", 1, time.time()))
        pin = pins.begin()
        item = self.store.put_object(ObjectRecord("p", "k", "new", 1, time.time()))[1]
        self.assertFalse(pins.may_destroy(item), "the read may be streaming 'old'")
        later = pins.begin()
        self.assertFalse(pins.may_destroy(item))
        pin.release()
        self.assertTrue(pins.may_destroy(item), "a read that started after it cannot see it")
        later.release()

    def test_a_read_in_another_process_holds_until_it_publishes(self):
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        self.addCleanup(other.wait, 10)
        self.addCleanup(other.kill)
        ours, theirs = self.pins(), self.pins(lambda: identity_of(other.pid))
        self.store.put_object(ObjectRecord("p", "k", "old", 1, time.time()))
        pin = theirs.begin()
        theirs.publish()
        item = self.store.put_object(ObjectRecord("p", "k", "new", 1, time.time()))[1]
        self.assertFalse(ours.may_destroy(item))
        pin.release()
        self.assertFalse(ours.may_destroy(item), "not published yet: still protected")
        theirs.publish()
        self.assertTrue(ours.may_destroy(item))

    def test_a_process_that_is_gone_protects_nothing(self):
        ours = self.pins()
        self.store.publish_reader("%s:999999999:x" % ours.identity().host, 0, 0)
        item = self.retire("k", "data")
        self.assertTrue(ours.may_destroy(item))
        self.assertEqual([row.process for row in self.store.list_readers()],
                         [str(ours.identity())], "the dead process's row was removed")

    @unittest.skipUnless(hasattr(os, "fork"), "needs fork()")
    def test_a_forked_worker_registers_itself_and_is_forgotten_when_gone(self):
        """Pre-forked workers (vsm serve --workers) each publish under their own identity."""
        parent = self.pins()
        self.store.put_object(ObjectRecord("p", "k", "old", 1, time.time()))
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: start a read and die holding it
            try:
                parent.begin()
                parent.publish()
                os.write(write_end, str(parent.identity()).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        child_identity = os.read(read_end, 1000).decode()
        os.close(read_end)
        os.waitpid(pid, 0)
        self.assertEqual(child_identity.split(":")[1], str(pid))
        self.assertIn(child_identity, [row.process for row in self.store.list_readers()])
        item = self.store.put_object(ObjectRecord("p", "k", "new", 1, time.time()))[1]
        self.assertTrue(parent.may_destroy(item), "the worker that held a read is gone")
        self.assertNotIn(child_identity, [row.process for row in self.store.list_readers()])

    def test_rows_of_processes_that_are_gone_are_pruned(self):
        ours = self.pins()
        self.store.publish_reader("%s:999999999:x" % ours.identity().host, 10 ** 9, None)
        self.assertEqual(ours.prune(), 1)
        self.assertEqual([row.process for row in self.store.list_readers()],
                         [str(ours.identity())])

    def test_failed_writes_need_no_pin(self):
        ours = self.pins()
        pin = ours.begin()
        intent = self.store.add_intent("p", "aborted")
        item = self.store.drop_intent(intent, garbage=True)
        self.assertTrue(ours.may_destroy(item))
        pin.release()


@unittest.skipUnless(replica_available(), "the replica module is not installed")
class TestReadsAcrossProcesses(unittest.TestCase):
    """Issue 11 item 1 across processes: reads served by one ``vsm serve`` while another one,
    on the same data directory, overwrites the key."""

    def test_reads_in_one_process_survive_overwrites_in_another(self):
        data_dir = tempfile.mkdtemp(prefix="vsm-two-hosts-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        reading = HostProcess(data_dir)
        self.addCleanup(reading.stop)
        writing = HostProcess(data_dir)
        self.addCleanup(writing.stop)
        path = "/objects/loc-a/shared"
        size = 256 * 1024  # big enough that a read spans many socket writes
        versions = [bytes([value]) * size for value in range(16)]
        writer_connection = _Connection(writing.url)
        self.addCleanup(writer_connection.close)
        self.assertEqual(writer_connection.request("PUT", path, versions[0])[0], 201)
        outcomes: Counter = Counter()
        stop = threading.Event()
        deadline = time.monotonic() + 30

        def writer():
            connection = _Connection(writing.url)
            try:
                for number in range(100000):
                    if stop.is_set() or time.monotonic() > deadline:
                        return
                    connection.request("PUT", path, versions[number % 16])
            finally:
                connection.close()

        def reader():
            connection = _Connection(reading.url)
            try:
                for _ in range(300):
                    if time.monotonic() > deadline:
                        return
                    status, body = connection.request("GET", path)
                    outcomes[status if status != 200 or body in versions
                             else "200 with other bytes"] += 1
            finally:
                connection.close()

        writers = [threading.Thread(target=writer) for _ in range(2)]
        readers = [threading.Thread(target=reader) for _ in range(3)]
        for thread in writers + readers:
            thread.start()
        for thread in readers:
            thread.join(60)
        stop.set()
        for thread in writers:
            thread.join(60)
        self.assertEqual(set(outcomes), {200}, outcomes)
        self.assertGreaterEqual(outcomes[200], 900)
        directory = os.path.join(data_dir, "locations", "loc-a")
        deadline = time.monotonic() + 15
        while len(stored_files(directory)) != 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(len(stored_files(directory)), 1, "retired data was not destroyed")
