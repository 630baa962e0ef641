#!/usr/bin/env python3
"""Benchmark the replica's fan-out writes and failover reads against plain baselines.

Usage::

    python bench/bench_replica.py [--size-mib 1024] [--repeat 5] [--passes 3] [--dir DIR]
                                  [--drop-caches]

Everything is measured in the same run, on the same filesystem:

* **write baseline**: the source file read once in 1 MiB chunks and fanned to
  three files by three threads through bounded queues (4 chunks), each file
  fsynced at the end: the fastest simple way to make three durable copies.
* **write replica**: ``ReplicaStorage`` over three ``file://`` locations in the
  same directory (each copy written to a temporary file, fsynced, renamed).
* **read plain**: one copy read with ``open(..., 'rb')`` in 1 MiB reads.
* **read replica**: the same object read through the replica's stream.

``--integrity off`` measures the replica without manifests and verified
reads; the default (``on``, as shipped) verifies every block with the
replica's default checksum, XXH3-128 (see ``bench/bench_integrity.py`` and
docs/replica.md).

Each measurement runs in a fresh child process, so its peak RSS is its own.
The best of ``--repeat`` runs (alternating which goes first) is reported,
next to the median, with the ratios the targets are
about: write time replica/baseline (target <= 1.1), replica write peak RSS
(target < 64 MiB for 1 GiB) and read throughput replica/plain (target >= 0.9).
``--drop-caches`` (root) empties the page cache before every read so reads
come from the disk; without it they come from memory and measure pure overhead.
Not part of the test suite.
"""
import argparse
import json
import os
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1024 * 1024
CHUNK = MIB
QUEUE_DEPTH = 4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- the measured work (run in child processes) ---------------------------------

