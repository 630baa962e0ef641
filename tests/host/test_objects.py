"""Objects over real HTTP: PUT, GET, HEAD, DELETE, keys, overwrite, listing, copy."""
import hashlib
import json
import os
import random
import threading
import unittest
from urllib.parse import quote

from modules.host.client import object_path

from tests.host.support import HostTestCase, replica_available, stored_files

MIB = 1024 * 1024


def data_of(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


class TestObjects(HostTestCase):

    def setUp(self):
        super().setUp()
        self.directory = self.host.simple("store")

    def put(self, key, data, policy="store", **kwargs):
        return self.host.request("PUT", object_path(policy, key), data=data, **kwargs)

    def get(self, key, policy="store", **kwargs):
        return self.host.request("GET", object_path(policy, key), **kwargs)

    def test_round_trip_of_sizes_around_chunk_boundaries(self):
        for size in (0, 1, MIB, 3 * MIB + 12345):
            with self.subTest(size=size):
                data = data_of(size, seed=size)
                response = self.put("sized/%d" % size, data)
                self.assertEqual(response.status_code, 201, response.text)
                self.assertEqual(response.json()["size"], size)
                self.assertEqual(response.json()["sha256"], hashlib.sha256(data).hexdigest())
                got = self.get("sized/%d" % size)
                self.assertEqual(got.status_code, 200)
                self.assertEqual(got.content, data)
                self.assertEqual(got.headers["Content-Length"], str(size))

    def test_head_describes_without_body(self):
        data = b"x" * 1000
        self.put("h", data, headers={"Content-Type": "text/plain"})
        response = self.host.request("HEAD", object_path("store", "h"))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, b"")
        self.assertEqual(response.headers["Content-Length"], "1000")
        self.assertEqual(response.headers["Accept-Ranges"], "bytes")
        self.assertEqual(response.headers["Content-Type"], "text/plain")
        self.assertEqual(response.headers["ETag"], '"%s"' % hashlib.sha256(data).hexdigest())
        self.assertIn("GMT", response.headers["Last-Modified"])
        missing = self.host.request("HEAD", object_path("store", "nope"))
        self.assertEqual(missing.status_code, 404)

    def test_delete_removes_object_and_data(self):
        self.put("gone", b"bye")
        self.assertEqual(len(stored_files(self.directory)), 1)
        response = self.host.request("DELETE", object_path("store", "gone"))
        self.assertEqual(response.status_code, 204)
        self.assertJsonError(self.get("gone"), 404, "gone")
        self.assertEqual(stored_files(self.directory), [])
        self.assertJsonError(self.host.request("DELETE", object_path("store", "gone")), 404)

    def test_keys_are_any_utf8_text_and_never_paths(self):
        keys = ["photos/été/ünï 😀.txt", "a/../../etc/passwd", "./dot", "..", "q?x=1#frag",
                "sp ace/%41", "trailing/", "/leading", "a//b", "plus+sign&amp"]
        for index, key in enumerate(keys):
            with self.subTest(key=key):
                response = self.put(key, key.encode("utf-8"))
                self.assertEqual(response.status_code, 201, response.text)
                self.assertEqual(response.json()["key"], key)
                self.assertEqual(self.get(key).content, key.encode("utf-8"))
        listing = self.host.request("GET", "/objects/store/", params={"limit": 100}).json()
        self.assertEqual(sorted(item["key"] for item in listing["objects"]), sorted(keys))
        for path in stored_files(self.directory):
            self.assertRegex(path, r"\A[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}\Z")
        self.assertFalse(os.path.exists(os.path.join(self.directory, "photos")))

    def test_overwrite_replaces_and_deletes_old_data(self):
        first = self.put("k", b"first version")
        self.assertEqual(first.status_code, 201)
        second = self.put("k", b"second")
        self.assertEqual(second.status_code, 200, "a replaced object answers 200")
        self.assertEqual(self.get("k").content, b"second")
        self.assertEqual(len(stored_files(self.directory)), 1, "the old data must be deleted")

    def test_failed_overwrite_keeps_the_old_object(self):
        picky_dir = os.path.join(self.host.data_dir, "picky")
        os.mkdir(picky_dir)
        self.host.configure("picky", "tests.host.fixture_modules.PickyStorage", [picky_dir])
        self.assertEqual(self.put("k", b"good data", policy="picky").status_code, 201)
        refused = self.put("k", b"FULL of data", policy="picky")
        self.assertJsonError(refused, 507)
        self.assertEqual(refused.json()["error"], "InsufficientStorage")
        self.assertEqual(self.get("k", policy="picky").content, b"good data")
        self.assertEqual(len(stored_files(picky_dir)), 1)

    def test_chunked_upload(self):
        pieces = [data_of(100000, seed=n) for n in range(7)]
        response = self.put("chunked", iter(pieces))
        self.assertEqual(response.status_code, 201, response.text)
        self.assertEqual(response.json()["size"], 700000)
        self.assertEqual(self.get("chunked").content, b"".join(pieces))

    def test_content_type_is_kept(self):
        self.put("page", b"<p>", headers={"Content-Type": "text/html; charset=utf-8"})
        self.assertEqual(self.get("page").headers["Content-Type"], "text/html; charset=utf-8")
        self.put("plain", b"x")
        self.assertEqual(self.get("plain").headers["Content-Type"], "application/octet-stream")

    def test_if_none_match_answers_304(self):
        etag = self.put("cached", b"abc").headers["ETag"]
        response = self.get("cached", headers={"If-None-Match": etag})
        self.assertEqual(response.status_code, 304)
        self.assertEqual(response.content, b"")
        self.assertEqual(self.get("cached", headers={"If-None-Match": '"other"'}).status_code, 200)

    def test_listing_pages_and_prefixes(self):
        for index in range(25):
            self.put("dir%d/item%02d" % (index % 2, index), b"%d" % index)
        page = self.host.request("GET", "/objects/store/", params={"limit": 10}).json()
        self.assertEqual(len(page["objects"]), 10)
        seen = [item["key"] for item in page["objects"]]
        while page["next"]:
            page = self.host.request("GET", "/objects/store/",
                                     params={"limit": 10, "after": page["next"]}).json()
            seen += [item["key"] for item in page["objects"]]
        self.assertEqual(len(seen), 25)
        self.assertEqual(seen, sorted(seen))
        prefixed = self.host.request("GET", "/objects/store/", params={"prefix": "dir1/"}).json()
        self.assertEqual(len(prefixed["objects"]), 12)
        self.assertJsonError(self.host.request("GET", "/objects/store/", params={"limit": "x"}),
                             400)
        self.assertJsonError(self.host.request("GET", "/objects/nope/"), 404)

    def test_unknown_policy_and_bad_requests(self):
        self.assertJsonError(self.put("k", b"x", policy="nope"), 404, "nope")
        self.assertJsonError(self.get("k", policy="nope"), 404)
        self.assertJsonError(self.host.request("GET", "/nowhere"), 404)
        self.assertJsonError(self.host.request("PUT", "/objects/store/"), 400)
        self.assertJsonError(self.host.request("PUT", "/objects/store"), 400)
        response = self.host.request("POST", object_path("store", "k"), data=b"x")
        self.assertJsonError(response, 405)
        self.assertIn("PUT", response.headers["Allow"])
        too_long = "k" * 5000
        self.assertJsonError(self.put(too_long, b"x"), 400, "bytes")
        bad_utf8 = self.host.request("GET", "/objects/store/%FF%FE")
        self.assertJsonError(bad_utf8, 400, "UTF-8")


    def test_listing_pages_are_bounded_in_bytes(self):
        """attack2 finding: a listing page was built whole in memory, whatever its size:
        8 concurrent listings of 3000 objects with 4 KiB keys and metadata (25 MB of JSON
        each) took a worker from 53 MiB to 660 MiB. A page now also ends at
        MAX_LIST_BYTES, and ``next`` goes on from there."""
        from unittest import mock
        meta = {"X-Object-Meta-M%d" % index: "v" * 200 for index in range(10)}
        keys = ["k%03d-%s" % (index, "x" * 500) for index in range(45)]
        for key in keys:
            self.assertEqual(self.put(key, b"", headers=meta).status_code, 201)
        with mock.patch("modules.host.objects.MAX_LIST_BYTES", 20000, create=True):
            seen, after, pages = [], "", 0
            while pages < 50:
                page = self.host.request("GET", "/objects/store/", params={
                    "after": after, "limit": "1000"}).json()
                pages += 1
                self.assertLessEqual(len(json.dumps(page["objects"])), 20000 + 4000)
                seen.extend(item["key"] for item in page["objects"])
                if page["next"] is None:
                    break
                self.assertEqual(page["next"], seen[-1])
                after = page["next"]
        self.assertEqual(seen, keys, "every key once, in order")
        self.assertGreater(pages, 3)
        for limit in ("1", "44", "45", "46"):
            page = self.host.request("GET", "/objects/store/", params={"limit": limit}).json()
            self.assertEqual(len(page["objects"]), min(int(limit), 45))
            self.assertEqual(page["next"], keys[int(limit) - 1] if int(limit) < 45 else None)

