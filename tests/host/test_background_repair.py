"""The host's background repair pass (issue 14: "as well as the background pass, give every
existing object a copy there"): a location added to a mirror's args is filled without
``vsm repair``; progress lives in the index, one process runs a pass, a reconfiguration restarts it.
"""
import json
import os
import shutil
import tempfile
import time
import unittest

from modules.host.background_repair import BackgroundRepair
from modules.host.repair import RepairService

from tests.host.support import CONFIG, RunningHost, replica_available
from tests.host.test_cli import CliTestCase

COUNT = 24


def _spec(directory: str, name: str) -> str:
    return json.dumps({"module": "simple.simple.SimpleStorage", "args": [directory],
                       "name": name})


class _Mirror:
    """Disks a, b, c and a mirror over some of them on ``host``."""

    def __init__(self, test: unittest.TestCase, host: RunningHost):
        self.host = host
        self.disks = tempfile.mkdtemp(prefix="vsm-bg-disks-")
        test.addCleanup(shutil.rmtree, self.disks, True)
        self.dirs = {name: os.path.join(self.disks, name) for name in "abc"}
        for directory in self.dirs.values():
            os.mkdir(directory)
        self.state_dir = os.path.join(self.disks, "state")

    def configure(self, names: str) -> None:
        args = [_spec(self.dirs[name], name) for name in names]
        args += ["write_quorum=2", "state_dir=" + self.state_dir]
        self.host.configure("mirror", "replica.replica.ReplicaStorage", args)

    def fill(self, count: int = COUNT) -> dict:
        objects = {}
        for index in range(count):
            data = os.urandom(1000 + index)
            response = self.host.request("PUT", "/objects/mirror/k%03d" % index, data=data)
            if response.status_code != 201:
                raise AssertionError(response.text)
            objects["k%03d" % index] = data
        return objects

    def background(self) -> dict:
        return self.host.request("GET", CONFIG + "mirror").json().get("background_repair")


@unittest.skipUnless(replica_available(), "the replica module is not importable")
class TestBackgroundFill(unittest.TestCase):

    def test_an_added_location_is_filled_without_vsm_repair(self):
        host = RunningHost(background_repair=True, repair_rate=None)
        self.addCleanup(host.cleanup)
        mirror = _Mirror(self, host)
        mirror.configure("ab")
        objects = mirror.fill()
        mirror.configure("abc")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            background = mirror.background() or {}
            if background.get("revision") == 2 and background["finished"] is not None:
                break
            time.sleep(0.1)
        self.assertEqual(background.get("revision"), 2, background)
        self.assertIsNotNone(background["finished"], "the pass did not end within 60 s")
        self.assertEqual((background["visited"], background["failed"]), (COUNT, 0), background)
        for name in "ab":  # only c is left
            os.rename(mirror.dirs[name], mirror.dirs[name] + "-gone")
        for key, data in objects.items():
            response = host.request("GET", "/objects/mirror/" + key)
            self.assertEqual(response.status_code, 200, response.text)
            self.assertEqual(response.content, data, key)

    def test_vsm_serve_refuses_a_bad_rate(self):
        test = CliTestCase("run")
        for value in ("0", "-1", "nan", "fast"):
            with self.subTest(value=value):
                code, _, err = test.vsm("serve", "--port", "0", "--background-repair", value)
                self.assertEqual(code, 2)
                self.assertIn("MiB per second", err)


@unittest.skipUnless(replica_available(), "the replica module is not importable")
class TestPassBookkeeping(unittest.TestCase):
    """Two runners over one index (two ``vsm serve`` workers), stepped by hand."""

    def setUp(self):
        self.host = RunningHost()
        self.addCleanup(self.host.cleanup)
        self.mirror = _Mirror(self, self.host)
        self.mirror.configure("ab")
        self.mirror.fill()
        app = self.host.app
        service = RepairService(app.store, app.collector)
        self.runners = [BackgroundRepair(app.store, app.registry.lease, service, rate=None,
                                         batch=10) for _ in range(2)]

    def test_one_runner_per_pass_progress_recorded_reconfiguration_restarts(self):
        first, second = self.runners
        self.assertFalse(first.step(), "nothing to do before a reconfiguration")
        self.mirror.configure("abc")
        self.assertTrue(first.step())
        self.assertFalse(second.step(), "the pass belongs to the first runner")
        self.assertEqual(self.mirror.background()["visited"], 10)
        self.assertEqual(self.mirror.background()["after"], "k009")
        self.mirror.configure("ab")  # a new revision: the pass starts over
        self.assertTrue(first.step())
        background = self.mirror.background()
        self.assertEqual((background["revision"], background["visited"]), (3, 10), background)
        for _ in range(5):
            if not first.step():
                break
        background = self.mirror.background()
        self.assertEqual(background["visited"], COUNT)
        self.assertIsNotNone(background["finished"])
        self.assertFalse(second.step())

    def test_a_pass_whose_runner_stopped_is_taken_over(self):
        first, _ = self.runners
        self.mirror.configure("abc")
        self.assertTrue(first.step())
        app = self.host.app
        service = RepairService(app.store, app.collector)
        impatient = BackgroundRepair(app.store, app.registry.lease, service, rate=None,
                                     batch=100, stale_after=-1)
        self.assertFalse(impatient.step(), "the rest of the pass fits in one batch")
        background = self.mirror.background()
        self.assertEqual(background["visited"], COUNT)
        self.assertIsNotNone(background["finished"])


class TestPassOrder(unittest.TestCase):

    def test_a_pass_that_keeps_failing_does_not_hold_up_the_others(self):
        from modules.host.store import ModuleConfig, Store

        directory = tempfile.mkdtemp(prefix="vsm-bg-order-")
        self.addCleanup(shutil.rmtree, directory, True)
        store = Store(os.path.join(directory, "index.db"))
        self.addCleanup(store.close)
        for name in ("a", "b"):
            for description in ("one", "two"):  # revision 2: each needs a pass
                store.put_module(ModuleConfig(name, "simple.simple.SimpleStorage", description,
                                              ["/nowhere"]))
        store.plan_repair_passes()
        first = store.claim_repair_pass("me", stale_after=300)
        self.assertEqual(first.module, "a")
        store.advance_repair_pass(first)  # a batch of a failed: recorded, not finished
        self.assertEqual(store.claim_repair_pass("me", stale_after=300).module, "b")
