"""Growing, shrinking and replacing a mirror's locations (issue 14).

Real directories and real modules: a replica is built over ``a`` and ``b``,
objects are written, then the replica is rebuilt with other arguments (a
location added, marked draining, removed, replaced) exactly as a host does
when an administrator changes the configuration.
"""
import concurrent.futures
import io
import itertools
import json
import os
import shutil
import unittest
from types import MappingProxyType

from modules import StorageModule
from modules.context import make_context
from modules.errors import (
    ConfigurationError,
    InvalidModuleData,
    LocationUnavailable,
    Unsupported,
)
from modules.keys import sharded_key_for
from modules.testing.faults import FaultyStorage
from replica import module_data as formats
from replica.locations import Location
from replica.placement import expand, manifest_id, supports_placement
from replica.replica import ReplicaStorage
from replica.settings import parse_settings
from simple.simple import SimpleStorage

from tests.replica.helpers import temp_dir


class NoPlacementStorage(SimpleStorage):
    """A module without deterministic placement (like a third-party module)."""

    capabilities = MappingProxyType(dict(StorageModule.capabilities))


class ConstantPlacementStorage(SimpleStorage):
    """A broken module: claims placement but ignores the object id."""

    def new_data_for(self, context, object_id):
        return "00/00/" + "0" * 32


class CrashingPlacementStorage(SimpleStorage):
    """A broken module: new_data_for raises a foreign exception or returns garbage."""

    calls = itertools.count()

    def new_data_for(self, context, object_id):
        turn = next(self.calls) % 3  # each failure in turn, whatever the random ids
        if turn == 0:
            raise RuntimeError("boom with password=hunter2")
        if turn == 1:
            raise LocationUnavailable("cannot reach https://user:hunter2@nas.example/dav")
        return 42


def _spec(directory: str, name: str, draining: bool = False, module: str = None) -> str:
    spec = {"module": module or "simple.simple.SimpleStorage", "args": [directory], "name": name}
    if draining:
        spec["draining"] = True
    return json.dumps(spec)


class GrowTestCase(unittest.TestCase):
    """Directories ``a``..``d`` and helpers to build replicas over any of them."""

    def setUp(self):
        super().setUp()
        self.root = temp_dir(self, "vsm-grow-")
        self.dirs = {}
        for name in "abcd":
            self.dirs[name] = os.path.join(self.root, name)
            os.mkdir(self.dirs[name])

    def replica(self, *names: str, draining=(), state_dir=None, **options) -> ReplicaStorage:
        specs = [_spec(self.dirs[name], name, name in draining) for name in names]
        if state_dir is not None:
            options["state_dir"] = state_dir
        replica = ReplicaStorage(*specs, **options)
        self.addCleanup(replica.close)
        return replica

    def store(self, replica: ReplicaStorage, payload: bytes) -> str:
        module_data = replica.new_data(None)
        replica.assign(None, module_data, io.BytesIO(payload))
        return module_data

    @staticmethod
    def read(replica: ReplicaStorage, module_data: str) -> bytes:
        with replica.get_read_stream(None, module_data) as stream:
            return stream.read()

    def placed_path(self, name: str, module_data: str, manifest: bool = False) -> str:
        object_id = json.loads(module_data)["id"]
        key = sharded_key_for(manifest_id(object_id) if manifest else object_id)
        return os.path.join(self.dirs[name], *key.split("/"))

    def copies_of(self, module_data: str) -> int:
        """Count the locations holding a data file for the object (recorded or placed)."""
        recorded = json.loads(module_data)["copies"]
        count = 0
        for name, directory in self.dirs.items():
            if name in recorded:
                path = os.path.join(directory, *recorded[name]["md"].split("/"))
            else:
                path = self.placed_path(name, module_data)
            count += os.path.exists(path)
        return count

    def gone(self, *names: str) -> None:
        """Take locations away for good (their directories are removed)."""
        for name in names:
            shutil.rmtree(self.dirs[name])


