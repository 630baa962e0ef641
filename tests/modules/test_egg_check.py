"""``vsm egg check``: an egg's contents, and the kit against the egg alone (issue 15)."""
import io
import os
import shutil
import tempfile
import unittest

from modules.packaging.egg import egg_problems, read_egg
from modules.packaging.egg_command import check_egg

from tests.modules.eggs import GOOD_MODULE, good_egg, make_egg, pyc
from tests.modules.support import run, vsm_command

ACCEPTS_TEXT = GOOD_MODULE + """

    def assign(self, context, module_data, stream):
        class Encoded:
            def read(self, size=-1):
                chunk = stream.read(size)
                return chunk.encode() if isinstance(chunk, str) else chunk
        SimpleStorage.assign(self, context, module_data, Encoded())
"""


class TestEggCheck(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="vsm-egg-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def egg_path(self, name: str = "eggstore-1.2.3.egg") -> str:
        return os.path.join(self.work, name)

    def check(self, path, dotted_path=None, args=("{tmp}",), only=None):
        out = io.StringIO()
        code = check_egg(path, dotted_path, list(args), only=only, out=out)
        return code, out.getvalue()

    def test_good_egg_passes_the_kit_from_the_egg_alone(self):
        code, output = self.check(good_egg(self.egg_path()))
        self.assertEqual(code, 0, output)
        self.assertIn("distribution eggstore 1.2.3, packages: eggstore", output)
        self.assertIn("found the module eggstore.store.EggStorage", output)
        self.assertIn("PASS  test_storage_taken_away_and_given_back", output)
        self.assertIn("the egg is fit for the platform", output)

    def test_without_arguments_a_directory_module_gets_a_temporary_directory(self):
        code, output = self.check(good_egg(self.egg_path()), args=(), only="one_mib")
        self.assertEqual(code, 0, output)
        self.assertIn("cannot be created without arguments", output)
        self.assertIn("checking it with a fresh temporary directory as its argument instead",
                      output)

    def test_a_copy_in_the_current_directory_is_not_used(self):
        """The kit runs on a clean sys.path: a broken source copy here must not matter."""
        egg = good_egg(self.egg_path())
        os.mkdir(os.path.join(self.work, "eggstore"))
        for name, text in (("__init__.py", ""), ("store.py", "raise RuntimeError('source!')\n")):
            with open(os.path.join(self.work, "eggstore", name), "w") as file:
                file.write(text)
        result = run(vsm_command() + ["egg", "check", egg, "eggstore.store.EggStorage",
                                      "--tmp-dir", "-k", "one_mib"], cwd=self.work,
                     PYTHONPATH=self.work)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("1 passed, 0 failed", result.stdout)

    def test_module_failing_the_kit_fails_the_egg(self):
        code, output = self.check(good_egg(self.egg_path(), module=ACCEPTS_TEXT),
                                  "eggstore.store.EggStorage", only="text_stream")
        self.assertEqual(code, 1, output)
        self.assertIn("FAIL  test_text_stream_is_rejected: assign() accepted a text stream", output)
        self.assertIn("the egg is not fit for the platform: the kit failed", output)

    def test_module_needing_the_source_tree_is_caught(self):
        egg = make_egg(self.egg_path(), {
            "eggstore/__init__.pyc": pyc(""),
            "eggstore/store.pyc": pyc("import eggstore_helpers_not_in_the_egg\n")})
        code, output = self.check(egg)
        self.assertEqual(code, 2, output)
        self.assertIn("No module named 'eggstore_helpers_not_in_the_egg'", output)

    def test_class_not_in_the_egg_is_refused(self):
        code, output = self.check(good_egg(self.egg_path()), "simple.simple.SimpleStorage")
        self.assertEqual(code, 2, output)
        self.assertIn("not from the egg", output)

    def test_problems_name_what_to_fix(self):
        cases = {
            "sdk name": (make_egg(self.egg_path("a.egg"), {"vendor/__init__.pyc": pyc("")},
                                  name="vendor_storage_modules"),
                         "like the SDK: set your own name in setup.cfg"),
            "carries modules": (make_egg(self.egg_path("b.egg"), {
                "eggstore/__init__.pyc": pyc(""), "modules/__init__.pyc": pyc(""),
                "tests/__init__.pyc": pyc("")}), "the egg carries modules, tests"),
            "sources": (make_egg(self.egg_path("c.egg"), {
                "eggstore/__init__.pyc": pyc(""), "eggstore/store.py": b"x = 1\n"}),
                "set exclude_source_files = 1"),
            "no code": (make_egg(self.egg_path("d.egg"), {"eggstore/README": b"hi"}),
                        "the egg holds no compiled code"),
            "missing requirement": (make_egg(self.egg_path("f.egg"), {
                "eggstore/__init__.pyc": pyc("")},
                requires="requests>=2\nno-such-distribution-xyz>=1\n\n[s3]\nalso-missing\n"),
                "the egg requires no-such-distribution-xyz>=1, not installed here"),
            "other python": (make_egg(self.egg_path("e.egg"), {
                "eggstore/__init__.pyc": pyc("", magic=b"\x00\x00\r\n")}),
                "compiled for another Python version"),
        }
        for name, (egg, expected) in cases.items():
            with self.subTest(name):
                code, output = self.check(egg)
                self.assertEqual(code, 1, output)
                self.assertIn("PROBLEM ", output)
                self.assertIn(expected, output)
                self.assertNotIn("running the kit", output)

    def test_unreadable_eggs(self):
        not_zip = self.egg_path("broken.egg")
        with open(not_zip, "wb") as file:
            file.write(b"not a zip")
        for path, expected in ((not_zip, "cannot be read as an egg"),
                               (self.egg_path("missing.egg"), "no egg at")):
            with self.subTest(path=path):
                code, output = self.check(path)
                self.assertEqual(code, 2, output)
                self.assertIn(expected, output)

    def test_read_egg(self):
        info = read_egg(good_egg(self.egg_path()))
        self.assertEqual((info.name, info.version, info.packages), ("eggstore", "1.2.3",
                                                                    ["eggstore"]))
        self.assertEqual(egg_problems(info), [])
