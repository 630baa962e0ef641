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
import shutil
import signal
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, TextIO

from modules.errors import ConfigurationError, StorageError
from modules.redaction import redact_text
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
from modules.host.access_log import STDERR, configure_access_log
from modules.host.pipeline import METRICS_AUTH, METRICS_OFF, METRICS_PUBLIC, build_application
from modules.host.server import (
    DEFAULT_HOST,
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_PORT,
    DEFAULT_THREADS,
    HostServer,
    listening_socket,
    socket_url,
)
from modules.host.workers import WorkerPool

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

#: The environment variable switching prometheus_client to multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

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
        "serve", help="run the host (the platform's WSGI application) on cheroot",
        description="Serve the provisioning API, /objects/<policy>/<key>, the status page and "
                    "/metrics from the data directory (default ./%s: run it where that "
                    "directory should live, or pass --data-dir). On the first start of an empty "
                    "data directory it configures three local locations (loc-a, loc-b, loc-c, "
                    "under DATA_DIR/locations) and the policy 'mirror' over them, and generates "
                    "the administrator password. Stops on Ctrl+C or SIGTERM." % DEFAULT_DATA_DIR,
        epilog="exit codes: 0 stopped normally, 1 cannot start (the message says why)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to listen on (default %(default)s; anything but loopback "
                             "sends the password in clear: put TLS in front)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="port (default %(default)s; 0 picks a free one)")
    parser.add_argument("--data-dir", default=None,
                        help="database, password and default locations (default $%s or ./%s)"
                             % (DATA_DIR_ENV, DEFAULT_DATA_DIR))
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes sharing the port, each with its own module instances "
                             "(default: the number of cores, %d here; 1 serves in this process)"
                             % _cores())
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="threads per process (default %(default)s)")
    parser.add_argument("--max-body-size", type=int, default=DEFAULT_MAX_BODY_SIZE,
                        metavar="BYTES", help="largest upload accepted (default 64 GiB; larger "
                                              "ones get 413 before any byte is read)")
    parser.add_argument("--access-log", default=STDERR, metavar="PATH|-|off",
                        help="one line per request to this file, '-' for stderr (default) or "
                             "'off'")
    parser.add_argument("--metrics", default=METRICS_AUTH,
                        choices=(METRICS_AUTH, METRICS_PUBLIC, METRICS_OFF),
                        help="Prometheus metrics at /metrics: behind the administrator's login "
                             "(auth, default), open to anyone who reaches the port (public), "
                             "or not served (off)")
    parser.add_argument("--background-repair", default="32", metavar="MIB_PER_S|off",
                        type=_background_repair,
                        help="after a module is reconfigured (a location added, draining or "
                             "replaced), repair each of its objects in the background, reading "
                             "at most this many MiB per second (default %(default)s); 'off' "
                             "leaves it to 'vsm repair'")
    parser.add_argument("--spool-dir", metavar="DIR",
                        help="ignored: request bodies are streamed to the modules, nothing is "
                             "spooled (kept so that existing command lines still work)")
    parser.add_argument("--egg", action="append", default=[], metavar="PATH.egg",
                        help="put a module's egg on the path before starting (repeatable); the "
                             "data directory's eggs/*.egg are loaded too (by every worker)")
    parser.set_defaults(func=_serve)


def _background_repair(value: str) -> Optional[float]:
    """``--background-repair``: MiB per second (> 0) as bytes per second, or None for off."""
    if value.strip().lower() == "off":
        return None
    try:
        rate = float(value)
    except ValueError:
        rate = 0.0
    if not rate > 0 or rate == float("inf"):
        raise argparse.ArgumentTypeError("%r is not 'off' or a number of MiB per second above 0"
                                         % value)
    return rate * 1024 * 1024


