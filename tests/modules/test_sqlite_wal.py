"""``connect_wal``: many processes opening one new database at once all get it in WAL mode.

A replica's journal opened by two ``vsm serve`` workers at the same moment failed with
"database is locked" (SQLite answers so at once, without its busy handler, while another
connection switches the file to WAL).
"""
import multiprocessing
import os
import shutil
import tempfile
import unittest

from modules.sqlite_wal import connect_wal

PROCESSES = 8
ROUNDS = 6


def _open(path, ready, results):
    ready.wait(10)
    try:
        db = connect_wal(path, timeout=10)
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        db.execute("CREATE TABLE IF NOT EXISTS t (x)")
        db.close()
        results.put(mode)
    except Exception as error:  # reported to the test
        results.put("%s: %s" % (type(error).__name__, error))


class TestConnectWal(unittest.TestCase):

    def test_processes_opening_one_new_database_at_once(self):
        context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
        directory = tempfile.mkdtemp(prefix="vsm-wal-")
        self.addCleanup(shutil.rmtree, directory, True)
        for round_ in range(ROUNDS):
            path = os.path.join(directory, "db%d.sqlite3" % round_)
            ready, results = context.Event(), context.Queue()
            workers = [context.Process(target=_open, args=(path, ready, results))
                       for _ in range(PROCESSES)]
            for worker in workers:
                worker.start()
            ready.set()
            answers = [results.get(timeout=30) for _ in workers]
            for worker in workers:
                worker.join(30)
            self.assertEqual(answers, ["wal"] * PROCESSES, answers)

    def test_bad_synchronous_is_refused(self):
        with self.assertRaises(ValueError):
            connect_wal(":memory:", 1, synchronous="EXTRA; DROP")
