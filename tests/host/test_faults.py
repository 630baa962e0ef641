"""Storage failing under a running host: statuses, JSON errors, nothing leaked."""
import base64
import logging
import os
import socket
import threading
import time

from tests.host.fixture_modules import CountedStreamsStorage
from tests.host.support import AUTH, CONFIG, HostTestCase, stored_files


class TestStorageFailures(HostTestCase):

    def setUp(self):
        super().setUp()
        self.directory = self.host.simple("store")

    def test_location_broken_while_serving_gives_503_then_recovers(self):
        self.host.request("PUT", "/objects/store/a", data=b"payload")
        os.rename(self.directory, self.directory + ".unmounted")
        for method, data in (("GET", None), ("PUT", b"new"), ("HEAD", None)):
            with self.subTest(method=method):
                response = self.host.request(method, "/objects/store/a", data=data)
                self.assertEqual(response.status_code, 503)
                self.assertEqual(response.headers["Retry-After"], "30")
                if method != "HEAD":
                    body = self.assertJsonError(response, 503, "does not exist")
                    self.assertEqual(body["error"], "LocationUnavailable")
        stats = self.host.request("GET", CONFIG + "store").json()["statistics"]
        self.assertEqual(stats["status"], "unavailable")
        os.rename(self.directory + ".unmounted", self.directory)
        self.assertEqual(self.host.request("GET", "/objects/store/a").content, b"payload")

    def test_unexpected_error_is_500_with_cause_logged(self):
        directory = os.path.join(self.host.data_dir, "buggy")
        os.mkdir(directory)
        self.host.configure("buggy", "tests.host.fixture_modules.BuggyStorage", [directory])
        self.host.request("PUT", "/objects/buggy/a", data=b"x")
        with self.assertLogs("modules.host", level=logging.ERROR) as logs:
            response = self.host.request("GET", "/objects/buggy/a")
        body = self.assertJsonError(response, 500, "reference")
        self.assertEqual(body["error"], "InternalError")
        self.assertNotIn("Traceback", response.text)
        logged = "\n".join(logs.output)
        self.assertIn("ZeroDivisionError", logged)
        self.assertIn("a bug in BuggyStorage.get_size", logged)

    def test_location_lost_mid_answer_is_one_log_line(self):
        """attack2 finding: a location failing after the answer started logged two
        tracebacks (the host's and cheroot's "socket.error"); it is one ERROR line naming
        the object, and the client gets a short body."""
        directory = os.path.join(self.host.data_dir, "breaks")
        os.mkdir(directory)
        self.host.configure("breaks", "tests.host.fixture_modules.BreaksMidReadStorage",
                            [directory])
        self.host.request("PUT", "/objects/breaks/a", data=b"x" * (4 << 20))
        with self.assertLogs("modules.host", level=logging.WARNING) as logs:
            with socket.create_connection(("127.0.0.1", self.host.server.port), timeout=10) as sock:
                sock.sendall(b"GET /objects/breaks/a HTTP/1.1\r\nHost: x\r\n"
                             b"Authorization: Basic %s\r\n\r\n"
                             % base64.b64encode(("%s:%s" % AUTH).encode()))
                received = b""
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        break
                    received += chunk
        self.assertTrue(received.startswith(b"HTTP/1.1 200 "), received[:100])
        self.assertLess(len(received.split(b"\r\n\r\n", 1)[1]), 4 << 20)
        self.assertEqual([record for record in logs.records if record.exc_info], [])
        self.assertEqual(len(logs.records), 1, logs.output)
        self.assertIn("breaks/a", logs.output[0])
        self.assertIn("went away mid-read", logs.output[0])

    def test_objects_deleted_during_a_repair_step_are_not_failures(self):
        """attack2 finding: ``vsm scrub`` and ``vsm repair`` on a live store reported objects
        overwritten or deleted during the step as missing or failed (scrub exited 1 with
        "missing: [every location]"): a step read data that was destroyed under it."""
        from tests.host.fixture_modules import GatedRepairStorage
        GatedRepairStorage.entered.clear()
        GatedRepairStorage.release.clear()
        del GatedRepairStorage.outcomes[:]
        self.addCleanup(GatedRepairStorage.release.set)
        directory = os.path.join(self.host.data_dir, "gated")
        os.mkdir(directory)
        self.host.configure("gated", "tests.host.fixture_modules.GatedRepairStorage",
                            [directory])
        for key in ("deleted", "kept"):
            self.host.request("PUT", "/objects/gated/" + key, data=b"payload")
        answers = []
        stepper = threading.Thread(target=lambda: answers.append(self.host.request(
            "POST", CONFIG + "gated/repair", json={"after": "", "limit": 10})))
        stepper.start()
        self.assertTrue(GatedRepairStorage.entered.wait(10))
        self.assertEqual(self.host.request("DELETE", "/objects/gated/deleted").status_code, 204)
        GatedRepairStorage.release.set()
        stepper.join(20)
        step = answers[0].json()
        self.assertEqual((step["done"], step["failed"], step["damaged"]), (2, [], []), step)
        self.assertEqual(GatedRepairStorage.outcomes, ["ok", "ok"],
                         "the deleted object's data must outlive the step that reads it")
        self.host.request("POST", CONFIG + "gated/repair", json={})
        self.assertEqual(len(stored_files(directory)), 1, "the deleted data is destroyed after")

    def test_delete_while_unavailable_is_finished_by_repair(self):
        self.host.request("PUT", "/objects/store/a", data=b"doomed")
        os.rename(self.directory, self.directory + ".away")
        response = self.host.request("DELETE", "/objects/store/a")
        self.assertEqual(response.status_code, 204, "the object is gone from the index")
        self.assertEqual(self.host.request("GET", "/objects/store/a").status_code, 404)
        self.assertEqual(self.host.request("GET", CONFIG + "store").json()["pending_deletions"],
                         1)
        os.rename(self.directory + ".away", self.directory)
        self.assertEqual(len(stored_files(self.directory)), 1, "the data waits for repair")
        step = self.host.request("POST", CONFIG + "store/repair", json={}).json()
        self.assertEqual((step["deletions"]["done"], step["deletions"]["failed"]), (1, 0))
        self.assertEqual(step["deletions"]["destroyed"], {"deleted": 1})
        self.assertEqual(stored_files(self.directory), [])
        again = self.host.request("POST", CONFIG + "store/repair", json={}).json()
        self.assertEqual((again["deletions"]["done"], again["deletions"]["failed"]), (0, 0))
        self.assertEqual(again["summary"]["temporaries_removed"], 0)  # simple sweeps (issue 9)

    def test_configuration_delete_waits_for_pending_deletions(self):
        self.host.request("PUT", "/objects/store/a", data=b"x")
        os.rename(self.directory, self.directory + ".away")
        self.host.request("DELETE", "/objects/store/a")
        self.assertJsonError(self.host.request("DELETE", CONFIG + "store"), 409, "vsm repair")

    def test_pending_count_is_what_delete_checks(self):
        """Issue 11 item 3: the API said pending_deletions 0 while DELETE refused on intents."""
        self.host.request("PUT", "/objects/store/a", data=b"x")
        os.rename(self.directory, self.directory + ".away")
        self.host.request("DELETE", "/objects/store/a")
        self.host.app.store.add_intent("store", "aa/bb/" + "c" * 32,
                                       str(self.host.app.pins.identity()))
        details = self.host.request("GET", CONFIG + "store").json()
        self.assertEqual(details["pending_deletions"], 2)
        self.assertEqual(details["pending_by_kind"], {"deleted": 1, "intent": 1})
        self.assertJsonError(self.host.request("DELETE", CONFIG + "store"), 409, "2 stored")

    def test_a_module_that_never_stored_anything_can_be_deleted(self):
        """Issue 11 item 3: one failed write to a never-reachable location blocked DELETE."""
        missing = os.path.join(self.host.data_dir, "never-mounted")
        self.host.configure("unreachable", "simple.simple.SimpleStorage", [missing])
        self.assertEqual(self.host.request("PUT", "/objects/unreachable/a",
                                           data=b"x").status_code, 503)
        self.assertEqual(self.host.request("GET", CONFIG + "unreachable").json()
                         ["pending_deletions"], 0)
        self.assertEqual(self.host.request("DELETE", CONFIG + "unreachable").status_code, 204)

    def test_aborted_downloads_close_their_streams(self):
        directory = os.path.join(self.host.data_dir, "counted")
        os.mkdir(directory)
        self.host.configure("counted", "tests.host.fixture_modules.CountedStreamsStorage",
                            [directory])
        CountedStreamsStorage.open_streams = 0
        data = os.urandom(8 * 1024 * 1024)
        self.host.request("PUT", "/objects/counted/big", data=data)
        request = ("GET /objects/counted/big HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n"
                   "\r\n" % base64.b64encode(("%s:%s" % AUTH).encode()).decode()).encode()
        address = (self.host.server.host, self.host.server.port)
        for _ in range(20):
            with socket.create_connection(address, timeout=10) as connection:
                connection.sendall(request)
                self.assertTrue(connection.recv(65536).startswith(b"HTTP/1.1 200"))
        deadline = time.monotonic() + 15
        while CountedStreamsStorage.open_streams and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(CountedStreamsStorage.open_streams, 0,
                         "read streams of aborted downloads must be closed")
        self.assertEqual(self.host.app.registry._active, {}, "every lease must be released")
        self.assertEqual(self.host.request("GET", "/objects/counted/big").content, data)

    def test_module_data_the_module_rejects_is_a_logged_500(self):
        """The index holding something the module does not accept is a server fault."""
        self.host.request("PUT", "/objects/store/a", data=b"x")
        from modules.host.store import ObjectRecord
        self.host.app.store.put_object(ObjectRecord("store", "a", "../../etc/passwd", 1, 0.0))
        with self.assertLogs("modules.host", level=logging.ERROR):
            response = self.host.request("GET", "/objects/store/a")
        self.assertEqual(self.assertJsonError(response, 500)["error"], "InvalidModuleData")