def _cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the host's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _serve(options: argparse.Namespace, out: TextIO = None) -> int:
    from modules.host.app import make_app  # the client commands need none of this
    from modules.host.eggs import egg_paths, load_eggs

    out = out or sys.stdout
    data_dir = os.path.abspath(_data_dir(options.data_dir))
    workers = options.workers if options.workers is not None else _cores()
    if workers < 1 or options.threads < 1:
        print("vsm serve: --workers and --threads must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if not 0 <= options.port <= 65535:
        # getaddrinfo would take 99999 modulo 65536 and listen on 34463 without a word.
        print("vsm serve: --port must be from 0 to 65535 (0 picks a free one), got %d"
              % options.port, file=sys.stderr)
        return EXIT_USAGE
    if options.max_body_size < 1:
        # cheroot would answer 413 to every request, even a GET (any length exceeds it).
        print("vsm serve: --max-body-size must be at least 1 byte, got %d"
              % options.max_body_size, file=sys.stderr)
        return EXIT_USAGE
    if options.spool_dir:
        print("vsm serve: --spool-dir is ignored: request bodies are streamed, nothing is "
              "spooled", file=sys.stderr)
    given = os.environ.get(MULTIPROC_ENV)
    if given and options.metrics != METRICS_OFF and not os.path.isdir(given):
        print("vsm serve: $%s names %s, which is not a directory; create it (empty) or unset "
              "the variable" % (MULTIPROC_ENV, given), file=sys.stderr)
        return EXIT_FAILED
    multiproc_dir = None
    if workers > 1 and options.metrics != METRICS_OFF and not given:
        # Before prometheus_client is imported: the workers' request counts go to files
        # there, and each scrape adds them up (prometheus_client's multiprocess mode).
        multiproc_dir = tempfile.mkdtemp(prefix="vsm-metrics-")
        os.environ[MULTIPROC_ENV] = multiproc_dir
    try:
        try:
            configure_access_log(options.access_log)
        except OSError as error:
            print("vsm serve: cannot open the access log %s: %s"
                  % (options.access_log, error.strerror), file=sys.stderr)
            return EXIT_FAILED
        try:
            # Before the workers fork: each inherits the path (and loads modules from it).
            load_eggs(egg_paths(data_dir, options.egg))
            app = make_app(data_dir, **_app_options(options, serves=workers == 1))
        except (ConfigurationError, StorageError, OSError) as error:
            print("vsm serve: cannot start: %s" % error, file=sys.stderr)
            return EXIT_FAILED
        try:
            sock = listening_socket(options.host, options.port)
        except (OSError, ValueError) as error:
            app.close()
            print("vsm serve: cannot listen on %s:%s: %s" % (options.host, options.port, error),
                  file=sys.stderr)
            return EXIT_FAILED
        if workers == 1:
            return _serve_here(options, app, sock, out)
        return _serve_workers(options, app, sock, workers, out)
    finally:
        if multiproc_dir is not None:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(multiproc_dir, ignore_errors=True)


def _app_options(options: argparse.Namespace, serves: bool) -> Dict[str, Any]:
    """``make_app`` keywords; ``serves``: this process's application answers requests."""
    rate = options.background_repair
    return {"background_repair": serves and rate is not None, "repair_rate": rate}


def _wrap(options: argparse.Namespace, app):
    return build_application(app, access_log=options.access_log != "off",
                             metrics=options.metrics)


def _serve_here(options: argparse.Namespace, app, sock, out: TextIO) -> int:
    """``--workers 1``: serve in this process."""
    server = HostServer(_wrap(options, app), sock=sock, threads=options.threads,
                        max_body_size=options.max_body_size)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_signal)  # before the banner: tools wait for it
    try:
        _print_banner(out, app, server.url, server.host, 1, options.threads)
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass  # a signal during the banner: serve_forever handles the later ones itself
    finally:
        server.shutdown(timeout=0)
        app.close()
    print("vsm serve: stopped", file=out, flush=True)
    return EXIT_OK


def _serve_workers(options: argparse.Namespace, app, sock, workers: int, out: TextIO) -> int:
    """Pre-fork ``workers`` processes on ``sock``; each builds its own application."""
    from modules.host.app import make_app

    data_dir = app.data_dir
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_signal)  # until the pool takes over
    try:
        _print_banner(out, app, socket_url(sock), sock.getsockname()[0], workers, options.threads)
    except (KeyboardInterrupt, SystemExit):
        sock.close()
        print("vsm serve: stopped", file=out, flush=True)
        return EXIT_OK
    finally:
        app.close()  # each worker opens its own: nothing is shared across fork

    def run_worker(shared) -> int:
        child_app = make_app(data_dir, **_app_options(options, serves=True))
        server = HostServer(_wrap(options, child_app), sock=shared, threads=options.threads,
                            max_body_size=options.max_body_size, multiprocess=True)
        try:
            server.serve_forever()
        finally:
            server.shutdown(timeout=0)
            child_app.close()
        return EXIT_OK

    def worker_ended(pid: int) -> None:
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid)

    try:
        status = WorkerPool(sock, workers, run_worker, on_exit=worker_ended).run()
    except (KeyboardInterrupt, SystemExit):  # arrived before the pool set its own handlers
        status = 0
    sock.close()
    print("vsm serve: stopped", file=out, flush=True)
    return EXIT_OK if status == 0 else EXIT_FAILED


def _exit_on_signal(signum, frame):
    raise SystemExit(0)


