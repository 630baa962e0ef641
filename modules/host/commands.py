"""``vsm serve``, ``put``, ``get``, ``rm``, ``stat``, ``repair`` and ``scrub``.

``serve`` runs the host; the others talk to a running host over HTTP as the
administrator (``--url``, default ``$VSM_URL`` or http://127.0.0.1:8080;
password from ``$VSM_ADMIN_PASSWORD`` or ``--password-file``, default the
data directory's ``admin-password``).

Exit codes: 0 success, 1 failure, 2 wrong usage, 3 no such object or
module, 4 the host refused the password, 5 the host cannot be reached,
6 the storage is unavailable or full (try again later).
"""
import argparse
import json
import mimetypes
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from typing import Any, Dict, Optional, TextIO

from modules.errors import ConfigurationError, StorageError
from modules.reports import add_counts

from modules.host.auth import PASSWORD_ENV, PASSWORD_FILENAME
from modules.host.client import (
    DEFAULT_URL,
    URL_ENV,
    HostClient,
    HostError,
    read_password,
    split_target,
)
from modules.host.defaults import DEFAULT_POLICY
from modules.host.server import (
    DEFAULT_HOST,
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_PORT,
    DEFAULT_THREADS,
    HostServer,
)

__all__ = ["register", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_NOT_FOUND", "EXIT_AUTH",
           "EXIT_UNREACHABLE", "EXIT_UNAVAILABLE"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4
EXIT_UNREACHABLE = 5
EXIT_UNAVAILABLE = 6

#: Environment variable naming the data directory (``serve`` and the password file default).
DATA_DIR_ENV = "VSM_DATA_DIR"

#: The data directory when neither ``--data-dir`` nor the variable is given.
DEFAULT_DATA_DIR = "vsm-data"

#: Objects per repair step, and the count from which repair shows a progress bar.
REPAIR_BATCH = 100
PROGRESS_THRESHOLD = 200

_EXIT_CODES_TEXT = ("exit codes: 0 success, 1 failure, 2 wrong usage, 3 no such object or module, "
                    "4 wrong password, 5 host unreachable, 6 storage unavailable or full")


def register(subparsers) -> None:
    """Add ``serve``, ``put``, ``get``, ``rm``, ``stat``, ``repair`` and ``scrub`` to ``vsm``."""
    _register_serve(subparsers)
    _register_put(subparsers)
    _register_get(subparsers)
    _register_rm(subparsers)
    _register_stat(subparsers)
    _register_repair(subparsers)
    _register_scrub(subparsers)


# -- serve ---------------------------------------------------------------------

def _register_serve(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the host (the platform's WSGI application) on waitress",
        description="Serve the provisioning API, /objects/<policy>/<key> and the status page. "
                    "On the first start of an empty data directory it configures three local "
                    "locations (loc-a, loc-b, loc-c) and the policy 'mirror' over them, and "
                    "generates the administrator password. Stops on Ctrl+C or SIGTERM.",
        epilog="exit codes: 0 stopped normally, 1 cannot start (the message says why)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to listen on (default %(default)s; anything but loopback "
                             "sends the password in clear: put TLS in front)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="port (default %(default)s; 0 picks a free one)")
    parser.add_argument("--data-dir", default=None,
                        help="database, password and default locations (default $%s or ./%s)"
                             % (DATA_DIR_ENV, DEFAULT_DATA_DIR))
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="worker threads (default %(default)s)")
    parser.add_argument("--max-body-size", type=int, default=DEFAULT_MAX_BODY_SIZE,
                        metavar="BYTES", help="largest upload accepted (default 64 GiB)")
    parser.add_argument("--spool-dir", metavar="DIR",
                        help="where waitress spools upload bodies over 512 KiB before the "
                             "module stores them (default $TMPDIR or /tmp); needs room for "
                             "the uploads in flight")
    parser.add_argument("--egg", action="append", default=[], metavar="PATH.egg",
                        help="put a module's egg on the path before starting (repeatable); the "
                             "data directory's eggs/*.egg are loaded too")
    parser.set_defaults(func=_serve)


def _serve(options: argparse.Namespace, out: TextIO = None) -> int:
    from modules.host.app import make_app  # the client commands need none of this
    from modules.host.eggs import egg_paths, load_eggs

    out = out or sys.stdout
    data_dir = os.path.abspath(_data_dir(options.data_dir))
    if options.spool_dir:
        try:
            os.makedirs(options.spool_dir, mode=0o700, exist_ok=True)
        except OSError as error:
            print("vsm serve: cannot use --spool-dir %s: %s" % (options.spool_dir, error.strerror),
                  file=sys.stderr)
            return EXIT_FAILED
        tempfile.tempdir = os.path.abspath(options.spool_dir)  # waitress spools via tempfile
    try:
        load_eggs(egg_paths(data_dir, options.egg))
        app = make_app(data_dir)
    except (ConfigurationError, StorageError, OSError) as error:
        print("vsm serve: cannot start: %s" % error, file=sys.stderr)
        return EXIT_FAILED
    try:
        server = HostServer(app, host=options.host, port=options.port, threads=options.threads,
                            max_body_size=options.max_body_size)
    except (OSError, ValueError) as error:
        app.close()
        print("vsm serve: cannot listen on %s:%s: %s" % (options.host, options.port, error),
              file=sys.stderr)
        return EXIT_FAILED
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_signal)  # before the banner: tools wait for it
    try:
        _print_banner(out, app, server)
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass  # a signal during the banner: serve_forever handles the later ones itself
    finally:
        server.shutdown(timeout=0)
        app.close()
    print("vsm serve: stopped", file=out, flush=True)
    return EXIT_OK


def _exit_on_signal(signum, frame):
    raise SystemExit(0)


def _print_banner(out: TextIO, app, server: HostServer) -> None:
    url = server.url.rstrip("/")
    password = app.password
    if password.source == "environment":
        where = "taken from $%s" % PASSWORD_ENV
        credentials = '"administrator:$%s"' % PASSWORD_ENV
    else:
        where = "kept in %s, mode 0600" % password.path
        credentials = '"administrator:$(cat %s)"' % shlex.quote(password.path)
    modules = app.store.list_modules()
    names = [config.name for config in modules]
    policy = DEFAULT_POLICY if DEFAULT_POLICY in names else (names[0] if names else DEFAULT_POLICY)
    lines = ["vsm host: serving %s" % app.data_dir,
             "Listening on %s/  (status page; log in as administrator)" % url]
    if password.generated:
        lines.append("Administrator password: %s  (generated now and shown only this once; %s)"
                     % (password.secret, where))
    else:
        lines.append("Administrator password: %s" % where)
    lines.append("Configured modules: %s" % (", ".join(names) or "none"))
    from modules.host.eggs import loaded_eggs
    lines += ["Loaded egg: %s %s (%s)" % (egg.name, egg.version, egg.path) for egg in loaded_eggs()]
    lines += [
        "Try:",
        "  curl -u %s -T hello.txt %s/objects/%s/hello.txt" % (credentials, url, policy),
        "  curl -u %s %s/objects/%s/hello.txt" % (credentials, url, policy),
        "  curl -u %s %s/cdmi/system_configuration/vendor_modules/%s" % (credentials, url, policy),
        "Stop with Ctrl+C.",
    ]
    if server.host not in ("127.0.0.1", "::1", "localhost"):
        lines.append("WARNING: listening beyond loopback; HTTP basic auth sends the password in "
                     "clear. Put a TLS proxy in front.")
    out.write("\n".join(lines) + "\n")
    out.flush()


# -- client commands -----------------------------------------------------------

def _client_parser(subparsers, name: str, help_text: str, description: str):
    parser = subparsers.add_parser(name, help=help_text, description=description,
                                   epilog=_EXIT_CODES_TEXT)
    parser.add_argument("--url", default=None,
                        help="the host (default $%s or %s)" % (URL_ENV, DEFAULT_URL))
    parser.add_argument("--password-file", default=None,
                        help="file holding the administrator password when $%s is not set "
                             "(default: %s in $%s or ./%s)" % (
                                 PASSWORD_ENV, PASSWORD_FILENAME, DATA_DIR_ENV, DEFAULT_DATA_DIR))
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait for each answer (default %(default)s)")
    return parser


def _register_put(subparsers) -> None:
    parser = _client_parser(subparsers, "put", "store a file as POLICY/KEY on a running host",
                            "Upload FILE (default: standard input) as object KEY through the "
                            "module POLICY. Replaces an existing object atomically.")
    parser.add_argument("target", metavar="POLICY/KEY", help="e.g. mirror/photos/cat.jpg")
    parser.add_argument("file", metavar="FILE", nargs="?", default="-",
                        help="the file to upload ('-' for standard input)")
    parser.add_argument("--content-type", help="stored and served back (default: guessed)")
    parser.add_argument("--copy-from", metavar="POLICY/KEY",
                        help="copy this object on the host instead of uploading")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=_put)


