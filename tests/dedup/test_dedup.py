"""DedupStorage: the conformance kit, identical contents stored once, concurrency (issue 13)."""
import concurrent.futures
import io
import json
import os
import subprocess
import sys
import unittest

from modules.context import make_context
from modules.errors import ConfigurationError, DataCorrupted, InvalidModuleData, ObjectNotFound
from modules.testing import CapabilityChecks, StorageModuleTestBase
from replica.dedup import DedupStorage
from tests.crypt.support import temp_dir
from tests.dedup.test_dedup_crash import stored_files

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TestDedupKit(CapabilityChecks, StorageModuleTestBase, unittest.TestCase):
    """DedupStorage over a file:// location."""

    def make_module(self):
        return DedupStorage("file://%s" % temp_dir(self), "state_dir=%s" % temp_dir(self))


class DedupCase(unittest.TestCase):
    def setUp(self):
        self.inner = temp_dir(self, "vsm-dedup-inner-")
        self.state = temp_dir(self, "vsm-dedup-state-")
        self.dedup = DedupStorage("file://%s" % self.inner, state_dir=self.state)
        self.addCleanup(self.dedup.close)
        self.context = make_context({})

    def store(self, data: bytes) -> str:
        module_data = self.dedup.new_data(self.context)
        self.dedup.assign(self.context, module_data, io.BytesIO(data))
        return module_data

    def read(self, module_data: str) -> bytes:
        with self.dedup.get_read_stream(self.context, module_data) as stream:
            return stream.read()


class TestDeduplication(DedupCase):
    def test_identical_contents_are_stored_once_and_freed_by_the_last_delete(self):
        data = os.urandom(200000)
        first, second, third = self.store(data), self.store(data), self.store(b"different")
        self.assertEqual(len(stored_files(self.inner)), 2)
        stats = self.dedup.statistics(self.context)
        self.assertEqual(stats["logical_bytes"], 2 * len(data) + 9)
        self.assertEqual(stats["stored_bytes"], len(data) + 9)
        self.assertAlmostEqual(stats["dedup_ratio"], (2 * len(data) + 9) / (len(data) + 9), 3)
        self.dedup.delete(self.context, first)
        self.assertEqual(self.read(second), data, "deleting one reference freed the content")
        self.assertEqual(len(stored_files(self.inner)), 2)
        self.dedup.delete(self.context, second)
        self.assertEqual(len(stored_files(self.inner)), 1, "the last delete must free the data")
        self.dedup.delete(self.context, third)
        self.assertEqual(stored_files(self.inner), [])
        stats = self.dedup.statistics(self.context)
        self.assertEqual((stats["objects"], stats["blobs"], stats["dedup_ratio"]), (0, 0, 1.0))

    def test_same_size_different_content_is_not_deduplicated(self):
        first, second = self.store(b"a" * 1000), self.store(b"b" * 1000)
        self.assertEqual(self.read(first), b"a" * 1000)
        self.assertEqual(self.read(second), b"b" * 1000)
        self.assertEqual(len(stored_files(self.inner)), 2)

    def test_a_second_instance_on_the_same_state_dir_sees_the_objects(self):
        module_data = self.store(b"shared by processes")
        other = DedupStorage("file://%s" % self.inner, state_dir=self.state)
        self.addCleanup(other.close)
        with other.get_read_stream(self.context, module_data) as stream:
            self.assertEqual(stream.read(), b"shared by processes")

    def test_scrub_finds_changed_content(self):
        module_data = self.store(b"original content" * 100)
        self.assertFalse(self.dedup.scrub(self.context, module_data)["damaged"])
        path = os.path.join(self.inner, [os.path.join(root, name)
                                         for root, _, names in os.walk(self.inner)
                                         for name in names][0])
        with open(path, "r+b") as file:
            file.write(b"X")
        report = self.dedup.scrub(self.context, module_data)
        self.assertIn("file://%s" % self.inner, report["damaged"])
        os.remove(path)
        self.assertTrue(self.dedup.scrub(self.context, module_data)["missing"])

    def test_configuration_errors(self):
        for args, kwargs, expected in (
                (("file://%s" % self.inner,), {}, "needs state_dir"),
                (("file://%s" % self.inner, "state_dir=%s" % self.state, "x=1"), {}, "unknown"),
                ((), {"state_dir": self.state}, "exactly one location"),
                (("/not/a/url",), {"state_dir": self.state}, "cannot understand location")):
            with self.subTest(args=args):
                with self.assertRaises(ConfigurationError) as caught:
                    DedupStorage(*args, **kwargs)
                self.assertIn(expected, str(caught.exception))

    def test_module_data_of_another_kind_is_rejected(self):
        for value in ("dedup1:XYZ", "dedup2:" + "0" * 32, "crypt1:%s:x" % ("0" * 32)):
            with self.assertRaises(InvalidModuleData):
                self.dedup.get_size(self.context, value)
        with self.assertRaises(ObjectNotFound):
            self.dedup.get_size(self.context, "dedup1:" + "0" * 32)


