"""Issue 15: from ``vsm new newstore`` to an object stored through ``vsm serve --egg``."""
import glob
import importlib.util
import os
import shutil
import tempfile
import time
import unittest
import zipfile

from modules.packaging.scaffold import create_project, default_class_name
from modules.errors import ConfigurationError

from tests.modules.support import FILLED_NEWSTORE, ServedHost, run, vsm_command

CONFIG_URL = "/cdmi/system_configuration/vendor_modules/"


class _Project(unittest.TestCase):
    def new_project(self, fill: bool = True) -> str:
        self.work = tempfile.mkdtemp(prefix="vsm-new-")
        self.addCleanup(shutil.rmtree, self.work, True)
        result = run(vsm_command() + ["new", "newstore"], cwd=self.work)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        project = os.path.join(self.work, "newstore")
        if fill:
            shutil.copy(FILLED_NEWSTORE, os.path.join(project, "newstore", "newstore.py"))
        return project

    def build_egg(self, project: str) -> str:
        result = run(["python", "setup.py", "-q", "bdist_egg"], cwd=project,
                     PYTHONDONTWRITEBYTECODE="1")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        eggs = glob.glob(os.path.join(project, "dist", "*.egg"))
        self.assertEqual(len(eggs), 1, eggs)
        return eggs[0]


class TestFromNothingToADeployedEgg(_Project):
    def test_new_check_egg_serve_put_and_read(self):
        """Issue 15, "done when": vsm new, vsm check, bdist_egg, vsm egg check, vsm serve --egg."""
        started = time.monotonic()
        project = self.new_project()
        result = run(vsm_command() + ["check", "newstore.newstore.NewStorage", "--tmp-dir"],
                     cwd=project)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("using newstore from the source tree %s" % project, result.stdout)
        self.assertIn("PASS  test_storage_taken_away_and_given_back", result.stdout)

        egg = self.build_egg(project)
        self.assertEqual(os.path.basename(egg).split("-")[:2], ["newstore", "0.1.0"])
        names = zipfile.ZipFile(egg).namelist()
        self.assertEqual(sorted(name for name in names if not name.startswith("EGG-INFO/")),
                         ["newstore/__init__.pyc", "newstore/newstore.pyc"])

        result = run(vsm_command() + ["egg", "check", egg, "--tmp-dir"], cwd=self.work)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("found the module newstore.newstore.NewStorage", result.stdout)
        self.assertIn("the egg is fit for the platform", result.stdout)

        # Deploy: the source tree is out of the way, only the egg is there.
        deployed = os.path.join(self.work, "deployed.egg")
        shutil.copy(egg, deployed)
        shutil.rmtree(project)
        storage = os.path.join(self.work, "newstore-data")
        os.mkdir(storage)
        host = ServedHost(os.path.join(self.work, "host"), ["--egg", deployed], cwd=self.work)
        self.addCleanup(host.stop)
        host.wait_ready()
        answer = host.session.put(host.url + CONFIG_URL + "newstore", timeout=30, json={
            "module": "newstore.newstore.NewStorage", "description": "New Storage Module",
            "args": [storage]})
        self.assertEqual(answer.status_code, 204, answer.text)
        answer = host.session.put(host.url + "/objects/newstore/hello.txt", data=b"hello, egg",
                                  timeout=30)
        self.assertEqual(answer.status_code, 201, answer.text)
        answer = host.session.get(host.url + "/objects/newstore/hello.txt", timeout=30)
        self.assertEqual(answer.content, b"hello, egg")
        stored = [os.path.join(top, name) for top, _, files in os.walk(storage) for name in files]
        self.assertEqual(len(stored), 1, stored)
        with open(stored[0], "rb") as file:
            self.assertEqual(file.read(), b"hello, egg")

        page = host.session.get(host.url + "/", timeout=30).text
        self.assertIn('<li class="egg loaded" data-egg="newstore"><code>newstore 0.1.0</code>', page)
        shutil.copy(deployed, deployed + ".new")
        os.replace(deployed + ".new", deployed)  # an upgrade copied over the loaded egg
        page = host.session.get(host.url + "/", timeout=30).text
        self.assertIn("restart vsm serve to load it", page)
        self.assertIn("Loaded egg: newstore 0.1.0 (%s)" % deployed, host.log())
        self.assertEqual(host.stop(), 0, host.log())
        self.assertLess(time.monotonic() - started, 120, "the walkthrough is too slow")


