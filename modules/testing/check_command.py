"""``vsm check``: run the conformance kit against any module from the command line.

Where the module comes from: with ``--egg`` only from that egg; otherwise
from the current directory's source tree when the package is there (as
``python -m`` would), else from the installed packages. When it cannot be
imported at all, the message says how to make it importable.

Where it stores: ``--tmp-dir`` (or ``{tmp}`` inside an argument) gives every
check a fresh temporary directory, removed afterwards. When the first
argument is a directory, the kit moves it away and back to check that the
module notices (and looks for empty directories left by deletes); a
missing directory whose parent exists is created for the run and removed
afterwards.
"""
import argparse
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import unittest
from typing import Optional, Sequence, TextIO

from modules.errors import ConfigurationError
from modules.loader import load_module, load_module_class
from modules.testing.kit import StorageModuleTestBase

__all__ = ["register", "run_checks", "TMP_PLACEHOLDER", "find_source_root"]

#: In an argument, replaced by a fresh temporary directory for every check.
TMP_PLACEHOLDER = "{tmp}"

#: Files that mark a project's root directory.
_PROJECT_MARKERS = ("setup.py", "setup.cfg", "pyproject.toml")


def register(subparsers) -> None:
    """Add the ``check`` subcommand to ``vsm``."""
    parser = subparsers.add_parser(
        "check", help="run the conformance kit against a module",
        description="Run the conformance kit against DOTTED.PATH configured with ARGs, as the "
                    "platform would configure it. The module is imported from the current "
                    "directory's source tree when it is there, else from the installed "
                    "packages. Prints one line per check and a summary.",
        epilog="ARG may contain %s: a fresh temporary directory for every check, removed "
               "afterwards. Exit codes: 0 all passed, 1 a check failed, 2 the module cannot be "
               "imported or configured (the message says how to fix it)." % TMP_PLACEHOLDER)
    parser.add_argument("dotted_path", metavar="DOTTED.PATH",
                        help="the module's class, e.g. simple.simple.SimpleStorage")
    parser.add_argument("args", metavar="ARG", nargs="*",
                        help="constructor arguments, passed positionally as strings")
    parser.add_argument("-k", "--only", metavar="TEXT",
                        help="run only the checks whose name contains TEXT")
    parser.add_argument("--tmp-dir", action="store_true",
                        help="pass a fresh temporary directory as the first argument of every "
                             "check (same as a first ARG of %s)" % TMP_PLACEHOLDER)
    parser.add_argument("--egg", metavar="PATH.egg",
                        help="import the module from this egg only (what 'vsm egg check' runs)")
    parser.set_defaults(func=_main)


def _main(options: argparse.Namespace) -> int:
    args = list(options.args)
    if options.tmp_dir:
        args.insert(0, TMP_PLACEHOLDER)
    return run_checks(options.dotted_path, args, only=options.only, egg=options.egg)


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


class _NotImportable(Exception):
    """The module cannot be imported; the message says how to make it importable."""


def find_source_root(package: str, start: str) -> Optional[str]:
    """Return the directory from which ``package`` imports in the source tree at ``start``.

    Looks in ``start``, ``start/src`` and the parents of ``start`` up to the
    first one holding ``setup.py``, ``setup.cfg`` or ``pyproject.toml``.

    Returns:
        str: the directory to put on ``sys.path``, or None when the package
        is not in this source tree.
    """
    directory = os.path.abspath(start)
    while True:
        for candidate in (directory, os.path.join(directory, "src")):
            if os.path.isfile(os.path.join(candidate, package, "__init__.py")) or \
                    os.path.isfile(os.path.join(candidate, package + ".py")):
                return candidate
        if any(os.path.exists(os.path.join(directory, marker)) for marker in _PROJECT_MARKERS):
            return None
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _make_importable(dotted_path: str, egg: Optional[str], out: TextIO) -> None:
    """Put the module's source tree (or ``egg``) first on ``sys.path``, saying so."""
    package = dotted_path.split(".", 1)[0]
    if egg is not None:
        egg = os.path.abspath(egg)
        if not os.path.isfile(egg):
            raise _NotImportable("no such egg: %s" % egg)
        sys.path.insert(0, egg)
        return
    root = find_source_root(package, os.getcwd()) if package else None
    if root is not None:
        if root not in sys.path:
            sys.path.insert(0, root)
        importlib.invalidate_caches()
        out.write("using %s from the source tree %s\n" % (package, root))
        return
    try:
        found = importlib.util.find_spec(package) is not None if package else False
    except (ImportError, ValueError):
        found = False
    if not found:
        raise _NotImportable(
            "no package %r can be imported: it is neither in the source tree here (%s) nor "
            "installed for %s. Either run vsm check from your project's root (the directory "
            "that holds %s/), or install the project there with: pip install -e . , or add the "
            "directory that holds %s/ to PYTHONPATH"
            % (package, os.getcwd(), sys.executable, package, package))


def _import_hint(error: Exception, dotted_path: str) -> str:
    """Say what to do when the module imports something that is not installed."""
    cause = error.__cause__
    if isinstance(cause, ModuleNotFoundError) and cause.name and \
            cause.name.split(".")[0] != dotted_path.split(".")[0]:
        missing = cause.name.split(".")[0]
        return ("; the module needs %s, which is not installed for %s: install it (pip install "
                "...) and list it under install_requires in setup.cfg, since the platform must "
                "have it too" % (missing, sys.executable))
    return ""


