"""An application built before fork() serves from every child (pre-forking servers)."""
import os
import shutil
import tempfile
import time
import unittest
from base64 import b64encode

from werkzeug.test import EnvironBuilder, run_wsgi_app

from modules.host import make_app
from tests.host.support import AUTH, replica_available

_HEADERS = {"Authorization": "Basic " + b64encode(("%s:%s" % AUTH).encode()).decode()}


@unittest.skipUnless(hasattr(os, "fork"), "needs fork()")
@unittest.skipUnless(replica_available(), "the replica module is not installed")
class TestForkedWorkers(unittest.TestCase):

    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="vsm-fork-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)
        self.app = make_app(self.data_dir, admin_password=AUTH[1])
        self.addCleanup(self.app.close)

    def call(self, method: str, path: str, data: bytes = b""):
        environ = EnvironBuilder(path=path, method=method, data=data,
                                 headers=_HEADERS).get_environ()
        app_iter, status, _ = run_wsgi_app(self.app, environ)
        try:
            return int(status.split()[0]), b"".join(app_iter)
        finally:
            app_iter.close()

    def test_children_write_and_read_through_the_parents_application(self):
        # The parent uses the mirror first: its module instances and SQLite connections exist.
        self.assertEqual(self.call("PUT", "/objects/mirror/shared", b"from the parent")[0], 201)
        children = []
        for number in range(3):
            pid = os.fork()
            if pid == 0:  # a worker: must not return into the test runner
                code = 1
                try:
                    for version in range(5):
                        status, _ = self.call("PUT", "/objects/mirror/child-%d" % number,
                                              b"version %d" % version)
                        assert status in (200, 201), status
                        status, body = self.call("GET", "/objects/mirror/shared")
                        assert (status, body) == (200, b"from the parent"), (status, body)
                    self.app.close()
                    code = 0
                finally:
                    os._exit(code)
            children.append(pid)
        codes = [os.waitpid(pid, 0)[1] for pid in children]
        self.assertEqual(codes, [0, 0, 0])
        for number in range(3):
            self.assertEqual(self.call("GET", "/objects/mirror/child-%d" % number),
                             (200, b"version 4"))
        # The children's overwrites left retired data; it is destroyed (the children are gone).
        deadline = time.monotonic() + 15
        while self.app.store.count_garbage("mirror") and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.app.store.count_garbage("mirror"), 0)
        self.assertEqual([row.process for row in self.app.store.list_readers()],
                         [str(self.app.pins.identity())])