class TestConcurrentUploads(DedupCase):
    def test_threads_uploading_the_same_content(self):
        """8 threads store the same bytes at once: one blob, 8 readable objects."""
        data = os.urandom(150000)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            names = list(pool.map(lambda _: self.store(data), range(8)))
        self.assertEqual(len(stored_files(self.inner)), 1)
        for module_data in names:
            self.assertEqual(self.read(module_data), data)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda md: self.dedup.delete(self.context, md), names))
        self.assertEqual(stored_files(self.inner), [])
        self.assertEqual(self.dedup.repair(self.context)["reclaimed"], 0)

    def test_processes_uploading_the_same_content(self):
        """Two processes sharing state_dir store the same bytes: still stored once."""
        script = ("import io,sys; from replica.dedup import DedupStorage; "
                  "d = DedupStorage('file://' + sys.argv[1], state_dir=sys.argv[2]); "
                  "[d.assign(None, d.new_data(None), io.BytesIO(b'same' * 30000)) "
                  "for _ in range(5)]; d.close()")
        children = [subprocess.Popen([sys.executable, "-c", script, self.inner, self.state],
                                     cwd=_ROOT, stderr=subprocess.PIPE) for _ in range(2)]
        for child in children:
            _, errors = child.communicate(timeout=60)
            self.assertEqual(child.returncode, 0, errors.decode(errors="replace")[-2000:])
        stats = self.dedup.statistics(self.context)
        self.assertEqual((stats["objects"], stats["blobs"]), (10, 1), stats)
        self.assertEqual(stats["dedup_ratio"], 10.0)
        self.assertEqual(len(stored_files(self.inner)), 1)


class TestDedupOverEncryption(CapabilityChecks, StorageModuleTestBase, unittest.TestCase):
    """Composition (issue 13): DedupStorage over an inline CryptStorage spec."""

    def make_module(self):
        from tests.crypt.support import KEY_ENV, set_key
        set_key(self)
        inner = {"module": "replica.crypt.CryptStorage", "name": "encrypted",
                 "args": ["file://%s" % temp_dir(self), "key_env=%s" % KEY_ENV]}
        return DedupStorage(json.dumps(inner), "state_dir=%s" % temp_dir(self))

    def test_dedup_over_encryption_stores_once_and_encrypted(self):
        data = b"PLAINTEXT-MARKER " * 4000
        first, second = self.store(data), self.store(data)
        self.assertStoredEqual(first, data)
        self.assertStoredEqual(second, data)
        stats = self.module.statistics(self.context)
        self.assertEqual(stats["blobs"], 1)
        self.assertEqual(stats["inner"]["encryption"]["algorithm"], "AES-256-GCM")
        self.assertTrue(self.module.capabilities["verified_reads"],
                        "verified reads of the encryption layer must propagate")

    def test_tampered_ciphertext_below_dedup_is_data_corrupted(self):
        module_data = self.store(b"some content" * 1000)
        root = self.module.inner(self.context).inner(self.context).storage_dir
        path = [os.path.join(r, n) for r, _, names in os.walk(root) for n in names][0]
        with open(path, "r+b") as file:
            file.seek(100)
            file.write(b"\xff\xfe")
        with self.assertRaises(DataCorrupted):
            self.read_all(module_data)
        report = self.module.scrub(self.context, module_data)
        self.assertTrue(report["damaged"], report)


if __name__ == "__main__":
    unittest.main()


class TestInnerFailures(unittest.TestCase):
    """A location that fails: nothing lost, nothing leaked once repair runs (issue 13)."""

    def setUp(self):
        from modules.testing import FaultyStorage
        from simple.simple import SimpleStorage
        self.inner_dir = temp_dir(self, "vsm-dedup-inner-")
        self.state = temp_dir(self, "vsm-dedup-state-")
        self.faulty = FaultyStorage(SimpleStorage(self.inner_dir), name="flaky")
        self.context = make_context({"flaky": self.faulty})
        self.dedup = DedupStorage("flaky", state_dir=self.state)
        self.addCleanup(self.dedup.close)

    def store(self, data: bytes) -> str:
        module_data = self.dedup.new_data(self.context)
        self.dedup.assign(self.context, module_data, io.BytesIO(data))
        return module_data

    def test_a_failed_delete_is_reclaimed_by_repair_and_shown_meanwhile(self):
        import sqlite3
        module_data = self.store(b"to be deleted" * 100)
        self.faulty.fail("delete")
        self.dedup.delete(self.context, module_data)  # the object is gone at once
        self.assertFalse(self.dedup.available(self.context, module_data))
        self.assertEqual(len(stored_files(self.inner_dir)), 1)
        stats = self.dedup.statistics(self.context)
        self.assertEqual(stats["pending"], {"free": 1})
        with sqlite3.connect(os.path.join(self.state, "dedup-index.sqlite3")) as db:
            db.execute("UPDATE pending SET since = since - 3600")
        stats = self.dedup.statistics(self.context)
        self.assertEqual(stats["status"], "degraded", stats)
        self.assertIn("run repair", stats["reason"])
        report = self.dedup.repair(self.context)
        self.assertEqual((report["reclaimed"], report["remaining"]), (0, 1))
        self.assertIn("flaky", json.dumps(report["failed"]))
        self.faulty.clear()
        report = self.dedup.repair(self.context)
        self.assertEqual((report["reclaimed"], report["remaining"]), (1, 0))
        self.assertEqual(stored_files(self.inner_dir), [])
        self.assertEqual(self.dedup.statistics(self.context)["status"], "ok")

    def test_a_write_failing_midway_keeps_nothing(self):
        self.faulty.fail("write", after_bytes=50000)
        module_data = self.dedup.new_data(self.context)
        with self.assertRaises(Exception):
            self.dedup.assign(self.context, module_data, io.BytesIO(os.urandom(200000)))
        self.faulty.clear()
        self.assertFalse(self.dedup.available(self.context, module_data))
        self.assertEqual(stored_files(self.inner_dir), [])
        self.assertEqual(self.dedup.statistics(self.context)["pending"], {})

    def test_errors_of_the_inner_location_name_it(self):
        module_data = self.store(b"abc")
        self.faulty.down()
        with self.assertRaises(Exception) as caught:
            self.dedup.get_read_stream(self.context, module_data).close()
        self.assertIn("flaky", str(caught.exception))
        self.assertEqual(getattr(caught.exception, "location", None), "flaky")
        self.faulty.up()
