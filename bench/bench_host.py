"""Benchmark the host against a bare cheroot baseline measured in the same run.

    python bench/bench_host.py [--size-mib 100] [--small 400] [--json]

Baseline: a trivial WSGI application on the same server settings (HostServer, cheroot) that
swallows uploads and serves bytes from memory (the cost of HTTP alone).
Measured: the host storing through ``loc-a`` (one SimpleStorage) and
``mirror`` (the replica over three), large objects with curl-like streaming
clients and many small objects from 16 threads. The result is a ratio
host / baseline per case; ``--check`` exits 1 when a ratio falls below its
target (targets in ``TARGETS``).
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modules.host import make_app  # noqa: E402
from modules.host.server import HostServer  # noqa: E402

MIB = 1024 * 1024
PASSWORD = "bench"
CHUNK = 1024 * 1024

#: Lowest acceptable host/baseline ratio per case (throughputs: higher is better).
TARGETS = {
    "put_large_loc-a": 0.25,
    "get_large_loc-a": 0.4,
    "put_large_mirror": 0.15,
    "get_large_mirror": 0.4,
    "put_small_loc-a": 0.2,
    "get_small_loc-a": 0.3,
}


def baseline_app(environ, start_response):
    """Swallow PUT bodies; serve ``?size=N`` bytes from memory in 1 MiB chunks."""
    if environ["REQUEST_METHOD"] == "PUT":
        body = environ["wsgi.input"]
        while body.read(CHUNK):
            pass
        start_response("201 Created", [("Content-Length", "0")])
        return []
    size = int(environ.get("QUERY_STRING", "size=0").split("=")[1])
    block = b"x" * CHUNK

    def chunks():
        left = size
        while left > 0:
            yield block[:min(left, CHUNK)]
            left -= CHUNK

    start_response("200 OK", [("Content-Length", str(size))])
    return chunks()


class Served:
    def __init__(self, app):
        self.app = app
        self.server = HostServer(app, port=0, threads=16)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = self.server.url.rstrip("/")

    def stop(self):
        self.server.shutdown()
        self.thread.join(10)


def timed(function, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def large_cases(url, put_path, get_path, source, size, session):
    def put():
        with open(source, "rb") as body:
            response = session.put(url + put_path, data=body, timeout=(5, 600))
            assert response.status_code in (200, 201), response.text

    def get():
        with session.get(url + get_path, stream=True, timeout=(5, 600)) as response:
            assert response.status_code == 200, response.text
            received = sum(len(chunk) for chunk in response.iter_content(CHUNK))
            assert received == size, received

    put_time = timed(put)
    get_time = timed(get)
    return size / put_time / MIB, size / get_time / MIB


def small_cases(url, path_for, count, auth):
    local = threading.local()

    def session():
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.auth = auth
        return local.session

    def put(index):
        response = session().put(url + path_for("small-%d" % index), data=b"s" * 1024,
                                 timeout=(5, 60))
        assert response.status_code in (200, 201), response.text

    def get(index):
        response = session().get(url + path_for("small-%d" % index), timeout=(5, 60))
        assert response.status_code == 200, response.text

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        start = time.perf_counter()
        list(pool.map(put, range(count)))
        put_rate = count / (time.perf_counter() - start)
        start = time.perf_counter()
        list(pool.map(get, range(count)))
        get_rate = count / (time.perf_counter() - start)
    return put_rate, get_rate


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--small", type=int, default=400, help="small objects per case")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 below a target ratio")
    options = parser.parse_args(argv)
    size = options.size_mib * MIB
    work = tempfile.mkdtemp(prefix="vsm-bench-")
    try:
        source = os.path.join(work, "source.bin")
        with open(source, "wb") as file:
            for _ in range(options.size_mib):
                file.write(os.urandom(MIB))
        results = {}
        base = Served(baseline_app)
        session = requests.Session()
        try:
            base_put, base_get = large_cases(base.url, "/big", "/big?size=%d" % size, source,
                                             size, session)
            base_small_put, base_small_get = small_cases(base.url, lambda key: "/%s?size=1024"
                                                         % key, options.small, None)
        finally:
            base.stop()
        app = make_app(os.path.join(work, "data"), admin_password=PASSWORD)
        host = Served(app)
        session.auth = ("administrator", PASSWORD)
        try:
            for policy in ("loc-a", "mirror"):
                path = "/objects/%s/big" % policy
                put, get = large_cases(host.url, path, path, source, size, session)
                results["put_large_" + policy] = (put, base_put, "MiB/s")
                results["get_large_" + policy] = (get, base_get, "MiB/s")
            put, get = small_cases(host.url, lambda key: "/objects/loc-a/" + key, options.small,
                                   ("administrator", PASSWORD))
            results["put_small_loc-a"] = (put, base_small_put, "req/s")
            results["get_small_loc-a"] = (get, base_small_get, "req/s")
        finally:
            host.stop()
            app.close()
            session.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report = {name: {"host": round(value, 1), "baseline": round(baseline, 1), "unit": unit,
                     "ratio": round(value / baseline, 3), "target": TARGETS.get(name)}
              for name, (value, baseline, unit) in results.items()}
    failed = [name for name, row in report.items()
              if row["target"] is not None and row["ratio"] < row["target"]]
    if options.json:
        print(json.dumps({"cases": report, "failed": failed}, indent=2))
    else:
        for name, row in report.items():
            print("%-18s host %9.1f %-5s baseline %9.1f  ratio %.2f (target %s)%s" % (
                name, row["host"], row["unit"], row["baseline"], row["ratio"], row["target"],
                "  BELOW" if name in failed else ""))
    return 1 if options.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
