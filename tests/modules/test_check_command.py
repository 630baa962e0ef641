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
        self.directory = tempfile.mkdtemp(prefix="vsm-check-")
        self.addCleanup(shutil.rmtree, self.directory, True)

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
                               self.directory, "-k", "statistics"],
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
        self.assertIn("cannot import 'no.such'", missing.stdout)
