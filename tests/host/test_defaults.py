"""The default configuration: three local locations and the ``mirror`` policy."""
import hashlib
import os
import unittest

from modules.host import make_app
from tests.host.support import CONFIG, PASSWORD, HostTestCase, replica_available, stored_files


@unittest.skipUnless(replica_available(), "the replica module is not importable")
class TestDefaultConfiguration(HostTestCase):

    create_defaults = True

    def location(self, name: str) -> str:
        return os.path.join(self.host.data_dir, "locations", name)

    def test_first_start_configures_three_locations_and_mirror(self):
        modules = {item["name"]: item for item in
                   self.host.request("GET", CONFIG).json()["vendor_modules"]}
        self.assertEqual(sorted(modules), ["loc-a", "loc-b", "loc-c", "mirror"])
        for name in ("loc-a", "loc-b", "loc-c"):
            self.assertEqual(modules[name]["module"], "simple.simple.SimpleStorage")
            self.assertEqual(modules[name]["args"], [self.location(name)])
            self.assertTrue(os.path.isdir(self.location(name)))
        self.assertEqual(modules["mirror"]["module"], "replica.replica.ReplicaStorage")
        self.assertEqual(modules["mirror"]["args"][:3], ["loc-a", "loc-b", "loc-c"])
        mirror = self.host.request("GET", CONFIG + "mirror").json()
        self.assertTrue(mirror["capabilities"]["repair"])
        self.assertFalse(mirror["statistics"]["degraded"])
        self.assertEqual([entry["name"] for entry in mirror["statistics"]["locations"]],
                         ["loc-a", "loc-b", "loc-c"])

    def test_every_object_is_stored_on_every_location(self):
        data = os.urandom(1024 * 1024 + 5)
        self.assertEqual(self.host.request("PUT", "/objects/mirror/a", data=data).status_code, 201)
        for name in ("loc-a", "loc-b", "loc-c"):
            self.assertEqual(len(stored_files(self.location(name))), 1, name)
        self.assertEqual(self.host.request("GET", "/objects/mirror/a").content, data)
        self.assertEqual(self.host.request("DELETE", "/objects/mirror/a").status_code, 204)
        for name in ("loc-a", "loc-b", "loc-c"):
            self.assertEqual(stored_files(self.location(name)), [], name)

    def test_new_user_walkthrough_survives_a_renamed_location(self):
        """Store, read, rename a location's directory, still read and write, see it degraded,
        put the directory back, repair, healthy again with every copy in place."""
        first = os.urandom(700000)
        self.host.request("PUT", "/objects/mirror/first.bin", data=first)
        os.rename(self.location("loc-b"), self.location("loc-b") + ".renamed")
        for _ in range(3):
            self.assertEqual(self.host.request("GET", "/objects/mirror/first.bin").content, first)
        ranged = self.host.request("GET", "/objects/mirror/first.bin",
                                   headers={"Range": "bytes=-1000"})
        self.assertEqual(ranged.content, first[-1000:])
        second = os.urandom(300000)
        response = self.host.request("PUT", "/objects/mirror/second.bin", data=second)
        self.assertEqual(response.status_code, 201, "two of three copies meet the quorum")
        stats = self.host.request("GET", CONFIG + "mirror").json()["statistics"]
        self.assertTrue(stats["degraded"])
        health = {entry["name"]: entry["health"] for entry in stats["locations"]}
        self.assertNotEqual(health["loc-b"], "ok")
        self.assertEqual(health["loc-a"], "ok")

        os.rename(self.location("loc-b") + ".renamed", self.location("loc-b"))
        journal = self.host.request("POST", CONFIG + "mirror/repair", json={})
        self.assertEqual(journal.status_code, 200, journal.text)
        objects = self.host.request("POST", CONFIG + "mirror/repair",
                                    json={"after": "", "limit": 10})
        self.assertEqual(objects.status_code, 200, objects.text)
        self.assertEqual(objects.json()["failed"], [])
        self.assertEqual(objects.json()["done"], 2)
        for name in ("loc-a", "loc-b", "loc-c"):
            self.assertEqual(len(stored_files(self.location(name))), 2, name)
        self.assertFalse(self.host.request("GET", CONFIG + "mirror").json()["statistics"][
            "degraded"])
        digest = hashlib.sha256(second).hexdigest()
        self.assertEqual(self.host.request("GET", "/objects/mirror/second.bin").headers["ETag"],
                         '"%s"' % digest)

    def test_locations_used_by_mirror_cannot_be_removed(self):
        self.assertJsonError(self.host.request("DELETE", CONFIG + "loc-a"), 409, "mirror")

    def test_defaults_are_created_once(self):
        for name in ("mirror", "loc-a", "loc-b", "loc-c"):
            self.assertEqual(self.host.request("DELETE", CONFIG + name).status_code, 204, name)
        self.host.restart()
        self.assertEqual(self.host.request("GET", CONFIG).json()["vendor_modules"], [])

    def test_second_app_on_the_same_directory_adds_nothing(self):
        other = make_app(self.host.data_dir, admin_password=PASSWORD)
        try:
            self.assertEqual(other.created_defaults, [])
            self.assertEqual(len(other.store.list_modules()), 4)
        finally:
            other.close()
