#!/usr/bin/env python3
"""Benchmark CryptStorage's encryption and decryption against a plain copy, in the same run.

Usage::

    python bench/bench_crypt.py [--size-mib 256] [--repeat 3] [--chunk-kib 256] [--dir DIR]

One thread, so the figures are per core:

* **plain copy**: the object streamed in 1 MiB reads from memory into a
  sink that keeps nothing (the baseline: what any module pays per byte);
* **encrypt**: the same bytes through ``EncryptingSource`` (AES-256-GCM per
  chunk, the at-rest format of ``replica.crypt``) into the sink.
  Target: >= 1 GB/s per core;
* **decrypt**: the ciphertext read back through ``DecryptingStream`` (every
  chunk authenticated). Target: >= 1 GB/s per core;
* **end to end**: a file stored and read back through ``CryptStorage`` over
  a ``file://`` location and through ``SimpleStorage`` on the same disk
  (``--dir``, default a temporary directory); reported as the time ratio
  crypt / plain. Target: <= 1.5.

Each figure is the best of ``--repeat`` runs; every target prints OK or
MISSED. Not part of the test suite (tests never time anything).
"""
import argparse
import base64
import io
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from modules.context import make_context  # noqa: E402
from replica.crypt import CryptStorage  # noqa: E402
from replica.crypt import format as fmt  # noqa: E402
from replica.crypt.streams import DecryptingStream, EncryptingSource  # noqa: E402
from simple.simple import SimpleStorage  # noqa: E402

MIB = 1024 * 1024
GB = 1000 ** 3
PIECE = MIB


def _drain(stream) -> int:
    total = 0
    while True:
        piece = stream.read(PIECE)
        if not piece:
            return total
        total += len(piece)


def _best(function, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-kib", type=int, default=fmt.DEFAULT_CHUNK_SIZE // 1024)
    parser.add_argument("--dir", default=None, help="directory for the end-to-end runs")
    options = parser.parse_args()
    size = options.size_mib * MIB
    chunk = options.chunk_kib * 1024
    data = os.urandom(size)
    key, object_id = os.urandom(32), "0" * 32
    header = fmt.Header.new(b"\0" * 8, chunk)
    object_key = fmt.object_key(key, header, object_id)
    aad = header.raw + object_id.encode()

    plain = _best(lambda: _drain(io.BytesIO(data)), options.repeat)
    encrypt = _best(lambda: _drain(EncryptingSource(io.BytesIO(data), header, object_key, aad)),
                    options.repeat)
    sealed = io.BytesIO()
    source = EncryptingSource(io.BytesIO(data), header, object_key, aad)
    while True:
        piece = source.read(PIECE)
        if not piece:
            break
        sealed.write(piece)
    sealed_bytes = sealed.getvalue()

    def decrypt_all():
        inner = io.BytesIO(sealed_bytes)
        inner.seek(fmt.HEADER_SIZE)
        stream = DecryptingStream(inner, fmt.Header.parse(sealed_bytes), object_key, aad, size,
                                  "bench object", lambda error: error)
        assert _drain(stream) == size

    decrypt = _best(decrypt_all, options.repeat)

    print("object %d MiB, chunk %d KiB, best of %d, one thread" % (
        options.size_mib, options.chunk_kib, options.repeat))
    print("  plain copy  %6.2f GB/s" % (size / plain / GB))
    for name, seconds in (("encrypt", encrypt), ("decrypt", decrypt)):
        rate = size / seconds / GB
        print("  %-10s  %6.2f GB/s  (%.2fx the plain copy's time)  target >= 1 GB/s per core: %s"
              % (name, rate, seconds / plain, _verdict(rate >= 1.0)))

    root = tempfile.mkdtemp(prefix="bench-crypt-", dir=options.dir)
    try:
        os.environ["BENCH_CRYPT_KEY"] = base64.b64encode(key).decode()
        for name in ("plain", "crypt", "source"):
            os.mkdir(os.path.join(root, name))
        source_path = os.path.join(root, "source", "object")
        with open(source_path, "wb") as file:
            file.write(data)
        context = make_context({})
        modules = {"plain": SimpleStorage(os.path.join(root, "plain")),
                   "crypt": CryptStorage("file://%s" % os.path.join(root, "crypt"),
                                         key_env="BENCH_CRYPT_KEY", chunk_size=chunk)}
        times = {}
        for name, module in modules.items():
            def round_trip(module=module):
                module_data = module.new_data(context)
                with open(source_path, "rb", buffering=0) as file:
                    module.assign(context, module_data, file)
                with module.get_read_stream(context, module_data) as stream:
                    assert _drain(stream) == size
                module.delete(context, module_data)
            times[name] = _best(round_trip, options.repeat)
        ratio = times["crypt"] / times["plain"]
        print("  end to end (write + read, %s): plain %.2f s, crypt %.2f s, ratio %.2f  "
              "target <= 1.5: %s" % (root, times["plain"], times["crypt"], ratio,
                                     _verdict(ratio <= 1.5)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
