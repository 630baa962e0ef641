"""Benchmark: PUT and GET of a large object through HTTPStorage against curl.

Both clients talk to the same WebDAV server on 127.0.0.1 in the same run,
so the figures are ratios against a baseline measured under the same
conditions (target: HTTPStorage >= 0.8x curl's throughput)::

    PYTHONPATH=. python bench/bench_http.py                  # 256 MiB, wsgidav
    PYTHONPATH=. python bench/bench_http.py --server nginx   # needs nginx (dav module)
    PYTHONPATH=. python bench/bench_http.py --size-mib 64 --rounds 5 --json

The servers: ``wsgidav`` (wsgidav under cheroot in a subprocess, from
:mod:`modules.testing.webdav`) or ``nginx`` (its dav module, started on a
free port with a generated configuration; much faster, so the clients'
own costs show). Each round PUTs the object with ``curl -T`` and with
``HTTPStorage.assign`` from the same file (seekable: Content-Length; and
through a read-only wrapper: chunked transfer, reported separately, not part
of the target), then GETs it with curl to
/dev/null and through ``get_read_stream`` in 1 MiB reads; the best round of
each is reported (the order alternates between rounds). The files live in
/dev/shm when possible, so that the disk does not blur the comparison. The
bytes read back are checked once, outside timing.
Exit status 1 when a ratio is below ``--target``.
"""
import argparse
import getpass
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modules.testing.webdav import WebDAVServer, free_port  # noqa: E402
from replica.http import HTTPStorage  # noqa: E402

MIB = 1024 * 1024
CURL = shutil.which("curl") or "/usr/bin/curl"

_NGINX_CONF = """
user {user};
worker_processes 1;
daemon off;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        client_max_body_size 0;
        client_body_buffer_size 1m;
        dav_methods PUT DELETE MKCOL COPY MOVE;
        create_full_put_path on;
        dav_access user:rw;
    }}
}}
"""


class NginxServer:
    """nginx with its dav module over ``root`` on a free loopback port."""

    def __init__(self, root: str):
        self.root = root
        self.port = free_port()
        self._dir = tempfile.mkdtemp(prefix="bench-nginx-")
        self._process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/" % self.port

    def start(self) -> "NginxServer":
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(nginx):
            raise SystemExit("nginx is not installed (apt-get install nginx-light)")
        conf = os.path.join(self._dir, "nginx.conf")
        with open(conf, "w") as file:
            file.write(_NGINX_CONF.format(dir=self._dir, port=self.port, root=self.root,
                                          user=getpass.getuser()))
        self._process = subprocess.Popen([nginx, "-c", conf, "-p", self._dir],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self._process.poll() is not None:
                    break
                time.sleep(0.05)
        raise SystemExit("nginx did not start; see %s/error.log" % self._dir)

    def close(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGQUIT)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)


