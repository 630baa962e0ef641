"""``vsm check`` passes good modules and names what is wrong with broken ones."""
import io
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from modules.testing.check_command import run_checks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TestVsmCheck(unittest.TestCase):
    def setUp(self):
        # The storage directory inside a private parent: what the kit moves
        # aside next to it (a directory the module recreated) goes too.
        parent = tempfile.mkdtemp(prefix="vsm-check-")
        self.addCleanup(shutil.rmtree, parent, True)
        self.directory = os.path.join(parent, "storage")
        os.mkdir(self.directory)

    def check(self, dotted_path):
        out = io.StringIO()
        code = run_checks(dotted_path, [self.directory], out=out)
        return code, out.getvalue()

    def test_simple_passes(self):
        code, output = self.check("simple.simple.SimpleStorage")
        self.assertEqual(code, 0, output)
        self.assertRegex(output, r"\n\d+ passed, 0 failed")
        self.assertIn("PASS  test_write_and_read_one_mib", output)

    def test_unseekable_stream_fails_naming_seek(self):
        code, output = self.check("tests.fixtures.broken_modules.UnseekableStorage")
        self.assertEqual(code, 1, output)
        self.assertRegex(output, r"(FAIL|ERROR) test_read_stream_interface: .*seek")

    def test_partial_object_on_source_failure_fails(self):
        code, output = self.check("tests.fixtures.broken_modules.PartialWriteStorage")
        self.assertEqual(code, 1, output)
        self.assertIn("FAIL  test_failing_source_leaves_nothing: ", output)
        self.assertIn("a partial object was kept", output)

    def test_statistics_without_capacity_fails(self):
        code, output = self.check("tests.fixtures.broken_modules.NoCapacityStorage")
        self.assertEqual(code, 1, output)
        self.assertIn("FAIL  test_statistics_format: ", output)
        self.assertIn("lacks the 'capacity' entry", output)

    def test_command_line_exit_codes(self):
        env = dict(os.environ, PYTHONPATH=ROOT)
        good = subprocess.run([sys.executable, "-m", "modules", "check", "simple.simple.SimpleStorage",
                               self.directory, "-k", "statistics_format"],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        self.assertEqual(good.returncode, 0, good.stdout + good.stderr)
        self.assertIn("1 passed, 0 failed", good.stdout)
        broken = subprocess.run([sys.executable, "-m", "modules", "check",
                                 "tests.fixtures.broken_modules.NoCapacityStorage", self.directory],
                                cwd=ROOT, env=env, capture_output=True, text=True)
        self.assertEqual(broken.returncode, 1, broken.stdout + broken.stderr)
        missing = subprocess.run([sys.executable, "-m", "modules", "check", "no.such.Module"],
                                 cwd=ROOT, env=env, capture_output=True, text=True)
        self.assertEqual(missing.returncode, 2)
        self.assertIn("no package 'no' can be imported", missing.stdout)


FIXTURES = "tests.modules.authors_fixtures."


class TestKitChecksOfIssue15(unittest.TestCase):
    """The kit's checks added for issue 15 catch what they are for, through ``vsm check``."""

    def setUp(self):
        # The storage directory inside a private parent: what the kit moves
        # aside next to it (a directory the module recreated) goes too.
        parent = tempfile.mkdtemp(prefix="vsm-check-")
        self.addCleanup(shutil.rmtree, parent, True)
        self.directory = os.path.join(parent, "storage")
        os.mkdir(self.directory)

    def check(self, dotted_path, only=None, args=None):
        out = io.StringIO()
        code = run_checks(dotted_path, [self.directory] if args is None else args, only=only,
                          out=out)
        return code, out.getvalue()

    def test_storage_recreated_while_taken_away_fails(self):
        """Issue 15 point 7: a module that recreates its directory is caught, saying what to do."""
        code, output = self.check(FIXTURES + "RecreatingStorage", only="taken_away")
        self.assertEqual(code, 1, output)
        self.assertIn("while the storage was taken away; it must raise LocationUnavailable", output)
        self.assertIn("the module created %s again while it was taken away" % self.directory,
                      output)
        siblings = [name for name in os.listdir(os.path.dirname(self.directory))
                    if name.startswith(os.path.basename(self.directory) + ".")]
        self.assertTrue(os.path.isdir(self.directory), "the directory was not put back")
        self.assertEqual([name for name in siblings if ".vsm-away-" in name], [],
                         "the directory moved away was not put back")

    def test_statistics_that_stay_ok_fail(self):
        """Issue 15 point 5: statistics must say 'unavailable' while the storage is gone."""
        code, output = self.check(FIXTURES + "AlwaysOkStatistics", only="taken_away")
        self.assertEqual(code, 1, output)
        self.assertIn("statistics() reads as 'ok' (status 'ok') while the storage is gone", output)

    def test_simple_recovers_after_storage_comes_back(self):
        code, output = self.check("simple.simple.SimpleStorage", only="taken_away")
        self.assertEqual(code, 0, output)
        self.assertIn("PASS  test_storage_taken_away_and_given_back", output)

    def test_empty_directories_after_deletes_fail(self):
        """Issue 15 point 8: deletes that leave empty shard directories are caught."""
        code, output = self.check(FIXTURES + "LeavesEmptyDirectories", only="empty_directories")
        self.assertEqual(code, 1, output)
        self.assertIn("delete() left 12 empty directories behind", output)

    def test_simple_leaves_no_empty_directories(self):
        """Issue 15 point 8: a whole passing run of simple leaves the directory empty."""
        code, output = self.check("simple.simple.SimpleStorage")
        self.assertEqual(code, 0, output)
        self.assertEqual(os.listdir(self.directory), [])

    def test_type_error_for_text_is_accepted(self):
        """Issue 15 point 7: TypeError is a clear refusal of a text stream."""
        code, output = self.check(FIXTURES + "TypeErrorForText", only="text_stream")
        self.assertEqual(code, 0, output)

    def test_text_accepted_fails(self):
        code, output = self.check(FIXTURES + "AcceptsText", only="text_stream")
        self.assertEqual(code, 1, output)
        self.assertIn("assign() accepted a text stream; reject it with TypeError", output)

    def test_unknown_status_word_fails(self):
        code, output = self.check(FIXTURES + "UnknownStatusWord", only="status_is_known")
        self.assertEqual(code, 1, output)
        self.assertIn("statistics()['status'] is 'fine'; use one of ok, degraded, unavailable",
                      output)
        self.assertIn("modules.reports.STATUSES", output)

    def test_placeholder_gives_each_check_a_fresh_directory_and_cleans_up(self):
        private_tmp = os.path.join(os.path.dirname(self.directory), "tmp")
        os.mkdir(private_tmp)
        result = subprocess.run(
            [sys.executable, "-m", "modules", "check", "simple.simple.SimpleStorage", "{tmp}"],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT, TMPDIR=private_tmp),
            capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("PASS  test_storage_taken_away_and_given_back", result.stdout)
        self.assertIn("PASS  test_deletes_leave_no_empty_directories", result.stdout)
        self.assertEqual(os.listdir(private_tmp), [], "temporary directories left behind")

    def test_missing_directory_is_created_for_the_run_and_removed(self):
        """Issue 15 point 8: README's command with a directory that does not exist yet."""
        target = os.path.join(self.directory, "not-yet")
        code, output = self.check("simple.simple.SimpleStorage", args=[target])
        self.assertEqual(code, 0, output)
        self.assertIn("created %s for the checks (removed afterwards)" % target, output)
        self.assertFalse(os.path.exists(target))

    def test_existing_directory_is_kept(self):
        marker = os.path.join(self.directory, "keep-me")
        with open(marker, "w") as file:
            file.write("x")
        code, output = self.check("simple.simple.SimpleStorage")
        self.assertEqual(code, 0, output)
        self.assertEqual(os.listdir(self.directory), ["keep-me"])


class TestFindingTheModule(unittest.TestCase):
    """Issue 15 point 2: ``vsm check`` finds the module in the current source tree."""

    def setUp(self):
        self.project = tempfile.mkdtemp(prefix="vsm-project-")
        self.addCleanup(shutil.rmtree, self.project, True)
        package = os.path.join(self.project, "srcstore_probe")
        os.mkdir(package)
        with open(os.path.join(package, "__init__.py"), "w") as file:
            file.write("")
        with open(os.path.join(package, "store.py"), "w") as file:
            file.write("from simple.simple import SimpleStorage\n\n"
                       "class ProbeStorage(SimpleStorage):\n    pass\n")
        with open(os.path.join(self.project, "setup.py"), "w") as file:
            file.write("from setuptools import setup\nsetup()\n")
        self.env = dict(os.environ, PYTHONPATH=ROOT)

    def vsm(self, *args, cwd):
        # The console script's way: sys.path[0] is not the current directory.
        return subprocess.run([sys.executable, "-c", "import sys; sys.path.pop(0) if sys.path[0] "
                               "in ('', '.') else None; from modules.cli import main; "
                               "sys.exit(main())"] + list(args),
                              cwd=cwd, env=self.env, capture_output=True, text=True, timeout=120)

    def test_found_from_the_project_root_and_from_a_subdirectory(self):
        storage = os.path.join(self.project, "store-dir")
        os.mkdir(storage)
        for cwd in (self.project, os.path.join(self.project, "srcstore_probe")):
            with self.subTest(cwd=cwd):
                result = self.vsm("check", "srcstore_probe.store.ProbeStorage", storage,
                                  "-k", "statistics", cwd=cwd)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                self.assertIn("using srcstore_probe from the source tree %s" % self.project,
                              result.stdout)

    def test_not_importable_says_how_to_fix_it(self):
        elsewhere = tempfile.mkdtemp(prefix="vsm-elsewhere-")
        self.addCleanup(shutil.rmtree, elsewhere, True)
        result = self.vsm("check", "srcstore_probe.store.ProbeStorage", "--tmp-dir", cwd=elsewhere)
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn("no package 'srcstore_probe' can be imported", result.stdout)
        self.assertIn("run vsm check from your project's root", result.stdout)
        self.assertIn("pip install -e .", result.stdout)
        self.assertNotIn("Traceback", result.stdout + result.stderr)

    def test_import_error_inside_the_module_is_shown(self):
        with open(os.path.join(self.project, "srcstore_probe", "broken.py"), "w") as file:
            file.write("import no_such_dependency_xyz\n")
        result = self.vsm("check", "srcstore_probe.broken.Broken", "--tmp-dir", cwd=self.project)
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn("No module named 'no_such_dependency_xyz'", result.stdout)
        self.assertIn("the module needs no_such_dependency_xyz, which is not installed",
                      result.stdout)
