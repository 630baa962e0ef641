"""The StorageModule contract, the errors, the loader and the context builder."""
import errno
import os
import unittest

import modules
from modules import StorageModule
from modules.context import get_module, make_context
from modules.errors import (
    ConfigurationError, InsufficientStorage, InvalidModuleData, LocationTimeout,
    LocationUnavailable, ObjectNotFound, StorageError, Unsupported,
)
from modules.fs_errors import convert_os_errors
from modules.loader import load_module, load_module_class
from simple.simple import SimpleStorage


class Incomplete(StorageModule):
    def new_data(self, context):
        return "x"


class TestContract(unittest.TestCase):
    def test_forgotten_methods_are_named_at_instantiation(self):
        with self.assertRaises(TypeError) as caught:
            Incomplete()
        message = str(caught.exception)
        for name in ("assign", "available", "get_read_stream", "delete", "get_size", "statistics"):
            self.assertIn(name, message)

    def test_errors_are_importable_from_modules_and_subclass_builtins(self):
        self.assertIs(modules.ObjectNotFound, ObjectNotFound)
        self.assertTrue(issubclass(LocationUnavailable, OSError))
        self.assertTrue(issubclass(LocationTimeout, TimeoutError))
        self.assertTrue(issubclass(ObjectNotFound, LookupError))
        self.assertTrue(issubclass(InvalidModuleData, ValueError))
        self.assertTrue(issubclass(ConfigurationError, ValueError))
        for cls in (ObjectNotFound, InvalidModuleData, LocationUnavailable, InsufficientStorage,
                    ConfigurationError, Unsupported):
            self.assertTrue(issubclass(cls, StorageError), cls)
        self.assertTrue(LocationUnavailable.retryable)
        self.assertFalse(ObjectNotFound.retryable)
        error = LocationUnavailable("down", location="dc1")
        self.assertEqual((str(error), error.location), ("down", "dc1"))

    def test_default_repair_is_unsupported(self):
        from tests.host.fixture_modules import ForwardingStorage  # keeps the default repair
        module = ForwardingStorage("elsewhere")
        self.assertFalse(module.capabilities["repair"])
        with self.assertRaises(Unsupported):
            module.repair(None)

    def test_capacity_helper(self):
        self.assertEqual(StorageModule.capacity(), {"total": -1, "free": -1, "used": -1})
        self.assertEqual(StorageModule.capacity(10, 4, 6), {"total": 10, "free": 4, "used": 6})


class TestOsErrorTranslation(unittest.TestCase):
    def raise_in_block(self, code, **kwargs):
        with convert_os_errors("/mnt/x", "md", **kwargs):
            raise OSError(code, "boom")

    def test_mapping(self):
        with self.assertRaises(InsufficientStorage):
            self.raise_in_block(errno.ENOSPC)
        with self.assertRaises(LocationUnavailable):
            self.raise_in_block(errno.EACCES)
        with self.assertRaises(LocationUnavailable):
            self.raise_in_block(errno.ENOENT)
        with self.assertRaises(ObjectNotFound):
            self.raise_in_block(errno.ENOENT, missing_is_not_found=True)


class TestLoader(unittest.TestCase):
    def test_list_args_are_positional_and_dict_args_keywords(self):
        self.assertEqual(load_module("simple.simple.SimpleStorage", ["/srv/a"]).storage_dir, "/srv/a")
        self.assertEqual(load_module("simple.simple.SimpleStorage",
                                     {"storage_dir": "/srv/b"}).storage_dir, "/srv/b")

    def test_clear_configuration_errors(self):
        cases = [
            ("nosuchpackage.mod.Cls", None, "cannot import 'nosuchpackage.mod'"),
            ("simple.simple.Missing", None, "has no attribute 'Missing'"),
            ("modules.errors.StorageError", None, "not a StorageModule subclass"),
            ("simple.simple.SimpleStorage", ["/a", "/b"], "rejected its arguments"),
            ("simple.simple.SimpleStorage", [""], "needs storage_dir"),
            ("simple.simple.SimpleStorage", "/a", "must be a list or an object"),
            ("nodots", None, "dotted path"),
        ]
        for path, args, expected in cases:
            with self.subTest(path=path, args=args):
                with self.assertRaises(ConfigurationError) as caught:
                    load_module(path, args)
                self.assertIn(expected, str(caught.exception))

    def test_import_error_is_included(self):
        with self.assertRaises(ConfigurationError) as caught:
            load_module_class("tests.fixtures.does_not_exist.Cls")
        self.assertIn("No module named", str(caught.exception))