def _put(options: argparse.Namespace) -> int:
    def run(client: HostClient) -> int:
        policy, key = _target(options.target)
        if options.copy_from:
            source_policy, source_key = _target(options.copy_from)
            result = client.copy(policy, key, source_policy, source_key)
        elif options.file == "-":
            result = client.put(policy, key, _chunks(sys.stdin.buffer), options.content_type)
        else:
            content_type = options.content_type or mimetypes.guess_type(options.file)[0]
            with open(options.file, "rb") as file:
                result = client.put(policy, key, file, content_type)
        if options.json:
            _print_json(result)
        else:
            print("stored %s/%s: %d bytes, sha256 %s" % (
                result["policy"], result["key"], result["size"], result["sha256"]))
        return EXIT_OK
    return _run_client(options, run)


def _register_get(subparsers) -> None:
    parser = _client_parser(subparsers, "get", "read POLICY/KEY from a running host",
                            "Download an object to standard output or --output. Whole objects "
                            "are checked against their SHA-256; a failed download leaves no "
                            "output file.")
    parser.add_argument("target", metavar="POLICY/KEY")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    parser.add_argument("--range", metavar="FIRST-LAST",
                        help="only these bytes: '0-99', '100-' or '-100' (the last 100)")
    parser.set_defaults(func=_get)


