"""Access log and Prometheus ``/metrics`` (issue 11 item 8: "nobody is watching")."""
import io
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import unittest

import requests

from modules.host import make_app
from modules.host.access_log import AccessLog
from modules.host.metrics import MAX_POLICIES, request_labels
from modules.host.pipeline import METRICS_AUTH, METRICS_OFF, METRICS_PUBLIC, build_application
from modules.host.server import HostServer
from tests.host.support import AUTH, CONFIG, PASSWORD, HostProcess, replica_available


class _ServedStack:
    """The host behind its middleware, served in a thread; lines of the access log captured."""

    def __init__(self, test: unittest.TestCase, metrics: str = METRICS_AUTH,
                 create_defaults: bool = False, statistics_deadline: float = 5.0):
        self.data_dir = tempfile.mkdtemp(prefix="vsm-observe-")
        test.addCleanup(shutil.rmtree, self.data_dir, True)
        self.app = make_app(self.data_dir, admin_password=PASSWORD,
                            create_defaults=create_defaults,
                            statistics_deadline=statistics_deadline)
        test.addCleanup(self.app.close)
        self.stream = io.StringIO()
        self.logger = logging.getLogger("test-access-%d" % id(self))
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        handler = logging.StreamHandler(self.stream)
        self.logger.addHandler(handler)
        test.addCleanup(self.logger.removeHandler, handler)
        stack = build_application(self.app, access_log=False, metrics=metrics)
        self.server = HostServer(AccessLog(stack, logger=self.logger), host="127.0.0.1", port=0,
                                 threads=4)
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        test.addCleanup(thread.join, 10)
        test.addCleanup(self.server.shutdown)
        self.url = self.server.url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = AUTH
        test.addCleanup(self.session.close)

    def lines(self):
        return self.stream.getvalue().splitlines()


