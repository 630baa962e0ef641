"""The conformance kit: one mixin that checks a module against the contract.

Use it from a test module::

    import unittest
    from modules.testing import StorageModuleTestBase
    from newstore.newstore import NewStorage

    class TestNewStorage(StorageModuleTestBase, unittest.TestCase):
        def make_module(self):
            return NewStorage("/tmp/newstore-test")

The mixin is not a ``TestCase``, so test runners do not collect it alone.
Every check creates a fresh module (``make_module``) and context
(``make_context``) and calls ``destroy_module`` afterwards. Optional hooks
enable more checks: ``storage_directory`` (deletes leave no empty
directories; the storage can be moved away) and ``take_storage_away`` /
``give_storage_back`` (the module reports and recovers from storage that
disappears). The same checks run from the command line with
``vsm check DOTTED.PATH [ARG ...]``.
"""
import concurrent.futures
import io
import json
import os
import random
import shutil
import tempfile
import uuid
from typing import List, Mapping, Optional

from modules import StorageModule
from modules.context import make_context
from modules.errors import (
    InvalidModuleData,
    LocationUnavailable,
    ObjectNotFound,
    StorageError,
    Unsupported,
)
from modules.reports import STATUS_OK, STATUS_UNAVAILABLE, STATUSES, statistics_status

__all__ = ["StorageModuleTestBase", "CapabilityChecks", "FailingSource", "payload"]

MIB = 1024 * 1024

#: Sizes chosen to straddle chunk boundaries: not a multiple of any power of two.
ODD_SIZE = 3 * MIB + 12345


def payload(size: int, seed: int = 0) -> bytes:
    """Return ``size`` deterministic pseudo-random bytes for ``seed``."""
    return random.Random(seed).randbytes(size)


def _directories(root: str) -> "set[str]":
    """Return every directory below ``root`` (not ``root`` itself)."""
    found = set()
    for directory, subdirectories, _ in os.walk(root):
        found.update(os.path.join(directory, name) for name in subdirectories)
    return found


class FailingSource(io.RawIOBase):
    """A source stream that yields ``data`` and raises ``OSError`` after ``fail_after`` bytes."""

    def __init__(self, data: bytes, fail_after: int):
        super().__init__()
        self._data = data
        self._fail_after = fail_after
        self._position = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._position >= self._fail_after:
            raise OSError("simulated failure of the source stream")
        if size is None or size < 0:
            size = len(self._data)
        end = min(self._position + size, self._fail_after, len(self._data))
        chunk = self._data[self._position:end]
        self._position = end
        return chunk


class _TricklingSource(io.RawIOBase):
    """A source that returns short reads of varying size, as sockets do."""

    def __init__(self, data: bytes):
        super().__init__()
        self._data = data
        self._position = 0
        self._sizes = random.Random(7)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = len(self._data)
        size = min(size, self._sizes.randint(1, 100000))
        chunk = self._data[self._position:self._position + size]
        self._position += len(chunk)
        return chunk