def _check_origin(cls: type, egg: Optional[str]) -> None:
    if egg is None:
        return
    module = sys.modules.get(cls.__module__)
    origin = os.path.abspath(getattr(module, "__file__", "") or "")
    if not origin.startswith(os.path.abspath(egg) + os.sep):
        raise _NotImportable("%s was imported from %s, not from the egg %s: the egg does not "
                             "hold it" % (cls.__module__, origin or "a built-in", egg))


class _Arguments:
    """The module's arguments for each check: fresh temporary directories, storage directory."""

    def __init__(self, args: Sequence[str], out: TextIO):
        self._args = list(args)
        self._out = out
        self.created: Optional[str] = None
        self.uses_tmp = any(isinstance(arg, str) and TMP_PLACEHOLDER in arg for arg in args)
        first = self._args[0] if self._args else None
        self.fixed_directory = None
        if not self.uses_tmp and isinstance(first, str) and first.strip():
            path = os.path.abspath(first)
            if os.path.isdir(path):
                self.fixed_directory = path
            elif first.startswith(("/", "./", "../")) and not os.path.exists(path) and \
                    os.path.isdir(os.path.dirname(path)):
                os.mkdir(path)
                self.created = self.fixed_directory = path
                out.write("created %s for the checks (removed afterwards)\n" % path)
            elif first.startswith(("/", "./", "../")) and not os.path.exists(path):
                out.write("note: %s does not exist, nor does its parent: if the module stores "
                          "there, create it (mkdir -p %s) or use --tmp-dir\n" % (path, path))

    @property
    def count(self) -> int:
        """The number of arguments the module gets."""
        return len(self._args)

    def fresh(self, test: unittest.TestCase):
        """Return ``(args, storage_directory)`` for one check; cleanups remove temporaries."""
        if not self.uses_tmp:
            return list(self._args), self.fixed_directory
        directory = tempfile.mkdtemp(prefix="vsm-check-")
        test.addCleanup(shutil.rmtree, directory, True)
        args = [arg.replace(TMP_PLACEHOLDER, directory) if isinstance(arg, str) else arg
                for arg in self._args]
        return args, directory if args and args[0] == directory else None

    def cleanup(self) -> None:
        """Remove the directory created for the run."""
        if self.created is not None:
            shutil.rmtree(self.created, True)


def run_checks(dotted_path: str, args: Sequence[str], only: str = None,
               out: TextIO = None, egg: Optional[str] = None) -> int:
    """Run the kit against ``dotted_path(*args)``; print results to ``out``.

    ``{tmp}`` in an argument becomes a fresh temporary directory per check.
    With ``egg``, the module must come from that egg.

    Returns:
        int: 0 when every check passed, 1 when any failed, 2 when the module
        cannot be imported or configured.
    """
    out = out or sys.stdout
    try:
        _make_importable(dotted_path, egg, out)
        cls = load_module_class(dotted_path)
        _check_origin(cls, egg)
    except (ConfigurationError, _NotImportable) as error:
        out.write("cannot check %s: %s%s\n" % (dotted_path, error, _import_hint(error, dotted_path)))
        return 2
    try:
        arguments = _Arguments(args, out)
    except OSError as error:
        out.write("cannot check %s: cannot create its directory %s: %s\n"
                  % (dotted_path, args[0], error.strerror or error))
        return 2
    try:
        return _run(dotted_path, arguments, only, out)
    finally:
        arguments.cleanup()


def _preflight(dotted_path: str, arguments: _Arguments) -> Optional[ConfigurationError]:
    """Create and close the module once; return the error when it cannot be created."""
    preflight = unittest.TestCase()
    try:
        load_module(dotted_path, arguments.fresh(preflight)[0]).close()
    except ConfigurationError as error:
        return error
    finally:
        preflight.doCleanups()
    return None


def _run(dotted_path: str, arguments: _Arguments, only: Optional[str], out: TextIO) -> int:
    error = _preflight(dotted_path, arguments)
    if error is not None and not arguments.count:
        # Most modules need a place to store: without any argument, try the
        # one a newly generated module takes, saying so.
        with_tmp = _Arguments([TMP_PLACEHOLDER], out)
        if _preflight(dotted_path, with_tmp) is None:
            out.write("%s cannot be created without arguments (%s); checking it with a fresh "
                      "temporary directory as its argument instead (give ARGs to choose)\n"
                      % (dotted_path, error))
            arguments, error = with_tmp, None
    if error is not None:
        hint = "" if arguments.count else (
            " (give the module's arguments after its dotted path, or --tmp-dir for a fresh "
            "temporary directory as the first one)")
        out.write("cannot check %s: %s%s\n" % (dotted_path, error, hint))
        return 2

    class ModuleCheck(StorageModuleTestBase, unittest.TestCase):
        def make_module(self):
            args, self._directory = arguments.fresh(self)
            return load_module(dotted_path, args)

        def storage_directory(self):
            return self._directory

    suite = unittest.TestSuite(
        test for test in unittest.defaultTestLoader.loadTestsFromTestCase(ModuleCheck)
        if not only or only in test._testMethodName)
    out.write("checking %s with %d argument(s)\n" % (dotted_path, arguments.count))
    result = _LineResult(out)
    started = time.monotonic()
    suite.run(result)
    failed = len(result._failed_tests)
    out.write("%d passed, %d failed (%.1f s)\n" % (result.passed, failed, time.monotonic() - started))
    return 1 if failed else 0