class TestSimplePlacement(unittest.TestCase):
    """SimpleStorage.new_data_for: the contract's deterministic placement."""

    def test_same_id_same_module_data_everywhere(self):
        first = SimpleStorage(temp_dir(self))
        second = SimpleStorage(temp_dir(self))
        object_id = "0123456789abcdef0123456789abcdef"
        self.assertTrue(first.capabilities["placement"])
        self.assertEqual(first.new_data_for(None, object_id), "01/23/" + object_id)
        self.assertEqual(first.new_data_for(None, object_id),
                         second.new_data_for({}, object_id))
        first.assign(None, first.new_data_for(None, object_id), io.BytesIO(b"x"))
        self.assertTrue(first.available(None, "01/23/" + object_id))

    def test_bad_object_ids_are_refused(self):
        storage = SimpleStorage(temp_dir(self))
        for bad in ("", "0123", "0123456789ABCDEF0123456789ABCDEF", "../" * 11, None, 7,
                    "0123456789abcdef0123456789abcdef\n"):
            with self.assertRaises(InvalidModuleData, msg=repr(bad)):
                storage.new_data_for(None, bad)

    def test_detected_on_the_module_and_inherited(self):
        class Mine(SimpleStorage):
            pass
        self.assertTrue(supports_placement(Mine(temp_dir(self))))
        self.assertFalse(supports_placement(NoPlacementStorage(temp_dir(self))))

    def test_base_contract_refuses_placement(self):
        class Bare(StorageModule):
            new_data = assign = available = get_read_stream = delete = get_size = None
            statistics = None
        bare = Bare()
        self.assertFalse(supports_placement(bare))
        with self.assertRaises(Unsupported):
            bare.new_data_for(None, "0" * 32)

    def test_faulty_storage_delegates_placement(self):
        inner = SimpleStorage(temp_dir(self))
        faulty = FaultyStorage(inner)
        self.assertTrue(faulty.capabilities["placement"])
        self.assertEqual(faulty.new_data_for(None, "a" * 32), inner.new_data_for(None, "a" * 32))
        faulty.down()
        self.assertEqual(faulty.new_data_for(None, "a" * 32), "aa/aa/" + "a" * 32)


class TestAddLocation(GrowTestCase):

    def test_repair_copies_existing_objects_to_an_added_location(self):
        """Issue 14: after c is added, repair(module_data) gives every object a copy at c,
        without changing module_data; a and b gone, every object reads back from c, also
        through a new replica with an empty state_dir."""
        before = self.replica("a", "b", write_quorum=2)
        payloads = {}
        for index in range(5):
            payload = os.urandom(1000 + index * 70000)
            payloads[self.store(before, payload)] = payload
        before.close()
        grown = self.replica("a", "b", "c", write_quorum=2, state_dir=temp_dir(self))
        module_data = next(iter(payloads))
        self.assertFalse(grown.available(None, module_data), "c lacks its copy: not available")
        for module_data in payloads:
            report = grown.repair(None, module_data)
            self.assertEqual(report["placed"], ["c"])
            self.assertEqual(report["not_placeable"], {})
            self.assertIn("c", report["repaired"])
            self.assertTrue(os.path.exists(self.placed_path("c", module_data)))
            self.assertTrue(os.path.exists(self.placed_path("c", module_data, manifest=True)))
            self.assertTrue(grown.available(None, module_data))
            again = grown.repair(None, module_data)
            self.assertEqual(again["repaired"], [], "a second repair has nothing to do")
        self.gone("a", "b")
        for module_data, payload in payloads.items():
            self.assertEqual(self.read(grown, module_data), payload)
            self.assertEqual(grown.get_size(None, module_data), len(payload))
        fresh = self.replica("a", "b", "c", write_quorum=1, state_dir=temp_dir(self))
        only_c = self.replica("c")
        for module_data, payload in payloads.items():
            self.assertEqual(self.read(fresh, module_data), payload)
            self.assertEqual(self.read(only_c, module_data), payload)
            self.assertEqual(only_c.scrub(None, module_data)["ok"], ["c"])

    def test_integrity_off_objects_are_refilled_unverified(self):
        before = self.replica("a", "b", integrity="off")
        module_data = self.store(before, b"older object" * 1000)
        self.assertNotIn("mf", json.loads(module_data)["copies"]["a"])
        grown = self.replica("a", "b", "c", integrity="off")
        report = grown.repair(None, module_data)
        self.assertEqual(report["repaired"], ["c"])
        self.gone("a", "b")
        self.assertEqual(self.read(grown, module_data), b"older object" * 1000)

    def test_platform_resend_fills_the_added_location(self):
        """available() is False while c lacks the copy; assign() (the platform's resend)
        fills c at its placed module_data."""
        module_data = self.store(self.replica("a", "b"), b"payload" * 100)
        grown = self.replica("a", "b", "c")
        self.assertFalse(grown.available(None, module_data))
        grown.assign(None, module_data, io.BytesIO(b"payload" * 100))
        self.assertTrue(grown.available(None, module_data))
        self.assertTrue(os.path.exists(self.placed_path("c", module_data)))

    def test_reads_prefer_recorded_copies_over_unfilled_placed_ones(self):
        module_data = self.store(self.replica("b", "c"), b"x" * 5000)
        grown = self.replica("a", "b", "c")  # a is first in order but holds nothing yet
        with grown.get_read_stream(None, module_data) as stream:
            self.assertEqual(stream.read(), b"x" * 5000)
        self.assertEqual(grown.statistics(None)["operations"]["read_failovers"], 0)

    def test_delete_removes_placed_copies(self):
        module_data = self.store(self.replica("a", "b"), b"doomed" * 100)
        grown = self.replica("a", "b", "c")
        grown.repair(None, module_data)
        self.assertTrue(os.path.exists(self.placed_path("c", module_data)))
        grown.delete(None, module_data)
        self.assertFalse(os.path.exists(self.placed_path("c", module_data)))
        self.assertFalse(os.path.exists(self.placed_path("c", module_data, manifest=True)))
        self.assertEqual(self.copies_of(module_data), 0)

    def test_location_without_placement_is_reported(self):
        module_data = self.store(self.replica("a", "b"), b"old")
        specs = [_spec(self.dirs["a"], "a"), _spec(self.dirs["b"], "b"),
                 _spec(self.dirs["c"], "c", module="%s.NoPlacementStorage" % __name__)]
        grown = ReplicaStorage(*specs)
        self.addCleanup(grown.close)
        report = grown.repair(None, module_data)
        self.assertIn("c", report["not_placeable"])
        self.assertIn("placement", report["not_placeable"]["c"])
        self.assertTrue(grown.available(None, module_data),
                        "a location that cannot hold old objects does not make them unavailable")
        stats = grown.statistics(None)
        entry = [item for item in stats["locations"] if item["name"] == "c"][0]
        self.assertIs(entry["placement"], False)
        self.assertIn("placement", entry["placement_note"])
        self.assertEqual(entry["fill"]["unplaceable"], 1)
        self.assertEqual(entry["fill"]["holds"], 0)
        fresh = self.store(grown, b"new")  # new objects do get a copy there
        self.assertIn("c", json.loads(fresh)["copies"])


