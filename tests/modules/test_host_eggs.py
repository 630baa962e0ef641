"""Eggs in the host: ``vsm serve --egg`` and the data directory's ``eggs/`` (issue 15, point 4)."""
import os
import shutil
import tempfile
import unittest

from tests.modules.eggs import good_egg, make_egg, pyc
from tests.modules.support import ServedHost, run, vsm_command

CONFIG_URL = "/cdmi/system_configuration/vendor_modules/"


class TestHostEggs(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="vsm-host-eggs-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.data_dir = os.path.join(self.work, "data")

    def serve(self, *args: str) -> ServedHost:
        host = ServedHost(self.data_dir, list(args), cwd=self.work)
        self.addCleanup(host.stop)
        host.wait_ready()
        return host

    def configure(self, host: ServedHost, name: str, module: str) -> None:
        storage = os.path.join(self.work, name)
        os.mkdir(storage)
        answer = host.session.put(host.url + CONFIG_URL + name, timeout=30,
                                  json={"module": module, "args": [storage]})
        self.assertEqual(answer.status_code, 204, answer.text)

    def test_eggs_folder_and_egg_option_together(self):
        good_egg(os.path.join(self.data_dir, "eggs", "folderstore-2.0.egg"), "folderstore", "2.0")
        given = good_egg(os.path.join(self.work, "givenstore-0.3.egg"), "givenstore", "0.3")
        host = self.serve("--egg", given)
        for name in ("folderstore", "givenstore"):
            self.configure(host, name, "%s.store.EggStorage" % name)
            answer = host.session.put(host.url + "/objects/%s/k" % name, data=b"v", timeout=30)
            self.assertEqual(answer.status_code, 201, answer.text)
            self.assertEqual(host.session.get(host.url + "/objects/%s/k" % name,
                                              timeout=30).content, b"v")
        page = host.session.get(host.url + "/", timeout=30).text
        self.assertIn("<code>folderstore 2.0</code>", page)
        self.assertIn("<code>givenstore 0.3</code>", page)
        # An egg dropped in later is not loaded until a restart, and the page says so.
        good_egg(os.path.join(self.data_dir, "eggs", "laterstore-1.0.egg"), "laterstore", "1.0")
        page = host.session.get(host.url + "/", timeout=30).text
        self.assertIn('class="egg new" data-egg="laterstore"', page)
        self.assertIn("not loaded: restart vsm serve to load it", page)
        answer = host.session.put(host.url + CONFIG_URL + "later", timeout=30,
                                  json={"module": "laterstore.store.EggStorage",
                                        "args": [self.work]})
        self.assertEqual(answer.status_code, 400, answer.text)

    def test_unfit_eggs_stop_the_start_saying_why(self):
        carrying = make_egg(os.path.join(self.work, "bad.egg"), {
            "badstore/__init__.pyc": pyc(""), "modules/__init__.pyc": pyc("")}, name="badstore")
        first = good_egg(os.path.join(self.work, "one.egg"), "twinstore", "1")
        second = good_egg(os.path.join(self.work, "two.egg"), "twinstore", "2")
        cases = ((["--egg", carrying], "the egg carries modules"),
                 (["--egg", first, "--egg", second], "both provide the package twinstore"),
                 (["--egg", os.path.join(self.work, "missing.egg")], "no egg at"))
        for args, expected in cases:
            with self.subTest(expected):
                result = run(vsm_command() + ["serve", "--data-dir", self.data_dir, "--port", "0"]
                             + args, cwd=self.work, timeout=60, VSM_ADMIN_PASSWORD="x")
                self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
                self.assertIn("vsm serve: cannot start: ", result.stderr)
                self.assertIn(expected, result.stderr)
                self.assertNotIn("Traceback", result.stderr)


class TestLoadedEggState(unittest.TestCase):
    def test_loaded_changed_and_missing(self):
        from modules.host.eggs import LoadedEgg
        from modules.packaging.egg import read_egg

        work = tempfile.mkdtemp(prefix="vsm-egg-state-")
        self.addCleanup(shutil.rmtree, work, True)
        path = good_egg(os.path.join(work, "s.egg"), "statestore", "1.0")
        egg = LoadedEgg.of(read_egg(path))
        self.assertEqual(egg.state(), ("loaded", ""))
        good_egg(path + ".new", "statestore", "1.1")
        os.replace(path + ".new", path)
        state, note = egg.state()
        self.assertEqual(state, "changed")
        self.assertIn("now statestore 1.1", note)
        self.assertIn("restart vsm serve", note)
        os.unlink(path)
        self.assertEqual(egg.state()[0], "missing")