def _print_banner(out: TextIO, app, url: str, listen_host: str, workers: int,
                  threads: int) -> None:
    url = url.rstrip("/")
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
    lines = ["vsm host: serving %s (the database, the password and the default locations "
             "live there)" % app.data_dir,
             "Listening on %s/  (status page; log in as administrator)" % url,
             "Workers: %d process(es) x %d threads" % (workers, threads)]
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
        "  echo hello > hello.txt",
        "  curl -u %s -T hello.txt %s/objects/%s/hello.txt" % (credentials, url, policy),
        "  curl -u %s %s/objects/%s/hello.txt" % (credentials, url, policy),
        "  curl -u %s %s/cdmi/system_configuration/vendor_modules/%s" % (credentials, url, policy),
        "Stop with Ctrl+C.",
    ]
    if listen_host not in ("127.0.0.1", "::1", "localhost"):
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
        failed = any(_repair_failed(report) for report in reports)
        if options.json:
            _print_json({"modules": reports, "ok": not failed})
        else:
            if not reports:
                print("nothing to repair: no module can repair and no deletions are pending")
            for report in reports:
                for line in _repair_lines(report):
                    print(line)
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
    if step.get("error"):
        report["error"] = "module repair failed: %s" % step["error"]
    report["pending"] = step.get("pending")
    if options.journal_only or not step.get("supported"):
        return report
    report["objects_pass"] = True
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


def _repair_failed(report: Dict[str, Any]) -> bool:
    """Return True when anything in a module's repair report failed (exit code 1)."""
    deletions = report.get("deletions") or {}
    return bool(report["failed"] or report.get("error") or report.get("damaged")
                or deletions.get("failed") or _failures(report.get("journal")))


def _failures(summary: Any) -> int:
    """Count what a module's own repair report says failed (numbers under 'failed' keys)."""
    if not isinstance(summary, dict):
        return 0
    count = 0
    for key, value in summary.items():
        if key == "failed" and isinstance(value, (int, float)) and not isinstance(value, bool):
            count += int(value)
        elif key == "failed" and isinstance(value, (list, dict)):
            count += len(value)
        elif isinstance(value, dict):
            count += _failures(value)
    return count


def _flatten(summary: Any, prefix: str = "") -> List[str]:
    """Return ``'name value'`` items for every non-empty entry of a (nested) report."""
    if not isinstance(summary, dict):
        return [] if summary in (None, {}, []) else ["%s%s" % (prefix, summary)]
    items = []
    for key, value in sorted(summary.items()):
        name = "%s%s" % (prefix, key)
        if isinstance(value, dict):
            items.extend(_flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            if value:
                items.append("%s %s" % (name, ", ".join(str(item) for item in value[:10])
                                        + (" ..." if len(value) > 10 else "")))
        elif value not in (0, None, False, ""):
            items.append("%s %s" % (name, value))
    return items


def _repair_lines(report: Dict[str, Any]) -> List[str]:
    """Return the text report of one module: every action taken, one kind per line."""
    name = report["module"]
    if report.get("error") and report["deletions"] is None:
        return ["%s: %s" % (name, report["error"])]
    lines = []
    deletions = report.get("deletions")
    if deletions:
        destroyed = deletions.get("destroyed") or {}
        kinds = ", ".join("%s %d" % (kind, count) for kind, count in sorted(destroyed.items()))
        lines.append("%s: deletions: %d write intent(s) of stopped processes collected, %d "
                     "piece(s) of data destroyed%s, %d failed, %d still being read (destroyed "
                     "later), %d pending" % (
                         name, deletions.get("collected", 0), deletions.get("done", 0),
                         " (%s)" % kinds if kinds else "", deletions.get("failed", 0),
                         deletions.get("still_read", 0), report.get("pending") or 0))
        for error in deletions.get("errors") or []:
            lines.append("  deletion failed: %s" % error)
    if report.get("journal") is not None:
        items = _flatten(report["journal"])
        lines.append("%s: module repair: %s" % (name, "; ".join(items) if items
                                                  else "nothing to do"))
    if report.get("objects_pass"):
        parts = ["%s: %d object(s) checked" % (name, report["objects"])]
        items = _flatten(report["summary"])
        if items:
            parts.append(", ".join(items))
        if report["failed"]:
            parts.append("%d failed" % len(report["failed"]))
        lines.append("; ".join(parts))
    if report.get("error"):
        lines.append("%s: %s" % (name, report["error"]))
    return lines


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
    command = "vsm %s" % options.command
    url = options.url or os.environ.get(URL_ENV) or DEFAULT_URL
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("http", "https") or not rest.strip("/"):
        source = "--url" if options.url else "$" + URL_ENV
        print("%s: the host's URL %r (from %s) is not http://HOST:PORT or https://HOST:PORT"
              % (command, redact_text(url), source), file=sys.stderr)
        return EXIT_USAGE
    password_file = options.password_file or os.path.join(_data_dir(None), PASSWORD_FILENAME)
    password = read_password(password_file)
    if password is None:
        print("%s: no administrator password: set %s or pass --password-file (looked in %s)"
              % (command, PASSWORD_ENV, password_file), file=sys.stderr)
        return EXIT_AUTH
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
