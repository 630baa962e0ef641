"""A process that uses a DedupStorage and dies (``os._exit``) at a chosen step.

Run by tests/dedup/test_dedup_crash.py as
``python -m tests.dedup.crash_child STEP INNER_DIR STATE_DIR``. It first
stores one object completely and prints its module_data (it must survive),
then starts a second operation and dies at STEP:

* ``mid-upload``: the source dies after 100 000 bytes;
* ``before-commit``: the upload is complete, the index not yet updated;
* ``duplicate-discard``: a duplicate was committed, its upload not yet deleted;
* ``delete``: the last reference is gone from the index, the blob not yet deleted.
"""
import io
import os
import sys

from modules.context import make_context
from replica.dedup import DedupStorage
from replica.dedup.index import DedupIndex
from simple.simple import SimpleStorage

KEPT = b"kept: " + bytes(range(256)) * 400
OTHER = b"other content " * 20000


def _die(*args, **kwargs):
    sys.stdout.flush()
    os._exit(17)


class _DyingSource(io.RawIOBase):
    def __init__(self):
        super().__init__()
        self._sent = 0

    def readable(self):
        return True

    def read(self, size=-1):
        if self._sent >= 100000:
            _die()
        self._sent += 50000
        return b"z" * 50000


def main(step: str, inner_dir: str, state_dir: str) -> None:
    dedup = DedupStorage("file://%s" % inner_dir, "state_dir=%s" % state_dir)
    context = make_context({})
    kept = dedup.new_data(context)
    dedup.assign(context, kept, io.BytesIO(KEPT))
    print(kept, flush=True)
    target = dedup.new_data(context)
    if step == "mid-upload":
        dedup.assign(context, target, _DyingSource())
    elif step == "before-commit":
        DedupIndex.commit_upload = _die
        dedup.assign(context, target, io.BytesIO(OTHER))
    elif step == "duplicate-discard":
        SimpleStorage.delete = _die
        dedup.assign(context, target, io.BytesIO(KEPT))
    elif step == "delete":
        other = dedup.new_data(context)
        dedup.assign(context, other, io.BytesIO(OTHER))
        SimpleStorage.delete = _die
        dedup.delete(context, other)
    raise SystemExit("step %r did not die" % step)


if __name__ == "__main__":
    main(*sys.argv[1:4])
