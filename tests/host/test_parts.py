"""The host's parts on their own: ranges, masking, passwords, the store, the registry."""
import base64
import concurrent.futures
import io
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import unittest

from modules.errors import ConfigurationError, SourceStreamError
from modules.host.auth import check_basic_auth, load_admin_password
from modules.host.http import BodyReader
from modules.host.ranges import Unsatisfiable, parse_range
from modules.redaction import redact, redact_text
from modules.host.registry import ModuleRegistry, UnknownModule
from modules.host.pins import ReadPins
from modules.host.processes import ProcessIdentity
from modules.host.store import INTENT_GRACE_SECONDS, ModuleConfig, ModuleInUse, ObjectRecord, Store
from tests.host.fixture_modules import TrackedStorage


class TemporaryDirectory(unittest.TestCase):

    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="vsm-parts-")
        self.addCleanup(shutil.rmtree, self.directory, True)


class TestRanges(unittest.TestCase):

    def test_satisfiable(self):
        self.assertEqual(parse_range("bytes=0-0", 10), (0, 0))
        self.assertEqual(parse_range("bytes=2-", 10), (2, 9))
        self.assertEqual(parse_range("bytes=2-100", 10), (2, 9))
        self.assertEqual(parse_range("bytes=-3", 10), (7, 9))
        self.assertEqual(parse_range("bytes=-30", 10), (0, 9))
        self.assertEqual(parse_range(" Bytes = 1 - 2 ", 10), (1, 2))

    def test_ignored(self):
        for header in (None, "", "bytes=", "bytes=-", "bytes=3-1", "bytes=0-1,3-4", "lines=1-2",
                       "bytes=a-b", "bytes=1-2-3"):
            with self.subTest(header=header):
                self.assertIsNone(parse_range(header, 10))

    def test_unsatisfiable(self):
        for header, size in (("bytes=10-", 10), ("bytes=10-20", 10), ("bytes=-0", 10),
                             ("bytes=0-", 0), ("bytes=-5", 0)):
            with self.subTest(header=header, size=size):
                with self.assertRaises(Unsatisfiable):
                    parse_range(header, size)


class TestRedaction(unittest.TestCase):

    def test_masks_secret_looking_values_only(self):
        args = ["/mnt/a", "password=hunter2", "state_dir=/x", "https://bob:pw@example.com/dav",
                {"token": "abc", "name": "keep", "nested": ["api_key=zzz"]}, 5, None]
        self.assertEqual(redact(args), [
            "/mnt/a", "password=***", "state_dir=/x", "https://bob:***@example.com/dav",
            {"token": "***", "name": "keep", "nested": ["api_key=***"]}, 5, None])

    def test_inline_specs_and_urls_at_any_depth(self):
        """Issue 11 item 4: a password inside an inline location spec was shown in clear."""
        import json
        spec = json.dumps({"module": "replica.http.HTTPStorage", "name": "nas",
                           "args": ["https://nas.example/dav/", "username=bob",
                                    "password=hunter2", "token_env=NAS_TOKEN"]})
        shown = redact(["loc-a", spec, "https://tok@example.com/x?X-Amz-Signature=abc&a=1",
                        "secret_key=s3cr3t", "access_key_env=AWS_ACCESS_KEY_ID"])
        text = json.dumps(shown)
        for secret in ("hunter2", "tok@", "abc", "s3cr3t"):
            self.assertNotIn(secret, text)
        self.assertIn("NAS_TOKEN", text)
        self.assertIn("AWS_ACCESS_KEY_ID", text)
        self.assertIn("a=1", text)
        self.assertEqual(redact_text("PUT https://u:pw@h/x failed; password=zz, size=3"),
                         "PUT https://u:***@h/x failed; password=***, size=3")

    def test_does_not_change_the_input(self):
        args = {"password": "x"}
        redact(args)
        self.assertEqual(args, {"password": "x"})


class TestPasswords(TemporaryDirectory):

    def test_generated_once_private_and_then_read(self):
        first = load_admin_password(self.directory, environ={})
        self.assertTrue(first.generated)
        self.assertGreaterEqual(len(first.secret), 20)
        path = os.path.join(self.directory, "admin-password")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        second = load_admin_password(self.directory, environ={})
        self.assertFalse(second.generated)
        self.assertEqual(second.secret, first.secret)
        self.assertNotIn(first.secret, repr(first) + str(first))

    def test_environment_wins(self):
        password = load_admin_password(self.directory, environ={"VSM_ADMIN_PASSWORD": "from-env"})
        self.assertEqual((password.secret, password.source), ("from-env", "environment"))
        self.assertFalse(os.path.exists(os.path.join(self.directory, "admin-password")))

    def test_processes_racing_at_first_start_agree(self):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            secrets = set(password.secret for password in pool.map(
                lambda _: load_admin_password(self.directory, environ={}), range(16)))
        self.assertEqual(len(secrets), 1)
        self.assertEqual(os.listdir(self.directory), ["admin-password"])

    def test_empty_file_is_a_clear_error(self):
        open(os.path.join(self.directory, "admin-password"), "w").close()
        with self.assertRaisesRegex(ConfigurationError, "empty"):
            load_admin_password(self.directory, environ={})

    def test_basic_auth(self):
        def header(text):
            return "Basic " + base64.b64encode(text.encode()).decode()
        self.assertTrue(check_basic_auth(header("administrator:pä:ss"), "pä:ss"))
        for value in (None, "", header("administrator:wrong"), header("root:pä:ss"),
                      header("administrator"), "Basic ***", "Digest abc"):
            with self.subTest(value=value):
                self.assertFalse(check_basic_auth(value, "pä:ss"))