def _write_source(path: str, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as file:
        remaining = size
        block = os.urandom(4 * MIB)
        counter = 0
        while remaining:
            # Vary the blocks cheaply so that nothing can deduplicate them.
            piece = (counter.to_bytes(8, "big") + block[8:])[:min(remaining, len(block))]
            file.write(piece)
            digest.update(piece)
            remaining -= len(piece)
            counter += 1
    return digest.hexdigest()


class _OneWay:
    """A file seen through read() only: HTTPStorage must stream it chunked."""

    def __init__(self, file):
        self.read = file.read


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _curl(*args: str) -> None:
    subprocess.run([CURL, "-sS", "--fail", "-o", "/dev/null", *args], check=True)


def _default_work_dir() -> Optional[str]:
    """RAM-backed /dev/shm when there is one: the clients are measured, not the disk."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def run(size_mib: int, rounds: int, server_kind: str,
        work_dir: Optional[str] = None) -> Dict[str, object]:
    size = size_mib * MIB
    work = tempfile.mkdtemp(prefix="bench-http-", dir=work_dir)
    try:
        root = os.path.join(work, "root")
        os.makedirs(os.path.join(root, "store"))
        source = os.path.join(work, "source.bin")
        expected = _write_source(source, size)
        server = (NginxServer(root) if server_kind == "nginx" else WebDAVServer(root)).start()
        try:
            storage = HTTPStorage(server.url + "store/", "timeout=60")
            try:
                return _measure(storage, server.url + "store/", source, size, expected, rounds,
                                server_kind)
            finally:
                storage.close()
        finally:
            server.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(storage: HTTPStorage, base_url: str, source: str, size: int, expected: str,
             rounds: int, server_kind: str) -> Dict[str, object]:
    times: Dict[str, List[float]] = {"curl_put": [], "storage_put": [], "storage_put_chunked": [],
                                     "curl_get": [], "storage_get": []}
    module_data = storage.new_data(None)
    curl_url = base_url + "curl-object.bin"

    def storage_put() -> None:
        with open(source, "rb") as file:
            storage.assign(None, module_data, file)

    def storage_put_chunked() -> None:
        with open(source, "rb") as file:
            storage.assign(None, module_data, _OneWay(file))

    def storage_get() -> None:
        with storage.get_read_stream(None, module_data) as stream:
            while stream.read(MIB):
                pass

    steps = {
        "curl_put": lambda: _curl("-T", source, curl_url),
        "storage_put": storage_put,
        "storage_put_chunked": storage_put_chunked,
        "curl_get": lambda: _curl(curl_url),
        "storage_get": storage_get,
    }
    for index in range(rounds):
        # Alternate who goes first, so that neither always meets the other's writeback.
        order = (("curl_put", "storage_put", "storage_put_chunked", "curl_get", "storage_get")
                 if index % 2 == 0 else
                 ("storage_put_chunked", "storage_put", "curl_put", "storage_get", "curl_get"))
        for name in order:
            times[name].append(_timed(steps[name]))

    digest = hashlib.sha256()
    with storage.get_read_stream(None, module_data) as stream:
        for chunk in iter(lambda: stream.read(MIB), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise SystemExit("HTTPStorage read back different bytes")

    best = {name: min(values) for name, values in times.items()}
    mib = size / MIB
    result: Dict[str, object] = {
        "server": server_kind, "size_mib": mib, "rounds": rounds,
        "work_dir": os.path.dirname(os.path.dirname(source)),
        "throughput_mib_s": {name: round(mib / seconds, 1) for name, seconds in best.items()},
        "put_ratio": round(best["curl_put"] / best["storage_put"], 3),
        "put_chunked_ratio": round(best["curl_put"] / best["storage_put_chunked"], 3),
        "get_ratio": round(best["curl_get"] / best["storage_get"], 3),
    }
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", choices=("wsgidav", "nginx"), default="wsgidav")
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--work-dir", default=_default_work_dir(),
                        help="where the source file and the served tree live "
                             "(default: /dev/shm when writable)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(args.size_mib, args.rounds, args.server, args.work_dir)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        rates = result["throughput_mib_s"]
        print("server %s, object %d MiB, best of %d rounds, files in %s" % (
            result["server"], result["size_mib"], result["rounds"], result["work_dir"]))
        print("PUT  curl %8.1f MiB/s   HTTPStorage %8.1f MiB/s   ratio %.2f  target >= %.2f  %s"
              % (rates["curl_put"], rates["storage_put"], result["put_ratio"], args.target,
                 _verdict(result["put_ratio"], args.target)))
        print("PUT  curl %8.1f MiB/s   chunked     %8.1f MiB/s   ratio %.2f  (unseekable "
              "source, no target)" % (rates["curl_put"], rates["storage_put_chunked"],
                                      result["put_chunked_ratio"]))
        print("GET  curl %8.1f MiB/s   HTTPStorage %8.1f MiB/s   ratio %.2f  target >= %.2f  %s"
              % (rates["curl_get"], rates["storage_get"], result["get_ratio"], args.target,
                 _verdict(result["get_ratio"], args.target)))
    ok = result["put_ratio"] >= args.target and result["get_ratio"] >= args.target
    if not ok:
        print("below the target of %.2fx curl" % args.target, file=sys.stderr)
    return 0 if ok else 1


def _verdict(ratio: float, target: float) -> str:
    return "OK" if ratio >= target else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
