"""``vsm egg check PATH.egg``: is this egg fit for the platform?

Checks the egg's contents (:func:`modules.packaging.egg.egg_problems`), then
runs the conformance kit against the module loaded from the egg alone, in
a subprocess on a clean ``sys.path``: Python in isolated mode (no
``PYTHONPATH``, no user site, not the current directory), started in an
empty temporary directory, with the egg first on the path. The SDK itself
stays importable, as on the platform.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional, Sequence, TextIO

import modules
from modules.errors import ConfigurationError
from modules.packaging.egg import egg_problems, read_egg

__all__ = ["register", "check_egg"]

#: Seconds the kit may take in the subprocess.
KIT_TIMEOUT = 900

# Run in the isolated subprocess: import every module of the egg and list the
# concrete StorageModule subclasses defined there (JSON on stdout).
_DISCOVER = r"""
import importlib, inspect, json, sys, zipfile
egg, sdk_root = sys.argv[1], sys.argv[2]
sys.path.insert(0, egg)
sys.path.append(sdk_root)
from modules import StorageModule
found, errors = [], []
for entry in sorted(zipfile.ZipFile(egg).namelist()):
    if entry.startswith("EGG-INFO/") or not entry.endswith(".pyc"):
        continue
    name = entry[:-4].replace("/", ".")
    if name.endswith(".__init__"):
        name = name[:-len(".__init__")]
    try:
        module = importlib.import_module(name)
    except Exception as error:
        errors.append("%s: %s: %s" % (name, type(error).__name__, error))
        continue
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, StorageModule) and \
                value.__module__ == name and not inspect.isabstract(value):
            found.append("%s.%s" % (name, value.__name__))
print(json.dumps({"found": found, "errors": errors}))
"""

_RUN_KIT = r"""
import sys
sys.path.append(sys.argv[1])
from modules.cli import main
sys.exit(main(sys.argv[2:]))
"""


def register(subparsers) -> None:
    """Add ``egg check`` to ``vsm``."""
    parser = subparsers.add_parser("egg", help="check a module's egg before deploying it",
                                   description="Commands about a module's egg.")
    actions = parser.add_subparsers(dest="egg_command", metavar="ACTION")
    actions.required = True
    check = actions.add_parser(
        "check", help="check an egg's contents and run the kit against it",
        description="Check that PATH.egg holds only the vendor's packages, compiled for this "
                    "Python, with a distribution name that is not the SDK's, and run the "
                    "conformance kit against the module loaded from the egg alone, in a "
                    "subprocess on a clean sys.path. Without DOTTED.PATH, the egg's only "
                    "StorageModule class is checked.",
        epilog="exit codes: 0 fit for the platform, 1 a problem or a failed check, 2 the egg "
               "or the module cannot be read or loaded")
    check.add_argument("egg", metavar="PATH.egg")
    check.add_argument("dotted_path", metavar="DOTTED.PATH", nargs="?",
                       help="the module's class (default: the only one in the egg)")
    check.add_argument("args", metavar="ARG", nargs="*",
                       help="constructor arguments; {tmp} is a fresh temporary directory")
    check.add_argument("--tmp-dir", action="store_true",
                       help="pass a fresh temporary directory as the first argument")
    check.add_argument("-k", "--only", metavar="TEXT",
                       help="run only the checks whose name contains TEXT")
    check.set_defaults(func=_main)


def _main(options: argparse.Namespace) -> int:
    args = list(options.args)
    if options.tmp_dir:
        args.insert(0, "{tmp}")
    return check_egg(options.egg, options.dotted_path, args, only=options.only)


def check_egg(path: str, dotted_path: Optional[str] = None, args: Sequence[str] = (),
              only: Optional[str] = None, out: TextIO = None) -> int:
    """Check the egg at ``path`` and run the kit against its module; print to ``out``.

    Returns:
        int: 0 when the egg is fit, 1 when a problem was found or a check
        failed, 2 when the egg or its module cannot be read or loaded.
    """
    out = out or sys.stdout
    try:
        info = read_egg(path)
    except ConfigurationError as error:
        out.write("vsm egg check: %s\n" % error)
        return 2
    out.write("egg %s: distribution %s, packages: %s\n"
              % (info.path, info.label, ", ".join(info.packages) or "none"))
    problems = egg_problems(info)
    for problem in problems:
        out.write("PROBLEM %s\n" % problem)
    if problems:
        out.write("the egg is not fit for the platform: %d problem(s)\n" % len(problems))
        return 1
    out.write("OK    contents: only %s, compiled for this Python, no source files\n"
              % ", ".join(info.packages))
    sandbox = tempfile.mkdtemp(prefix="vsm-egg-check-")
    try:
        if dotted_path is None:
            dotted_path = _discover(info.path, sandbox, out)
            if dotted_path is None:
                return 2
        out.write("running the kit against %s from the egg alone (isolated Python in %s)\n"
                  % (dotted_path, sandbox))
        argv = ["check", "--egg", info.path, dotted_path] + list(args)
        if only:
            argv += ["--only", only]
        code = _isolated(_RUN_KIT, [_sdk_root()] + argv, sandbox, out)
    finally:
        shutil.rmtree(sandbox, True)
    out.write("the egg is fit for the platform\n" if code == 0 else
              "the egg is not fit for the platform: the kit failed against it (exit %d)\n" % code)
    return code


def _discover(egg: str, sandbox: str, out: TextIO) -> Optional[str]:
    try:
        result = subprocess.run([sys.executable, "-I", "-c", _DISCOVER, egg, _sdk_root()],
                                cwd=sandbox, env=_clean_env(), capture_output=True, text=True,
                                timeout=KIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        out.write("importing the egg's modules did not finish within %d s\n" % KIT_TIMEOUT)
        return None
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        out.write("cannot look for modules in the egg: %s\n" % (result.stderr.strip()[-2000:]))
        return None
    for error in report["errors"]:
        out.write("cannot import from the egg alone: %s\n" % error)
    found: List[str] = report["found"]
    if len(found) == 1:
        out.write("found the module %s\n" % found[0])
        return found[0]
    if not found:
        out.write("the egg holds no StorageModule class that imports on its own%s\n"
                  % (" (see the import errors above)" if report["errors"] else ""))
    else:
        out.write("the egg holds several modules (%s): name the one to check after the egg\n"
                  % ", ".join(found))
    return None


def _isolated(script: str, argv: List[str], cwd: str, out: TextIO) -> int:
    try:
        result = subprocess.run([sys.executable, "-I", "-c", script] + argv, cwd=cwd,
                                env=_clean_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=KIT_TIMEOUT)
    except subprocess.TimeoutExpired as error:
        out.write((error.stdout or b"").decode("utf-8", "replace")
                  if isinstance(error.stdout, bytes) else (error.stdout or ""))
        out.write("\nthe kit did not finish within %d s: a call hangs (run vsm check with -k to "
                  "find which)\n" % KIT_TIMEOUT)
        return 1
    out.write(result.stdout)
    out.flush()
    return result.returncode


def _clean_env() -> dict:
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE"):
        env.pop(name, None)
    return env


def _sdk_root() -> str:
    """The directory holding the ``modules`` package (the platform provides it)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(modules.__file__)))
