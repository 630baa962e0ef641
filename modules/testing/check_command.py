"""``vsm check``: run the conformance kit against any module from the command line."""
import argparse
import sys
import time
import unittest
from typing import List, Sequence, TextIO

from modules.errors import ConfigurationError
from modules.loader import load_module, load_module_class
from modules.testing.kit import StorageModuleTestBase

__all__ = ["register", "run_checks"]


def register(subparsers) -> None:
    """Add the ``check`` subcommand to ``vsm``."""
    parser = subparsers.add_parser(
        "check", help="run the conformance kit against a module",
        description="Run the conformance kit against DOTTED.PATH configured with ARGs, as the "
                    "platform would configure it. Prints one line per check and a summary; "
                    "exits 0 when all pass, 1 when any fails, 2 when the module cannot be loaded.")
    parser.add_argument("dotted_path", metavar="DOTTED.PATH",
                        help="the module's class, e.g. simple.simple.SimpleStorage")
    parser.add_argument("args", metavar="ARG", nargs="*",
                        help="constructor arguments, passed positionally as strings")
    parser.add_argument("-k", "--only", metavar="TEXT",
                        help="run only the checks whose name contains TEXT")
    parser.set_defaults(func=_main)


def _main(options: argparse.Namespace) -> int:
    return run_checks(options.dotted_path, options.args, only=options.only)


class _LineResult(unittest.TestResult):
    """Print one line per check: PASS/FAIL/ERROR, its name and why."""

    def __init__(self, out: TextIO):
        super().__init__()
        self._out = out
        self._failed_tests = set()
        self.passed = 0

    def _name(self, test) -> str:
        return test._testMethodName

    def _report(self, status: str, test, error=None, detail: str = "") -> None:
        line = "%-5s %s" % (status, self._name(test) + detail)
        if error is not None:
            line += ": " + _explain(error)
        self._out.write(line + "\n")
        self._out.flush()

    def addSuccess(self, test):
        super().addSuccess(test)
        if test not in self._failed_tests:
            self.passed += 1
            self._report("PASS", test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._failed_tests.add(test)
        self._report("FAIL", test, err)

    def addError(self, test, err):
        super().addError(test, err)
        self._failed_tests.add(test)
        self._report("ERROR", test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._failed_tests.add(test)
            status = "FAIL" if issubclass(err[0], test.failureException) else "ERROR"
            self._report(status, test, err, detail=" " + subtest._subDescription())

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._out.write("SKIP  %s: %s\n" % (self._name(test), reason))


def _explain(error) -> str:
    kind, value, _ = error
    message = str(value).strip().splitlines()
    text = message[-1] if message else ""
    if kind.__name__ == "AssertionError":
        return text or "assertion failed"
    return "%s: %s" % (kind.__name__, text)


def run_checks(dotted_path: str, args: Sequence[str], only: str = None,
               out: TextIO = None) -> int:
    """Run the kit against ``dotted_path(*args)``; print results to ``out``.

    Returns:
        int: 0 when every check passed, 1 when any failed, 2 when the module
        cannot be loaded or configured.
    """
    out = out or sys.stdout
    arguments: List[str] = list(args)
    try:
        load_module_class(dotted_path)
        load_module(dotted_path, arguments).close()
    except ConfigurationError as error:
        out.write("cannot check %s: %s\n" % (dotted_path, error))
        return 2

    class ModuleCheck(StorageModuleTestBase, unittest.TestCase):
        def make_module(self):
            return load_module(dotted_path, arguments)

    suite = unittest.TestSuite(
        test for test in unittest.defaultTestLoader.loadTestsFromTestCase(ModuleCheck)
        if not only or only in test._testMethodName)
    out.write("checking %s with %d argument(s)\n" % (dotted_path, len(arguments)))
    result = _LineResult(out)
    started = time.monotonic()
    suite.run(result)
    failed = len(result._failed_tests)
    out.write("%d passed, %d failed (%.1f s)\n" % (result.passed, failed, time.monotonic() - started))
    return 1 if failed else 0
