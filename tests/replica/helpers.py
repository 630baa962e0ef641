"""Shared pieces for the replica tests: real directories, real modules, real faults."""
import io
import json
import os
import shutil
import tempfile
import threading
import time
import unittest
from typing import Callable, Dict, List, Optional

from modules.context import make_context
from modules.testing.faults import FaultyStorage
from replica.replica import ReplicaStorage
from simple.simple import SimpleStorage

MIB = 1024 * 1024


class FakeClock:
    """A monotonic clock the test moves by hand (for error-limiting intervals)."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class SleepRecorder:
    """An injectable sleep that records the requested pauses instead of sleeping."""

    def __init__(self):
        self.pauses: List[float] = []

    def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


def wait_until(condition: Callable[[], bool], limit: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``limit`` seconds pass; return whether it held.

    Not a timed assertion: the limit only stops a broken test from hanging.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def temp_dir(test: unittest.TestCase, prefix: str = "vsm-replica-") -> str:
    directory = tempfile.mkdtemp(prefix=prefix)
    test.addCleanup(shutil.rmtree, directory, True)
    return directory


class ReplicaTestCase(unittest.TestCase):
    """A replica over ``count`` real simple directories, each wrapped in a FaultyStorage.

    The wrappers are named modules ``loc-a``, ``loc-b``, ... resolved through the
    context, so tests can break any location at any time.
    """

    count = 3
    options: Dict[str, object] = {}

    def setUp(self):
        super().setUp()
        self.root = temp_dir(self)
        self.dirs: List[str] = []
        self.faulty: Dict[str, FaultyStorage] = {}
        names = []
        for index in range(self.count):
            name = "loc-%s" % "abcdefgh"[index]
            directory = os.path.join(self.root, name)
            os.mkdir(directory)
            self.dirs.append(directory)
            self.faulty[name] = FaultyStorage(SimpleStorage(directory), name=name)
            names.append(name)
        self.names = names
        self.context = make_context(dict(self.faulty))
        self.replica = self.make_replica()

    def make_replica(self, **overrides) -> ReplicaStorage:
        options = dict(self.options)
        options.update(overrides)
        self.clock = FakeClock()
        self.sleeps = SleepRecorder()
        replica = ReplicaStorage(*self.names, clock=self.clock, sleep=self.sleeps, **options)
        self.addCleanup(replica.close)
        self.addCleanup(self.release_faults)  # runs first: hung children return before close
        return replica

    def settle(self, replica: Optional[ReplicaStorage] = None) -> None:
        """Wait until no background work (journal drains) is running."""
        replica = replica or self.replica
        self.assertTrue(wait_until(lambda: replica.statistics(None)["workers"]["busy"] == 0),
                        "background work did not finish")

    def release_faults(self) -> None:
        for faulty in self.faulty.values():
            faulty.clear()

    # -- helpers ------------------------------------------------------------

    def store(self, data: bytes, replica: Optional[ReplicaStorage] = None) -> str:
        replica = replica or self.replica
        module_data = replica.new_data(self.context)
        replica.assign(self.context, module_data, io.BytesIO(data))
        return module_data

    def read(self, module_data: str, replica: Optional[ReplicaStorage] = None) -> bytes:
        replica = replica or self.replica
        with replica.get_read_stream(self.context, module_data) as stream:
            return stream.read()

    def child_md(self, module_data: str, name: str) -> str:
        return json.loads(module_data)["copies"][name]["md"]

    def copy_path(self, module_data: str, name: str) -> str:
        index = self.names.index(name)
        return os.path.join(self.dirs[index], *self.child_md(module_data, name).split("/"))

    def has_copy(self, module_data: str, name: str) -> bool:
        return os.path.exists(self.copy_path(module_data, name))

    def files_under(self, directory: str) -> List[str]:
        found = []
        for base, _, files in os.walk(directory):
            found.extend(os.path.join(base, name) for name in files)
        return found

    def location_report(self, stats: dict, name: str) -> dict:
        for entry in stats["locations"]:
            if entry["name"] == name:
                return entry
        raise AssertionError("no location %s in statistics" % name)
