#!/usr/bin/env python3
"""Measure how much a bad first location costs a replica reader (issue 9's targets).

Usage::

    python bench/bench_failover.py [--size-mib 3] [--timeout 1] [--retries 3] [--repeat 3]

Three locations: ``remote`` (an HTTP location, listed first) and two local
directories. The object is written with ``remote`` as a local directory,
then read by a fresh replica (another worker process: no health history)
whose ``remote`` is, in turn:

* **local** (baseline): a third local directory;
* **hanging**: a server on 127.0.0.1 that accepts connections and never
  answers, with ``timeout=<--timeout>``;
* **503**: a server on 127.0.0.1 that answers 503 to everything.

For each, ``get_size`` plus a full read is timed (best of ``--repeat``), and
the requests the 503 server received per operation are counted. Targets
(printed with OK/MISSED): hanging, with the HTTP location's options as given,
under 3 s for get_size plus the read; 503, at most ``retries + 1`` requests
per operation. Run with ``--retries 0`` to see the replica's side alone
(one attempt per copy) when HTTPStorage still retries timeouts itself.
Not part of the test suite.
"""
import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cheroot import wsgi  # noqa: E402

from modules.testing import payload  # noqa: E402
from modules.testing.webdav import BlackHoleServer  # noqa: E402
from replica.replica import ReplicaStorage  # noqa: E402

MIB = 1024 * 1024


class Always503:
    """Answer 503 to every request on 127.0.0.1; ``count`` is how many came."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()
        self._server = wsgi.Server(("127.0.0.1", 0), self._app, numthreads=4)
        self._thread = threading.Thread(target=self._server.serve, daemon=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self._server.bind_addr[1]

    def _app(self, environ, start_response):
        with self._lock:
            self.count += 1
        start_response("503 Service Unavailable", [("Content-Length", "0")])
        return [b""]

    def __enter__(self):
        self._server.prepare()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.stop()
        self._thread.join(5)


def reader(remote, dirs):
    return ReplicaStorage(remote, "file://%s#a" % dirs["a"], "file://%s#b" % dirs["b"])


def http_remote(url, options):
    return json.dumps({"module": "replica.http.HTTPStorage", "name": "remote",
                       "args": [url] + options})


def size_and_read(replica, module_data):
    started = time.monotonic()
    size = replica.get_size(None, module_data)
    with replica.get_read_stream(None, module_data) as stream:
        data = stream.read()
    elapsed = time.monotonic() - started
    assert len(data) == size
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--retries", type=int, default=3, help="the HTTP location's retries")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-failover-")
    try:
        dirs = {name: os.path.join(root, name) for name in ("remote", "a", "b")}
        for directory in dirs.values():
            os.mkdir(directory)
        writer = ReplicaStorage(*["file://%s#%s" % (path, name) for name, path in dirs.items()])
        module_data = writer.new_data(None)
        writer.assign(None, module_data, io.BytesIO(payload(args.size_mib * MIB, seed=1)))
        writer.close()
        options = ["timeout=%g" % args.timeout, "retries=%d" % args.retries]

        def best(make_remote):
            times = []
            for _ in range(args.repeat):
                replica = reader(make_remote(), dirs)
                try:
                    times.append(size_and_read(replica, module_data))
                finally:
                    replica.close()
            return min(times)

        local = best(lambda: "file://%s#remote" % dirs["remote"])
        with BlackHoleServer() as hole:
            hanging = best(lambda: http_remote(hole.url, options))
        counts = {}
        with Always503() as server:
            for operation in ("get_size", "open+read"):
                replica = reader(http_remote(server.url, options + ["retry_backoff=0"]), dirs)
                try:
                    before = server.count
                    if operation == "get_size":
                        replica.get_size(None, module_data)
                    else:
                        with replica.get_read_stream(None, module_data) as stream:
                            stream.read()
                    counts[operation] = server.count - before
                finally:
                    replica.close()
        print("object: %d MiB; remote options: %s" % (args.size_mib, " ".join(options)))
        print("get_size + read, remote local (baseline): %.3f s" % local)
        print("get_size + read, remote hanging:          %.3f s (%.1fx baseline)  target < 3 s: %s"
              % (hanging, hanging / local, "OK" if hanging < 3 else "MISSED"))
        for operation, count in counts.items():
            print("503 server, %-9s requests: %d  target <= %d: %s" % (
                operation, count, args.retries + 1,
                "OK" if count <= args.retries + 1 else "MISSED"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
