#!/usr/bin/env python3
"""Benchmark the cost of the replica's integrity checks: on versus off, in the same run.

Usage::

    python bench/bench_integrity.py [--size-mib 1024] [--repeat 3] [--dir DIR] [--drop-caches]
                                    [--checksum xxh3-128] [--hashes]

* **write**: a ``--size-mib`` object stored through ``ReplicaStorage`` over
  three ``file://`` locations with ``integrity=on`` (block digests computed as
  the data is fanned out, a manifest stored with each copy) and with
  ``integrity=off`` (no manifests). Target: on/off time <= 1.25.
* **read**: the object written with integrity on read through a replica
  with ``integrity=on`` (every 1 MiB block verified before it is returned,
  with read-ahead on the worker pool) and with ``integrity=off`` (the same
  copy read unverified). Target: on/off time <= 1.30.
* **scrub**: a ``scrub`` of the object (all three copies read and
  verified), ``--repeat`` times, reported as GB/s of copies checked (best
  and median). Target: >= 3 GB/s (best).
* ``--hashes``: only the speed of every manifest checksum on one core (1 MiB
  blocks of random data, best of 3), the figures in docs/replica.md.

``--checksum`` chooses the manifest algorithm (default: the replica's,
``xxh3-128``).

Each measurement runs in a fresh child process; runs alternate which
variant goes first and the best and the median of ``--repeat`` are printed.
``--drop-caches`` (root) empties the page cache before every read so reads
come from the disk. Not part of the test suite.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

MIB = 1024 * 1024
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _replica(out: str, integrity: str):
    sys.path.insert(0, ROOT)
    from replica.replica import ReplicaStorage
    dirs = [os.path.join(out, name) for name in ("a", "b", "c")]
    for directory in dirs:
        os.makedirs(directory, exist_ok=True)
    return ReplicaStorage(*["file://%s" % directory for directory in dirs],
                          "integrity=%s" % integrity,
                          "checksum=%s" % os.environ.get("BENCH_CHECKSUM", "xxh3-128"))


def write(source: str, out: str, integrity: str) -> dict:
    replica = _replica(out, integrity)
    start = time.perf_counter()
    module_data = replica.new_data(None)
    with open(source, "rb", buffering=0) as file:
        replica.assign(None, module_data, file)
    seconds = time.perf_counter() - start
    replica.close()
    return {"seconds": seconds, "module_data": module_data}


def read(out: str, module_data: str, integrity: str) -> dict:
    replica = _replica(out, integrity)
    start = time.perf_counter()
    total = 0
    with replica.get_read_stream(None, module_data) as stream:
        while True:
            chunk = stream.read(MIB)
            if not chunk:
                break
            total += len(chunk)
    seconds = time.perf_counter() - start
    replica.close()
    return {"seconds": seconds, "bytes": total}


def scrub(out: str, module_data: str) -> dict:
    replica = _replica(out, "on")
    start = time.perf_counter()
    report = replica.scrub(None, module_data)
    seconds = time.perf_counter() - start
    replica.close()
    return {"seconds": seconds, "bytes": report["bytes_checked"], "ok": len(report["ok"])}


def hash_speeds() -> None:
    """Print each manifest checksum's speed on one core, in GB/s."""
    sys.path.insert(0, ROOT)
    from replica.checksum import ALGORITHMS, KEYED, Checksum
    data = memoryview(os.urandom(64 * MIB))
    for algorithm in ALGORITHMS:
        try:
            checksum = Checksum(algorithm, bytes(32) if algorithm in KEYED else None)
        except Exception as error:  # blake3 not installed: say so and go on
            print("%-13s unavailable: %s" % (algorithm, error))
            continue
        best = None
        for _ in range(3):
            start = time.perf_counter()
            for offset in range(0, len(data), MIB):
                checksum.hexdigest(data[offset:offset + MIB])
            seconds = time.perf_counter() - start
            best = seconds if best is None else min(best, seconds)
        print("%-13s %6.1f GB/s" % (algorithm, len(data) / best / 1e9))


def run_child(*args: str) -> dict:
    output = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *args],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as file:
        file.write("3\n")


def _stats(values):
    values = sorted(values)
    middle = len(values) // 2
    median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
    return values[0], median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--drop-caches", action="store_true")
    parser.add_argument("--checksum", default="xxh3-128",
                        help="manifest checksum (default xxh3-128, the replica's default)")
    parser.add_argument("--hashes", action="store_true",
                        help="only print each checksum's speed on one core")
    options = parser.parse_args()
    if options.hashes:
        hash_speeds()
        return 0
    os.environ["BENCH_CHECKSUM"] = options.checksum
    work = tempfile.mkdtemp(prefix="bench-integrity-", dir=options.dir)
    try:
        source = os.path.join(work, "source")
        with open(source, "wb") as file:
            block = os.urandom(16 * MIB)
            for index in range(0, options.size_mib, 16):
                file.write(block[:min(16, options.size_mib - index) * MIB])
        times = {"write on": [], "write off": [], "read on": [], "read off": []}
        module_data = None
        for run in range(options.repeat):
            order = ("on", "off") if run % 2 == 0 else ("off", "on")
            for integrity in order:
                out = os.path.join(work, "w-%s" % integrity)
                shutil.rmtree(out, ignore_errors=True)
                result = run_child("write", source, out, integrity)
                times["write " + integrity].append(result["seconds"])
            module_data = run_child("write", source, os.path.join(work, "r"), "on")["module_data"] \
                if module_data is None else module_data
            for integrity in order:
                if options.drop_caches:
                    drop_caches()
                result = run_child("read", os.path.join(work, "r"), module_data, integrity)
                assert result["bytes"] == options.size_mib * MIB
                times["read " + integrity].append(result["seconds"])
        # The scrub is timed --repeat times too, like the other measurements: one
        # sample on a shared machine decided the verdict by itself before.
        scrubs = []
        for _ in range(options.repeat):
            if options.drop_caches:
                drop_caches()
            scrubs.append(run_child("scrub", os.path.join(work, "r"), module_data))
        print("object: %d MiB, %d runs, %s, checksum %s" % (
            options.size_mib, options.repeat,
            "cold cache reads" if options.drop_caches else "warm cache reads", options.checksum))
        for what, target in (("write", 1.25), ("read", 1.30)):
            on_best, on_median = _stats(times[what + " on"])
            off_best, off_median = _stats(times[what + " off"])
            print("%-5s on %.2f s (median %.2f), off %.2f s (median %.2f): on/off %.2fx best, "
                  "%.2fx median (target <= %.2fx)  %s" % (
                      what, on_best, on_median, off_best, off_median, on_best / off_best,
                      on_median / off_median, target,
                      "OK" if on_best / off_best <= target else "MISSED"))
        if any(result["ok"] != 3 for result in scrubs):
            raise SystemExit("a scrub did not find 3 intact copies: %r" % scrubs)
        scrub_best, scrub_median = _stats(result["seconds"] for result in scrubs)
        scrub_bytes = scrubs[0]["bytes"]
        rate = scrub_bytes / scrub_best / 1e9
        print("scrub: 3 copies verified, %.2f GB/s of copies best, %.2f GB/s median "
              "(target >= 3 GB/s)  %s" % (rate, scrub_bytes / scrub_median / 1e9,
                                          "OK" if rate >= 3 else "MISSED"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, args = sys.argv[2], sys.argv[3:]
        if kind == "write":
            print(json.dumps(write(*args)))
        elif kind == "read":
            print(json.dumps(read(*args)))
        elif kind == "scrub":
            print(json.dumps(scrub(*args)))
        sys.exit(0)
    sys.exit(main())