class TestContext(unittest.TestCase):
    def test_get_module_from_mapping_and_resolver(self):
        module = SimpleStorage("/srv/a")
        for context in (make_context({"a": module}), make_context(lambda name: module)):
            self.assertIs(context["func"]["getModule"]("a"), module)
            self.assertIs(get_module(context, "a"), module)

    def test_unknown_name_is_a_configuration_error_naming_it(self):
        context = make_context({"a": SimpleStorage("/srv/a")})
        with self.assertRaises(ConfigurationError) as caught:
            context["func"]["getModule"]("zeta")
        self.assertIn("'zeta'", str(caught.exception))
        with self.assertRaises(ConfigurationError):
            get_module(None, "a")


# -- issue 13: the optional methods, the capability table, typed reports, the wrapper base --

import io  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

from modules import CAPABILITIES  # noqa: E402
from modules.errors import DataCorrupted, SourceStreamError  # noqa: E402
from modules.reports import (  # noqa: E402
    Capacity, RepairReport, ScrubReport, add_counts, statistics_status,
)
from modules.testing import CapabilityChecks, StorageModuleTestBase  # noqa: E402
from modules.wrapper import StorageWrapper  # noqa: E402


class TestOptionalMethodsAndCapabilityTable(unittest.TestCase):
    def test_default_scrub_and_new_data_for_are_unsupported(self):
        module = SimpleStorage("/nonexistent")
        with self.assertRaises(Unsupported):
            module.scrub(None, "aa/bb/" + "0" * 32)
        from tests.host.fixture_modules import ForwardingStorage  # simple sweeps (issue 9)
        with self.assertRaises(Unsupported):
            ForwardingStorage("elsewhere").repair(None, None, rate=10)

    def test_every_base_capability_is_documented_and_false_by_default(self):
        self.assertEqual(set(StorageModule.capabilities), set(CAPABILITIES))
        self.assertFalse(any(StorageModule.capabilities.values()))
        for key in ("repair", "scrub", "verified_reads", "retries", "placement"):
            self.assertIn(key, CAPABILITIES)


