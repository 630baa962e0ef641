"""Growing and shrinking a mirror through the host, end to end (issue 14).

A mirror over ``a`` and ``b`` holds 1,000 small objects; ``c`` is added to
its arguments and ``vsm repair`` runs; with ``a`` and ``b`` gone every object
reads back identical from ``c`` (through the host, and through a new replica
instance with an empty state directory). Then ``a`` is drained, repaired and
removed, and every object keeps at least ``write_quorum`` copies.
"""
import concurrent.futures
import hashlib
import json
import os
import shutil
import tempfile
import unittest

import requests

from modules.host.commands import EXIT_OK
from modules.host.status_page import ModuleView, render_status_page
from modules.host.store import ModuleConfig
from modules.keys import sharded_key_for
from replica.placement import manifest_id
from replica.replica import ReplicaStorage
from tests.host.support import CONFIG, replica_available
from tests.host.test_cli import CliTestCase

#: Objects in the mirror (small: the test is about placement, not bandwidth).
COUNT = 1000
#: Requests sent at once (the host serves them on its threads).
PARALLEL = 4
#: The disks live in memory when the machine has a tmpfs: fsync is what costs here.
_DISK_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _spec(directory: str, name: str, draining: bool = False) -> str:
    spec = {"module": "simple.simple.SimpleStorage", "args": [directory], "name": name}
    if draining:
        spec["draining"] = True
    return json.dumps(spec)


@unittest.skipUnless(replica_available(), "the replica module is not importable")
class TestGrowThroughTheHost(CliTestCase):

    def setUp(self):
        super().setUp()
        disks = tempfile.mkdtemp(prefix="vsm-grow-disks-", dir=_DISK_ROOT)
        self.addCleanup(shutil.rmtree, disks, True)
        self.dirs = {}
        for name in "abc":
            self.dirs[name] = os.path.join(disks, name)
            os.mkdir(self.dirs[name])
        self.state_dir = os.path.join(self.host.data_dir, "mirror-state")
        self.http = requests.Session()
        self.addCleanup(self.http.close)
        self.url = self.host.url + "/objects/mirror/"

    def configure_mirror(self, names, draining=(), write_quorum=2):
        args = [_spec(self.dirs[name], name, name in draining) for name in names]
        args += ["write_quorum=%d" % write_quorum, "state_dir=" + self.state_dir]
        self.host.configure("mirror", "replica.replica.ReplicaStorage", args)

    def statistics(self):
        response = self.host.request("GET", CONFIG + "mirror")
        self.assertEqual(response.status_code, 200, response.text)
        return response.json()["statistics"]

    def module_datas(self):
        rows = self.host.app.store.list_objects("mirror", after="", limit=COUNT + 10)
        self.assertEqual(len(rows), COUNT)
        return [row.module_data for row in rows]

    def copies(self, module_data: str) -> int:
        """Count the disks holding the object's data, at recorded or placed module_data."""
        recorded = json.loads(module_data)["copies"]
        object_id = json.loads(module_data)["id"]
        held = 0
        for name, directory in self.dirs.items():
            key = recorded[name]["md"] if name in recorded else sharded_key_for(object_id)
            held += os.path.exists(os.path.join(directory, *key.split("/")))
        return held

    def parallel(self, function, *iterables):
        """Map ``function`` over ``iterables`` on PARALLEL threads; return results in order."""
        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
            return list(pool.map(function, *iterables, timeout=120))

    def put(self, key: str, payload: bytes) -> None:
        response = self.http.put(self.url + key, data=payload, auth=self.host.session.auth,
                                 timeout=(5, 30))
        self.assertIn(response.status_code, (200, 201, 204), response.text)

    def get_digest(self, key: str) -> str:
        response = self.http.get(self.url + key, auth=self.host.session.auth, timeout=(5, 30))
        self.assertEqual(response.status_code, 200, response.text)
        return hashlib.sha256(response.content).hexdigest()

    def repair(self, *options: str):
        code, out, err = self.vsm("repair", "--json", "--no-progress", *options, "mirror")
        self.assertEqual(code, EXIT_OK, out + err)
        return json.loads(out)["modules"][0]

    def test_add_c_lose_a_and_b_then_drain_and_remove(self):
        self.configure_mirror("ab")
        payloads = {"item-%04d" % index: b"object %04d " % index + os.urandom(index % 64)
                    for index in range(COUNT)}
        self.parallel(self.put, payloads.keys(), payloads.values())
        digests = {key: hashlib.sha256(payload).hexdigest() for key, payload in payloads.items()}
        keys = sorted(digests)
        before = self.module_datas()

        # c is added: vsm repair gives every object a copy there
        self.configure_mirror("abc")
        report = self.repair("--rate-mib", "64")
        self.assertEqual(report["objects"], COUNT)
        self.assertEqual(report["failed"], [])
        self.assertEqual(report["summary"]["placed"], COUNT)
        self.assertEqual(self.module_datas(), before, "the stored module_data never changes")
        fill = {entry["name"]: entry["fill"] for entry in self.statistics()["locations"]}
        self.assertEqual(fill["c"]["holds"], COUNT)
        self.assertEqual(fill["c"]["progress"], 1.0)
        page = self.host.request("GET", "/").text
        self.assertIn("holds %d of %d" % (COUNT, COUNT), page)

        # a and b are gone: every object reads back from c, through the host...
        for name in "ab":
            os.rename(self.dirs[name], self.dirs[name] + ".away")
        self.assertEqual(self.parallel(self.get_digest, keys), [digests[key] for key in keys])
        # ...and through a new replica instance with an empty state directory
        fresh = ReplicaStorage(*[_spec(self.dirs[name], name) for name in "abc"],
                               state_dir=os.path.join(self.work, "empty-state"))
        self.addCleanup(fresh.close)
        for key, module_data in zip(keys, before):
            self.assertFalse(fresh.available(None, module_data), "a and b are gone")
            with fresh.get_read_stream(None, module_data) as stream:
                self.assertEqual(hashlib.sha256(stream.read()).hexdigest(), digests[key], key)
            placed = os.path.join(self.dirs["c"], *sharded_key_for(
                manifest_id(json.loads(module_data)["id"])).split("/"))
            self.assertTrue(os.path.exists(placed), "the manifest is placed too")
        fresh.close()
        for name in "ab":
            os.rename(self.dirs[name] + ".away", self.dirs[name])

        # a is drained, repaired, removed: every object keeps write_quorum (2) copies
        self.configure_mirror("abc", draining=("a",))
        report = self.repair()
        self.assertEqual(report["failed"], [])
        self.assertEqual(report["draining"], {"a": {"needed": 0, "removable": True}})
        self.assertEqual(report["summary"]["below_quorum_without_draining"], 0)
        drain = self.statistics()["draining"]
        self.assertEqual(drain["objects"], COUNT)
        self.assertEqual(drain["locations"]["a"], {"needed": 0, "removable": True})
        page = self.host.request("GET", "/").text
        self.assertIn("can be removed", page)
        self.configure_mirror("bc")
        shutil.rmtree(self.dirs.pop("a"))
        shrunk = ReplicaStorage(*[_spec(self.dirs[name], name) for name in "bc"],
                                state_dir=os.path.join(self.work, "other-state"))
        self.addCleanup(shrunk.close)
        for module_data in before:
            self.assertGreaterEqual(self.copies(module_data), 2)
            self.assertTrue(shrunk.available(None, module_data))
        self.assertEqual(self.parallel(self.get_digest, keys[::50]),
                         [digests[key] for key in keys[::50]])
        report = self.repair()
        self.assertEqual(report["failed"], [])
        self.assertEqual(report["summary"].get("repaired", 0), 0, "nothing left to refill")


    def test_vsm_repair_says_when_a_draining_location_can_be_removed(self):
        """Issue 14: with the new disk not mounted yet, a cannot go; once it is, it can."""
        self.configure_mirror("ab")
        self.parallel(self.put, ["k%d" % index for index in range(5)], [b"v"] * 5)
        os.rmdir(self.dirs["c"])  # c is configured but not mounted yet
        self.configure_mirror("abc", draining=("a",))
        code, out, err = self.vsm("repair", "--no-progress", "mirror")
        self.assertIn("draining a: 5 object(s) still need its copy; not yet", out, out + err)
        self.assertNotIn("can be removed", self.host.request("GET", "/").text)
        os.mkdir(self.dirs["c"])
        code, out, err = self.vsm("repair", "--no-progress", "mirror")
        self.assertEqual(code, EXIT_OK, out + err)
        self.assertIn("draining a: can be removed now", out)
        self.assertIn("draining: can be removed", self.host.request("GET", "/").text)