class TestBrokenPlacement(GrowTestCase):

    def test_broken_new_data_for_makes_the_location_unplaceable(self):
        """A module whose new_data_for ignores the id, raises or returns garbage never
        receives copies of old objects; repair says why and the other copies are untouched."""
        before = self.replica("a", "b")
        payloads = {self.store(before, b"%d" % i): b"%d" % i for i in range(8)}
        older = self.replica("a", "b", integrity="off")
        payloads.update({self.store(older, b"old %d" % i): b"old %d" % i for i in range(4)})
        for broken in ("ConstantPlacementStorage", "CrashingPlacementStorage"):
            specs = [_spec(self.dirs["a"], "a"), _spec(self.dirs["b"], "b"),
                     _spec(self.dirs["c"], "c", module="%s.%s" % (__name__, broken))]
            grown = ReplicaStorage(*specs)
            self.addCleanup(grown.close)
            for module_data, payload in payloads.items():
                report = grown.repair(None, module_data)
                self.assertIn("c", report["not_placeable"], broken)
                self.assertNotIn("hunter2", json.dumps(report))
                self.assertEqual(sorted(report["present"]), ["a", "b"])
                self.assertEqual(self.read(grown, module_data), payload)
                self.assertTrue(grown.available(None, module_data))
            self.assertNotIn("hunter2", json.dumps(grown.statistics(None)))
            self.assertEqual(os.listdir(self.dirs["c"]), [], broken)