class TestGeneratedProject(_Project):
    def test_tests_run_under_nosetests_pytest_and_unittest(self):
        """Issue 15 point 3: the generated tests folder runs under the three runners."""
        project = self.new_project()
        runners = {"nosetests": ["python", "-m", "nose"],
                   "pytest": ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                   "unittest": ["python", "-m", "unittest"],
                   "unittest discover": ["python", "-m", "unittest", "discover", "-s", "tests",
                                         "-t", "."]}
        for name, argv in runners.items():
            with self.subTest(runner=name):
                if name == "pytest" and importlib.util.find_spec("pytest") is None:
                    self.skipTest("pytest is not installed (pip install -e '.[test]')")
                result = run(argv, cwd=project)
                output = result.stdout + result.stderr
                self.assertEqual(result.returncode, 0, output)
                self.assertRegex(output, r"Ran 2[0-9] tests|2[0-9] passed")

    def test_skeleton_says_what_to_implement(self):
        project = self.new_project(fill=False)
        result = run(vsm_command() + ["check", "newstore.newstore.NewStorage", "--tmp-dir",
                                      "-k", "one_mib"], cwd=project)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("NotImplementedError: implement NewStorage.new_data: return a new str",
                      result.stdout)

    def test_distribution_is_not_the_sdk(self):
        """Issue 15 point 1: the project has its own name, README and metadata."""
        project = self.new_project()
        result = run(["python", "setup.py", "--name", "--version", "--description"], cwd=project)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stdout.split("\n")[:3],
                         ["newstore", "0.1.0", "NewStorage: a Vendor Storage Module"])
        self.assertNotIn("README.md", result.stderr)
        self.assertTrue(os.path.isfile(os.path.join(project, "README.md")))

    def test_egg_complete_with_and_without_pythondontwritebytecode(self):
        project = self.new_project()
        for flag in ("", "1"):
            with self.subTest(PYTHONDONTWRITEBYTECODE=flag):
                shutil.rmtree(os.path.join(project, "dist"), True)
                shutil.rmtree(os.path.join(project, "build"), True)
                result = run(["python", "setup.py", "-q", "bdist_egg"], cwd=project,
                             PYTHONDONTWRITEBYTECODE=flag)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                (egg,) = glob.glob(os.path.join(project, "dist", "*.egg"))
                names = zipfile.ZipFile(egg).namelist()
                self.assertIn("newstore/newstore.pyc", names)
                self.assertEqual([n for n in names if n.endswith(".py") or n.startswith("tests")],
                                 [])


class TestVsmNew(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="vsm-new-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def test_refuses_unusable_names_and_says_why(self):
        for name, expected in (("modules", "taken by the SDK"), ("simple", "taken by the SDK"),
                               ("New-Store", "lowercase letters"), ("class", "lowercase letters"),
                               ("json", "standard library")):
            with self.subTest(name=name):
                result = run(vsm_command() + ["new", name], cwd=self.work)
                self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
                self.assertIn(expected, result.stderr)
                self.assertEqual(os.listdir(self.work), [])

    def test_refuses_the_sdk_distribution_name(self):
        with self.assertRaisesRegex(ConfigurationError, "must not be the SDK's"):
            create_project("newstore", parent=self.work, dist_name="vendor_storage_modules")
        self.assertEqual(os.listdir(self.work), [])

    def test_never_overwrites(self):
        target = os.path.join(self.work, "newstore")
        os.mkdir(target)
        with open(os.path.join(target, "mine.txt"), "w") as file:
            file.write("precious")
        result = run(vsm_command() + ["new", "newstore"], cwd=self.work)
        self.assertEqual(result.returncode, 2)
        self.assertIn("already exists and is not empty", result.stderr)
        self.assertEqual(os.listdir(target), ["mine.txt"])

    def test_default_class_name(self):
        for name, expected in (("newstore", "NewStorage"), ("blob_storage", "BlobStorage"),
                               ("simple", "SimpleStorage"), ("store", "StoreStorage"),
                               ("acme_store", "AcmeStorage"), ("vaultstorage", "VaultStorage")):
            self.assertEqual(default_class_name(name), expected)
        project = create_project("acme_vault", parent=self.work)
        self.assertEqual(project.dotted_path, "acme_vault.acme_vault.AcmeVaultStorage")
        self.assertEqual(project.dist_name, "acme-vault")
