"""``vsm new NAME``: write a ready source directory for a new module."""
import argparse
import importlib.util
import os
import sys
from typing import Optional, TextIO

from modules.errors import ConfigurationError
from modules.packaging.scaffold import create_project

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``new`` subcommand to ``vsm``."""
    parser = subparsers.add_parser(
        "new", help="start a new module: write its source directory",
        description="Write NAME/ (or --dir): setup.py and setup.cfg that build an egg holding "
                    "only the package NAME as compiled code, a README, the package with a "
                    "module class whose methods say what to implement, and tests that run the "
                    "conformance kit under nosetests, pytest and unittest.",
        epilog="exit codes: 0 written, 2 unusable name or the directory is not empty")
    parser.add_argument("name", metavar="NAME", help="the package name, e.g. newstore")
    parser.add_argument("--class", dest="class_name", metavar="CLASS",
                        help="the module class (default: NAME in CamelCase + 'Storage'; "
                             "newstore gives NewStorage)")
    parser.add_argument("--dist-name", metavar="DIST",
                        help="the distribution name in setup.cfg (default: NAME)")
    parser.add_argument("--dir", dest="directory", metavar="DIR",
                        help="where to write the project (default: ./NAME)")
    parser.set_defaults(func=_main)


def _main(options: argparse.Namespace, out: TextIO = None) -> int:
    out = out or sys.stdout
    try:
        project = create_project(options.name, class_name=options.class_name,
                                 dist_name=options.dist_name, directory=options.directory)
    except ConfigurationError as error:
        print("vsm new: %s" % error, file=sys.stderr)
        return 2
    except OSError as error:
        print("vsm new: cannot write the project: %s" % error, file=sys.stderr)
        return 1
    shadowed = _installed_elsewhere(project.name, project.directory)
    if shadowed:
        out.write("note: a package %s is installed already (%s); the module's package would "
                  "shadow it or be shadowed by it: consider another name\n"
                  % (project.name, shadowed))
    out.write("wrote %s (distribution %s, module %s):\n" % (
        project.directory, project.dist_name, project.dotted_path))
    for relative in project.files:
        out.write("  %s\n" % relative)
    out.write("Next, in %s:\n"
              "  fill in %s/%s.py (each method says what to implement)\n"
              "  vsm check %s --tmp-dir\n"
              "  python setup.py bdist_egg && vsm egg check dist/*.egg %s --tmp-dir\n"
              % (project.directory, project.name, project.name, project.dotted_path,
                 project.dotted_path))
    return 0


def _installed_elsewhere(package: str, project_directory: str) -> Optional[str]:
    """Return where ``package`` is importable from outside the new project, if it is."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None) if spec is not None else None
    if spec is None or (origin and os.path.abspath(origin).startswith(project_directory + os.sep)):
        return None
    return origin or "a namespace package"
