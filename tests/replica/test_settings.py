"""Configuration parsing: locations, name=value options, and what is refused."""
import importlib.util
import json
import os
import unittest

from modules.errors import ConfigurationError
from modules.loader import load_module
from replica.replica import ReplicaStorage
from replica.settings import parse_settings
from tests.replica.helpers import temp_dir

SIMPLE = "simple.simple.SimpleStorage"


class TestLocations(unittest.TestCase):

    def test_the_three_kinds_of_location(self):
        settings = parse_settings([
            "store-a",
            json.dumps({"module": SIMPLE, "args": ["/mnt/b"], "name": "dc1-b"}),
            "file:///mnt/c",
            "file:///mnt/d#dc2-d",
        ], {})
        self.assertEqual([(spec.name, spec.kind) for spec in settings.locations], [
            ("store-a", "named"), ("dc1-b", "inline"), ("file:///mnt/c", "file"),
            ("dc2-d", "file")])
        self.assertEqual(settings.locations[2].module, SIMPLE)
        self.assertEqual(settings.locations[2].args, ["/mnt/c"])

    def test_inline_spec_without_name_is_named_after_its_first_argument(self):
        settings = parse_settings([{"module": SIMPLE, "args": ["/mnt/a"]}, "x"], {})
        self.assertEqual(settings.locations[0].name, "/mnt/a")

    def test_inline_spec_needs_a_name_when_it_cannot_be_derived(self):
        with self.assertRaisesRegex(ConfigurationError, "needs a \"name\""):
            parse_settings([{"module": SIMPLE, "args": {"storage_dir": "/mnt/a"}}], {})

    def test_url_names_never_carry_credentials(self):
        settings = parse_settings(["https://admin:s3cret@dav.example.com:8443/store?token=t0k"],
                                  {})
        spec = settings.locations[0]
        self.assertEqual(spec.name, "https://dav.example.com:8443/store")
        self.assertEqual(spec.kind, "http")
        self.assertNotIn("s3cret", repr(spec.name) + repr(spec.target))
        self.assertNotIn("t0k", spec.name)

    def test_errors_never_echo_credentials(self):
        for bad in ["ftp://admin:s3cret@host/x", "https://admin:s3cret@host:notaport/x"]:
            with self.subTest(location=bad), self.assertRaises(ConfigurationError) as caught:
                parse_settings([bad], {})
            self.assertNotIn("s3cret", str(caught.exception))
        with self.assertRaises(ConfigurationError) as caught:
            parse_settings([json.dumps({"module": SIMPLE, "args": {"password": "s3cret"},
                                        "extra": 1})], {})
        self.assertNotIn("s3cret", str(caught.exception))

    def test_bad_locations_are_refused_with_a_hint(self):
        cases = {
            "/mnt/a": "file:///mnt/a",
            "ftp://host/x": "unknown scheme",
            "file://remote/x": "local directory",
            "file:///mnt/a?x=1": "query",
            "{not json": "JSON object",
            "[1, 2]": "cannot understand",
            '{"module": "nodots"}': "dotted path",
            '{"module": "a.B", "args": "x", "name": "n"}': "list or an object",
            '{"module": "a.B", "args": [], "name": "bad\\nname"}': "control characters",
            "http:///nohost": "no host",
        }
        for location, expected in cases.items():
            with self.subTest(location=location):
                with self.assertRaisesRegex(ConfigurationError, expected):
                    parse_settings([location], {})
        with self.assertRaisesRegex(ConfigurationError, "string"):
            parse_settings([42], {})

    def test_no_locations(self):
        with self.assertRaisesRegex(ConfigurationError, "at least one location"):
            parse_settings([], {})
        with self.assertRaisesRegex(ConfigurationError, "at least one location"):
            parse_settings(["write_quorum=1"], {})

    def test_duplicate_names_and_storages(self):
        with self.assertRaisesRegex(ConfigurationError, "used twice"):
            parse_settings(["a", "a"], {})
        with self.assertRaisesRegex(ConfigurationError, "used twice"):
            parse_settings(["file:///mnt/a#x", "file:///mnt/b#x"], {})
        with self.assertRaisesRegex(ConfigurationError, "same storage"):
            parse_settings(["file:///mnt/a", "file:///mnt/a/#other"], {})
        with self.assertRaisesRegex(ConfigurationError, "same storage"):
            parse_settings(["file:///mnt/a", {"module": SIMPLE, "args": ["/mnt/a"], "name": "y"}],
                           {})


