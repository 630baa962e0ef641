"""Real HTTP servers on 127.0.0.1 for tests: a WebDAV server and a black hole.

:class:`WebDAVServer` runs wsgidav under cheroot in a subprocess over a
directory, optionally with basic authentication, on a free loopback port.
It can be stopped (as a crash: the process is killed) and started again on
the same port and directory, for "the location went away and came back"
tests::

    with WebDAVServer(root_dir, user="alice", password="s3cret") as server:
        storage = HTTPStorage(server.url, "username=alice", "password=s3cret")
        ...
        server.stop()      # requests now fail with connection refused
        server.start()     # same URL, same files

:class:`BlackHoleServer` accepts TCP connections and never answers, for
timeout tests. Both only ever listen on loopback addresses.
"""
import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import List, Optional

__all__ = ["WebDAVServer", "BlackHoleServer", "free_port"]

log = logging.getLogger(__name__)

_LOOPBACK = "127.0.0.1"
_PASSWORD_VARIABLE = "WEBDAV_TEST_PASSWORD"
_START_TIMEOUT = 30.0


def free_port(host: str = _LOOPBACK) -> int:
    """Return a TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class WebDAVServer:
    """A wsgidav server in a subprocess, serving ``root`` at ``http://127.0.0.1:<port>/``.

    Args:
        root: the directory served (created if missing).
        user, password: require basic authentication with these; anonymous
            read-write access when both are None. The password reaches the
            subprocess through its environment, not its command line.
        port: a fixed port; a free one is picked when None.
        block_size: bytes wsgidav reads and writes per call.
        threads: cheroot worker threads.
    """

    def __init__(self, root: str, *, user: Optional[str] = None,
                 password: Optional[str] = None, port: Optional[int] = None,
                 block_size: int = 1024 * 1024, threads: int = 16):
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        self.root = os.path.abspath(root)
        self.user = user
        self._password = password
        self.port = port or free_port()
        self.block_size = block_size
        self.threads = threads
        self._process: Optional[subprocess.Popen] = None
        self._log_dir = tempfile.mkdtemp(prefix="webdav-log-")
        self._log_path = os.path.join(self._log_dir, "server.log")

    def __repr__(self) -> str:
        return "WebDAVServer(%r, url=%r, running=%s)" % (self.root, self.url, self.running)

    @property
    def url(self) -> str:
        """The server's root URL, ``http://127.0.0.1:<port>/``."""
        return "http://%s:%d/" % (_LOOPBACK, self.port)

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = _START_TIMEOUT) -> "WebDAVServer":
        """Start the server and wait until it accepts connections.

        Returns:
            WebDAVServer: self.

        Raises:
            RuntimeError: the process died or did not listen within ``timeout``
                seconds (its log is in the message).
        """
        if self.running:
            return self
        os.makedirs(self.root, exist_ok=True)
        env = dict(os.environ)
        env.pop(_PASSWORD_VARIABLE, None)
        if self._password is not None:
            env[_PASSWORD_VARIABLE] = self._password
        env["PYTHONPATH"] = os.pathsep.join(
            [_package_parent()] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        command = [sys.executable, "-m", "modules.testing.webdav", "--root", self.root,
                   "--port", str(self.port), "--block-size", str(self.block_size),
                   "--threads", str(self.threads)]
        if self.user is not None:
            command += ["--user", self.user]
        with open(self._log_path, "ab") as log_file:
            # cwd: "python -m" puts it first on sys.path; make it the SDK's own root.
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file,
                                             stderr=subprocess.STDOUT, env=env,
                                             cwd=_package_parent())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                output = self._read_log()
                self._process = None
                raise RuntimeError("the WebDAV server on port %d exited at start:\n%s" % (
                    self.port, output))
            try:
                with socket.create_connection((_LOOPBACK, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the WebDAV server did not listen on port %d within %g s:\n%s" % (
            self.port, timeout, self._read_log()))

    def stop(self) -> None:
        """Kill the server process (like a crash) and wait for it; no-op if stopped."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)

    def restart(self) -> "WebDAVServer":
        """Stop and start again on the same port and root.

        Returns:
            WebDAVServer: self.
        """
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove its log directory (the root is left alone)."""
        self.stop()
        shutil.rmtree(self._log_dir, ignore_errors=True)

    def __enter__(self) -> "WebDAVServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _read_log(self) -> str:
        try:
            with open(self._log_path, "rb") as log_file:
                return log_file.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"


class BlackHoleServer:
    """Accept TCP connections on 127.0.0.1 and never send a byte.

    Accepted sockets are held open until :meth:`stop`, so clients wait for
    an answer until their read timeout.
    """

    def __init__(self):
        self._listener: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._accepted: List[socket.socket] = []
        self._lock = threading.Lock()
        self.port = 0

    @property
    def url(self) -> str:
        """The server's root URL."""
        return "http://%s:%d/" % (_LOOPBACK, self.port)

    @property
    def accepted(self) -> int:
        """How many connections were accepted so far."""
        with self._lock:
            return len(self._accepted)

    def start(self) -> "BlackHoleServer":
        """Listen on a free port and accept in a background thread.

        Returns:
            BlackHoleServer: self.
        """
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((_LOOPBACK, 0))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, name="black-hole-%d" % self.port,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and close every connection."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            accepted, self._accepted = self._accepted, []
        for connection in accepted:
            connection.close()

    def __enter__(self) -> "BlackHoleServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._accepted.append(connection)


def _package_parent() -> str:
    """The directory holding the ``modules`` package, for the subprocess's path."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _serve(argv: Optional[List[str]] = None) -> None:
    """Run wsgidav under cheroot in this process (the subprocess's entry point)."""
    from cheroot import wsgi
    from wsgidav.wsgidav_app import WsgiDAVApp

    parser = argparse.ArgumentParser(description="serve a directory over WebDAV on 127.0.0.1")
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user")
    parser.add_argument("--block-size", type=int, default=1024 * 1024)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)
    if args.user is not None:
        password = os.environ.get(_PASSWORD_VARIABLE)
        if not password:
            parser.error("--user needs the password in $%s" % _PASSWORD_VARIABLE)
        user_mapping = {"*": {args.user: {"password": password}}}
    else:
        user_mapping = {"*": True}
    config = {
        "host": _LOOPBACK,
        "port": args.port,
        "provider_mapping": {"/": args.root},
        "simple_dc": {"user_mapping": user_mapping},
        "http_authenticator": {"accept_basic": True, "accept_digest": False,
                               "default_to_digest": False},
        "block_size": args.block_size,
        "verbose": 1,
        "logging": {"enable": False},
        "dir_browser": {"enable": False},
        "lock_storage": True,
    }
    app = WsgiDAVApp(config)
    server = wsgi.Server((_LOOPBACK, args.port), app, numthreads=args.threads,
                         server_name="webdav-test")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.start()
    except (KeyboardInterrupt, SystemExit):
        server.stop()


if __name__ == "__main__":
    _serve()
