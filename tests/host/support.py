"""Real hosts for the tests: cheroot on a free loopback port, in a thread or a process."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import Any, Dict, List, Optional

import requests

from modules.host import make_app
from modules.host.server import HostServer

PASSWORD = "correct horse battery staple"
AUTH = ("administrator", PASSWORD)
CONFIG = "/cdmi/system_configuration/vendor_modules/"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = (5, 60)


def replica_available() -> bool:
    """Return True when the replica module can be imported (it lands on its own branch)."""
    try:
        import replica.replica  # noqa: F401  (imported to see whether it can be)
    except ImportError:
        return False
    return True


class RunningHost:
    """A host application served by cheroot (:class:`HostServer`) in a background thread.

    ``stop()`` shuts the server down, joins its thread and closes the app;
    ``restart()`` does that and serves the same data directory again.
    """

    def __init__(self, data_dir: Optional[str] = None, create_defaults: bool = False,
                 threads: int = 8, **app_options: Any):
        self._app_options = app_options  # more make_app keywords
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="vsm-host-test-")
        self._create_defaults = create_defaults
        self._threads = threads
        self.session = requests.Session()
        self.session.auth = AUTH
        self._start()

    def _start(self) -> None:
        self.app = make_app(self.data_dir, admin_password=PASSWORD,
                            create_defaults=self._create_defaults, **self._app_options)
        self.server = HostServer(self.app, host="127.0.0.1", port=0, threads=self._threads)
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-host",
                                       daemon=True)
        self.thread.start()
        self.url = self.server.url.rstrip("/")

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """Send a request as the administrator (``auth=None`` to send none)."""
        kwargs.setdefault("timeout", TIMEOUT)
        return self.session.request(method, self.url + path, **kwargs)

    def configure(self, name: str, module: str, args: Any = (), description: str = "",
                  expect: int = 204) -> requests.Response:
        """PUT a module configuration and check the status."""
        body = {"module": module, "description": description, "args": list(args)
                if not isinstance(args, dict) else args}
        response = self.request("PUT", CONFIG + name, json=body)
        if response.status_code != expect:
            raise AssertionError("configuring %s: %d %s" % (name, response.status_code,
                                                            response.text))
        return response

    def simple(self, name: str) -> str:
        """Configure a SimpleStorage module ``name`` on a new directory; return the directory."""
        directory = os.path.join(self.data_dir, "test-" + name)
        os.makedirs(directory, exist_ok=True)
        self.configure(name, "simple.simple.SimpleStorage", [directory])
        return directory

    def stop(self) -> None:
        """Stop serving and close the application (the data directory stays)."""
        self.session.close()
        if not self.server.shutdown(timeout=10):
            raise AssertionError("the test host did not stop")
        self.thread.join(10)
        self.app.close()

    def restart(self) -> None:
        """Stop, then serve the same data directory with a new application."""
        self.stop()
        self.session = requests.Session()
        self.session.auth = AUTH
        self._start()

    def cleanup(self) -> None:
        """Stop and remove the data directory if this object created it."""
        try:
            self.stop()
        finally:
            if self._own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)


class HostTestCase(unittest.TestCase):
    """A test case with ``self.host``, a fresh host without default configuration."""

    create_defaults = False

    def setUp(self):
        super().setUp()
        self.host = RunningHost(create_defaults=self.create_defaults)
        self.addCleanup(self.host.cleanup)

    def assertJsonError(self, response: requests.Response, status: int,
                        contains: Optional[str] = None) -> Dict[str, Any]:
        """Check an error answer: status, JSON body with a message (containing ``contains``)."""
        self.assertEqual(response.status_code, status, response.text)
        self.assertTrue(response.headers["Content-Type"].startswith("application/json"))
        body = response.json()
        self.assertIsInstance(body.get("message"), str)
        self.assertTrue(body["message"])
        if contains is not None:
            self.assertIn(contains, body["message"])
        return body


def stored_files(directory: str, manifests: bool = False) -> List[str]:
    """Return the relative paths of the files under ``directory`` (temporary files included).

    The replica's integrity manifests (one small file next to each copy) are
    left out unless ``manifests`` is True.
    """
    found = []
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            if manifests or not _is_manifest(path):
                found.append(os.path.relpath(path, directory))
    return sorted(found)


def _is_manifest(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(len(_MANIFEST_START)) == _MANIFEST_START
    except OSError:
        return False


_MANIFEST_START = b'{"algorithm":"'  # manifests are sorted JSON: the algorithm first


class HostProcess:
    """``python -m modules serve`` in a subprocess on a free port; ``url`` and ``pid``.

    It serves in one process (``--workers 1``) unless ``args`` name
    ``--workers``, so that ``pid`` is the process that serves (peak RSS,
    ``kill -9``).
    """

    def __init__(self, data_dir: str, extra_env: Optional[Dict[str, str]] = None,
                 password: Optional[str] = PASSWORD, args: List[str] = ()):
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("VSM_ADMIN_PASSWORD", None)
        if password is not None:
            env["VSM_ADMIN_PASSWORD"] = password
        env.update(extra_env or {})
        if "--workers" not in args:
            args = ["--workers", "1"] + list(args)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modules", "serve", "--port", "0", "--data-dir", data_dir]
            + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT,
            text=True)
        self.pid = self.process.pid
        self.banner: List[str] = []
        deadline = time.monotonic() + 30
        self.url = None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.banner.append(line.rstrip("\n"))
            match = re.match(r"Listening on (http://\S+?)/? ", line)
            if match:
                self.url = match.group(1)
            if line.startswith("Stop with"):
                break
        if self.url is None:
            self.process.kill()
            _, error = self.process.communicate(timeout=10)
            raise AssertionError("vsm serve did not start: %s %s" % (self.banner, error))
        # Keep reading what it prints (the access log goes to stderr): a full pipe would
        # block the server.
        self._output: List[str] = []
        self._readers = [threading.Thread(target=self._drain, args=(stream,), daemon=True)
                         for stream in (self.process.stdout, self.process.stderr)]
        for reader in self._readers:
            reader.start()

    def _drain(self, stream) -> None:
        for line in stream:
            self._output.append(line)

    def peak_rss(self) -> int:
        """Return the process's peak resident memory in bytes (VmHWM)."""
        with open("/proc/%d/status" % self.pid) as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM for %d" % self.pid)

    def stop(self) -> str:
        """Send SIGTERM, wait, and return what the server printed afterwards.

        Raises:
            AssertionError: the server did not stop within 30 s (it is then killed).
        """
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
            raise AssertionError("vsm serve did not stop within 30 s of SIGTERM: %s"
                                 % self._collected()[-2000:]) from None
        return self._collected()

    def _collected(self) -> str:
        for reader in self._readers:
            reader.join(10)
        return "".join(self._output)
