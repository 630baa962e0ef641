"""The StorageModule contract, the errors, the loader and the context builder."""
import errno
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
