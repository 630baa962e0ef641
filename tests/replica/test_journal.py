"""The journal of deferred deletes and copies, in memory and durable."""
import io
import json
import os
import unittest

from modules.context import make_context
from modules.testing import payload
from modules.testing.faults import FaultyStorage
from replica.journal import COPY, DELETE, MemoryJournal, SqliteJournal
from replica.replica import ReplicaStorage
from simple.simple import SimpleStorage
from tests.replica.helpers import temp_dir


class JournalChecks:
    """The same checks for both journals."""

    def make_journal(self, limit=100):
        raise NotImplementedError

    def test_add_is_idempotent_and_counted(self):
        journal = self.make_journal()
        self.assertTrue(journal.add(DELETE, "a", "id1", "md1"))
        self.assertTrue(journal.add(DELETE, "a", "id1", "md1"))
        self.assertTrue(journal.add(COPY, "a", "id1", "md1"))
        self.assertTrue(journal.add(COPY, "b", "id2", "md2"))
        self.assertEqual(journal.counts(), {"delete": 1, "copy": 2})
        self.assertTrue(journal.has("id1"))
        self.assertFalse(journal.has("id3"))

    def test_remove_and_remove_object(self):
        journal = self.make_journal()
        journal.add(DELETE, "a", "id1", "md1")
        journal.add(COPY, "a", "id1", "md1")
        journal.add(COPY, "b", "id1", "md1")
        journal.remove(DELETE, "a", "id1")
        journal.remove(DELETE, "a", "id1")
        self.assertEqual(journal.counts(), {"delete": 0, "copy": 2})
        self.assertEqual(journal.remove_object("id1", COPY), 2)
        self.assertFalse(journal.has("id1"))

    def test_bounded_entries_are_refused_and_counted(self):
        journal = self.make_journal(limit=2)
        self.assertTrue(journal.add(DELETE, "a", "1", "m"))
        self.assertTrue(journal.add(DELETE, "a", "2", "m"))
        with self.assertLogs("replica.journal", "ERROR"):
            self.assertFalse(journal.add(DELETE, "a", "3", "m"))
        self.assertEqual(journal.dropped, 1)
        self.assertEqual(sum(journal.counts().values()), 2)

    def test_a_full_journal_gives_a_delete_the_place_of_the_oldest_copy(self):
        """Regression: missing copies filling the journal must not make deletes fail."""
        journal = self.make_journal(limit=2)
        journal.add(COPY, "a", "1", "m")
        journal.add(COPY, "a", "2", "m")
        with self.assertLogs("replica.journal", "ERROR"):
            self.assertTrue(journal.add(DELETE, "a", "3", "m"))
        self.assertEqual(journal.counts(), {"delete": 1, "copy": 1})
        self.assertFalse(journal.has("1"))
        self.assertEqual(journal.dropped, 1)
        journal.add(DELETE, "a", "4", "m")
        self.assertFalse(journal.add(DELETE, "a", "5", "m"))
        self.assertEqual(journal.counts(), {"delete": 2, "copy": 0})

    def test_entries_oldest_touched_first_and_by_location(self):
        journal = self.make_journal()
        for index in range(3):
            journal.add(DELETE, "a" if index < 2 else "b", str(index), "m%d" % index)
        first = journal.entries(10)
        self.assertEqual([entry.object_id for entry in first], ["0", "1", "2"])
        journal.retry_failed(first[0], "still down")
        again = journal.entries(10)
        self.assertEqual([entry.object_id for entry in again], ["1", "2", "0"])
        self.assertEqual(again[2].attempts, 1)
        self.assertEqual(again[2].last_error, "still down")
        self.assertEqual([entry.object_id for entry in journal.entries(10, ["b"])], ["2"])
        self.assertEqual(journal.entries(10, []), [])
        self.assertEqual(len(journal.entries(1)), 1)


class TestMemoryJournal(JournalChecks, unittest.TestCase):

    def make_journal(self, limit=100):
        return MemoryJournal(limit)

    def test_is_not_durable(self):
        self.assertFalse(self.make_journal().durable)


class TestSqliteJournal(JournalChecks, unittest.TestCase):

    def make_journal(self, limit=100):
        journal = SqliteJournal(temp_dir(self), limit)
        self.addCleanup(journal.close)
        return journal

    def test_entries_survive_reopening_and_are_shared_between_processes(self):
        state_dir = temp_dir(self)
        first = SqliteJournal(state_dir, 100)
        first.add(DELETE, "a", "id1", "md1")
        second = SqliteJournal(state_dir, 100)  # as another server process would
        self.addCleanup(second.close)
        self.assertTrue(second.has("id1"))
        second.add(COPY, "b", "id2", "md2")
        first.close()
        third = SqliteJournal(state_dir, 100)
        self.addCleanup(third.close)
        self.assertEqual(third.counts(), {"delete": 1, "copy": 1})
        self.assertTrue(third.durable)
        self.assertTrue(os.path.isfile(third.path))


class TestReplicaJournalAcrossRestart(unittest.TestCase):

    def test_a_deferred_delete_survives_a_restart_and_is_replayed(self):
        root = temp_dir(self)
        children = {}
        for name in ("a", "b", "c"):
            os.mkdir(os.path.join(root, name))
            children[name] = FaultyStorage(SimpleStorage(os.path.join(root, name)), name=name)
        context = make_context(children)
        state_dir = os.path.join(root, "state")
        replica = ReplicaStorage("a", "b", "c", state_dir=state_dir)
        module_data = replica.new_data(context)
        replica.assign(context, module_data, io.BytesIO(payload(5000, seed=1)))
        children["c"].down()
        replica.delete(context, module_data)
        stats = replica.statistics(context)
        self.assertEqual(stats["pending_deletes"], 1)
        self.assertTrue(stats["journal"]["durable"])
        replica.close()

        children["c"].up()
        restarted = ReplicaStorage("a", "b", "c", state_dir=state_dir)
        self.addCleanup(restarted.close)
        self.assertEqual(restarted.statistics(context)["pending_deletes"], 1)
        self.assertTrue(children["c"].inner.available(context, _child(module_data, "c")))
        summary = restarted.repair(context)
        self.assertEqual(summary["deletes"]["done"], 1)
        self.assertFalse(children["c"].inner.available(context, _child(module_data, "c")))
        self.assertEqual(restarted.statistics(context)["pending_deletes"], 0)

    def test_memory_journal_says_it_is_lost_on_restart(self):
        replica = ReplicaStorage("a")
        self.addCleanup(replica.close)
        journal = replica.statistics(None)["journal"]
        self.assertFalse(journal["durable"])
        self.assertIn("lost on restart", journal["note"])


def _child(module_data, name):
    return json.loads(module_data)["copies"][name]["md"]


if __name__ == "__main__":
    unittest.main()