class TestConcurrentPlacement(GrowTestCase):

    def test_two_processes_filling_the_same_objects_agree(self):
        """Two replicas (two server processes, one state_dir) repair the same objects at
        once: each placed copy is written whole, once per place, and verifies."""
        payloads = {}
        before = self.replica("a", "b")
        for index in range(6):
            payload = os.urandom(20000 + index)
            payloads[self.store(before, payload)] = payload
        state_dir = temp_dir(self)
        replicas = [self.replica("a", "b", "c", state_dir=state_dir) for _ in range(2)]
        jobs = [(replica, module_data) for module_data in payloads for replica in replicas] * 2
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            reports = list(pool.map(lambda job: job[0].repair(None, job[1]), jobs, timeout=60))
        self.assertTrue(all(not report["failed"] for report in reports))
        self.gone("a", "b")
        for module_data, payload in payloads.items():
            self.assertEqual(self.read(replicas[0], module_data), payload)
            self.assertEqual(replicas[1].scrub(None, module_data)["ok"], ["c"])
        leftovers = [name for _, _, files in os.walk(self.dirs["c"]) for name in files
                     if name.startswith(".tmp-")]
        self.assertEqual(leftovers, [])
        self.assertEqual(sum(len(files) for _, _, files in os.walk(self.dirs["c"])),
                         2 * len(payloads), "one data file and one manifest per object")


class TestUnresolvableAddedLocation(GrowTestCase):

    def test_a_resolver_that_raises_costs_old_objects_nothing(self):
        """An added named location whose resolution fails (the platform's resolver raises
        anything) leaves old objects readable, deletable and repairable elsewhere."""
        modules = {name: SimpleStorage(self.dirs[name]) for name in "ab"}

        def resolve(name):
            if name == "c":
                raise RuntimeError("resolver broke")
            return modules[name]
        context = make_context(resolve)
        before = ReplicaStorage("a", "b")
        self.addCleanup(before.close)
        module_data = before.new_data(context)
        before.assign(context, module_data, io.BytesIO(b"old"))
        grown = ReplicaStorage("a", "b", "c")
        self.addCleanup(grown.close)
        with grown.get_read_stream(context, module_data) as stream:
            self.assertEqual(stream.read(), b"old")
        self.assertEqual(grown.get_size(context, module_data), 3)
        report = grown.repair(context, module_data)
        self.assertIn("resolver broke", report["not_placeable"]["c"])
        self.assertTrue(grown.available(context, module_data))
        stats = grown.statistics(context)
        self.assertNotIn("error", stats)
        self.assertIsNone([item for item in stats["locations"] if item["name"] == "c"][0][
            "placement"], "unknown while it cannot be resolved")
        grown.delete(context, module_data)
        self.assertEqual(self.copies_of(module_data), 0)


class TestCreatedWhileDown(GrowTestCase):

    def setUp(self):
        super().setUp()
        self.faulty = {name: FaultyStorage(SimpleStorage(self.dirs[name]), name=name)
                       for name in "abc"}
        self.context = make_context(dict(self.faulty))
        self.mirror = ReplicaStorage("a", "b", "c", write_quorum=2,
                                     state_dir=temp_dir(self), journal_interval=3600)
        self.addCleanup(self.mirror.close)

    def test_object_created_while_a_location_was_down_gets_its_copy(self):
        """Issue 14: c failed in new_data, so module_data names only a and b; the journal
        replay (background pass, repair()) gives c its copy at the placed module_data."""
        self.faulty["c"].fail("new_data")
        self.faulty["c"].down()
        module_data = self.mirror.new_data(self.context)
        self.assertNotIn("c", json.loads(module_data)["copies"])
        self.mirror.assign(self.context, module_data, io.BytesIO(b"while down" * 500))
        self.assertEqual(self.mirror.statistics(self.context)["journal"]["copies"], 1)
        self.faulty["c"].up()
        summary = self.mirror.repair(self.context)
        self.assertEqual(summary["copies"]["done"], 1)
        self.assertTrue(os.path.exists(self.placed_path("c", module_data)))
        self.assertTrue(self.mirror.available(self.context, module_data))

    def test_repair_of_the_object_fills_it_too(self):
        self.faulty["c"].fail("new_data")
        module_data = self.mirror.new_data(self.context)
        self.faulty["c"].clear()
        shutil.rmtree(self.dirs["c"])  # c is down during the write
        self.mirror.assign(self.context, module_data, io.BytesIO(b"z" * 3000))
        os.mkdir(self.dirs["c"])  # a new, empty disk under the same name
        report = self.mirror.repair(self.context, module_data)
        self.assertEqual(report["repaired"], ["c"])
        self.assertEqual(report["placed"], ["c"])


