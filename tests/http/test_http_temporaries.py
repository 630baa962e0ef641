"""Temporary uploads left by killed writers are swept by ``repair`` (issue 9, "Leftovers").

A writer killed during ``assign`` leaves ``xx/yy/.upload-<key>-<random>`` in
the shard collection. ``HTTPStorage.repair`` lists the shard collections
(PROPFIND, Depth 1) and removes the temporaries older than
``upload_grace``; a fresh one is never touched (another process may be
writing it), and nothing else is. The leftovers are made here as files in
the server's directory with the modification time a killed upload would
have left.
"""
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

from modules.errors import InvalidModuleData, LocationUnavailable
from replica.http.options import parse_options
from replica.http.temporaries import Sweeper, is_temporary_name, temporary_name
from replica.http.transport import Transport
from replica.http.webdav import WebDAV
from tests.http.support import QuirkyServerCase


class TestTemporarySweep(QuirkyServerCase):
    def leftover(self, module_data: str, size: int, age: float) -> str:
        """Write a temporary of ``module_data``'s object, ``age`` seconds old; return its path."""
        directory = os.path.dirname(self.object_path(module_data))
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, temporary_name(module_data.rsplit("/", 1)[1]))
        with open(path, "wb") as file:
            file.write(b"t" * size)
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
        return path

    def test_stale_temporaries_are_removed_and_fresh_ones_kept(self):
        """Issue 9: temporaries of killed writes stayed for good (5 kills left 19 files)."""
        storage = self.make_storage("upload_grace=600")
        kept_object = storage.new_data(None)
        storage.assign(None, kept_object, io.BytesIO(b"a real object"))
        stale = [self.leftover(storage.new_data(None), 1000, 7200) for _ in range(3)]
        stale.append(self.leftover(kept_object, 500, 3600))
        fresh = self.leftover(storage.new_data(None), 300, 60)
        foreign = os.path.join(os.path.dirname(stale[0]), ".upload-not-ours")
        with open(foreign, "wb") as file:
            file.write(b"someone else's")
        os.utime(foreign, (0, 0))

        summary = storage.repair(None, rate=10 ** 6)
        report = summary["temporaries"]

        self.assertEqual((summary["reclaimed"], summary["remaining"], summary["failed"]),
                         (4, 1, {}), "repair's RepairReport fields")
        self.assertEqual([p for p in stale if os.path.exists(p)], [])
        self.assertTrue(os.path.exists(fresh), "a fresh temporary was removed")
        self.assertTrue(os.path.exists(foreign), "a file that is not ours was removed")
        self.assertEqual(storage.get_size(None, kept_object), len(b"a real object"))
        self.assertEqual((report["found"], report["removed"], report["fresh"]), (5, 4, 1))
        self.assertEqual(report["removed_bytes"], 3500)
        self.assertTrue(report["complete"])
        temporaries = storage.statistics(None)["temporaries"]
        self.assertEqual((temporaries["files"], temporaries["bytes"]), (1, 300))
        self.assertEqual(temporaries["uploading"], 0)

    def test_repair_of_one_object_sweeps_its_shard_only(self):
        storage = self.make_storage("upload_grace=600")
        mine, other = storage.new_data(None), storage.new_data(None)
        while other[:5] == mine[:5]:
            other = storage.new_data(None)
        mine_left, other_left = self.leftover(mine, 10, 7200), self.leftover(other, 10, 7200)
        self.server.clear()
        report = storage.repair(None, mine)["temporaries"]
        self.assertEqual(report["removed"], 1)
        self.assertFalse(os.path.exists(mine_left))
        self.assertTrue(os.path.exists(other_left))
        self.assertEqual(len(self.server.recorded("PROPFIND")), 1)
        with self.assertRaises(InvalidModuleData):
            storage.repair(None, "../../etc")

    def test_the_grace_period_is_an_option(self):
        storage = self.make_storage("upload_grace=30")
        left = self.leftover(storage.new_data(None), 10, 120)
        self.assertEqual(storage.repair(None)["temporaries"]["removed"], 1)
        self.assertFalse(os.path.exists(left))
        default = self.make_storage()
        young = self.leftover(default.new_data(None), 10, 1800)
        self.assertEqual(default.repair(None)["temporaries"]["fresh"], 1,
                         "the default grace period is one hour")
        self.assertTrue(os.path.exists(young))

    def test_a_server_without_propfind_is_reported_not_raised(self):
        storage = self.make_storage()
        self.server.fail_next("PROPFIND", 405)
        report = storage.repair(None)["temporaries"]
        self.assertFalse(report["complete"])
        self.assertIn("PROPFIND", report["reason"])

    def test_an_unlistable_base_collection_raises_and_removes_nothing(self):
        storage = self.make_storage("upload_grace=600")
        first = self.leftover(storage.new_data(None), 10, 7200)
        self.server.fail_next("PROPFIND", 500, times=1)
        with self.assertRaises(LocationUnavailable):
            storage.repair(None)
        self.assertTrue(os.path.exists(first))
        report = storage.repair(None)["temporaries"]
        self.assertTrue(report["complete"])
        self.assertFalse(os.path.exists(first))

    def test_the_temporary_of_a_killed_writer_is_swept(self):
        """Issue 9: ``kill -9`` of a writing process leaves its temporary; repair removes it."""
        storage = self.make_storage("upload_grace=600")
        module_data = storage.new_data(None)
        writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from replica.http import HTTPStorage

            class Endless:
                def read(self, size=-1):
                    time.sleep(0.01)
                    return b"w" * 65536

            storage = HTTPStorage(sys.argv[1], "retries=0")
            storage.assign(None, sys.argv[2], Endless())
            """), self.base_url, module_data], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__)))))
        self.addCleanup(writer.wait, 10)
        self.addCleanup(lambda: writer.poll() is None and writer.kill())
        shard = os.path.dirname(self.object_path(module_data))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
                os.path.isdir(shard) and any(os.path.getsize(os.path.join(shard, name)) > 0
                                             for name in os.listdir(shard))):
            time.sleep(0.05)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(10)
        time.sleep(0.3)  # the server notices the cut connection
        (name,) = os.listdir(shard)
        self.assertTrue(is_temporary_name(name), name)
        fresh = storage.repair(None)["temporaries"]
        self.assertEqual((fresh["found"], fresh["fresh"], fresh["removed"]), (1, 1, 0),
                         "a fresh temporary must be left alone")
        path = os.path.join(shard, name)
        os.utime(path, (time.time() - 3600, time.time() - 3600))  # an hour passes
        stale = storage.repair(None)["temporaries"]
        self.assertEqual(stale["removed"], 1)
        self.assertEqual(os.listdir(shard), [])
        self.assertFalse(storage.available(None, module_data))

    def test_hostile_propfind_answers_are_refused_by_defusedxml(self):
        """Issue 12: PROPFIND XML goes through defusedxml (no entity expansion, no DTD)."""
        bomb = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">'
                b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
                b'<D:multistatus xmlns:D="DAV:"><D:response><D:href>&c;</D:href>'
                b'</D:response></D:multistatus>')
        storage = self.make_storage()
        for body in (bomb, b"<not xml", b'<?xml version="1.0"?><!DOCTYPE x SYSTEM '
                                        b'"file:///etc/passwd"><x/>'):
            with self.subTest(body=body[:30]):
                self.server.propfind_body = body
                with self.assertRaises(LocationUnavailable) as caught:
                    storage.repair(None)
                self.assertIn("PROPFIND", str(caught.exception))
                stats = storage.statistics(None)
                self.assertEqual(stats["status"], "ok")
                self.assertEqual(stats["capacity"]["total"], -1)

    def test_ages_are_measured_on_the_server_clock(self):
        """A client clock a day ahead must not make a fresh upload look stale."""
        storage = self.make_storage()
        fresh = self.leftover(storage.new_data(None), 10, 60)
        transport = Transport(parse_options([self.base_url], {}))
        self.addCleanup(transport.close)
        sweeper = Sweeper(WebDAV(transport), self.base_url, grace=3600,
                          clock=lambda: time.time() + 86400)
        report = sweeper.sweep()
        self.assertEqual((report["found"], report["fresh"], report["removed"]), (1, 1, 0))
        self.assertTrue(os.path.exists(fresh))

    def test_own_temporary_names_are_recognised(self):
        name = temporary_name(uuid.uuid4().hex)
        self.assertTrue(is_temporary_name(name))
        for other in (".upload-x", "upload-" + name[8:], name + ".bak", uuid.uuid4().hex):
            self.assertFalse(is_temporary_name(other), other)
