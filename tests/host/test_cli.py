"""``vsm serve``, ``put``, ``get``, ``rm``, ``stat`` and ``repair`` against real hosts."""
import contextlib
import io
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import unittest
from unittest import mock

from modules.cli import main
from modules.host.commands import (
    EXIT_AUTH,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from tests.host.support import (
    CONFIG,
    PASSWORD,
    HostProcess,
    HostTestCase,
    replica_available,
    stored_files,
)


MIB_HALF = 512 * 1024


def stored_files_path(directory: str, exclude: str) -> str:
    """Return the path of the one stored file under ``directory`` other than ``exclude``."""
    others = [path for path in stored_files(directory) if path != exclude]
    assert len(others) == 1, others
    return os.path.join(directory, others[0])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CliTestCase(HostTestCase):
    """Runs ``vsm`` in this process with the host's URL and password in the environment."""

    def setUp(self):
        super().setUp()
        self.work = tempfile.mkdtemp(prefix="vsm-cli-")
        self.addCleanup(shutil.rmtree, self.work, True)
        patcher = mock.patch.dict(os.environ, {"VSM_ADMIN_PASSWORD": PASSWORD,
                                               "VSM_URL": self.host.url})
        patcher.start()
        self.addCleanup(patcher.stop)

    def vsm(self, *argv, stdin: bytes = None):
        """Return ``(exit code, stdout, stderr)`` of ``vsm argv``."""
        out, err = io.StringIO(), io.StringIO()
        replaced_stdin = io.TextIOWrapper(io.BytesIO(stdin or b""))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                mock.patch.object(sys, "stdin", replaced_stdin):
            try:
                code = main(list(argv))
            except SystemExit as exit:
                code = exit.code
        return code, out.getvalue(), err.getvalue()

    def file(self, name: str, data: bytes) -> str:
        path = os.path.join(self.work, name)
        with open(path, "wb") as file:
            file.write(data)
        return path


class TestObjectCommands(CliTestCase):

    def setUp(self):
        super().setUp()
        self.host.simple("store")

    def test_put_stat_get_rm(self):
        data = os.urandom(100000)
        code, out, err = self.vsm("put", "store/dir/ünicode name.txt", self.file("in.txt", data))
        self.assertEqual(code, EXIT_OK, err)
        self.assertIn("100000 bytes", out)
        code, out, _ = self.vsm("stat", "--json", "store/dir/ünicode name.txt")
        self.assertEqual(code, EXIT_OK)
        described = json.loads(out)
        self.assertEqual(described["size"], 100000)
        self.assertEqual(described["content_type"], "text/plain")
        target = os.path.join(self.work, "out.bin")
        self.assertEqual(self.vsm("get", "store/dir/ünicode name.txt", "-o", target)[0], EXIT_OK)
        with open(target, "rb") as file:
            self.assertEqual(file.read(), data)
        self.assertEqual(self.vsm("get", "--range", "-10", "store/dir/ünicode name.txt", "-o",
                                  target)[0], EXIT_OK)
        with open(target, "rb") as file:
            self.assertEqual(file.read(), data[-10:])
        self.assertEqual(self.vsm("rm", "store/dir/ünicode name.txt")[0], EXIT_OK)
        self.assertEqual(self.vsm("stat", "store/dir/ünicode name.txt")[0], EXIT_NOT_FOUND)

    def test_put_from_stdin_and_copy(self):
        code, out, err = self.vsm("put", "--json", "store/from-stdin", stdin=b"piped bytes")
        self.assertEqual(code, EXIT_OK, err)
        self.assertEqual(json.loads(out)["size"], 11)
        self.assertEqual(self.vsm("put", "store/copy", "--copy-from", "store/from-stdin")[0],
                         EXIT_OK)
        self.assertEqual(self.host.request("GET", "/objects/store/copy").content, b"piped bytes")

    def test_missing_objects(self):
        target = os.path.join(self.work, "never.bin")
        code, _, err = self.vsm("get", "store/missing", "-o", target)
        self.assertEqual(code, EXIT_NOT_FOUND)
        self.assertIn("missing", err)
        self.assertFalse(os.path.exists(target), "a failed download leaves no file")
        self.assertEqual(os.listdir(self.work), [])
        self.assertEqual(self.vsm("rm", "store/missing")[0], EXIT_NOT_FOUND)
        self.assertEqual(self.vsm("rm", "-f", "store/missing")[0], EXIT_OK)
        self.host.request("PUT", "/objects/store/here", data=b"x")
        self.assertEqual(self.vsm("rm", "store/here", "store/missing")[0], EXIT_NOT_FOUND)
        self.assertEqual(self.host.request("GET", "/objects/store/here").status_code, 404)

    def test_exit_codes_for_usage_auth_reachability_and_full_storage(self):
        self.assertEqual(self.vsm("stat", "no-slash")[0], EXIT_USAGE)
        self.assertEqual(self.vsm("stat")[0], EXIT_USAGE)
        with mock.patch.dict(os.environ, {"VSM_ADMIN_PASSWORD": "wrong"}):
            code, _, err = self.vsm("stat", "store/x")
        self.assertEqual(code, EXIT_AUTH)
        self.assertIn("password", err)
        with mock.patch.dict(os.environ, {"VSM_ADMIN_PASSWORD": ""}):
            code, _, err = self.vsm("stat", "--password-file", os.path.join(self.work, "none"),
                                    "store/x")
        self.assertEqual(code, EXIT_AUTH)
        code, _, err = self.vsm("stat", "--url", "http://127.0.0.1:%d" % free_port(), "store/x")
        self.assertEqual(code, EXIT_UNREACHABLE)
        self.assertIn("cannot reach", err)
        with mock.patch.dict(os.environ, {"VSM_URL": "ftp://user:hunter22@127.0.0.1:1"}):
            code, _, err = self.vsm("stat", "store/x")  # review finding: it was 1
        self.assertEqual(code, EXIT_USAGE)
        self.assertIn("$VSM_URL", err)
        self.assertNotIn("hunter22", err)
        picky = os.path.join(self.host.data_dir, "picky")
        os.mkdir(picky)
        self.host.configure("picky", "tests.host.fixture_modules.PickyStorage", [picky])
        code, _, err = self.vsm("put", "picky/x", self.file("full", b"FULL of things"))
        self.assertEqual(code, EXIT_UNAVAILABLE)
        self.assertIn("no room", err)

    def test_password_file_option(self):
        path = self.file("password", PASSWORD.encode() + b"\n")
        with mock.patch.dict(os.environ, {"VSM_ADMIN_PASSWORD": ""}):
            code, _, err = self.vsm("put", "--password-file", path, "store/p", stdin=b"x")
        self.assertEqual(code, EXIT_OK, err)

    def test_every_command_has_help(self):
        for command in ("serve", "put", "get", "rm", "stat", "repair", "scrub", "check"):
            with self.subTest(command=command):
                code, out, _ = self.vsm(command, "--help")
                self.assertEqual(code, 0)
                self.assertIn("usage: vsm " + command, out)


@unittest.skipUnless(replica_available(), "the replica module is not importable")
class TestRepairCommand(CliTestCase):

    create_defaults = True

    def location(self, name):
        return os.path.join(self.host.data_dir, "locations", name)

    def test_repair_refills_silently_lost_copies_with_a_progress_bar(self):
        count = 210
        for index in range(count):
            self.host.request("PUT", "/objects/mirror/item-%03d" % index, data=b"%d" % index)
        shutil.rmtree(self.location("loc-b"))
        os.mkdir(self.location("loc-b"))  # the disk was replaced: empty, but mounted
        code, out, err = self.vsm("repair")
        self.assertEqual(code, EXIT_OK, out + err)
        self.assertIn("repairing mirror", err, "a progress bar for many objects")
        self.assertIn("%d/%d" % (count, count), err)
        self.assertIn("mirror: %d object(s) checked" % count, out)
        self.assertEqual(len(stored_files(self.location("loc-b"))), count)
        self.assertEqual(self.vsm("get", "mirror/item-007", "-o",
                                  os.path.join(self.work, "seven"))[0], EXIT_OK)

    def test_repair_reports_objects_that_cannot_be_saved(self):
        self.host.request("PUT", "/objects/mirror/lost", data=b"gone everywhere")
        self.host.request("PUT", "/objects/mirror/fine", data=b"fine")
        copies = json.loads(self.host.app.store.get_object("mirror", "lost").module_data)["copies"]
        for name, copy in copies.items():
            os.unlink(os.path.join(self.location(name), copy["md"]))
        os.unlink(stored_files_path(self.location("loc-c"), exclude=copies["loc-c"]["md"]))
        code, out, err = self.vsm("repair", "--json", "mirror")
        self.assertEqual(code, 1, out + err)
        report = json.loads(out)
        self.assertFalse(report["ok"])
        failed = report["modules"][0]["failed"]
        self.assertEqual([item["key"] for item in failed], ["lost"])
        self.assertIn("ObjectNotFound", failed[0]["error"])
        self.assertEqual(len(stored_files(self.location("loc-c"))), 1, "fine was refilled")

    def test_scrub_finds_a_damaged_copy_and_repair_fixes_it(self):
        data = bytes(range(256)) * 8192  # 2 MiB
        self.host.request("PUT", "/objects/mirror/victim", data=data)
        self.host.request("PUT", "/objects/mirror/fine", data=b"fine")
        copies = json.loads(self.host.app.store.get_object("mirror", "victim").module_data)[
            "copies"]
        path = os.path.join(self.location("loc-c"), copies["loc-c"]["md"])
        with open(path, "r+b") as file:
            file.seek(MIB_HALF)
            file.write(b"\0rot")
        code, out, err = self.vsm("scrub", "--json", "--rate-mib", "1000", "--pause", "0.01")
        self.assertEqual(code, 1, out + err)
        report = json.loads(out)
        self.assertFalse(report["ok"])
        module = report["modules"][0]
        self.assertEqual(module["module"], "mirror")
        self.assertEqual(module["objects"], 2)
        self.assertEqual([item["key"] for item in module["damaged"]], ["victim"])
        self.assertIn("loc-c", module["damaged"][0]["damaged"])
        code, out, err = self.vsm("repair", "mirror")
        self.assertEqual(code, 0, out + err)
        with open(path, "rb") as file:
            self.assertEqual(file.read(), data)
        code, out, err = self.vsm("scrub", "mirror")
        self.assertEqual(code, 0, out + err)
        self.assertIn("mirror: 2 object(s) scrubbed, 6 copies ok, 0 damaged", out)

    def test_scrub_of_a_module_that_cannot_scrub(self):
        code, out, err = self.vsm("scrub", "loc-a")
        self.assertEqual(code, 1)
        self.assertIn("cannot scrub", out)

    def test_repair_of_a_module_that_cannot_repair(self):
        # simple sweeps its temporaries (issue 9); a forwarding module has no repair
        self.host.configure("front", "tests.host.fixture_modules.ForwardingStorage", ["loc-a"])
        code, out, err = self.vsm("repair", "front")
        self.assertEqual(code, 1)
        self.assertIn("cannot repair", out)

    def test_a_failing_module_repair_keeps_the_deletions_report(self):
        """The deletions done before a module's own repair failed are still listed."""
        directory = os.path.join(self.host.data_dir, "failing")
        os.mkdir(directory)
        self.host.configure("failing", "tests.host.fixture_modules.FailingRepairStorage",
                            [directory])
        self.host.request("PUT", "/objects/failing/k", data=b"x")
        self.host.request("DELETE", "/objects/failing/k")
        code, out, err = self.vsm("repair", "failing")
        self.assertEqual(code, 1, out + err)
        self.assertIn("failing: deletions:", out)
        self.assertIn("module repair failed: LocationUnavailable: the journal", out)

    def test_repair_lists_deletions_and_exits_1_when_one_fails(self):
        """Issue 11 item 3: vsm repair exited 0 and said nothing when pending deletions failed."""
        directory = os.path.join(self.host.data_dir, "locations", "loc-a")
        self.assertEqual(self.vsm("put", "loc-a/doomed", self.file("d", b"x"))[0], 0)
        os.rename(directory, directory + ".away")
        self.host.request("DELETE", "/objects/loc-a/doomed")
        code, out, err = self.vsm("repair", "loc-a")
        self.assertEqual(code, 1, out + err)
        self.assertIn("loc-a: deletions:", out)
        self.assertIn("1 failed", out)
        self.assertIn("deletion failed: LocationUnavailable", out)
        os.rename(directory + ".away", directory)
        code, out, err = self.vsm("repair")
        self.assertEqual(code, 0, out + err)
        self.assertIn("1 piece(s) of data destroyed (deleted 1), 0 failed", out)
        self.assertEqual(stored_files(directory), [])


class TestServeCommand(unittest.TestCase):

    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="vsm-serve-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)

    def test_banner_password_once_and_clean_stop(self):
        first = HostProcess(self.data_dir, password=None)
        try:
            banner = "\n".join(first.banner)
            password_file = os.path.join(self.data_dir, "admin-password")
            with open(password_file) as file:
                password = file.read().strip()
            self.assertEqual(os.stat(password_file).st_mode & 0o777, 0o600)
            self.assertIn(first.url, banner)
            self.assertIn(password, banner, "the generated password is printed at first start")
            self.assertIn(password_file, banner)
            curls = [line for line in first.banner if line.strip().startswith("curl ")]
            self.assertEqual(len(curls), 3)
            if replica_available():
                self.assertTrue(all("/objects/mirror/" in line or "vendor_modules/mirror" in line
                                    for line in curls))
        finally:
            output = first.stop()
        self.assertEqual(first.process.returncode, 0)
        self.assertIn("stopped", output)

        second = HostProcess(self.data_dir, password=None)
        try:
            banner = "\n".join(second.banner)
            self.assertNotIn(password, banner, "printed only once")
            self.assertIn(password_file, banner)
            import requests
            response = requests.get(second.url + CONFIG, auth=("administrator", password),
                                    timeout=10)
            self.assertEqual(response.status_code, 200)
        finally:
            second.stop()

    def test_busy_port_is_a_clear_error(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            code, err = None, io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                    mock.patch.dict(os.environ, {"VSM_ADMIN_PASSWORD": PASSWORD}):
                code = main(["serve", "--port", str(port), "--data-dir", self.data_dir])
        self.assertEqual(code, 1)
        self.assertTrue(re.search(r"cannot listen on 127\.0\.0\.1:%d" % port, err.getvalue()))

    def test_impossible_port_and_body_size_are_usage_errors(self):
        """Review finding: ``--port 99999`` listened on port 34463 (getaddrinfo takes it modulo
        65536) and ``--max-body-size -5`` answered 413 to every request, even GETs."""
        for option, value, expected in (("--port", "99999", "--port must be from 0 to 65535"),
                                        ("--port", "-1", "--port must be"),
                                        ("--max-body-size", "-5", "--max-body-size must be")):
            with self.subTest(option=option, value=value):
                err = io.StringIO()
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                        mock.patch.dict(os.environ, {"VSM_ADMIN_PASSWORD": PASSWORD}):
                    code = main(["serve", "--port", "0", option, value, "--data-dir",
                                 self.data_dir, "--workers", "1"])
                self.assertEqual(code, 2)
                self.assertIn(expected, err.getvalue())


class TestClosedOutput(unittest.TestCase):
    """Review finding: ``vsm scrub --json | head`` ended with a BrokenPipeError traceback."""

    def test_a_reader_that_goes_away_stops_vsm_quietly(self):
        import subprocess

        script = ("from modules import cli\n"
                  "def many(argv=None):\n"
                  "    for index in range(200000):\n"
                  "        print('line %d' % index)\n"
                  "    return 0\n"
                  "cli.main = many\n"
                  "cli.console_main()\n")
        process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        first = process.stdout.readline()
        process.stdout.close()  # as head does once it has its lines
        try:
            _, err = process.communicate(timeout=30)
        finally:
            process.kill()
        self.assertEqual(first, b"line 0\n")
        self.assertEqual(process.returncode, 141)
        self.assertNotIn(b"Traceback", err)
