"""Integrity: the replica never serves a damaged copy, and scrub/repair find and fix damage.

Damage is done to the real files under real directories, the way disks and
people do it (truncation, a flipped byte, a 0-byte file, a lost manifest).
"""
import io
import json
import os
import shutil
import subprocess
import sys
import unittest

from modules.errors import DataCorrupted, ObjectNotFound
from modules.testing import payload
from replica import module_data as formats
from replica.manifest import BLOCK_SIZE, BlockHasher, parse
from replica.replica import ReplicaStorage
from tests.replica.helpers import MIB, ReplicaTestCase, temp_dir


def flip_byte(path: str, offset: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        value = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([value ^ 0xFF]))


class IntegrityCase(ReplicaTestCase):

    def manifest_path(self, module_data: str, name: str) -> str:
        index = self.names.index(name)
        child = json.loads(module_data)["copies"][name]["mf"]
        return os.path.join(self.dirs[index], *child.split("/"))

    def read_in_pieces(self, module_data: str, piece: int = 300000) -> bytes:
        parts = []
        with self.replica.get_read_stream(self.context, module_data) as stream:
            while True:
                chunk = stream.read(piece)
                if not chunk:
                    return b"".join(parts)
                parts.append(chunk)


class TestManifest(unittest.TestCase):

    def test_blocks_and_whole_digest_do_not_depend_on_how_the_data_is_fed(self):
        data = payload(3 * BLOCK_SIZE + 77, seed=1)
        whole = BlockHasher()
        whole.update(data)
        pieces = BlockHasher()
        for start in range(0, len(data), 100001):
            pieces.update(data[start:start + 100001])
        self.assertEqual(whole.manifest().blocks, pieces.manifest().blocks)
        self.assertEqual(whole.manifest().digest, pieces.manifest().digest)
        self.assertEqual(len(whole.manifest().blocks), 4)

    def test_a_damaged_manifest_is_detected(self):
        hasher = BlockHasher()
        hasher.update(b"x" * 10)
        raw = hasher.manifest().to_bytes()
        self.assertEqual(parse(raw).size, 10)
        text = raw.decode()
        with self.assertRaises(DataCorrupted):
            parse(text.replace('"size":10', '"size":11').encode())
        with self.assertRaises(DataCorrupted):
            parse(raw[:-5])