class TestFillOnTheStatusPage(unittest.TestCase):
    """The status page's fill line per replica location (issue 14), from statistics alone."""

    def page(self, location, objects=10):
        config = ModuleConfig("mirror", "replica.replica.ReplicaStorage")
        statistics = {"replicas": 1, "healthy": 1, "locations": [dict(location, name="d",
                                                                        health="ok")]}
        view = ModuleView(config, statistics, None, objects, 0)
        return render_status_page([view], "/data").decode("utf-8")

    def test_holds_of_the_index_and_drain_state(self):
        fill = {"objects": 10, "holds": 4, "needed": 3}
        page = self.page({"fill": fill, "draining": True, "placement": True})
        self.assertIn("holds 4 of 10 objects (40%", page)
        self.assertIn("draining: 3 objects still need it", page)
        page = self.page({"fill": dict(fill, holds=0, needed=0), "draining": True})
        self.assertIn("draining: can be removed", page)
        page = self.page({"fill": dict(fill, objects=6, needed=0), "draining": True})
        self.assertNotIn("can be removed", page, "a pass over 6 of 10 objects proves nothing")

    def test_location_without_placement_says_so(self):
        page = self.page({"fill": None, "placement": False,
                          "placement_note": "cannot receive objects created before it was added"})
        self.assertIn("cannot receive objects created before it was added", page)
        self.assertNotIn("holds", page)


if __name__ == "__main__":
    unittest.main()
