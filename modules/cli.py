"""``vsm``: the SDK's command line.

Each subcommand lives in its own module exposing ``register(subparsers)``,
which adds an ``argparse`` parser whose ``func(args)`` returns the exit code.
"""
import argparse
import importlib
import logging
import sys
from typing import List, Optional

__all__ = ["main", "build_parser"]

#: Modules that contribute subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = [
    "modules.packaging.new_command",
    "modules.testing.check_command",
    "modules.packaging.egg_command",
    "modules.host.commands",
]


def build_parser() -> argparse.ArgumentParser:
    """Return the ``vsm`` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="vsm", description="Vendor Storage Module SDK: check, host and repair storage modules.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``vsm`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
