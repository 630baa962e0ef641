"""A copy that vanishes because its object is being deleted is gone, not damaged (issue 9).

The replica deletes a copy's manifest first, then its data. A reader that
arrives in between used to see "data without manifest" everywhere and raise
DataCorrupted, log "damaged copy" errors, journal repairs of copies that were
only deleted and turn the mirror DEGRADED. These tests hold the delete
between the two steps, with real directories, and read meanwhile.
"""
import io
import json
import os
import threading
import unittest

from modules.context import make_context
from modules.errors import DataCorrupted, ObjectNotFound, StorageError
from modules.testing.faults import FaultyStorage
from replica.replica import ReplicaStorage
from simple.simple import SimpleStorage
from tests.replica.helpers import MIB, temp_dir, wait_until


class _GatedDeletes(FaultyStorage):
    """Deletes of the module_data in ``held`` wait until ``gate`` is set (bounded)."""

    def __init__(self, inner, name):
        super().__init__(inner, name=name)
        self.held = set()
        self.gate = threading.Event()

    def delete(self, context, module_data):
        if module_data in self.held:
            self.gate.wait(10)
        return super().delete(context, module_data)


class TestVanishedCopies(unittest.TestCase):
    def setUp(self):
        root = temp_dir(self)
        self.names = ["loc-a", "loc-b", "loc-c"]
        self.modules = {}
        for name in self.names:
            directory = os.path.join(root, name)
            os.mkdir(directory)
            self.modules[name] = _GatedDeletes(SimpleStorage(directory), name)
        self.context = make_context(dict(self.modules))
        self.replica = ReplicaStorage(*self.names, sleep=lambda seconds: None)
        self.addCleanup(self.replica.close)
        self.addCleanup(self.open_gates)
        self.data = os.urandom(3 * MIB + 123)
        self.module_data = self.replica.new_data(self.context)
        self.replica.assign(self.context, self.module_data, io.BytesIO(self.data))
        self.copies = json.loads(self.module_data)["copies"]

    def open_gates(self):
        for module in self.modules.values():
            module.gate.set()

    def manifest_gone(self, name):
        return not self.modules[name].inner.available(None, self.copies[name]["mf"])

    def start_delete_holding_data(self):
        """Delete in a thread; it removes every manifest and waits before removing data."""
        for name, module in self.modules.items():
            module.held.add(self.copies[name]["md"])
        thread = threading.Thread(target=self.replica.delete,
                                  args=(self.context, self.module_data), daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        self.assertTrue(wait_until(lambda: all(self.manifest_gone(name) for name in self.names)),
                        "the delete did not remove the manifests")
        return thread

    def assert_no_damage_recorded(self, healthy=True):
        stats = self.replica.statistics(self.context)
        self.assertEqual(stats["operations"]["damaged_copies_found"], 0)
        self.assertEqual(stats["under_replicated"], 0, "a vanished copy was journaled for repair")
        if healthy:
            self.assertFalse(stats["degraded"], "a vanished copy turned the mirror DEGRADED")

    def test_opening_during_a_delete_is_not_found_not_corrupted(self):
        """Regression (issue 9): data without manifest during a delete is not damage."""
        thread = self.start_delete_holding_data()
        for operation in (lambda: self.replica.get_read_stream(self.context, self.module_data),
                          lambda: self.replica.get_size(self.context, self.module_data)):
            with self.assertRaises(ObjectNotFound) as caught:
                operation()
            self.assertNotIsInstance(caught.exception, DataCorrupted)
        self.open_gates()
        thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assert_no_damage_recorded()

    def test_a_read_under_way_finishes_with_the_bytes_it_started_with(self):
        """Regression (issue 9): a stream opened before the delete still serves its copy."""
        with self.replica.get_read_stream(self.context, self.module_data) as stream:
            first = stream.read(MIB)
            thread = self.start_delete_holding_data()
            rest = stream.read()
        self.assertEqual(first + rest, self.data)
        self.open_gates()
        thread.join(10)
        self.assert_no_damage_recorded()

    def test_a_copy_failing_mid_read_during_a_delete_ends_in_not_found(self):
        """Regression (issue 9): switching to copies whose manifests vanished is not damage."""
        # Block 3 is fetched only after block 1 is consumed (read-ahead is 2 blocks), so the
        # switch to another copy happens after the delete removed the manifests.
        self.modules["loc-a"].fail("read", after_bytes=3 * MIB + 10)
        with self.replica.get_read_stream(self.context, self.module_data) as stream:
            self.assertEqual(stream.read(MIB), self.data[:MIB])
            thread = self.start_delete_holding_data()
            with self.assertRaises(ObjectNotFound) as caught:
                stream.read()
            self.assertNotIsInstance(caught.exception, DataCorrupted)
        self.open_gates()
        thread.join(10)
        self.assert_no_damage_recorded(healthy=False)  # loc-a's injected read fault counts
        self.assertGreaterEqual(self.replica.statistics(None)["operations"]["vanished_copies"], 1)

    def test_a_scrub_during_a_delete_reports_no_damage(self):
        """Regression (issue 9): scrub and repair of a deleted object journal nothing."""
        thread = self.start_delete_holding_data()
        report = self.replica.scrub(self.context, self.module_data)
        self.assertEqual(report["damaged"], {})
        with self.assertRaises(ObjectNotFound):
            self.replica.repair(self.context, self.module_data)
        self.open_gates()
        thread.join(10)
        self.assert_no_damage_recorded()

    def test_a_copy_gone_whole_in_another_process_is_not_damage(self):
        """Regression (issue 9): a copy whose manifest and data are gone is missing, not damaged.

        Another process deleted the copies (no tombstone here): the reader
        switches from its broken copy to copies that no longer exist.
        """
        self.modules["loc-a"].fail("read", after_bytes=3 * MIB + 10)
        with self.replica.get_read_stream(self.context, self.module_data) as stream:
            self.assertEqual(stream.read(MIB), self.data[:MIB])
            for name in ("loc-b", "loc-c"):
                inner = self.modules[name].inner
                inner.delete(None, self.copies[name]["mf"])
                inner.delete(None, self.copies[name]["md"])
            with self.assertRaises(StorageError) as caught:
                stream.read()
            self.assertNotIsInstance(caught.exception, DataCorrupted)
        self.assertEqual(self.replica.statistics(None)["operations"]["damaged_copies_found"], 0)

    def test_a_copy_whose_data_is_gone_scrubs_as_missing_and_is_refilled(self):
        """Regression (issue 9): data gone with its manifest left is missing, not damaged."""
        self.modules["loc-b"].inner.delete(None, self.copies["loc-b"]["md"])
        report = self.replica.scrub(self.context, self.module_data)
        self.assertEqual(report["damaged"], {})
        self.assertEqual(report["missing"], ["loc-b"])
        self.assertEqual(self.replica.statistics(None)["operations"]["damaged_copies_found"], 0)
        repaired = self.replica.repair(self.context, self.module_data)
        self.assertEqual(repaired["repaired"], ["loc-b"])
        with self.modules["loc-b"].inner.get_read_stream(None, self.copies["loc-b"]["md"]) as s:
            self.assertEqual(s.read(), self.data)

    def test_damage_while_the_object_lives_is_still_damage(self):
        """The other side: a present copy with bad bytes is reported and journaled."""
        path = os.path.join(self.modules["loc-a"].inner.storage_dir,
                            *self.copies["loc-a"]["md"].split("/"))
        with open(path, "r+b") as file:
            file.seek(10)
            file.write(b"\0" * 16)
        with self.replica.get_read_stream(self.context, self.module_data) as stream:
            self.assertEqual(stream.read(), self.data)
        stats = self.replica.statistics(self.context)
        self.assertEqual(stats["operations"]["damaged_copies_found"], 1)
        self.assertEqual(stats["under_replicated"], 1)


if __name__ == "__main__":
    unittest.main()