class TestReplaceLocation(GrowTestCase):

    def test_dead_location_replaced_under_the_same_name(self):
        """Issue 14: b's disk dies and is replaced by an empty one under the same name while
        c is added; one repair refills b (recorded module_data) and fills c (placed)."""
        module_data = self.store(self.replica("a", "b"), b"keep me" * 300)
        shutil.rmtree(self.dirs["b"])
        os.mkdir(self.dirs["b"])
        grown = self.replica("a", "b", "c")
        report = grown.repair(None, module_data)
        self.assertEqual(sorted(report["repaired"]), ["b", "c"])
        self.assertEqual(self.copies_of(module_data), 3)
        self.gone("a")
        self.assertEqual(self.read(grown, module_data), b"keep me" * 300)


class TestDrain(GrowTestCase):

    def test_drain_then_remove_keeps_write_quorum(self):
        """Issue 14: a is drained (write_quorum 2 over a, b, c): repair copies every object
        to c first, statistics say when a can be removed; after removal every object keeps
        at least write_quorum copies and reads back."""
        before = self.replica("a", "b", write_quorum=2)
        payloads = {}
        for index in range(4):
            payload = b"%d" % index * 2000
            payloads[self.store(before, payload)] = payload
        state_dir = temp_dir(self)
        draining = self.replica("a", "b", "c", draining=("a",), write_quorum=2,
                                state_dir=state_dir)
        draining.repair(None)  # a repair pass starts (vsm repair's journal step)
        for module_data in payloads:
            report = draining.repair(None, module_data)
            self.assertEqual(report["repaired"], ["c"])
            self.assertEqual(report["below_quorum_without_draining"], 0)
        stats = draining.statistics(None)
        self.assertEqual(stats["draining"]["objects"], 4)
        self.assertEqual(stats["draining"]["locations"]["a"], {"needed": 0, "removable": True})
        self.assertEqual(stats["options"]["draining"], ["a"])
        new = self.store(draining, b"new object")
        self.assertNotIn("a", json.loads(new)["copies"], "a draining location gets no new copy")
        payloads[new] = b"new object"
        shrunk = self.replica("b", "c", write_quorum=2)
        self.gone("a")
        for module_data, payload in payloads.items():
            self.assertGreaterEqual(self.copies_of(module_data), 2)
            self.assertEqual(self.read(shrunk, module_data), payload)
            self.assertTrue(shrunk.available(None, module_data))

    def test_drain_without_room_says_not_removable(self):
        """With nowhere to copy to (c cannot place old objects), a stays needed."""
        module_data = self.store(self.replica("a", "b", write_quorum=2), b"stuck")
        specs = [_spec(self.dirs["a"], "a", draining=True), _spec(self.dirs["b"], "b"),
                 _spec(self.dirs["c"], "c", module="%s.NoPlacementStorage" % __name__)]
        draining = ReplicaStorage(*specs, write_quorum=2)
        self.addCleanup(draining.close)
        draining.repair(None)
        report = draining.repair(None, module_data)
        self.assertEqual(report["below_quorum_without_draining"], 1)
        drain = draining.statistics(None)["draining"]
        self.assertEqual(drain["locations"]["a"], {"needed": 1, "removable": False})

    def test_draining_location_is_not_refilled(self):
        module_data = self.store(self.replica("a", "b", "c"), b"data" * 10)
        os.remove(os.path.join(self.dirs["a"], *json.loads(module_data)["copies"]["a"]["md"]
                               .split("/")))
        draining = self.replica("a", "b", "c", draining=("a",))
        report = draining.repair(None, module_data)
        self.assertEqual(report["repaired"], [])
        self.assertTrue(draining.available(None, module_data),
                        "a draining location is not required to hold copies")

    def test_copies_placed_before_the_drain_are_read_and_deleted(self):
        """A location added, filled, then drained: its placed copies still serve reads and
        are deleted with the object (no orphans); a placed copy it lacks is not 'missing'."""
        first = self.store(self.replica("a", "b"), b"first" * 100)
        second = self.store(self.replica("a", "b"), b"second" * 100)
        self.replica("a", "b", "c").repair(None, first)
        draining = self.replica("a", "b", "c", draining=("c",))
        self.gone("a")
        self.assertEqual(self.read(draining, first), b"first" * 100)
        report = draining.repair(None, second)
        self.assertEqual(report["missing"], [], "c is draining: not refilled, not missing")
        self.assertEqual(report["repaired"], [])
        self.assertEqual(draining.scrub(None, second)["missing"], [])
        draining.delete(None, first)
        self.assertFalse(os.path.exists(self.placed_path("c", first)))
        self.assertFalse(os.path.exists(self.placed_path("c", first, manifest=True)))

    def test_draining_every_location_is_refused(self):
        with self.assertRaises(ConfigurationError) as caught:
            self.replica("a", "b", draining=("a", "b"))
        self.assertIn("draining", str(caught.exception))
        with self.assertRaises(ConfigurationError):
            self.replica("a", "b", draining=("a",), write_quorum=2)

    def test_draining_spec_forms(self):
        replica = ReplicaStorage(
            json.dumps({"url": "file://" + self.dirs["a"], "name": "a", "draining": True}),
            json.dumps({"module": "simple.simple.SimpleStorage", "args": [self.dirs["b"]],
                        "name": "b"}), "file://%s#c" % self.dirs["c"])
        self.addCleanup(replica.close)
        self.assertEqual(replica.settings.describe()["draining"], ["a"])
        for bad in ({"url": "file://" + self.dirs["a"], "draining": "yes"},
                    {"url": "file://" + self.dirs["a"], "args": []}, {"draining": True}):
            with self.assertRaises(ConfigurationError, msg=bad):
                ReplicaStorage(json.dumps(bad), "file://" + self.dirs["b"])