class TestOptions(unittest.TestCase):

    def test_defaults_follow_the_number_of_locations(self):
        for count, quorum in ((1, 1), (2, 1), (3, 2), (4, 2), (5, 3)):
            settings = parse_settings(["l%d" % i for i in range(count)], {})
            self.assertEqual(settings.write_quorum, quorum, "(n+1)//2 for n=%d" % count)
            self.assertGreaterEqual(settings.workers, count)
        settings = parse_settings(["a"], {})
        self.assertIsNone(settings.state_dir)
        self.assertEqual(settings.read_attempts, 3)
        self.assertEqual(settings.error_limit, 10)
        self.assertEqual(settings.error_interval, 60.0)

    def test_options_in_the_args_list_and_as_keywords(self):
        settings = parse_settings(["a", "b", "c", "write_quorum=3", "read_backoff=0.5"],
                                  {"error_limit": 4, "workers": "7"})
        self.assertEqual(settings.write_quorum, 3)
        self.assertEqual(settings.read_backoff, 0.5)
        self.assertEqual(settings.error_limit, 4)
        self.assertEqual(settings.workers, 7)
        self.assertEqual(len(settings.locations), 3)

    def test_bad_options(self):
        cases = [
            (["a", "colour=blue"], {}, "unknown ReplicaStorage option 'colour'"),
            (["a"], {"colour": 1}, "unknown"),
            (["a", "write_quorum=1"], {"write_quorum": 1}, "given twice"),
            (["a", "b", "write_quorum=3"], {}, "between 1 and the number of locations"),
            (["a", "write_quorum=0"], {}, "between"),
            (["a", "write_quorum=two"], {}, "whole number"),
            (["a", "write_quorum=1.5"], {}, "whole number"),
            (["a"], {"write_quorum": True}, "number"),
            (["a", "read_backoff=nan"], {}, "finite"),
            (["a", "write_timeout=-1"], {}, "between"),
            (["a", "b", "c", "workers=2"], {}, "at least the number of locations"),
            (["a", "state_dir="], {}, "non-empty path"),
        ]
        for locations, options, expected in cases:
            with self.subTest(locations=locations, options=options):
                with self.assertRaisesRegex(ConfigurationError, expected):
                    parse_settings(locations, options)

    def test_state_dir_that_is_a_file(self):
        root = temp_dir(self)
        path = os.path.join(root, "file")
        open(path, "w").close()
        with self.assertRaisesRegex(ConfigurationError, "not a directory"):
            parse_settings(["a", "state_dir=%s" % path], {})


class TestConstruction(unittest.TestCase):

    def test_the_platform_way_through_the_loader(self):
        root = temp_dir(self)
        for name in ("a", "b"):
            os.mkdir(os.path.join(root, name))
        replica = load_module("replica.replica.ReplicaStorage", [
            "file://%s/a" % root, "file://%s/b#bee" % root, "write_quorum=2"])
        self.addCleanup(replica.close)
        self.assertEqual(replica.settings.write_quorum, 2)
        self.assertIn("bee", repr(replica))

    def test_unloadable_inline_module_is_a_configuration_error_naming_the_location(self):
        with self.assertRaisesRegex(ConfigurationError, "location dc1"):
            ReplicaStorage(json.dumps({"module": "no.such.Module", "args": [], "name": "dc1"}))
        with self.assertRaisesRegex(ConfigurationError, "location dc1"):
            ReplicaStorage(json.dumps({"module": SIMPLE, "args": [], "name": "dc1"}))

    def test_http_locations_load_replica_http_by_dotted_path(self):
        url = "http://user:s3cret@127.0.0.1:9/dav#remote"
        if importlib.util.find_spec("replica.http") is None:
            with self.assertRaises(ConfigurationError) as caught:
                ReplicaStorage("file:///tmp/vsm-unused", url)
            self.assertIn("replica.http.HTTPStorage", str(caught.exception))
            self.assertNotIn("s3cret", str(caught.exception))
        else:
            replica = ReplicaStorage("file:///tmp/vsm-unused", "http://127.0.0.1:9/dav#remote")
            self.addCleanup(replica.close)
            self.assertEqual(replica.statistics(None)["locations"][1]["name"], "remote")
            # HTTPStorage refuses credentials in URLs; the refusal must not echo them
            with self.assertRaises(ConfigurationError) as caught:
                ReplicaStorage("file:///tmp/vsm-unused", url)
            self.assertIn("location remote", str(caught.exception))
            self.assertNotIn("s3cret", str(caught.exception))

    def test_unusable_state_dir_is_a_configuration_error(self):
        root = temp_dir(self)
        blocker = os.path.join(root, "file")
        open(blocker, "w").close()
        with self.assertRaisesRegex(ConfigurationError, "journal"):
            ReplicaStorage("a", "state_dir=%s" % os.path.join(blocker, "sub"))


if __name__ == "__main__":
    unittest.main()
