"""``python setup.py bdist_egg`` ships only the vendor module, as compiled code."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ["setup.py", "setup.cfg", "README.md", "modules", "simple", "replica"]


class TestEgg(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            import setuptools  # noqa: F401
        except ImportError:
            raise unittest.SkipTest("setuptools is not installed (pip install -e '.[test]')")

    def build_egg(self, dont_write_bytecode: bool) -> str:
        work = tempfile.mkdtemp(prefix="vsm-egg-")
        self.addCleanup(shutil.rmtree, work, True)
        for name in SOURCES:
            source = os.path.join(ROOT, name)
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(work, name),
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy(source, work)
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if dont_write_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        result = subprocess.run([sys.executable, "setup.py", "-q", "bdist_egg"], cwd=work, env=env,
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        (egg,) = glob.glob(os.path.join(work, "dist", "*.egg"))
        return egg

    def check_egg(self, egg: str) -> None:
        names = zipfile.ZipFile(egg).namelist()
        code = [name for name in names if not name.startswith("EGG-INFO/")]
        self.assertTrue(any(name == "replica/replica.pyc" for name in code),
                        "the egg holds no compiled replica module: %s" % code)
        self.assertEqual([name for name in code if name.endswith(".py")], [],
                         "the egg holds source files")
        self.assertEqual([name for name in code if not name.startswith("replica/")], [],
                         "the egg holds more than the replica package")
        probe = ("import sys; sys.path.insert(0, %r); import replica.replica as r; "
                 "assert r.__file__.startswith(%r), r.__file__; print('ok')" % (egg, egg))
        env = dict(os.environ, PYTHONPATH=ROOT)
        result = subprocess.run([sys.executable, "-c", probe], cwd=tempfile.gettempdir(), env=env,
                                capture_output=True, text=True)
        self.assertEqual(result.stdout.strip(), "ok", result.stderr)

    def test_egg_holds_only_compiled_replica(self):
        self.check_egg(self.build_egg(dont_write_bytecode=False))

    def test_egg_is_complete_with_pythondontwritebytecode(self):
        self.check_egg(self.build_egg(dont_write_bytecode=True))


class TestScaffoldTemplatesShipped(unittest.TestCase):
    def test_templates_are_package_data(self):
        """``vsm new`` works from a regular install: its templates are built with the package."""
        work = tempfile.mkdtemp(prefix="vsm-build-")
        self.addCleanup(shutil.rmtree, work, True)
        for name in SOURCES:
            source = os.path.join(ROOT, name)
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(work, name),
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy(source, work)
        result = subprocess.run([sys.executable, "setup.py", "-q", "build"], cwd=work,
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        templates = os.path.join(work, "build", "lib", "modules", "packaging", "templates")
        expected = sorted(os.listdir(os.path.join(ROOT, "modules", "packaging", "templates")))
        self.assertIn("module.py.tmpl", expected)
        self.assertEqual(sorted(os.listdir(templates)), expected)