class TestFillCounts(GrowTestCase):

    def test_fill_is_shared_through_the_state_dir(self):
        """Two replicas (two server processes) over the same state_dir add up one pass."""
        module_datas = [self.store(self.replica("a", "b"), b"%d" % i) for i in range(4)]
        state_dir = temp_dir(self)
        first = self.replica("a", "b", "c", state_dir=state_dir)
        second = self.replica("a", "b", "c", state_dir=state_dir)
        first.repair(None)
        for index, module_data in enumerate(module_datas):
            (first if index % 2 else second).repair(None, module_data)
        for replica in (first, second):
            stats = replica.statistics(None)
            fill = {item["name"]: item["fill"] for item in stats["locations"]}
            self.assertEqual(fill["c"]["holds"], 4)
            self.assertEqual(fill["c"]["objects"], 4)
            self.assertEqual(fill["c"]["progress"], 1.0)
            self.assertEqual(stats["repair_pass"]["current"]["objects"], 4)
        first.repair(None)  # a new pass: the finished one is shown until it counts objects
        stats = second.statistics(None)
        self.assertEqual(stats["repair_pass"]["last"]["objects"], 4)
        self.assertEqual(stats["repair_pass"]["current"]["objects"], 0)
        self.assertEqual({item["name"]: item["fill"]["holds"] for item in stats["locations"]},
                         {"a": 4, "b": 4, "c": 4})

    def test_missing_copies_are_counted(self):
        module_data = self.store(self.replica("a", "b"), b"q")
        grown = self.replica("a", "b", "c")
        shutil.rmtree(self.dirs["c"])  # c is unreachable during the repair
        grown.repair(None, module_data)
        fill = {item["name"]: item["fill"] for item in grown.statistics(None)["locations"]}
        self.assertEqual(fill["c"]["missing"], 1)
        self.assertEqual(fill["c"]["progress"], 0.0)
        self.assertEqual(fill["a"]["progress"], 1.0)


class TestPlacementExpansion(GrowTestCase):

    def test_recorded_entries_win_and_manifests_get_a_second_id(self):
        module_data = self.store(self.replica("a", "b"), b"x")
        settings = parse_settings([_spec(self.dirs[name], name) for name in "abc"], {})
        locations = [Location(spec, 10, 60.0) for spec in settings.locations]
        layout = expand(None, formats.decode(module_data), locations)
        data = layout.data
        self.assertEqual(layout.placed, ("c",))
        self.assertEqual(dict(layout.unplaced), {})
        self.assertEqual(data.copies["a"]["md"], json.loads(module_data)["copies"]["a"]["md"])
        object_id = data.object_id
        self.assertEqual(data.copies["c"]["md"], sharded_key_for(object_id))
        self.assertEqual(data.copies["c"]["mf"], sharded_key_for(manifest_id(object_id)))
        self.assertNotEqual(manifest_id(object_id), object_id)
        self.assertRegex(manifest_id(object_id), r"\A[0-9a-f]{32}\Z")
        self.assertEqual(data.text, module_data, "the stored module_data is never changed")
        for location in locations:
            location.close()

if __name__ == "__main__":
    unittest.main()
