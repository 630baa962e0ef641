"""``vsm``: the SDK's command line.

Each subcommand lives in its own module exposing ``register(subparsers)``,
which adds an ``argparse`` parser whose ``func(args)`` returns the exit code.
"""
import argparse
import importlib
import logging
import os
import sys
import threading
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


def console_main() -> None:
    """The ``vsm`` command: :func:`main`, then exit with its code.

    A thread still blocked in a call to a location that never answers
    (``vsm serve`` stopped by SIGTERM while a location hangs) would keep the
    interpreter from exiting, since Python joins such threads at exit; once
    the command has finished and flushed its output, the process ends anyway.
    """
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``vsm scrub --json | head``): as other Unix tools,
        # stop quietly. Python would print a traceback while flushing at exit
        # unless standard output points elsewhere (docs.python.org, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it
    stuck = [thread for thread in threading.enumerate()
             if thread is not threading.main_thread() and not thread.daemon and thread.is_alive()]
    if stuck:
        logging.getLogger(__name__).warning(
            "exiting while %d thread(s) are still busy (%s): a location that does not answer?",
            len(stuck), ", ".join(sorted({thread.name for thread in stuck}))[:200])
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console_main()