class TestBodyReader(unittest.TestCase):

    def test_reads_exactly_the_declared_length_and_hashes(self):
        reader = BodyReader(io.BytesIO(b"abcdefTRAILING"), 6)
        self.assertEqual(reader.read(4), b"abcd")
        self.assertEqual(reader.read(100), b"ef")
        self.assertEqual(reader.read(100), b"")
        self.assertTrue(reader.at_end())
        self.assertEqual(reader.bytes_read, 6)
        self.assertEqual(reader.sha256(),
                         "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721")

    def test_short_body_is_a_source_error(self):
        reader = BodyReader(io.BytesIO(b"abc"), 10)
        reader.read(3)
        with self.assertRaisesRegex(SourceStreamError, "7 bytes short"):
            reader.read(5)

    def test_failing_source_is_wrapped(self):
        class Broken(io.RawIOBase):
            def readinto(self, buffer):
                raise ConnectionResetError("peer reset")
        with self.assertRaises(SourceStreamError) as caught:
            BodyReader(Broken(), 10).read(5)
        self.assertIsInstance(caught.exception.__cause__, ConnectionResetError)


class TestStore(TemporaryDirectory):

    def setUp(self):
        super().setUp()
        self.store = Store(os.path.join(self.directory, "db.sqlite3"))
        self.addCleanup(self.store.close)
        self.store.put_module(ModuleConfig("p", "simple.simple.SimpleStorage", args=["/x"]))

    def record(self, key, module_data, **extra):
        return ObjectRecord(policy="p", key=key, module_data=module_data, size=1, created=0.0,
                            **extra)

    def test_a_schema_1_database_is_migrated(self):
        """Databases of the first release (schema 1) gain the new columns and table."""
        path = os.path.join(self.directory, "old.sqlite3")
        with sqlite3.connect(path) as db:
            db.executescript(_SCHEMA_1)
            db.execute("INSERT INTO meta VALUES ('schema', '1')")
            db.execute("INSERT INTO objects (policy, key, module_data, size, created) "
                       "VALUES ('p', 'k', 'md', 1, 0)")
            db.execute("INSERT INTO garbage (policy, module_data, kind, since) "
                       "VALUES ('p', 'old-intent', 'intent', 0)")
        db.close()
        store = Store(path)
        self.addCleanup(store.close)
        self.assertEqual(store.get_meta("schema"), "2")
        self.assertEqual(store.get_object("p", "k").headers, ())
        self.assertEqual(store.collect_intents(lambda writer, since: writer is None)[0].module_data,
                         "old-intent")
        self.assertEqual(store.list_readers(), [])
        Store(path).close()  # opening a migrated database again changes nothing

    def test_overwrite_turns_old_data_into_garbage_in_the_same_step(self):
        intent = self.store.add_intent("p", "md-1")
        self.assertEqual(self.store.put_object(self.record("k", "md-1"), intent), (False, None))
        replaced, garbage = self.store.put_object(self.record("k", "md-2"))
        self.assertTrue(replaced)
        self.assertEqual((garbage.module_data, garbage.kind), ("md-1", "replaced"))
        self.assertEqual([item.module_data for item in self.store.pending_garbage("p")], ["md-1"])
        self.store.garbage_done(garbage.id)
        self.assertEqual(self.store.pending_garbage("p"), [])

    def test_shared_and_borrowed_data_is_not_garbage(self):
        self.store.put_object(self.record("a", "shared"))
        self.store.put_object(self.record("b", "shared"))
        self.assertIsNone(self.store.delete_object("p", "a")[1], "b still uses it")
        self.assertIsNotNone(self.store.delete_object("p", "b")[1])
        self.store.put_object(self.record("c", "theirs", borrowed=True))
        self.assertIsNone(self.store.delete_object("p", "c")[1])

    def test_a_copy_borrows_only_owned_data_and_inherits_it(self):
        """attack2 findings: a borrowed copy committed after its source went kept no data; a
        borrower in the owner's own policy was never handed the data (left on disk for good)."""
        from modules.host.store import BorrowedDataGone

        with self.assertRaises(BorrowedDataGone):
            self.store.put_object(self.record("copy", "gone", borrowed=True), require_owner=True)
        self.assertIsNone(self.store.get_object("p", "copy"))
        self.store.put_object(self.record("owner", "data"))
        self.store.put_object(self.record("copy", "data", borrowed=True), require_owner=True)
        self.assertIsNone(self.store.delete_object("p", "owner")[1], "the copy inherits the data")
        self.assertFalse(self.store.get_object("p", "copy").borrowed)
        self.assertEqual(self.store.delete_object("p", "copy")[1].module_data, "data")

    def test_intents_are_collected_when_their_writer_is_gone(self):
        """Issue 11 item 3: intents of a dead process are collected at once, not after a day."""
        pins = ReadPins(self.store)
        self.addCleanup(pins.close)
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        dead = ProcessIdentity(socket.gethostname(), child.pid, "")
        child.wait(10)
        ours = self.store.add_intent("p", "in-flight", str(pins.identity()))
        self.store.add_intent("p", "crashed", str(dead))
        old = self.store.add_intent("p", "old-unknown")
        self.store.add_intent("p", "new-unknown")
        self.assertEqual(self.store.pending_garbage("p"), [])
        self.store._query("UPDATE garbage SET since = since - ? WHERE id = ?",
                          (INTENT_GRACE_SECONDS + 1, old))
        collected = self.store.collect_intents(pins.writer_gone, "p")
        self.assertEqual(sorted(item.module_data for item in collected), ["crashed", "old-unknown"])
        self.assertEqual(sorted(item.module_data for item in self.store.pending_garbage("p")),
                         ["crashed", "old-unknown"])
        self.assertEqual(self.store.count_garbage("p"), 4, "running intents count as pending too")
        self.store.drop_intent(ours, garbage=False)
        self.assertEqual(self.store.garbage_counts("p"), {"crashed": 2, "intent": 1})

    def test_module_in_use_cannot_be_deleted(self):
        self.store.put_object(self.record("k", "md"))
        with self.assertRaisesRegex(ModuleInUse, "1 object"):
            self.store.delete_module("p")
        self.store.put_module(ModuleConfig("r", "replica.replica.ReplicaStorage", args=["q"]))
        self.store.put_module(ModuleConfig("q", "simple.simple.SimpleStorage", args=["/y"]))
        with self.assertRaisesRegex(ModuleInUse, "r"):
            self.store.delete_module("q")
        self.assertFalse(self.store.delete_module("nothing"))

    def test_generation_counts_changes_only(self):
        before = self.store.generation()
        self.assertIsNone(self.store.put_module(ModuleConfig("p", "simple.simple.SimpleStorage",
                                                             args=["/x"])))
        self.assertEqual(self.store.generation(), before)
        stored = self.store.put_module(ModuleConfig("p", "simple.simple.SimpleStorage",
                                                    args=["/z"]))
        self.assertEqual(stored.revision, 2)
        self.assertEqual(self.store.generation(), before + 1)