def _get(options: argparse.Namespace) -> int:
    def run(client: HostClient) -> int:
        policy, key = _target(options.target)
        if not options.output or options.output == "-":
            client.get(policy, key, sys.stdout.buffer, options.range)
            sys.stdout.buffer.flush()
            return EXIT_OK
        directory = os.path.dirname(os.path.abspath(options.output))
        handle, temporary = tempfile.mkstemp(prefix=".vsm-get-", dir=directory)
        try:
            with os.fdopen(handle, "wb") as file:
                client.get(policy, key, file, options.range)
            os.replace(temporary, options.output)
        except BaseException:
            os.unlink(temporary)
            raise
        return EXIT_OK
    return _run_client(options, run)


def _register_rm(subparsers) -> None:
    parser = _client_parser(subparsers, "rm", "delete objects on a running host",
                            "Delete each POLICY/KEY. Exits 3 if one did not exist (unless -f).")
    parser.add_argument("targets", metavar="POLICY/KEY", nargs="+")
    parser.add_argument("-f", "--force", action="store_true", help="ignore missing objects")
    parser.set_defaults(func=_rm)


def _rm(options: argparse.Namespace) -> int:
    def run(client: HostClient) -> int:
        worst = EXIT_OK
        for target in options.targets:
            policy, key = _target(target)
            try:
                client.delete(policy, key)
            except HostError as error:
                code = _exit_code(error)
                if code == EXIT_NOT_FOUND and options.force:
                    continue
                if code in (EXIT_AUTH, EXIT_UNREACHABLE):
                    raise
                print("vsm rm: %s: %s" % (target, error), file=sys.stderr)
                worst = max(worst, code)
        return worst
    return _run_client(options, run)


def _register_stat(subparsers) -> None:
    parser = _client_parser(subparsers, "stat", "describe POLICY/KEY on a running host",
                            "Print an object's size, SHA-256, content type and date.")
    parser.add_argument("target", metavar="POLICY/KEY")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=_stat)


def _stat(options: argparse.Namespace) -> int:
    def run(client: HostClient) -> int:
        policy, key = _target(options.target)
        result = client.stat(policy, key)
        if options.json:
            _print_json(result)
        else:
            for name in ("policy", "key", "size", "sha256", "content_type", "last_modified"):
                print("%-14s %s" % (name + ":", result[name]))
        return EXIT_OK
    return _run_client(options, run)


def _register_repair(subparsers) -> None:
    parser = _client_parser(subparsers, "repair", "repair modules on a running host",
                            "For each POLICY (default: every module that can repair or has "
                            "deletions pending): retry pending deletions and drain the module's "
                            "journal, then repair every object in turn (a replica refills missing "
                            "copies). Shows a progress bar when there are many objects. Exits 1 "
                            "if anything could not be repaired.")
    parser.add_argument("policies", metavar="POLICY", nargs="*")
    parser.add_argument("--journal-only", action="store_true",
                        help="only drain journals and pending deletions; skip the object pass")
    parser.add_argument("--batch", type=int, default=REPAIR_BATCH,
                        help="objects per request (default %(default)s)")
    _add_pass_options(parser)
    parser.set_defaults(func=_repair)