class StorageModuleTestBase:
    """Conformance checks for any :class:`~modules.StorageModule`.

    Mix into ``unittest.TestCase`` and override :meth:`make_module`;
    optionally :meth:`make_context` and :meth:`destroy_module`.
    """

    #: Number of threads in the concurrency check.
    concurrency = 8

    # -- hooks for module authors ----------------------------------------

    def make_module(self) -> StorageModule:
        """Return a freshly configured module instance. Must be overridden."""
        raise NotImplementedError("override make_module() to return the module under test")

    def make_context(self) -> Optional[dict]:
        """Return the context passed to every call (default: no other modules)."""
        return make_context({})

    def destroy_module(self, module: StorageModule) -> None:
        """Release ``module`` after a check (default: ``module.close()``)."""
        module.close()

    def storage_directory(self) -> Optional[str]:
        """Return the local directory the module under test stores into, or None (default).

        When a path is returned, the kit checks that deletes leave no empty
        directories there, and the default :meth:`take_storage_away` moves
        it away. ``vsm check`` returns its first argument when that is a
        directory.
        """
        return None

    def take_storage_away(self) -> None:
        """Make the storage disappear while the module stays open.

        The default renames :meth:`storage_directory` to a sibling name (as
        when a volume is unmounted or a directory is moved); override it
        (and :meth:`give_storage_back`) for remote storage, e.g. stop the
        test server. Call ``self.skipTest(reason)`` when it cannot be done.
        """
        directory = self.storage_directory()
        if directory is None:
            self.skipTest(
                "override storage_directory() (a local directory) or take_storage_away() and "
                "give_storage_back() to check how the module behaves when its storage disappears")
        away = "%s.vsm-away-%s" % (directory.rstrip(os.sep), uuid.uuid4().hex[:8])
        try:
            os.rename(directory, away)
        except OSError as error:
            self.skipTest("cannot move %s away (%s; a mount point cannot be moved: check with "
                          "a fresh directory, vsm check --tmp-dir)"
                          % (directory, error.strerror or error))
        self._storage_away = (away, directory)

    def give_storage_back(self) -> None:
        """Undo :meth:`take_storage_away` (the default moves the directory back)."""
        moved = getattr(self, "_storage_away", None)
        if moved is None:
            return
        self._storage_away = None
        away, directory = moved
        recreated = None
        if os.path.lexists(directory):  # the module made it again: keep what it wrote, aside
            recreated = "%s.vsm-recreated-%s" % (directory.rstrip(os.sep), uuid.uuid4().hex[:8])
            os.rename(directory, recreated)
        os.rename(away, directory)
        if recreated is not None:
            raise AssertionError(
                "the module created %s again while it was taken away (what it wrote then is kept "
                "in %s); never create the storage directory: raise LocationUnavailable"
                % (directory, recreated))

    # -- fixtures ---------------------------------------------------------

    def setUp(self):
        super().setUp()
        self.module = self.make_module()
        self.addCleanup(self.destroy_module, self.module)
        self.context = self.make_context()

    def store(self, data: bytes) -> str:
        """Allocate module_data, assign ``data`` and return the module_data."""
        module_data = self.module.new_data(self.context)
        self.module.assign(self.context, module_data, io.BytesIO(data))
        self.addCleanup(self._delete_quietly, module_data)
        return module_data

    def read_all(self, module_data: str) -> bytes:
        """Read the whole object in 64 KiB pieces through a fresh stream."""
        parts = []
        with self.module.get_read_stream(self.context, module_data) as stream:
            while True:
                chunk = stream.read(65536)
                if not chunk:
                    break
                parts.append(chunk)
        return b"".join(parts)

    def read_range(self, module_data: str, start: int, length: int) -> bytes:
        """Read ``length`` bytes at ``start`` the platform's way: get_size, seek, read."""
        size = self.module.get_size(self.context, module_data)
        self.assertLessEqual(start + length, size, "range outside the object")
        parts: List[bytes] = []
        with self.module.get_read_stream(self.context, module_data) as stream:
            stream.seek(start)
            remaining = length
            while remaining:
                chunk = stream.read(remaining)
                if not chunk:
                    break
                parts.append(chunk)
                remaining -= len(chunk)
        return b"".join(parts)

    def _delete_quietly(self, module_data: str) -> None:
        try:
            self.module.delete(self.context, module_data)
        except StorageError:
            pass

    def assertStoredEqual(self, module_data: str, expected: bytes) -> None:
        actual = self.read_all(module_data)
        if actual != expected:
            self.fail("read back %d bytes that differ from the %d bytes written (first difference "
                      "at byte %d)" % (len(actual), len(expected), _first_difference(actual, expected)))

    # -- the seeds' classic checks ----------------------------------------

    def test_write_and_read_one_mib(self):
        """1 MiB written is read back identically."""
        data = payload(MIB, seed=1)
        self.assertStoredEqual(self.store(data), data)

    def test_write_then_read_odd_size_with_short_source_reads(self):
        """A source that returns short reads is stored completely."""
        data = payload(ODD_SIZE // 3, seed=2)
        module_data = self.module.new_data(self.context)
        self.module.assign(self.context, module_data, _TricklingSource(data))
        self.addCleanup(self._delete_quietly, module_data)
        self.assertStoredEqual(module_data, data)

    def test_delete(self):
        """After delete the data is gone: available False, reads raise ObjectNotFound."""
        module_data = self.store(payload(1000, seed=3))
        self.module.delete(self.context, module_data)
        self.assertFalse(self.module.available(self.context, module_data),
                         "available() is True after delete()")
        with self.assertRaises(ObjectNotFound, msg="get_read_stream after delete"):
            self.module.get_read_stream(self.context, module_data).close()
        with self.assertRaises(ObjectNotFound, msg="get_size after delete"):
            self.module.get_size(self.context, module_data)
        self.module.delete(self.context, module_data)  # a second delete is fine

    def test_statistics_format(self):
        """statistics() is a JSON-serialisable dict with integer capacity fields."""
        stats = self.module.statistics(self.context)
        self.assertIsInstance(stats, dict, "statistics() must return a dict")
        try:
            json.dumps(stats)
        except (TypeError, ValueError) as error:
            self.fail("statistics() is not JSON-serialisable: %s" % error)
        self.assertIn("capacity", stats, "statistics() lacks the 'capacity' entry")
        capacity = stats["capacity"]
        self.assertIsInstance(capacity, dict, "capacity must be a dict of total/free/used")
        for field in ("total", "free", "used"):
            self.assertIn(field, capacity, "capacity lacks %r" % field)
            value = capacity[field]
            self.assertTrue(isinstance(value, int) and not isinstance(value, bool),
                            "capacity[%r] must be an int, got %r" % (field, value))
            self.assertGreaterEqual(value, -1, "capacity[%r] must be bytes or -1" % field)
        if capacity["total"] >= 0:
            for field in ("free", "used"):
                if capacity[field] >= 0:
                    self.assertLessEqual(capacity[field], capacity["total"],
                                         "capacity[%r] exceeds total" % field)

    # -- module_data and availability ------------------------------------

    def test_new_data_returns_a_new_str_each_call(self):
        """new_data returns a different str on every call."""
        values = [self.module.new_data(self.context) for _ in range(50)]
        for value in values:
            self.assertIsInstance(value, str, "new_data() must return a str, got %r" % (value,))
        self.assertEqual(len(set(values)), len(values), "new_data() returned a value twice")

    def test_available_lifecycle(self):
        """available: False before assign, True after, False after delete."""
        module_data = self.module.new_data(self.context)
        self.assertFalse(self.module.available(self.context, module_data),
                         "available() is True before assign()")
        self.module.assign(self.context, module_data, io.BytesIO(b"x" * 100))
        self.addCleanup(self._delete_quietly, module_data)
        self.assertTrue(self.module.available(self.context, module_data),
                        "available() is False after assign()")
        self.module.delete(self.context, module_data)
        self.assertFalse(self.module.available(self.context, module_data),
                         "available() is True after delete()")

    def test_unassigned_module_data(self):
        """module_data from new_data but never assigned: not found, delete is fine."""
        module_data = self.module.new_data(self.context)
        self.assertFalse(self.module.available(self.context, module_data))
        with self.assertRaises(ObjectNotFound):
            self.module.get_size(self.context, module_data)
        with self.assertRaises(ObjectNotFound):
            self.module.get_read_stream(self.context, module_data).close()
        self.module.delete(self.context, module_data)

    # -- sizes --------------------------------------------------------------

    def test_get_size_matches_bytes_written(self):
        """get_size is exact for 0 bytes, 1 byte and an odd size of a few MiB."""
        for size in (0, 1, ODD_SIZE):
            with self.subTest(size=size):
                data = payload(size, seed=size)
                module_data = self.store(data)
                self.assertEqual(self.module.get_size(self.context, module_data), size,
                                 "get_size() differs from the %d bytes written" % size)
                self.assertStoredEqual(module_data, data)

    # -- the read stream ----------------------------------------------------

    def test_read_stream_interface(self):
        """The stream supports read(), read(n), seek, tell, close and ``with``."""
        data = payload(300000, seed=4)
        module_data = self.store(data)
        stream = self.module.get_read_stream(self.context, module_data)
        for method in ("read", "seek", "tell", "close"):
            self.assertTrue(callable(getattr(stream, method, None)),
                            "the read stream has no %s() method" % method)
        try:
            self.assertEqual(stream.tell(), 0, "a new stream must start at position 0")
            self.assertEqual(stream.read(10), data[:10], "read(10) at the start")
            self.assertEqual(stream.tell(), 10, "tell() after read(10)")
            pieces = [stream.read(7777) for _ in range(5)]
            self.assertEqual(b"".join(pieces), data[10:10 + 5 * 7777], "read(n) in pieces")
            stream.seek(0)
            self.assertEqual(stream.tell(), 0, "tell() after seek(0)")
            self.assertEqual(stream.read(), data, "read() after seek(0) must return everything")
            self.assertEqual(stream.read(), b"", "read() at the end must return b''")
            stream.seek(123456)
            self.assertEqual(stream.tell(), 123456, "tell() after seek(k)")
            self.assertEqual(stream.read(100), data[123456:123556], "read(100) after seek(k)")
            stream.seek(0, 2)
            self.assertEqual(stream.tell(), len(data), "seek(0, 2) must move to the end")
            self.assertEqual(stream.read(10), b"", "read at the end must return b''")
            stream.seek(-10, 2)
            self.assertEqual(stream.read(), data[-10:], "seek(-10, 2) then read()")
            stream.seek(5)
            stream.seek(5, 1)
            self.assertEqual(stream.read(5), data[10:15], "seek(5, 1) is relative")
        finally:
            stream.close()
        with self.module.get_read_stream(self.context, module_data) as managed:
            self.assertEqual(managed.read(3), data[:3], "read in a with block")

    def test_read_stream_beyond_the_end(self):
        """Seeking past the end is allowed and reads there return b''."""
        module_data = self.store(b"0123456789")
        with self.module.get_read_stream(self.context, module_data) as stream:
            stream.seek(50)
            self.assertEqual(stream.read(10), b"", "read past the end must return b''")
            stream.seek(8)
            self.assertEqual(stream.read(10), b"89", "read across the end returns what is left")

    def test_ranged_reads_the_platform_way(self):
        """get_size, then seek and read: first bytes, last bytes, a middle range."""
        data = payload(ODD_SIZE, seed=5)
        module_data = self.store(data)
        size = len(data)
        for start, length in ((0, 100), (size - 100, 100), (MIB - 3, MIB + 7), (size - 1, 1)):
            with self.subTest(start=start, length=length):
                self.assertEqual(self.read_range(module_data, start, length),
                                 data[start:start + length], "ranged read differs")

    def test_two_streams_read_independently(self):
        """Two open streams on one object do not disturb each other."""
        data = payload(200000, seed=6)
        module_data = self.store(data)
        with self.module.get_read_stream(self.context, module_data) as first, \
                self.module.get_read_stream(self.context, module_data) as second:
            first.seek(1000)
            self.assertEqual(second.read(500), data[:500])
            self.assertEqual(first.read(500), data[1000:1500])
            self.assertEqual(second.read(500), data[500:1000])

    # -- immutability and failed writes ---------------------------------

    def test_assign_again_with_the_same_bytes_is_safe(self):
        """A repeated assign of the same bytes (a retry) leaves the data intact."""
        data = payload(MIB + 17, seed=8)
        module_data = self.store(data)
        self.module.assign(self.context, module_data, io.BytesIO(data))
        self.assertTrue(self.module.available(self.context, module_data))
        self.assertEqual(self.module.get_size(self.context, module_data), len(data))
        self.assertStoredEqual(module_data, data)

    def test_failing_source_leaves_nothing(self):
        """A source raising mid-way: assign raises; nothing partial is available or readable."""
        data = payload(2 * MIB, seed=9)
        module_data = self.module.new_data(self.context)
        self.addCleanup(self._delete_quietly, module_data)
        with self.assertRaises(Exception, msg="assign() must raise when its source fails"):
            self.module.assign(self.context, module_data, FailingSource(data, MIB + 100))
        self.assertFalse(self.module.available(self.context, module_data),
                         "available() is True after a failed assign(): a partial object was kept")
        with self.assertRaises(ObjectNotFound,
                               msg="a partial object is readable after a failed assign()"):
            self.module.get_read_stream(self.context, module_data).close()
        with self.assertRaises(ObjectNotFound,
                               msg="get_size() answers after a failed assign()"):
            self.module.get_size(self.context, module_data)
        self.module.assign(self.context, module_data, io.BytesIO(data))
        self.assertStoredEqual(module_data, data)

    def test_text_stream_is_rejected(self):
        """assign of a text stream raises TypeError or an SDK error and stores nothing.

        Issue 15, point 7: ``TypeError`` is a clear answer too.
        """
        module_data = self.module.new_data(self.context)
        self.addCleanup(self._delete_quietly, module_data)
        try:
            self.module.assign(self.context, module_data, io.StringIO("text, not bytes"))
        except (TypeError, StorageError):
            pass
        else:
            self.fail("assign() accepted a text stream; reject it with TypeError or "
                      "SourceStreamError (modules.streams.read_source_chunk does)")
        self.assertFalse(self.module.available(self.context, module_data),
                         "available() is True after a text stream was refused")

    # -- bad module_data --------------------------------------------------

    def test_garbage_module_data_is_rejected_and_touches_nothing(self):
        """Garbage module_data raises InvalidModuleData or ObjectNotFound and harms nothing."""
        outside = tempfile.mkdtemp(prefix="vsm-kit-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        victim = os.path.join(outside, "victim")
        with open(victim, "wb") as file:
            file.write(b"precious")
        garbage = ["../../etc/passwd", "", "{", "x" * 100000, victim,
                   "../" * 40 + victim.lstrip("/"), "/", ".", "..", "\0", "[]", '{"v": 99}',
                   None, 42, b"bytes", {"a": 1}, ["x"]]
        for value in garbage:
            shown = repr(value)[:60]
            for name, call in (
                    ("available", lambda v: self.module.available(self.context, v)),
                    ("get_size", lambda v: self.module.get_size(self.context, v)),
                    ("get_read_stream", lambda v: self.module.get_read_stream(self.context, v).close()),
                    ("delete", lambda v: self.module.delete(self.context, v)),
                    ("assign", lambda v: self.module.assign(self.context, v, io.BytesIO(b"evil")))):
                with self.subTest(method=name, module_data=shown):
                    try:
                        result = call(value)
                    except (InvalidModuleData, ObjectNotFound):
                        continue
                    except Exception as error:
                        self.fail("%s(%s) raised %s: %s; expected InvalidModuleData or "
                                  "ObjectNotFound" % (name, shown, type(error).__name__, error))
                    self.fail("%s(%s) accepted garbage module_data (returned %r); expected "
                              "InvalidModuleData or ObjectNotFound" % (name, shown, result))
        with open(victim, "rb") as file:
            self.assertEqual(file.read(), b"precious", "a file outside the storage was changed")
        self.assertEqual(os.listdir(outside), ["victim"], "files appeared outside the storage")

    # -- concurrency ------------------------------------------------------

    def test_concurrent_writes_reads_and_deletes(self):
        """8 threads writing, reading and deleting distinct objects: every byte intact."""

        def worker(index: int) -> None:
            for round_number in range(3):
                data = payload(150000 + index * 1000 + round_number, seed=100 + index * 10 + round_number)
                module_data = self.module.new_data(self.context)
                self.module.assign(self.context, module_data, io.BytesIO(data))
                if self.read_all(module_data) != data:
                    raise AssertionError("thread %d read back different bytes" % index)
                if self.module.get_size(self.context, module_data) != len(data):
                    raise AssertionError("thread %d got a wrong size" % index)
                self.module.delete(self.context, module_data)
                if self.module.available(self.context, module_data):
                    raise AssertionError("thread %d: available after delete" % index)

        with concurrent.futures.ThreadPoolExecutor(self.concurrency) as pool:
            futures = [pool.submit(worker, index) for index in range(self.concurrency)]
            for future in futures:
                future.result()

    # -- storage that disappears, statistics, leftovers (issue 15) ---------

    def test_storage_taken_away_and_given_back(self):
        """Storage taken away while open: LocationUnavailable and status 'unavailable'; both recover.

        Issue 15, point 7: a module kept writing to a database file whose
        directory had been moved away. Uses :meth:`take_storage_away` and
        :meth:`give_storage_back` (skipped when neither is available).
        """
        data = payload(70001, seed=12)
        module_data = self.store(data)
        fresh = self.module.new_data(self.context)
        self.addCleanup(self._delete_quietly, fresh)
        self.take_storage_away()
        try:
            self._check_everything_unavailable(module_data, fresh)
        finally:
            self.give_storage_back()
        self.assertTrue(self.module.available(self.context, module_data),
                        "available() is False after the storage came back: the object written "
                        "before must be found again (do not cache the failure)")
        self.assertStoredEqual(module_data, data)
        self.assertFalse(self.module.available(self.context, fresh),
                         "an object assigned while the storage was away is available now: it "
                         "was stored somewhere else; raise LocationUnavailable instead")
        self.module.assign(self.context, fresh, io.BytesIO(b"after the storage came back"))
        self.assertStoredEqual(fresh, b"after the storage came back")
        status, reason = statistics_status(self.module.statistics(self.context))
        self.assertEqual(status, STATUS_OK,
                         "statistics() reads as %r (%s) after the storage came back; report "
                         "'ok' again once it answers (check it on every call, do not cache it)"
                         % (status, reason))

    def _check_everything_unavailable(self, module_data: str, fresh: str) -> None:
        def read() -> None:
            with self.module.get_read_stream(self.context, module_data) as stream:
                stream.read()

        calls = (("available", lambda: self.module.available(self.context, module_data)),
                 ("get_size", lambda: self.module.get_size(self.context, module_data)),
                 ("get_read_stream", read),
                 ("assign", lambda: self.module.assign(self.context, fresh, io.BytesIO(b"new"))),
                 ("delete", lambda: self.module.delete(self.context, module_data)))
        for name, call in calls:
            with self.subTest(method=name, storage="taken away"):
                try:
                    result = call()
                except LocationUnavailable:
                    continue
                except Exception as error:
                    self.fail("%s() raised %s while the storage was taken away: %s; raise "
                              "LocationUnavailable (for local files, wrap OS calls in "
                              "modules.fs_errors.convert_os_errors and check the storage "
                              "exists before treating ENOENT as 'not found')"
                              % (name, type(error).__name__, error))
                self.fail("%s() succeeded (returned %r) while the storage was taken away; it "
                          "must raise LocationUnavailable: the platform would otherwise trust a "
                          "storage that is gone (never recreate a missing storage directory)"
                          % (name, result))
        with self.subTest(method="statistics", storage="taken away"):
            try:
                stats = self.module.statistics(self.context)
            except Exception as error:
                self.fail("statistics() raised %s while the storage was taken away: %s; it must "
                          "never raise, but report {'status': 'unavailable', 'reason': ...}"
                          % (type(error).__name__, error))
            status, _ = statistics_status(stats)
            self.assertEqual(status, STATUS_UNAVAILABLE,
                             "statistics() reads as %r (status %r) while the storage is gone; "
                             "report {'status': 'unavailable', 'reason': ...}, or the status "
                             "page shows the module %s" % (status, stats.get("status"),
                                                          status.upper()))
            reason = stats.get("reason")
            self.assertTrue(isinstance(reason, str) and reason.strip(),
                            "statistics() reports the storage unavailable without a 'reason'; "
                            "say what is wrong and what to fix")

    def test_statistics_status_is_known(self):
        """statistics()['status'], when given, is ok, degraded or unavailable (with a reason)."""
        stats = self.module.statistics(self.context)
        if "status" not in stats:
            self.skipTest("statistics() has no 'status'; add 'ok'/'degraded'/'unavailable' so "
                          "the status page can tell when the storage is gone")
        status = stats["status"]
        self.assertIn(status, STATUSES,
                      "statistics()['status'] is %r; use one of %s (modules.reports.STATUSES)"
                      % (status, ", ".join(STATUSES)))
        if status != "ok":
            self.assertTrue(isinstance(stats.get("reason"), str) and stats["reason"].strip(),
                            "statistics() reports %r without a 'reason' saying what to fix"
                            % status)

    def test_deletes_leave_no_empty_directories(self):
        """Deleting every object leaves no empty directory behind (issue 15, point 8)."""
        root = self.storage_directory()
        if root is None:
            self.skipTest("override storage_directory() to check for leftovers of deletes")
        before = _directories(root)
        stored = [self.store(payload(100 + index, seed=200 + index)) for index in range(12)]
        for module_data in stored:
            self.module.delete(self.context, module_data)
        left = sorted(path for path in _directories(root) - before if not os.listdir(path))
        self.assertEqual(left, [], "delete() left %d empty directories behind (e.g. %s); remove "
                                   "the directories a delete empties (os.rmdir, ignoring "
                                   "ENOTEMPTY), up to but not including the storage directory"
                         % (len(left), left[:1]))

    # -- optional operations ----------------------------------------------

    def test_repair_matches_capabilities(self):
        """repair() works when capabilities say so, and raises Unsupported otherwise."""
        capabilities = getattr(self.module, "capabilities", {})
        if capabilities.get("repair"):
            module_data = self.store(b"repair me")
            summary = self.module.repair(self.context, module_data)
            self.assertIsInstance(summary, dict, "repair() must return a dict summary")
            json.dumps(summary)
            self.assertStoredEqual(module_data, b"repair me")
        else:
            with self.assertRaises(Unsupported):
                self.module.repair(self.context)


def _first_difference(left: bytes, right: bytes) -> int:
    for index, (a, b) in enumerate(zip(left, right)):
        if a != b:
            return index
    return min(len(left), len(right))


# -- optional capabilities (the wrappers engineer's block) -------------------------------

class CapabilityChecks:
    """Per-capability checks: each optional method works, or raises Unsupported and says so.

    Mix in before :class:`StorageModuleTestBase` (it uses its fixtures)::

        class TestMine(CapabilityChecks, StorageModuleTestBase, unittest.TestCase):
            def make_module(self):
                return MyStorage(...)

    Every key of :data:`modules.CAPABILITIES` is checked the fsspec way: the
    capability True means the method works on a stored object and returns
    the documented shape; False means it raises
    :class:`~modules.errors.Unsupported`.
    """

    def _capabilities(self):
        capabilities = getattr(self.module, "capabilities", None)
        self.assertIsInstance(capabilities, Mapping,
                              "capabilities must be a mapping of name -> bool")
        return capabilities

    def test_capabilities_are_a_table_of_booleans(self):
        """Every capability value is a bool, and unknown keys are not misspelt known ones."""
        from modules import CAPABILITIES
        self.store(b"resolve named inner modules first")
        capabilities = self._capabilities()
        for key, value in capabilities.items():
            self.assertIsInstance(value, bool, "capabilities[%r] must be a bool, got %r"
                                  % (key, value))
        known = set(CAPABILITIES)
        for key in capabilities:
            if key not in known:
                close = [name for name in known if name.replace("_", "") == key.replace("_", "")]
                self.assertFalse(close, "capability %r looks like a misspelling of %s" % (key, close))

    def test_scrub_matches_capabilities(self):
        """scrub() reports an intact object as intact, or raises Unsupported when not offered."""
        from modules.reports import ScrubReport
        data = payload(70000, seed=41)
        module_data = self.store(data)
        if self._capabilities().get("scrub"):
            report = self.module.scrub(self.context, module_data)
            self.assertIsInstance(report, dict, "scrub() must return a dict report")
            json.dumps(report)
            typed = ScrubReport.from_dict(report)
            self.assertFalse(typed.damaged, "scrub() reports an intact object as damaged: %r"
                             % (typed.damaged,))
            self.assertFalse(typed.missing, "scrub() reports an intact object as missing")
            limited = self.module.scrub(self.context, module_data, rate=10 ** 9)
            self.assertIsInstance(limited, dict, "scrub(rate=...) must return a dict report")
            self.assertStoredEqual(module_data, data)
        else:
            with self.assertRaises(Unsupported, msg="capabilities['scrub'] is False, so scrub() "
                                                    "must raise Unsupported"):
                self.module.scrub(self.context, module_data)

    def test_repair_of_the_backlog_matches_capabilities(self):
        """repair(context) (no object) and repair(..., rate=) work, or raise Unsupported."""
        from modules.reports import RepairReport
        module_data = self.store(b"repair backlog")
        if self._capabilities().get("repair"):
            report = self.module.repair(self.context)
            self.assertIsInstance(report, dict, "repair(context) must return a dict summary")
            json.dumps(report)
            RepairReport.from_dict(report)
            one = self.module.repair(self.context, module_data, rate=10 ** 9)
            self.assertIsInstance(one, dict, "repair(context, module_data, rate=) must return "
                                             "a dict summary")
            self.assertStoredEqual(module_data, b"repair backlog")
        else:
            with self.assertRaises(Unsupported, msg="capabilities['repair'] is False, so "
                                                    "repair() must raise Unsupported"):
                self.module.repair(self.context, module_data)

    def test_new_data_for_matches_capabilities(self):
        """new_data_for is deterministic and usable, or raises Unsupported when not offered."""
        self.store(b"resolve named inner modules first")
        object_id = uuid.uuid4().hex
        if self._capabilities().get("placement"):
            first = self.module.new_data_for(self.context, object_id)
            self.assertIsInstance(first, str, "new_data_for() must return a str")
            self.assertEqual(self.module.new_data_for(self.context, object_id), first,
                             "new_data_for() must return the same value for the same object id")
            self.assertNotEqual(self.module.new_data_for(self.context, uuid.uuid4().hex), first,
                                "new_data_for() returned the same value for two object ids")
            with self.assertRaises(InvalidModuleData, msg="new_data_for() must reject an object "
                                                          "id that is not 32 lowercase hex"):
                self.module.new_data_for(self.context, "../" + object_id[3:])
            self.module.assign(self.context, first, io.BytesIO(b"placed"))
            self.addCleanup(self._delete_quietly, first)
            self.assertStoredEqual(first, b"placed")
        else:
            with self.assertRaises(Unsupported, msg="capabilities['placement'] is False, so "
                                                    "new_data_for() must raise Unsupported"):
                self.module.new_data_for(self.context, object_id)