class TestReports(unittest.TestCase):
    def test_capacity_round_trip_and_malformed_input(self):
        self.assertEqual(Capacity(10, 4, 6).to_dict(), {"total": 10, "free": 4, "used": 6})
        self.assertEqual(Capacity.from_dict({"total": 10, "free": "x", "used": True}),
                         Capacity(10, -1, -1))
        self.assertEqual(Capacity.from_dict(None), Capacity())
        with self.assertRaises(ValueError):
            Capacity(-5)

    def test_statistics_status(self):
        cases = [
            ({"capacity": {}}, ("ok", "")),
            ({"status": "healthy"}, ("ok", "")),
            ({"status": "degraded", "reason": "one copy down"}, ("degraded", "one copy down")),
            ({"status": "unavailable", "reason": "disk gone"}, ("unavailable", "disk gone")),
            ({"status": "broken"}, ("unavailable", "broken")),
            ({"degraded": ["b"]}, ("degraded", "not healthy: b")),
            ({"degraded": True, "reason": "r"}, ("degraded", "r")),
            (None, ("unavailable", "no statistics")),
        ]
        for stats, expected in cases:
            with self.subTest(stats=stats):
                self.assertEqual(statistics_status(stats), expected)

    def test_scrub_report_round_trip_keeps_unknown_keys(self):
        plain = {"object": "o1", "ok": ["a"], "damaged": {"b": "digest"}, "missing": [],
                 "bytes_checked": 10, "verified": True, "not_configured": ["z"]}
        report = ScrubReport.from_dict(plain)
        self.assertEqual(report.damaged, {"b": "digest"})
        self.assertFalse(report.healthy)
        again = report.to_dict()
        json.dumps(again)
        for key, value in plain.items():
            self.assertEqual(again[key], value)

    def test_merge_adds_numbers_joins_lists_and_combines_reasons(self):
        first = ScrubReport(object="o1", ok=["a"], damaged={"b": "x"}, bytes_checked=5,
                            verified=True, extra={"scrubs": 1})
        second = ScrubReport(object="o2", ok=["a", "c"], missing=["d"], bytes_checked=7,
                             verified=True, extra={"scrubs": 1})
        merged = first.merge(second)
        self.assertEqual(merged.object, None)
        self.assertEqual(merged.ok, ["a", "c"])
        self.assertEqual((merged.damaged, merged.missing), ({"b": "x"}, ["d"]))
        self.assertEqual((merged.bytes_checked, merged.extra["scrubs"]), (12, 2))
        self.assertEqual(first.bytes_checked, 5, "merge must not change its operands")
        with self.assertRaises(TypeError):
            first.merge(RepairReport())

    def test_add_counts_is_what_vsm_repair_prints(self):
        total = {}
        add_counts(total, RepairReport(repaired=["a", "b"], failed={"c": "down"}, reclaimed=3))
        add_counts(total, {"repaired": ["a"], "failed": {}, "reclaimed": 1, "note": "text",
                           "journal": {"copy": 2, "delete": 1}})
        self.assertEqual(total["repaired"], 3)
        self.assertEqual(total["failed"], 1)
        self.assertEqual(total["reclaimed"], 4)
        self.assertEqual(total["journal"], {"copy": 2, "delete": 1})
        self.assertNotIn("note", total)
        self.assertEqual(RepairReport(present=["a"]).counts()["present"], 1)


class _Scrubbing(SimpleStorage):
    """A simple location that claims scrub and retries, to see them propagate."""

    capabilities = dict(StorageModule.capabilities, scrub=True, retries=True)

    def scrub(self, context, module_data, rate=None):
        return ScrubReport(ok=["disk"], extra={"rate": rate}).to_dict()


class _Transparent(StorageWrapper):
    """The base class alone: a wrapper that changes nothing."""

    capability_rules = dict(StorageWrapper.capability_rules, verified_reads=True)