def _add_pass_options(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.add_argument("--rate-mib", type=float, default=None, metavar="MIB",
                        help="read at most MIB mebibytes per second while verifying copies "
                             "(modules that can scrub), so live traffic is not starved")
    parser.add_argument("--pause", type=float, default=0.0, metavar="SECONDS",
                        help="pause between objects (one object per request then)")


def _register_scrub(subparsers) -> None:
    parser = _client_parser(subparsers, "scrub", "verify every copy of every object",
                            "For each POLICY (default: every module that can scrub), read every "
                            "copy of every object in the host's index and check it against its "
                            "manifest; nothing is changed. Prints a summary (and damaged objects); "
                            "exits 1 when any copy is damaged or missing or an object could not "
                            "be checked. Fix what it finds with 'vsm repair'.")
    parser.add_argument("policies", metavar="POLICY", nargs="*")
    parser.add_argument("--batch", type=int, default=REPAIR_BATCH,
                        help="objects per request (default %(default)s)")
    _add_pass_options(parser)
    parser.set_defaults(func=_scrub)


def _scrub(options: argparse.Namespace) -> int:
    def run(client: HostClient) -> int:
        if options.policies:
            names = options.policies
        else:
            names = [config["name"] for config in client.modules()
                     if (client.module(config["name"]).get("capabilities") or {}).get("scrub")]
        reports = []
        for name in names:
            report: Dict[str, Any] = {"module": name, "objects": 0, "summary": {}, "failed": [],
                                      "damaged": []}
            _object_pass(client, name, options, report, scrub=True)
            reports.append(report)
        bad = any(report["failed"] or report["damaged"] or report.get("error")
                  for report in reports)
        if options.json:
            _print_json({"modules": reports, "ok": not bad})
        else:
            if not reports:
                print("nothing to scrub: no module can verify its copies")
            for report in reports:
                print(_scrub_line(report))
                _print_problems(report)
        return EXIT_FAILED if bad else EXIT_OK
    return _run_client(options, run)


def _scrub_line(report: Dict[str, Any]) -> str:
    if report.get("error"):
        return "%s: %s" % (report["module"], report["error"])
    summary = report["summary"]
    return ("%s: %d object(s) scrubbed, %d copies ok, %d damaged, %d missing, %d unverified "
            "(older objects), %d unreachable, %d object(s) could not be checked, %.1f MiB read"
            % (report["module"], report["objects"], summary.get("ok", 0),
               summary.get("damaged", 0), summary.get("missing", 0),
               summary.get("unverified", 0), summary.get("unreachable", 0),
               len(report["failed"]), summary.get("bytes_checked", 0) / 1048576.0))


def _print_problems(report: Dict[str, Any]) -> None:
    for item in report.get("damaged", [])[:20]:
        details = "; ".join("%s: %s" % (key, value) for key, value in sorted(item.items())
                            if key != "key")
        print("  %s: %s" % (item["key"], details))
    for item in report["failed"][:20]:
        print("  failed %s: %s" % (item["key"], item["error"]))


def _repair(options: argparse.Namespace) -> int:
    def run(client: HostClient) -> int:
        if options.policies:
            names = options.policies
        else:
            names = []
            for config in client.modules():
                details = client.module(config["name"])
                if (details.get("capabilities") or {}).get("repair") or \
                        details.get("pending_deletions"):
                    names.append(config["name"])
        reports = [_repair_module(client, name, options) for name in names]
        failed = any(report["failed"] or report.get("error") or report.get("damaged")
                     for report in reports)
        if options.json:
            _print_json({"modules": reports, "ok": not failed})
        else:
            if not reports:
                print("nothing to repair: no module can repair and no deletions are pending")
            for report in reports:
                print(_repair_line(report))
                _print_problems(report)
                for location, facts in sorted((report.get("draining") or {}).items()):
                    print("  draining %s: %s" % (location, "can be removed now" if
                                                 facts["removable"] else
                                                 "%s object(s) still need its copy; not yet"
                                                 % facts.get("needed")))
        return EXIT_FAILED if failed else EXIT_OK
    return _run_client(options, run)


def _repair_module(client: HostClient, name: str, options) -> Dict[str, Any]:
    report: Dict[str, Any] = {"module": name, "journal": None, "deletions": None, "objects": 0,
                              "summary": {}, "failed": [], "damaged": []}
    try:
        step = client.repair_step(name, {})
    except HostError as error:
        if error.status != 501:
            report["error"] = str(error)
            return report
        report["error"] = "cannot repair: %s" % error if options.policies else None
        return report
    report["journal"] = step.get("summary")
    report["deletions"] = step.get("deletions")
    if options.journal_only or not step.get("supported"):
        return report
    _object_pass(client, name, options, report, scrub=False, total=step.get("objects", 0))
    if not report.get("error"):
        _note_draining(client, name, report, step.get("objects", 0))
    return report


def _note_draining(client: HostClient, name: str, report: Dict[str, Any], total: int) -> None:
    """Say, after a full pass, whether each draining location of a replica can be removed."""
    statistics = client.module(name).get("statistics")
    draining = statistics.get("draining") if isinstance(statistics, dict) else None
    if not isinstance(draining, dict) or not isinstance(draining.get("locations"), dict):
        return
    complete = isinstance(draining.get("objects"), int) and draining["objects"] >= total
    report["draining"] = {
        location: dict(facts, removable=bool(facts.get("removable")) and complete)
        for location, facts in draining["locations"].items() if isinstance(facts, dict)}


def _object_pass(client: HostClient, name: str, options, report: Dict[str, Any], scrub: bool,
                 total: Optional[int] = None) -> None:
    """Run objects (or scrub) steps over every object of module ``name`` into ``report``."""
    body: Dict[str, Any] = {"limit": 1 if options.pause > 0 else options.batch}
    if scrub:
        body["scrub"] = True
    if options.rate_mib:
        body["rate"] = options.rate_mib * 1048576.0
    progress = None
    after = ""
    try:
        while True:
            step = client.repair_step(name, dict(body, after=after))
            report["objects"] += step["done"]
            report["failed"].extend(step["failed"])
            report["damaged"].extend(step.get("damaged") or [])
            add_counts(report["summary"], step.get("summary") or {})
            if progress is None:
                progress = _progress(total if total is not None else step["total"], name,
                                     options, "scrubbing" if scrub else "repairing")
            if progress is not None:
                progress.total = max(progress.total or 0, step["total"])
                progress.update(step["done"])
            if not step["next"]:
                break
            after = step["next"]
            if options.pause > 0:
                time.sleep(options.pause)
    except HostError as error:
        if error.status == 501 and scrub:
            report["error"] = "cannot scrub: %s" % error
        else:
            report["error"] = str(error)
    finally:
        if progress is not None:
            progress.close()


def _progress(total: int, name: str, options, verb: str = "repairing"):
    if options.no_progress or total < PROGRESS_THRESHOLD:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="%s %s" % (verb, name), unit="obj", file=sys.stderr)