class TestRegistry(TemporaryDirectory):

    def setUp(self):
        super().setUp()
        TrackedStorage.instances.clear()
        self.store = Store(os.path.join(self.directory, "db.sqlite3"))
        self.registry = ModuleRegistry(self.store)
        self.addCleanup(self.store.close)
        self.addCleanup(self.registry.close)
        self.store.put_module(ModuleConfig("t", "tests.host.fixture_modules.TrackedStorage",
                                           args=[self.directory, "one"]))

    def test_retired_instance_waits_for_the_leases_that_may_use_it(self):
        reading = self.registry.lease()
        old = reading.module("t")
        self.store.put_module(ModuleConfig("t", "tests.host.fixture_modules.TrackedStorage",
                                           args=[self.directory, "two"]))
        with self.registry.lease() as fresh:
            new = fresh.module("t")
            self.assertIsNot(new, old)
            self.assertEqual(new.label, "two")
        self.assertFalse(old.closed, "a request started before the change still uses it")
        reading.release()
        self.assertTrue(old.closed)
        self.assertFalse(new.closed)
        reading.release()  # idempotent

    def test_unknown_names(self):
        with self.registry.lease() as lease:
            with self.assertRaisesRegex(UnknownModule, "configured: t"):
                lease.module("ghost")

    def test_close_closes_everything(self):
        with self.registry.lease() as lease:
            instance = lease.module("t")
        self.registry.close()
        self.assertTrue(instance.closed)


# The first release's tables (schema 1), for the migration test.
_SCHEMA_1 = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE modules (name TEXT PRIMARY KEY, module TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '', args TEXT NOT NULL, revision INTEGER NOT NULL,
    updated REAL NOT NULL);
CREATE TABLE objects (policy TEXT NOT NULL, key TEXT NOT NULL, module_data TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT, content_type TEXT, created REAL NOT NULL,
    borrowed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (policy, key));
CREATE INDEX objects_by_data ON objects (policy, module_data);
CREATE TABLE garbage (id INTEGER PRIMARY KEY AUTOINCREMENT, policy TEXT NOT NULL,
    module_data TEXT NOT NULL, kind TEXT NOT NULL, since REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE INDEX garbage_by_policy ON garbage (policy, id);
"""