class TestAccessLog(unittest.TestCase):

    def test_one_line_per_request_without_secrets(self):
        stack = _ServedStack(self)
        directory = os.path.join(stack.data_dir, "s")
        os.mkdir(directory)
        stack.session.put(stack.url + CONFIG + "s", json={
            "module": "simple.simple.SimpleStorage", "args": [directory]}, timeout=10)
        self.assertEqual(stack.session.put(stack.url + "/objects/s/a%20b", data=b"x" * 1000,
                                           timeout=10).status_code, 201)
        self.assertEqual(len(stack.session.get(stack.url + "/objects/s/a%20b", timeout=10)
                             .content), 1000)
        requests.get(stack.url + "/objects/s/?prefix=x&token=hunter2", timeout=10,
                     auth=("administrator", "wrong-" + PASSWORD))
        requests.get(stack.url + "/objects/s/evil%0D%0Aforged", timeout=10)
        lines = stack.lines()
        self.assertEqual(len(lines), 5, lines)
        pattern = re.compile(r'^127\.0\.0\.1 - - \[[^\]]+\] "(\S+) (\S+) HTTP/1\.1" (\d{3}) '
                             r'(\d+) in=(\d+) (\d+\.\d{3})s$')
        parsed = [pattern.match(line) for line in lines]
        self.assertTrue(all(parsed), lines)
        put, get, wrong, evil = parsed[1:]
        self.assertEqual(put.group(1, 2, 3, 5), ("PUT", "/objects/s/a%20b", "201", "1000"))
        self.assertEqual(get.group(1, 3, 4), ("GET", "200", "1000"))
        self.assertEqual(wrong.group(3), "401")
        self.assertNotIn("hunter2", wrong.group(2))
        self.assertIn("/objects/s/evil%0D%0Aforged", evil.group(2))
        text = "\n".join(lines)
        self.assertNotIn(PASSWORD, text)
        self.assertNotIn("Basic", text)

    def test_serve_options_file_and_off(self):
        data_dir = tempfile.mkdtemp(prefix="vsm-access-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        log_path = os.path.join(data_dir, "access.log")
        host = HostProcess(os.path.join(data_dir, "d"), args=["--access-log", log_path])
        try:
            requests.get(host.url + "/health", timeout=10)
            requests.get(host.url + CONFIG, auth=AUTH, timeout=10)
        finally:
            host.stop()
        with open(log_path, encoding="utf-8") as file:
            lines = file.read().splitlines()
        self.assertEqual(len(lines), 2, lines)
        self.assertIn('"GET /health HTTP/1.1" 200', lines[0])
        quiet = HostProcess(os.path.join(data_dir, "d"), args=["--access-log", "off"])
        try:
            requests.get(quiet.url + "/health", timeout=10)
        finally:
            output = quiet.stop()
        self.assertNotIn("/health", output)


class TestMetrics(unittest.TestCase):

    def test_metrics_need_the_login_and_count_requests(self):
        stack = _ServedStack(self)
        self.assertEqual(requests.get(stack.url + "/metrics", timeout=10).status_code, 401)
        directory = os.path.join(stack.data_dir, "s")
        os.mkdir(directory)
        stack.session.put(stack.url + CONFIG + "s", json={
            "module": "simple.simple.SimpleStorage", "args": [directory]}, timeout=10)
        for index in range(3):
            stack.session.put(stack.url + "/objects/s/k%d" % index, data=b"z" * 100, timeout=10)
        stack.session.get(stack.url + "/objects/s/k0", timeout=10)
        stack.session.get(stack.url + "/objects/s/none", timeout=10)
        response = stack.session.get(stack.url + "/metrics", timeout=10)
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.headers["Content-Type"].startswith("text/plain"))
        text = response.text
        for line in ('vsm_http_requests_total{operation="put",policy="s",status="201"} 3.0',
                     'vsm_http_requests_total{operation="get",policy="s",status="200"} 1.0',
                     'vsm_http_requests_total{operation="get",policy="s",status="404"} 1.0',
                     'vsm_http_received_bytes_total{operation="put",policy="s"} 300.0',
                     'vsm_http_sent_bytes_total{operation="get",policy="s"}',
                     'vsm_http_request_duration_seconds_count{operation="put",policy="s"} 3.0',
                     'vsm_module_up{module="s"} 1.0',
                     'vsm_module_objects{module="s"} 3.0',
                     'vsm_module_capacity_bytes{kind="total",module="s"}'):
            self.assertIn(line, text)
        self.assertNotIn(PASSWORD, text)

    def test_a_module_whose_storage_is_gone_is_not_available(self):
        """Review finding: a location whose directory was gone (status page UNAVAILABLE) showed
        only ``vsm_module_up 1`` in /metrics: nothing to alert on."""
        stack = _ServedStack(self)
        for name in ("here", "gone"):
            directory = os.path.join(stack.data_dir, name)
            os.mkdir(directory)
            answer = stack.session.put(stack.url + CONFIG + name, json={
                "module": "simple.simple.SimpleStorage", "args": [directory]}, timeout=10)
            self.assertEqual(answer.status_code, 204, answer.text)
        os.rename(os.path.join(stack.data_dir, "gone"), os.path.join(stack.data_dir, "away"))
        text = stack.session.get(stack.url + "/metrics", timeout=10).text
        for line in ('vsm_module_up{module="gone"} 1.0', 'vsm_module_available{module="gone"} 0.0',
                     'vsm_module_available{module="here"} 1.0'):
            self.assertIn(line, text)

    def test_a_hung_module_does_not_hang_the_views(self):
        """Review finding: a hung location made the status page and /metrics take 30 s."""
        from tests.host import fixture_modules
        fixture_modules.STATISTICS_RELEASE.clear()
        del fixture_modules.STATISTICS_CALLS[:]
        self.addCleanup(fixture_modules.STATISTICS_RELEASE.set)
        stack = _ServedStack(self, statistics_deadline=0.5)
        for name, module in (("fine", "simple.simple.SimpleStorage"),
                             ("hung", "tests.host.fixture_modules.HungStatisticsStorage")):
            directory = os.path.join(stack.data_dir, name)
            os.mkdir(directory)
            answer = stack.session.put(stack.url + CONFIG + name, json={
                "module": module, "args": [directory]}, timeout=10)
            self.assertEqual(answer.status_code, 204, answer.text)
        for attempt in range(3):
            started = time.monotonic()
            text = stack.session.get(stack.url + "/metrics", timeout=10).text
            page = stack.session.get(stack.url + "/", timeout=10)
            described = stack.session.get(stack.url + CONFIG + "hung", timeout=10).json()
            self.assertLess(time.monotonic() - started, 6)
            self.assertIn('vsm_module_up{module="fine"} 1.0', text)
            self.assertIn('vsm_module_up{module="hung"} 0.0', text)
            self.assertEqual(page.status_code, 200)
            self.assertIn("no answer within", page.text)
            self.assertIn("no answer within", described["error"])
        self.assertEqual(len(fixture_modules.STATISTICS_CALLS), 1,
                         "a module still answering is not asked again")
        fixture_modules.STATISTICS_RELEASE.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            described = stack.session.get(stack.url + CONFIG + "hung", timeout=10).json()
            if described.get("statistics"):
                break
            time.sleep(0.05)
        self.assertIsNotNone(described.get("statistics"), described)

    def test_made_up_policies_do_not_grow_the_labels(self):
        stack = _ServedStack(self, metrics=METRICS_PUBLIC)
        for index in range(20):
            stack.session.get(stack.url + "/objects/made-up-%d/x" % index, timeout=10)
        text = requests.get(stack.url + "/metrics", timeout=10).text  # public: no login
        self.assertNotIn("made-up", text)
        self.assertIn('vsm_http_requests_total{operation="get",policy="other",status="404"} '
                      '20.0', text)
        self.assertGreater(MAX_POLICIES, 10)

    def test_metrics_off_leaves_the_path_to_the_application(self):
        stack = _ServedStack(self, metrics=METRICS_OFF)
        self.assertEqual(stack.session.get(stack.url + "/metrics", timeout=10).status_code, 404)

    @unittest.skipUnless(replica_available(), "the replica module is not importable")
    def test_replica_figures(self):
        stack = _ServedStack(self, create_defaults=True)
        stack.session.put(stack.url + "/objects/mirror/a", data=b"a", timeout=10)
        text = stack.session.get(stack.url + "/metrics", timeout=30).text
        for line in ('vsm_module_replicas{module="mirror"} 3.0',
                     'vsm_module_healthy_locations{module="mirror"} 3.0',
                     'vsm_module_missing_copies{module="mirror"} 0.0',
                     'vsm_module_pending_deletes{module="mirror"} 0.0',
                     'vsm_module_degraded{module="mirror"} 0.0',
                     'vsm_module_location_up{location="loc-b",module="mirror"} 1.0'):
            self.assertIn(line, text)

    def test_request_labels(self):
        def labels(method, path, **headers):
            environ = {"REQUEST_METHOD": method, "PATH_INFO": path}
            environ.update(("HTTP_" + key.upper(), value) for key, value in headers.items())
            return request_labels(environ)
        self.assertEqual(labels("PUT", "/objects/p/k"), ("p", "put"))
        self.assertEqual(labels("PUT", "/objects/p/k", x_copy_from="/objects/p/j"),
                         ("p", "copy"))
        self.assertEqual(labels("GET", "/objects/p/"), ("p", "list"))
        self.assertEqual(labels("POST", CONFIG + "m/repair"), ("", "repair"))
        self.assertEqual(labels("GET", "/"), ("", "status_page"))
        self.assertEqual(labels("BREW", "/objects/p/k"), ("p", "other"))
