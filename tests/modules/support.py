"""Helpers for the module-author tests: run ``vsm`` as a user would, start ``vsm serve``."""
import os
import signal
import socket
import subprocess
import sys
import time
from typing import List, Optional

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILLED_NEWSTORE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "filled_newstore.py")

# The console script's view: sys.path[0] is the script's directory, not the
# current directory (``python -m`` would add the current directory).
_VSM_MAIN = ("import sys; sys.path.pop(0) if sys.path and sys.path[0] in ('', '.') else None; "
             "from modules.cli import main; sys.exit(main())")


def vsm_command() -> List[str]:
    """Return the argv prefix that runs ``vsm`` (the installed script when there is one)."""
    script = os.path.join(os.path.dirname(sys.executable), "vsm")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-c", _VSM_MAIN]


def environment(**extra: str) -> dict:
    """The environment for subprocesses: the SDK importable, ``vsm`` and this Python first on PATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def run(argv: List[str], cwd: str, timeout: float = 240, **extra_env: str):
    """Run ``argv`` in ``cwd``; return the CompletedProcess (text output)."""
    return subprocess.run(argv, cwd=cwd, env=environment(**extra_env), capture_output=True,
                          text=True, timeout=timeout)


def free_port() -> int:
    """Return a port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServedHost:
    """``vsm serve`` as a subprocess on 127.0.0.1, stopped by PID."""

    PASSWORD = "authors-test-password"

    def __init__(self, data_dir: str, extra_args: List[str], cwd: str):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(cwd, "serve-%d.log" % self.port)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            vsm_command() + ["serve", "--data-dir", data_dir, "--port", str(self.port)]
            + extra_args, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
            env=environment(VSM_ADMIN_PASSWORD=self.PASSWORD))
        self.session = requests.Session()
        self.session.auth = ("administrator", self.PASSWORD)

    def wait_ready(self, seconds: float = 30.0) -> None:
        """Wait until /health answers; raise AssertionError with the log otherwise."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("vsm serve did not start: %s" % self.log())

    def log(self) -> str:
        """Everything the server printed so far."""
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path, "rb") as file:
            return file.read().decode("utf-8", "replace")

    def stop(self) -> Optional[int]:
        """SIGTERM by PID, then SIGKILL after 15 s; return the exit code."""
        self.session.close()
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(15)
        self._log.close()
        return self.process.returncode