class TestRanges(HostTestCase):
    """Single byte ranges, checked against get_size before reading."""

    SIZE = 3 * MIB + 777

    def setUp(self):
        super().setUp()
        self.host.simple("store")
        self.data = data_of(self.SIZE, seed=9)
        self.assertEqual(self.host.request("PUT", "/objects/store/r", data=self.data).status_code,
                         201)

    def ranged(self, value, key="r"):
        return self.host.request("GET", "/objects/store/" + key, headers={"Range": value})

    def assertPartial(self, value, first, last):
        response = self.ranged(value)
        self.assertEqual(response.status_code, 206, value)
        self.assertEqual(response.content, self.data[first:last + 1], value)
        self.assertEqual(response.headers["Content-Range"],
                         "bytes %d-%d/%d" % (first, last, self.SIZE))
        self.assertEqual(response.headers["Content-Length"], str(last - first + 1))

    def test_first_bytes(self):
        self.assertPartial("bytes=0-0", 0, 0)
        self.assertPartial("bytes=0-99", 0, 99)

    def test_middle_across_chunk_boundaries(self):
        self.assertPartial("bytes=%d-%d" % (MIB - 10, 2 * MIB + 10), MIB - 10, 2 * MIB + 10)

    def test_open_ended_and_last_bytes(self):
        self.assertPartial("bytes=%d-" % (self.SIZE - 1000), self.SIZE - 1000, self.SIZE - 1)
        self.assertPartial("bytes=100-%d" % (self.SIZE * 2), 100, self.SIZE - 1)

    def test_suffix(self):
        self.assertPartial("bytes=-500", self.SIZE - 500, self.SIZE - 1)
        self.assertPartial("bytes=-%d" % (self.SIZE + 5), 0, self.SIZE - 1)

    def test_unsatisfiable_answers_416_with_size(self):
        for value in ("bytes=%d-" % self.SIZE, "bytes=%d-%d" % (self.SIZE + 5, self.SIZE + 9),
                      "bytes=-0"):
            with self.subTest(value=value):
                response = self.ranged(value)
                self.assertJsonError(response, 416)
                self.assertEqual(response.headers["Content-Range"], "bytes */%d" % self.SIZE)

    def test_empty_object_has_no_satisfiable_range(self):
        self.host.request("PUT", "/objects/store/empty", data=b"")
        response = self.ranged("bytes=0-", key="empty")
        self.assertEqual(response.status_code, 416)
        self.assertEqual(response.headers["Content-Range"], "bytes */0")

    def test_ignored_ranges_send_everything(self):
        for value in ("bytes=5-3", "bytes=0-1,5-6", "items=0-1", "bytes=abc"):
            with self.subTest(value=value):
                response = self.ranged(value)
                self.assertEqual(response.status_code, 200)
                self.assertEqual(len(response.content), self.SIZE)

    def test_head_with_range(self):
        response = self.host.request("HEAD", "/objects/store/r", headers={"Range": "bytes=-10"})
        self.assertEqual(response.status_code, 206)
        self.assertEqual(response.headers["Content-Length"], "10")