def write_baseline(source: str, out: str) -> dict:
    """Read ``source`` once; three threads write three fsynced files via bounded queues."""
    queues = [queue.Queue(QUEUE_DEPTH) for _ in range(3)]
    errors = []

    def writer(index: int) -> None:
        try:
            with open(os.path.join(out, "copy-%d" % index), "wb", buffering=0) as file:
                while True:
                    chunk = queues[index].get()
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[file.write(view):]
                os.fsync(file.fileno())
        except BaseException as error:  # reported by the parent
            errors.append(error)

    start = time.perf_counter()
    threads = [threading.Thread(target=writer, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    with open(source, "rb", buffering=0) as file:
        while True:
            chunk = file.read(CHUNK)
            for q in queues:
                q.put(chunk)
            if not chunk:
                break
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return {"seconds": seconds}


def _replica(out: str):
    sys.path.insert(0, ROOT)
    from replica.replica import ReplicaStorage
    dirs = [os.path.join(out, name) for name in ("a", "b", "c")]
    for directory in dirs:
        os.makedirs(directory, exist_ok=True)
    return ReplicaStorage(*["file://%s" % directory for directory in dirs],
                          integrity=os.environ.get("BENCH_INTEGRITY", "on"))


def write_replica(source: str, out: str) -> dict:
    """Store ``source`` through a ReplicaStorage over three file:// locations in ``out``."""
    replica = _replica(out)
    start = time.perf_counter()
    module_data = replica.new_data(None)
    with open(source, "rb", buffering=0) as file:
        replica.assign(None, module_data, file)
    seconds = time.perf_counter() - start
    complete = replica.available(None, module_data)
    replica.close()
    return {"seconds": seconds, "module_data": module_data, "complete": complete}


def read_plain(path: str, passes: int) -> dict:
    """Read one copy with a plain unbuffered file in 1 MiB reads; best of ``passes``."""
    best = None
    for _ in range(passes):
        start = time.perf_counter()
        total = 0
        with open(path, "rb", buffering=0) as file:
            while True:
                chunk = file.read(CHUNK)
                if not chunk:
                    break
                total += len(chunk)
        seconds = time.perf_counter() - start
        best = seconds if best is None else min(best, seconds)
    return {"seconds": best, "bytes": total}


def read_replica(out: str, module_data: str, passes: int) -> dict:
    """Read the object through the replica's stream (opened each pass); best of ``passes``."""
    replica = _replica(out)
    best = None
    for _ in range(passes):
        start = time.perf_counter()
        total = 0
        with replica.get_read_stream(None, module_data) as stream:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                total += len(chunk)
        seconds = time.perf_counter() - start
        best = seconds if best is None else min(best, seconds)
    replica.close()
    return {"seconds": best, "bytes": total}


def child(argv) -> None:
    kind = argv[0]
    if kind == "write-baseline":
        result = write_baseline(argv[1], argv[2])
    elif kind == "write-replica":
        result = write_replica(argv[1], argv[2])
    elif kind == "read-plain":
        result = read_plain(argv[1], int(argv[2]))
    elif kind == "read-replica":
        result = read_replica(argv[1], argv[2], int(argv[3]))
    else:
        raise SystemExit("unknown child task %r" % kind)
    result["max_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM; ru_maxrss would include the forked parent)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- the driver -------------------------------------------------------------------

def run_child(*args: str) -> dict:
    output = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *args],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def make_source(path: str, size: int) -> None:
    with open(path, "wb") as file:
        block = os.urandom(16 * MIB)
        written = 0
        counter = 0
        while written < size:
            piece = block[:min(len(block), size - written)]
            piece = counter.to_bytes(8, "little") + piece[8:] if len(piece) > 8 else piece
            file.write(piece)
            written += len(piece)
            counter += 1
        os.fsync(file.fileno())


def _median(results) -> float:
    values = sorted(result["seconds"] for result in results)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as file:
        file.write("3\n")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="object size (default 1024)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (best kept)")
    parser.add_argument("--passes", type=int, default=3,
                        help="reads per run from a warm cache (best kept)")
    parser.add_argument("--dir", default=None, help="where to write (default: the temp dir)")
    parser.add_argument("--drop-caches", action="store_true",
                        help="empty the page cache before each read (root only)")
    parser.add_argument("--integrity", choices=("on", "off"), default="on",
                        help="the replica's integrity option (default on, as shipped; off "
                             "measures the replica's own overhead without manifests or checksums)")
    args = parser.parse_args()
    os.environ["BENCH_INTEGRITY"] = args.integrity
    size = args.size_mib * MIB
    work = tempfile.mkdtemp(prefix="bench-replica-", dir=args.dir)
    try:
        source = os.path.join(work, "source")
        make_source(source, size)
        print("object %d MiB, %d runs each, integrity=%s, in %s" % (
            args.size_mib, args.repeat, args.integrity, work))
        writes = {"baseline": [], "replica": []}
        module_data = None
        out_replica = os.path.join(work, "replica")
        for run in range(args.repeat):
            order = ("baseline", "replica") if run % 2 == 0 else ("replica", "baseline")
            for kind in order:
                out = os.path.join(work, kind)
                shutil.rmtree(out, ignore_errors=True)
                os.makedirs(out)
                os.sync()
                result = run_child("write-" + kind, source, out)
                writes[kind].append(result)
                print("  write %-8s %6.2f s  peak RSS %5.1f MiB" % (
                    kind, result["seconds"], result["max_rss_mib"]))
                if kind == "replica":
                    if not result["complete"]:
                        raise SystemExit("the replica did not store every copy")
                    module_data = result["module_data"]
        shutil.rmtree(os.path.join(work, "baseline"), ignore_errors=True)
        copy = json.loads(module_data)["copies"]["file://%s/a" % out_replica]["md"]
        plain_path = os.path.join(out_replica, "a", *copy.split("/"))
        reads = {"plain": [], "replica": []}
        for run in range(args.repeat):
            order = ("plain", "replica") if run % 2 == 0 else ("replica", "plain")
            for kind in order:
                if args.drop_caches:
                    drop_caches()
                passes = "1" if args.drop_caches else str(args.passes)
                if kind == "plain":
                    result = run_child("read-plain", plain_path, passes)
                else:
                    result = run_child("read-replica", out_replica, module_data, passes)
                if result["bytes"] != size:
                    raise SystemExit("%s read returned %d bytes" % (kind, result["bytes"]))
                reads[kind].append(result)
                print("  read  %-8s %6.2f s  %7.0f MiB/s" % (
                    kind, result["seconds"], size / MIB / result["seconds"]))
        best_base = min(r["seconds"] for r in writes["baseline"])
        best_replica = min(r["seconds"] for r in writes["replica"])
        rss = max(r["max_rss_mib"] for r in writes["replica"])
        rss_base = max(r["max_rss_mib"] for r in writes["baseline"])
        best_plain = min(r["seconds"] for r in reads["plain"])
        best_read = min(r["seconds"] for r in reads["replica"])
        write_ratio = best_replica / best_base
        read_ratio = best_plain / best_read
        median_write = _median(writes["replica"]) / _median(writes["baseline"])
        median_read = _median(reads["plain"]) / _median(reads["replica"])
        print()
        print("medians: write %.2fx the baseline time, read %.2fx plain throughput"
              % (median_write, median_read))
        print("write: replica %.2f s vs baseline %.2f s -> %.2fx the baseline time "
              "(target <= 1.1x)  %s" % (best_replica, best_base, write_ratio,
                                        "OK" if write_ratio <= 1.1 else "MISSED"))
        print("peak RSS of the replica write: %.1f MiB (baseline process %.1f MiB; target < 64)"
              "  %s" % (rss, rss_base, "OK" if rss < 64 else "MISSED"))
        print("read: replica %.0f MiB/s vs plain %.0f MiB/s -> %.2fx plain throughput "
              "(target >= 0.9x, %s)  %s" % (
                  size / MIB / best_read, size / MIB / best_plain, read_ratio,
                  "cold cache" if args.drop_caches else "warm cache",
                  "OK" if read_ratio >= 0.9 else "MISSED"))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