class TestStorageWrapper(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="vsm-wrapper-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.inner = _Scrubbing(self.directory)
        self.wrapper = _Transparent("disk-1", lambda context: self.inner)

    def test_capabilities_propagate_by_rule(self):
        capabilities = self.wrapper.capabilities
        self.assertTrue(capabilities["scrub"] and capabilities["retries"])
        self.assertTrue(capabilities["verified_reads"], "a fixed rule overrides the inner value")
        self.assertFalse(capabilities["repair"] or capabilities["placement"])

    def test_scrub_is_forwarded_and_repair_is_unsupported_like_the_inner(self):
        module_data = self.wrapper.new_data(None)
        self.wrapper.assign(None, module_data, io.BytesIO(b"x"))
        self.assertEqual(self.wrapper.scrub(None, module_data, rate=5)["rate"], 5)
        with self.assertRaises(Unsupported) as caught:
            self.wrapper.repair(None, module_data)
        self.assertIn("disk-1", str(caught.exception))
        with self.assertRaises(Unsupported):
            self.wrapper.new_data_for(None, "0" * 32)

    def test_inner_errors_are_rewritten_to_name_the_inner_location(self):
        with self.assertRaises(ObjectNotFound) as caught:
            self.wrapper.get_size(None, "aa/bb/" + "0" * 32)
        self.assertTrue(str(caught.exception).startswith("disk-1: "), str(caught.exception))
        self.assertEqual(caught.exception.location, "disk-1")
        self.assertIsInstance(caught.exception.__cause__, ObjectNotFound)
        with self.assertRaises(InvalidModuleData):
            self.wrapper.available(None, "../../etc/passwd")

    def test_foreign_exceptions_become_location_unavailable_without_secrets(self):
        def broken(context):
            raise RuntimeError("connect to https://user:hunter2@nas/ failed")

        class Raising(SimpleStorage):
            def get_size(self, context, module_data):
                raise KeyError("https://bob:s3cret@host/ password=s3cret")

        wrapper = _Transparent("nas", lambda context: Raising(self.directory))
        with self.assertRaises(LocationUnavailable) as caught:
            wrapper.get_size(None, "aa/bb/" + "0" * 32)
        self.assertIn("nas", str(caught.exception))
        self.assertNotIn("s3cret", str(caught.exception))
        unresolvable = _Transparent("gone", lambda context: get_module(context, "gone"))
        with self.assertRaises(LocationUnavailable):
            unresolvable.new_data(make_context({}))
        stats = _Transparent("down", broken).statistics(None)
        self.assertEqual(stats["status"], "unavailable")
        self.assertNotIn("hunter2", json.dumps(stats))

    def test_source_errors_are_not_blamed_on_the_location(self):
        module_data = self.wrapper.new_data(None)
        with self.assertRaises(SourceStreamError):
            self.wrapper.assign(None, module_data, io.StringIO("text"))

    def test_stream_read_errors_name_the_inner_location(self):
        module_data = self.wrapper.new_data(None)
        self.wrapper.assign(None, module_data, io.BytesIO(b"0123456789"))
        stream = self.wrapper.get_read_stream(None, module_data)
        with open(os.path.join(self.directory, module_data), "r+b") as file:
            file.truncate(2)
        stream.seek(5)
        with self.assertRaises(DataCorrupted) as caught:
            stream.read(3)
        stream.close()
        self.assertIn("disk-1", str(caught.exception))


class TestTransparentWrapperKit(CapabilityChecks, StorageModuleTestBase, unittest.TestCase):
    """The base class over simple passes the conformance kit as it is."""

    def make_module(self):
        directory = tempfile.mkdtemp(prefix="vsm-wrapper-kit-")
        self.addCleanup(shutil.rmtree, directory, True)
        inner = SimpleStorage(directory)
        return StorageWrapper("disk", lambda context: inner)





class TestHostUsesTheTypedStatus(unittest.TestCase):
    """Issue 13: the status page reads statistics through modules.reports.statistics_status."""

    def state(self, stats):
        from modules.host.status_page import ModuleView, module_state
        from modules.host.store import ModuleConfig
        view = ModuleView(ModuleConfig("m", "replica.crypt.CryptStorage"), stats, None, 0, 0)
        return module_state(view)

    def test_states(self):
        self.assertEqual(self.state({"capacity": {}, "status": "ok"}), ("ok", ""))
        self.assertEqual(self.state({"status": "Healthy"}), ("ok", ""))
        self.assertEqual(self.state({"status": "degraded", "reason": "3 to reclaim"}),
                         ("degraded", "3 to reclaim"))
        self.assertEqual(self.state({"status": "unavailable", "reason": "index gone"}),
                         ("unavailable", "index gone"))
        self.assertEqual(self.state({"degraded": True, "locations": [
            {"name": "a", "health": "ok"}, {"name": "b", "health": "down"}]}),
            ("degraded", "not healthy: b"))
        self.assertEqual(self.state(None)[0], "error")


class TestSimpleCapabilities(CapabilityChecks, StorageModuleTestBase, unittest.TestCase):
    """The per-capability checks against the sample module (issue 13)."""

    def make_module(self):
        directory = tempfile.mkdtemp(prefix="vsm-caps-simple-")
        self.addCleanup(shutil.rmtree, directory, True)
        return SimpleStorage(directory)


class TestReplicaCapabilities(CapabilityChecks, StorageModuleTestBase, unittest.TestCase):
    """The per-capability checks against the replica over three directories (issue 13)."""

    def make_module(self):
        from replica.replica import ReplicaStorage
        directory = tempfile.mkdtemp(prefix="vsm-caps-replica-")
        self.addCleanup(shutil.rmtree, directory, True)
        for name in "abc":
            os.mkdir(os.path.join(directory, name))
        return ReplicaStorage(*("file://%s/%s" % (directory, name) for name in "abc"))