class TestCopy(HostTestCase):
    """Server-side copy with X-Copy-From."""

    def setUp(self):
        super().setUp()
        self.source_dir = self.host.simple("source")
        self.target_dir = self.host.simple("target")
        self.data = data_of(2 * MIB + 3, seed=4)
        self.host.request("PUT", "/objects/source/orig", data=self.data,
                          headers={"Content-Type": "image/png"})

    def copy(self, target, source, **kwargs):
        return self.host.request("PUT", target, headers={"X-Copy-From": source}, **kwargs)

    def test_copy_within_a_module_makes_independent_data(self):
        response = self.copy("/objects/source/dup", "/objects/source/orig")
        self.assertEqual(response.status_code, 201, response.text)
        self.assertEqual(response.json()["size"], len(self.data))
        self.assertEqual(len(stored_files(self.source_dir)), 2)
        self.host.request("DELETE", "/objects/source/orig")
        copy = self.host.request("GET", "/objects/source/dup")
        self.assertEqual(copy.content, self.data)
        self.assertEqual(copy.headers["Content-Type"], "image/png")

    def test_copy_to_another_module(self):
        response = self.copy("/objects/target/" + quote("nouvelle clé"), "/objects/source/orig")
        self.assertEqual(response.status_code, 201, response.text)
        self.assertEqual(self.host.request("GET", "/objects/target/nouvelle clé").content,
                         self.data)
        self.assertEqual(len(stored_files(self.target_dir)), 1)
        self.host.request("DELETE", "/objects/source/orig")
        self.assertEqual(self.host.request("GET", "/objects/target/nouvelle clé").content,
                         self.data)

    def test_copy_skips_transfer_when_target_already_has_the_data(self):
        """The seeds: available() True means another subsystem replicated it; no assign."""
        self.host.configure("alias", "simple.simple.SimpleStorage", [self.source_dir])
        response = self.copy("/objects/alias/same", "/objects/source/orig")
        self.assertEqual(response.status_code, 201, response.text)
        self.assertEqual(len(stored_files(self.source_dir)), 1, "nothing must be copied")
        self.assertEqual(self.host.request("GET", "/objects/alias/same").content, self.data)
        self.host.request("DELETE", "/objects/alias/same")
        self.assertEqual(self.host.request("GET", "/objects/source/orig").content, self.data,
                         "deleting the borrowed copy must not destroy the data it borrowed")

    def test_deleting_the_source_keeps_a_borrowed_copy(self):
        """Shared storage: the borrower owns the data once the source is gone, then frees it."""
        self.host.configure("alias", "simple.simple.SimpleStorage", [self.source_dir])
        self.assertEqual(self.copy("/objects/alias/same", "/objects/source/orig").status_code, 201)
        self.assertEqual(self.host.request("DELETE", "/objects/source/orig").status_code, 204)
        self.assertEqual(self.host.request("GET", "/objects/alias/same").content, self.data,
                         "deleting the source must not destroy data another object borrowed")
        self.assertEqual(self.host.request("DELETE", "/objects/alias/same").status_code, 204)
        self.assertEqual(stored_files(self.source_dir), [],
                         "the last object using the data must destroy it")

    def test_a_copy_chain_back_into_the_owning_policy_leaves_nothing_behind(self):
        """attack2 finding: source -> alias (borrowed) -> source again (borrowed too, the
        same module_data twice in one policy); after deleting all three in any order the
        data stayed on disk with no object using it."""
        self.host.configure("alias", "simple.simple.SimpleStorage", [self.source_dir])
        for order in (("orig", "alias", "back"), ("alias", "orig", "back"),
                      ("back", "orig", "alias"), ("orig", "back", "alias")):
            with self.subTest(order=order):
                self.assertIn(self.host.request("PUT", "/objects/source/orig",
                                                data=self.data).status_code, (200, 201))
                self.assertEqual(self.copy("/objects/alias/alias",
                                           "/objects/source/orig").status_code, 201)
                self.assertEqual(self.copy("/objects/source/back",
                                           "/objects/alias/alias").status_code, 201)
                keys = {"orig": "/objects/source/orig", "alias": "/objects/alias/alias",
                        "back": "/objects/source/back"}
                for index, name in enumerate(order):
                    self.assertEqual(self.host.request("DELETE", keys[name]).status_code, 204)
                    for other in order[index + 1:]:
                        got = self.host.request("GET", keys[other])
                        self.assertTrue(got.status_code == 200 and got.content == self.data,
                                        "%s after deleting %s: %d" % (other, name,
                                                                      got.status_code))
                for policy in ("source", "alias"):
                    self.host.request("POST", "/cdmi/system_configuration/vendor_modules/"
                                      + policy + "/repair", json={})
                self.assertEqual(stored_files(self.source_dir), [], "nothing is left behind")

    def test_source_deleted_while_a_copy_borrows_it_keeps_the_copy(self):
        """attack2 finding: a copy whose target said available() True was committed as
        borrowing the source's data even when the source had been deleted meanwhile; the
        source's data was then destroyed (no borrower existed when it was retired) and the
        acknowledged copy (201) read 404: 13 of 149 racing copies lost their data."""
        from tests.host.fixture_modules import GatedAvailableStorage
        GatedAvailableStorage.entered.clear()
        GatedAvailableStorage.release.clear()
        self.addCleanup(GatedAvailableStorage.release.set)
        self.host.configure("gated", "tests.host.fixture_modules.GatedAvailableStorage",
                            [self.source_dir])
        answers = []
        copier = threading.Thread(target=lambda: answers.append(
            self.copy("/objects/gated/copy", "/objects/source/orig")))
        copier.start()
        self.assertTrue(GatedAvailableStorage.entered.wait(10))
        self.assertEqual(self.host.request("DELETE", "/objects/source/orig").status_code, 204)
        GatedAvailableStorage.release.set()
        copier.join(20)
        self.assertEqual(answers[0].status_code, 201, answers[0].text)
        step = self.host.request("POST", "/cdmi/system_configuration/vendor_modules/source/"
                                 "repair", json={})
        self.assertEqual(step.status_code, 200, step.text)  # destroys the source's garbage
        copy = self.host.request("GET", "/objects/gated/copy")
        self.assertEqual(copy.status_code, 200, copy.text[:300])
        self.assertTrue(copy.content == self.data, "the copy must hold the source's bytes")
        self.assertEqual(self.host.request("DELETE", "/objects/gated/copy").status_code, 204)
        self.host.request("POST", "/cdmi/system_configuration/vendor_modules/gated/repair",
                          json={})
        self.assertEqual(stored_files(self.source_dir), [], "nothing is left behind")

    @unittest.skipUnless(replica_available(), "the replica module is not importable")
    def test_copy_between_mirrors_sharing_a_location_keeps_both(self):
        """One location in two mirrors: neither object's deletion empties the other."""
        dirs = {}
        for name in "abc":
            dirs[name] = os.path.join(self.host.data_dir, "disk-" + name)
            os.mkdir(dirs[name])

        def mirror(policy, names):
            args = [json.dumps({"module": "simple.simple.SimpleStorage", "args": [dirs[name]],
                                "name": name}) for name in names]
            args.append("state_dir=" + os.path.join(self.host.data_dir, "state-" + policy))
            self.host.configure(policy, "replica.replica.ReplicaStorage", args)

        mirror("two", "ab")
        mirror("other", "ac")
        put = self.host.request("PUT", "/objects/two/orig", data=self.data)
        self.assertEqual(put.status_code, 201, put.text)
        source_files = set(stored_files(dirs["a"]))

        def copy_then_delete(deleted, kept):
            response = self.copy("/objects/other/copy", "/objects/two/orig")
            self.assertEqual(response.status_code, 201, response.text)
            copy_files = set(stored_files(dirs["a"])) - source_files
            self.assertTrue(copy_files, "the copy has its own files at the shared location")
            self.assertEqual(self.host.request("DELETE", "/objects/" + deleted).status_code, 204)
            response = self.host.request("GET", "/objects/" + kept)
            self.assertEqual(response.status_code, 200, response.text)
            self.assertEqual(response.content, self.data)
            return copy_files

        copy_then_delete("other/copy", "two/orig")
        self.assertEqual(set(stored_files(dirs["a"])), source_files,
                         "deleting the copy removed exactly its own files")
        copy_files = copy_then_delete("two/orig", "other/copy")
        self.assertEqual(set(stored_files(dirs["a"])), copy_files,
                         "deleting the source removed exactly its own files")

    def test_copy_errors(self):
        self.assertJsonError(self.copy("/objects/target/x", "/objects/source/missing"), 404,
                             "copy source")
        self.assertJsonError(self.copy("/objects/target/x", "/elsewhere/x"), 400)
        self.assertJsonError(self.copy("/objects/target/x", "/objects/source/"), 400)
        self.assertJsonError(self.copy("/objects/target/x", "/objects/ghost/orig"), 404)