def _repair_line(report: Dict[str, Any]) -> str:
    if report.get("error"):
        return "%s: %s" % (report["module"], report["error"])
    if report["journal"] is None and report["deletions"] and not report["objects"]:
        deletions = report["deletions"]
        return "%s: %d pending deletion(s) done, %d failed" % (
            report["module"], deletions["done"], deletions["failed"])
    parts = ["%s: %d object(s) checked" % (report["module"], report["objects"])]
    if report["summary"]:
        parts.append(", ".join("%s %s" % (key, value) for key, value in
                               sorted(report["summary"].items()) if not isinstance(value, dict)))
    if report["failed"]:
        parts.append("%d failed" % len(report["failed"]))
    return "; ".join(part for part in parts if part)


# -- helpers -----------------------------------------------------------------

class _UsageError(Exception):
    """The command line names something malformed (exit code 2)."""


def _target(text: str):
    try:
        return split_target(text)
    except ValueError as error:
        raise _UsageError(str(error)) from None


def _data_dir(given: Optional[str]) -> str:
    return given or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR


def _run_client(options: argparse.Namespace, run) -> int:
    password_file = options.password_file or os.path.join(_data_dir(None), PASSWORD_FILENAME)
    password = read_password(password_file)
    command = "vsm %s" % options.command
    if password is None:
        print("%s: no administrator password: set %s or pass --password-file (looked in %s)"
              % (command, PASSWORD_ENV, password_file), file=sys.stderr)
        return EXIT_AUTH
    url = options.url or os.environ.get(URL_ENV) or DEFAULT_URL
    try:
        with HostClient(url, password, timeout=(10.0, options.timeout)) as client:
            return run(client)
    except HostError as error:
        print("%s: %s" % (command, error), file=sys.stderr)
        return _exit_code(error)
    except _UsageError as error:
        print("%s: %s" % (command, error), file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print("%s: %s" % (command, error), file=sys.stderr)
        return EXIT_FAILED


def _exit_code(error: HostError) -> int:
    if error.unreachable:
        return EXIT_UNREACHABLE
    if error.status is None:
        return EXIT_FAILED
    if error.status == 404:
        return EXIT_NOT_FOUND
    if error.status == 401:
        return EXIT_AUTH
    if error.status in (503, 507):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def _chunks(stream, size: int = 1024 * 1024):
    while True:
        chunk = stream.read(size)
        if not chunk:
            return
        yield chunk


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))