class TestVerifiedReads(IntegrityCase):

    def test_module_data_names_a_manifest_per_copy_and_copies_stay_byte_identical(self):
        data = payload(2 * MIB + 5, seed=2)
        module_data = self.store(data)
        decoded = formats.decode(module_data)
        self.assertTrue(decoded.verified)
        for name in self.names:
            with open(self.copy_path(module_data, name), "rb") as file:
                self.assertEqual(file.read(), data)
            with open(self.manifest_path(module_data, name), "rb") as file:
                manifest = parse(file.read())
            self.assertEqual(manifest.size, len(data))
            self.assertEqual(manifest.block_count(), 3)
        self.assertTrue(self.replica.capabilities["verified_reads"])

    def test_truncated_first_copy_reads_the_full_correct_object(self):
        data = payload(5 * MIB + 123, seed=3)
        module_data = self.store(data)
        with open(self.copy_path(module_data, "loc-a"), "r+b") as file:
            file.truncate(MIB)
        self.assertEqual(self.read_in_pieces(module_data), data)
        self.assertEqual(self.replica.get_size(self.context, module_data), len(data))
        self.assertFalse(self.replica.available(self.context, module_data))

    def test_copy_truncated_after_the_stream_opened_is_left_at_the_block(self):
        data = payload(4 * MIB, seed=4)
        module_data = self.store(data)
        with self.replica.get_read_stream(self.context, module_data) as stream:
            first = stream.read(10)
            with open(self.copy_path(module_data, "loc-a"), "r+b") as file:
                file.truncate(2 * MIB + 100)
            stream.seek(0)
            self.assertEqual(first + stream.read()[10:], data)

    def test_flipped_byte_in_the_middle_of_the_first_copy_reads_correct_object(self):
        data = payload(5 * MIB, seed=5)
        module_data = self.store(data)
        flip_byte(self.copy_path(module_data, "loc-a"), len(data) // 2)
        self.assertEqual(self.read_in_pieces(module_data), data)
        # the damaged copy was journaled for repair
        self.assertEqual(self.replica.statistics(self.context)["operations"]
                         ["damaged_copies_found"], 1)
        summary = self.replica.repair(self.context)
        self.assertEqual(summary["copies"]["done"], 1)
        with open(self.copy_path(module_data, "loc-a"), "rb") as file:
            self.assertEqual(file.read(), data)

    def test_seek_into_a_damaged_block_reads_another_copy(self):
        data = payload(3 * MIB, seed=6)
        module_data = self.store(data)
        flip_byte(self.copy_path(module_data, "loc-a"), MIB + 10)
        with self.replica.get_read_stream(self.context, module_data) as stream:
            stream.seek(MIB + 5)
            self.assertEqual(stream.read(100), data[MIB + 5:MIB + 105])
            self.assertEqual(stream.location, "loc-b")

    def test_same_block_damaged_in_every_copy_raises_and_never_returns_its_bytes(self):
        data = payload(4 * MIB, seed=7)
        module_data = self.store(data)
        for name in self.names:
            flip_byte(self.copy_path(module_data, name), 2 * MIB + 1000 + self.names.index(name))
        with self.replica.get_read_stream(self.context, module_data) as stream:
            received = bytearray()
            with self.assertRaises(DataCorrupted):
                while True:
                    chunk = stream.read(65536)
                    if not chunk:
                        break
                    received.extend(chunk)
        # everything before the damaged block, nothing from it
        self.assertEqual(bytes(received), data[:2 * MIB])
        with self.replica.get_read_stream(self.context, module_data) as stream:
            stream.seek(2 * MIB + 5)
            with self.assertRaises(DataCorrupted):
                stream.read(1)
            stream.seek(3 * MIB)
            self.assertEqual(stream.read(), data[3 * MIB:])

    def test_different_blocks_damaged_in_each_copy_still_read_correctly(self):
        data = payload(3 * MIB, seed=8)
        module_data = self.store(data)
        for index, name in enumerate(self.names):
            flip_byte(self.copy_path(module_data, name), index * MIB + 7)
        self.assertEqual(self.read_in_pieces(module_data), data)
        # and repair rebuilds every copy from the intact blocks of the others
        report = self.replica.repair(self.context, module_data)
        self.assertEqual(sorted(report["damaged"]), self.names)
        self.assertEqual(sorted(report["repaired"]), self.names)
        for name in self.names:
            with open(self.copy_path(module_data, name), "rb") as file:
                self.assertEqual(file.read(), data)

    def test_a_longer_copy_is_never_served(self):
        data = payload(MIB + 3, seed=9)
        module_data = self.store(data)
        with open(self.copy_path(module_data, "loc-a"), "ab") as file:
            file.write(b"extra")
        with self.replica.get_read_stream(self.context, module_data) as stream:
            self.assertEqual(stream.read(), data)
            self.assertNotEqual(stream.location, "loc-a")
        self.assertFalse(self.replica.available(self.context, module_data))

    def test_zero_byte_copy_is_never_served_nor_available(self):
        data = payload(MIB, seed=10)
        module_data = self.store(data)
        open(self.copy_path(module_data, "loc-a"), "wb").close()
        with self.replica.get_read_stream(self.context, module_data) as stream:
            self.assertEqual(stream.read(), data)
            self.assertEqual(stream.location, "loc-b")
        self.assertFalse(self.replica.available(self.context, module_data))
        # the platform then sends the data again; the 0-byte copy is replaced
        self.replica.assign(self.context, module_data, io.BytesIO(data))
        self.assertTrue(self.replica.available(self.context, module_data))
        with open(self.copy_path(module_data, "loc-a"), "rb") as file:
            self.assertEqual(file.read(), data)

    def test_empty_object(self):
        module_data = self.store(b"")
        self.assertEqual(self.read(module_data), b"")
        self.assertEqual(self.replica.get_size(self.context, module_data), 0)
        self.assertTrue(self.replica.available(self.context, module_data))
        self.assertEqual(self.replica.scrub(self.context, module_data)["ok"], self.names)


class TestMissingManifest(IntegrityCase):
    """A lost manifest: that copy does not count; with none left, reads refuse (documented)."""

    def test_copy_without_its_manifest_is_not_served_and_repair_restores_it(self):
        data = payload(2 * MIB, seed=11)
        module_data = self.store(data)
        os.unlink(self.manifest_path(module_data, "loc-a"))
        with self.replica.get_read_stream(self.context, module_data) as stream:
            self.assertEqual(stream.read(), data)
            self.assertEqual(stream.location, "loc-b")
        self.assertFalse(self.replica.available(self.context, module_data))
        report = self.replica.scrub(self.context, module_data)
        self.assertIn("manifest missing", report["damaged"]["loc-a"])
        report = self.replica.repair(self.context, module_data)
        self.assertEqual(report["repaired"], ["loc-a"])
        self.assertTrue(os.path.exists(self.manifest_path(module_data, "loc-a")))
        self.assertTrue(self.replica.available(self.context, module_data))

    def test_no_manifest_anywhere_raises_data_corrupted_not_unverified_bytes(self):
        data = payload(1000, seed=12)
        module_data = self.store(data)
        for name in self.names:
            os.unlink(self.manifest_path(module_data, name))
        with self.assertRaises(DataCorrupted) as caught:
            self.replica.get_read_stream(self.context, module_data)
        self.assertIn("inspected directly", str(caught.exception))
        with self.assertRaises(DataCorrupted):
            self.replica.get_size(self.context, module_data)
        self.assertFalse(self.replica.available(self.context, module_data))
        report = self.replica.scrub(self.context, module_data)
        self.assertEqual(sorted(report["damaged"]), self.names)

    def test_deleted_object_is_not_found(self):
        module_data = self.store(payload(1000, seed=13))
        self.replica.delete(self.context, module_data)
        self.assertEqual(self.files_under(self.root), [])
        with self.assertRaises(ObjectNotFound):
            self.replica.get_read_stream(self.context, module_data)


class TestScrubAndRepair(IntegrityCase):

    def test_damaged_last_copy_found_by_scrub_fixed_by_repair(self):
        data = payload(3 * MIB + 17, seed=14)
        module_data = self.store(data)
        flip_byte(self.copy_path(module_data, "loc-c"), 3 * MIB + 3)
        # reads never touch the last copy, so only a scrub can find it
        self.assertEqual(self.read(module_data), data)
        report = self.replica.scrub(self.context, module_data)
        self.assertEqual(report["ok"], ["loc-a", "loc-b"])
        self.assertIn("loc-c", report["damaged"])
        self.assertIn("3", report["damaged"]["loc-c"])
        self.assertEqual(report["bytes_checked"], 3 * len(data))
        json.dumps(report)
        with open(self.copy_path(module_data, "loc-c"), "rb") as file:
            self.assertNotEqual(file.read(), data, "scrub must not change anything")
        report = self.replica.repair(self.context, module_data)
        self.assertEqual(report["repaired"], ["loc-c"])
        self.assertEqual(report["failed"], {})
        with open(self.copy_path(module_data, "loc-c"), "rb") as file:
            self.assertEqual(file.read(), data)
        self.assertEqual(self.replica.scrub(self.context, module_data)["ok"], self.names)
        stats = self.replica.statistics(self.context)["operations"]
        self.assertEqual(stats["damaged_copies_repaired"], 1)

    def test_missing_copy_is_reported_and_refilled(self):
        data = payload(MIB, seed=15)
        module_data = self.store(data)
        os.unlink(self.copy_path(module_data, "loc-b"))
        os.unlink(self.manifest_path(module_data, "loc-b"))
        report = self.replica.scrub(self.context, module_data)
        self.assertEqual(report["missing"], ["loc-b"])
        report = self.replica.repair(self.context, module_data)
        self.assertEqual(report["repaired"], ["loc-b"])
        self.assertTrue(self.replica.available(self.context, module_data))

    def test_scrub_rate_paces_the_reading(self):
        data = payload(2 * MIB, seed=16)
        module_data = self.store(data)
        self.replica.scrub(self.context, module_data, rate=MIB)
        # 6 MiB at 1 MiB/s with a clock that does not move: about 6 s of pauses
        self.assertGreater(sum(self.sleeps.pauses), 5.0)

    def test_deep_available_finds_a_flipped_byte(self):
        data = payload(MIB, seed=17)
        module_data = self.store(data)
        flip_byte(self.copy_path(module_data, "loc-b"), 5)
        self.assertTrue(self.replica.available(self.context, module_data))
        deep = self.make_replica(verify_available="deep")
        self.assertFalse(deep.available(self.context, module_data))


class TestOlderObjects(IntegrityCase):

    def test_module_data_without_manifests_stays_readable_unverified(self):
        data = payload(MIB + 9, seed=18)
        old = self.make_replica(integrity="off")
        module_data = self.store(data, old)
        self.assertFalse(formats.decode(module_data).verified)
        self.assertFalse(old.capabilities["verified_reads"])
        self.assertEqual(self.read(module_data), data)
        self.assertEqual(self.replica.get_size(self.context, module_data), len(data))
        self.assertTrue(self.replica.available(self.context, module_data))
        report = self.replica.scrub(self.context, module_data)
        self.assertEqual(report["unverified"], self.names)
        self.assertFalse(report["verified"])
        self.assertEqual(self.replica.statistics(self.context)["operations"]
                         ["unverified_reads"], 1)
        self.replica.delete(self.context, module_data)
        self.assertEqual(self.files_under(self.root), [])


class TestFullDisk(unittest.TestCase):
    """A small tmpfs location: a write that does not fit leaves nothing served or counted."""

    def setUp(self):
        if sys.platform != "linux" or shutil.which("mount") is None:
            self.skipTest("needs Linux mount")
        self.root = temp_dir(self)
        self.dirs = [os.path.join(self.root, name) for name in ("a", "b", "small")]
        for directory in self.dirs:
            os.mkdir(directory)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", self.dirs[2]],
                                capture_output=True)
        if result.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: %s" % result.stderr.decode().strip())
        self.addCleanup(subprocess.run, ["umount", self.dirs[2]], capture_output=True)

    def test_full_location_gets_no_copy_is_never_served_nor_available(self):
        replica = ReplicaStorage(*["file://%s" % d for d in self.dirs], write_quorum=2)
        self.addCleanup(replica.close)
        data = payload(3 * MIB, seed=19)
        module_data = replica.new_data(None)
        replica.assign(None, module_data, io.BytesIO(data))
        self.assertFalse(replica.available(None, module_data))
        decoded = formats.decode(module_data)
        child = decoded.child_md("file://" + self.dirs[2])
        self.assertFalse(os.path.exists(os.path.join(self.dirs[2], *child.split("/"))))
        # a 0-byte file where the copy should be (as a careless module leaves it)
        os.makedirs(os.path.dirname(os.path.join(self.dirs[2], *child.split("/"))), exist_ok=True)
        open(os.path.join(self.dirs[2], *child.split("/")), "wb").close()
        self.assertFalse(replica.available(None, module_data))
        replica2 = ReplicaStorage("file://%s" % self.dirs[2], "file://%s" % self.dirs[0],
                                  "file://%s" % self.dirs[1])
        self.addCleanup(replica2.close)
        with replica2.get_read_stream(None, module_data) as stream:
            self.assertEqual(stream.read(), data)
            self.assertNotEqual(stream.location, "file://" + self.dirs[2])
        report = replica.scrub(None, module_data)
        self.assertIn("file://" + self.dirs[2], report["missing"] + list(report["damaged"]))

    def test_manifest_that_does_not_fit_removes_the_copy(self):
        replica = ReplicaStorage(*["file://%s" % d for d in self.dirs], write_quorum=2)
        self.addCleanup(replica.close)
        filler = os.path.join(self.dirs[2], "filler")
        with open(filler, "wb") as file:  # leave room for the data but not much more
            try:
                file.write(b"\0" * (1024 * 1024 - 3 * 4096))
            except OSError:
                pass
        data = payload(4096, seed=20)
        module_data = replica.new_data(None)
        replica.assign(None, module_data, io.BytesIO(data))
        with replica.get_read_stream(None, module_data) as stream:
            self.assertEqual(stream.read(), data)
        report = replica.scrub(None, module_data)
        for name in ("a", "b"):
            self.assertIn("file://" + os.path.join(self.root, name), report["ok"])
        small = "file://" + self.dirs[2]
        # all or nothing at the full location: never a copy without its manifest
        self.assertIn(small, report["ok"] + report["missing"])
        self.assertNotIn(small, report["damaged"])


if __name__ == "__main__":
    unittest.main()
