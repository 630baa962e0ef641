"""modules.options: the one declarative parser for modules' name=value arguments (issue 12)."""
import unittest

from hypothesis import given, settings, strategies

from modules.errors import ConfigurationError
from modules.options import (
    FALSE_WORDS, TRUE_WORDS, Option, OptionParser, parse_bool, parse_duration, parse_size,
    redact_settings,
)
from simple.simple import SimpleStorage

PARSER = OptionParser("Demo", [
    Option("url", "str", required=True, positional=True, help="where the store is"),
    Option("timeout", "duration", default=30.0, minimum=0.1, maximum="1h"),
    Option("retries", "int", default=3, minimum=0, maximum=10),
    Option("ratio", "float", default=0.5, minimum=0, maximum=1),
    Option("part_size", "size", default="8MiB", minimum="5MiB", maximum="5GiB"),
    Option("verify_tls", "bool", default=True),
    Option("addressing", "choice", default="path", choices=("path", "virtual")),
    Option("password", "str", secret=True, env_option=True),
    Option("secret_key", "str", secret=True, env_option=True, inline=False,
           env="DEMO_SECRET_KEY"),
    Option("region", "str", env="DEMO_REGION"),
    Option("sleep", "object"),
])


class TestParsing(unittest.TestCase):
    def test_defaults_are_converted(self):
        settings = PARSER.parse(["https://x/"], environ={})
        self.assertEqual(settings.url, "https://x/")
        self.assertEqual(settings.timeout, 30.0)
        self.assertEqual(settings.part_size, 8 * 1024 * 1024)
        self.assertIs(settings.verify_tls, True)
        self.assertEqual(settings.addressing, "path")
        self.assertIsNone(settings.password)
        self.assertEqual(settings.given, frozenset({"url"}))

    def test_strings_and_keywords_mix(self):
        settings = PARSER.parse(["url=https://x/", "timeout=250ms", "part_size=1.5GB",
                                 "verify_tls=OFF", "addressing=Virtual"],
                                {"retries": 5, "ratio": "0.25"}, environ={})
        self.assertEqual(settings.timeout, 0.25)
        self.assertEqual(settings.part_size, 1500 * 1000 * 1000)
        self.assertIs(settings.verify_tls, False)
        self.assertEqual(settings.addressing, "virtual")
        self.assertEqual(settings["retries"], 5)
        self.assertEqual(settings.ratio, 0.25)

    def test_positional_value_containing_equals_sign_is_a_path(self):
        settings = PARSER.parse(["/data/a=b"], environ={})
        self.assertEqual(settings.url, "/data/a=b")

    def test_one_set_of_boolean_words(self):
        for word in TRUE_WORDS:
            self.assertIs(parse_bool(word.upper()), True)
        for word in FALSE_WORDS:
            self.assertIs(parse_bool(word), False)
        for bad in ("y", "enabled", "", 2, None):
            with self.assertRaises(ValueError):
                parse_bool(bad)

    def test_sizes_and_durations(self):
        self.assertEqual(parse_size("512"), 512)
        self.assertEqual(parse_size("8MiB"), 8 * 1024 ** 2)
        self.assertEqual(parse_size("8mib"), 8 * 1024 ** 2)
        self.assertEqual(parse_size("2kB"), 2000)
        self.assertEqual(parse_size("1 GiB"), 1024 ** 3)
        for bad in ("-1", "8XB", "1.2345B", "", "MiB", True, -3, 1.5):
            with self.assertRaises(ValueError, msg=bad):
                parse_size(bad)
        self.assertEqual(parse_duration("2min"), 120.0)
        self.assertEqual(parse_duration("1h"), 3600.0)
        self.assertEqual(parse_duration(5), 5.0)
        for bad in ("inf", "nan", "-1", "5 parsecs", None, True):
            with self.assertRaises(ValueError, msg=bad):
                parse_duration(bad)

    @settings(max_examples=50, deadline=None, database=None)
    @given(strategies.integers(min_value=0, max_value=2 ** 50),
           strategies.sampled_from(["B", "KiB", "MiB", "GiB", "kB", "MB", "GB"]))
    def test_size_units_round_trip(self, count, unit):
        factor = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3,
                  "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}[unit]
        self.assertEqual(parse_size("%d%s" % (count, unit)), count * factor)


class TestErrors(unittest.TestCase):
    def assertRefused(self, args, kwargs=None, *, says=(), environ=None):
        with self.assertRaises(ConfigurationError) as caught:
            PARSER.parse(args, kwargs or {}, environ={} if environ is None else environ)
        message = str(caught.exception)
        self.assertIn("Demo", message)
        for part in says:
            self.assertIn(part, message)
        return message

    def test_missing_required_option_names_it(self):
        self.assertRefused([], says=("url=", "where the store is"))

    def test_unknown_option_lists_known_ones(self):
        self.assertRefused(["x", "colour=red"], says=("'colour'", "timeout", "password_env"))

    def test_given_twice(self):
        self.assertRefused(["x", "retries=1"], {"retries": 2}, says=("retries", "twice"))
        self.assertRefused(["x", "url=y"], says=("url", "twice"))

    def test_surplus_bare_argument(self):
        self.assertRefused(["x", "y"], says=("argument 2", "name=value"))

    def test_out_of_range_and_malformed(self):
        self.assertRefused(["x", "retries=11"], says=("retries", "from 0 to 10", "'11'"))
        self.assertRefused(["x", "retries=1.5"], says=("retries", "whole number"))
        self.assertRefused(["x", "part_size=1MiB"], says=("part_size", "5MiB"))
        self.assertRefused(["x", "timeout=2h"], says=("timeout", "1h"))
        self.assertRefused(["x", "ratio=nan"], says=("ratio",))
        self.assertRefused(["x", "verify_tls=maybe"], says=("verify_tls", "true or false"))
        self.assertRefused(["x", "addressing=dns"], says=("addressing", "path, virtual"))
        self.assertRefused(["x"], {"retries": True}, says=("retries",))
        self.assertRefused(["x", "url2=\n"], says=("url2",))

    def test_secret_value_never_in_messages(self):
        message = self.assertRefused(["x", "password=\nhunter2"], says=("password",))
        self.assertNotIn("hunter2", message)

    def test_secret_env_option(self):
        settings = PARSER.parse(["x", "password_env=PW"], environ={"PW": "hunter2"})
        self.assertEqual(settings.password, "hunter2")
        self.assertIn("password", settings.given)
        self.assertEqual(settings.source("password"), "environment variable PW")
        self.assertEqual(settings.source("url"), "argument")
        self.assertEqual(settings.source("timeout"), "default")
        self.assertIsNone(settings.source("region"))
        self.assertRefused(["x", "password_env=PW"], says=("PW", "not set"))
        self.assertRefused(["x", "password_env=P W"], says=("environment variable",))
        self.assertRefused(["x", "password=a", "password_env=PW"], environ={"PW": "b"},
                           says=("either password= or password_env=",))

    def test_inline_false_refuses_the_secret_itself(self):
        message = self.assertRefused(["x", "secret_key=hunter2"],
                                     says=("secret_key_env=VARIABLE", "DEMO_SECRET_KEY"))
        self.assertNotIn("hunter2", message)

    def test_environment_fallback(self):
        settings = PARSER.parse(["x"], environ={"DEMO_SECRET_KEY": "s", "DEMO_REGION": "eu"})
        self.assertEqual(settings.secret_key, "s")
        self.assertEqual(settings.region, "eu")
        given_wins = PARSER.parse(["x", "region=us"], environ={"DEMO_REGION": "eu"})
        self.assertEqual(given_wins.region, "us")

    def test_a_bad_value_from_the_environment_names_the_variable(self):
        parser = OptionParser("Demo", [Option("retries", "int", env="DEMO_RETRIES")])
        with self.assertRaises(ConfigurationError) as caught:
            parser.parse([], {}, environ={"DEMO_RETRIES": "many"})
        self.assertIn("from environment variable DEMO_RETRIES", str(caught.exception))

    def test_aliases(self):
        parser = OptionParser("Demo", [Option("username", aliases=("user",))])
        self.assertEqual(parser.parse(["user=alice"], environ={}).username, "alice")
        self.assertEqual(parser.parse([], {"user": "bob"}, environ={}).username, "bob")
        self.assertIn("user", parser.names)
        with self.assertRaises(ConfigurationError) as caught:
            parser.parse(["user=alice", "username=bob"], environ={})
        self.assertIn("twice (as user and username)", str(caught.exception))
        with self.assertRaises(ValueError):
            OptionParser("Demo", [Option("a", aliases=("b",)), Option("b")])

    def test_object_options_are_keyword_only(self):
        self.assertRefused(["x", "sleep=print"], says=("sleep", "keyword"))
        self.assertIs(PARSER.parse(["x"], {"sleep": print}, environ={}).sleep, print)

    def test_bad_declarations_are_programming_errors(self):
        with self.assertRaises(ValueError):
            Option("Bad-Name")
        with self.assertRaises(ValueError):
            Option("x", "colour")
        with self.assertRaises(ValueError):
            Option("x", "choice")
        with self.assertRaises(ValueError):
            OptionParser("Dup", [Option("a_env"), Option("a", env_option=True)])
        with self.assertRaises(ValueError):
            OptionParser("Shadow", [Option("items")])

    def test_settings_copy_and_pickle(self):
        import copy
        import pickle
        settings = PARSER.parse(["x", "retries=4"], environ={})
        self.assertEqual(copy.deepcopy(settings).retries, 4)
        self.assertEqual(pickle.loads(pickle.dumps(settings))["retries"], 4)


class TestSimpleStorageOptions(unittest.TestCase):
    """SimpleStorage takes its directory positionally, as storage_dir= or a keyword (issue 12)."""

    def test_three_ways_to_give_the_directory(self):
        for args, kwargs in ((["/srv/a"], {}), (["storage_dir=/srv/a"], {}),
                             ([], {"storage_dir": "/srv/a"})):
            self.assertEqual(SimpleStorage(*args, **kwargs).storage_dir, "/srv/a")

    def test_refusals_name_the_option(self):
        for args, expected in ((["/a", "/b"], "argument 2"), (["storage_dir=/a", "/b"], "twice"),
                               (["/a", "storage_dir=/b"], "twice"),
                               (["/a", "colour=red"], "known: storage_dir"),
                               (["storage_dir=/a\0b"], "NUL")):
            with self.subTest(args=args):
                with self.assertRaises(ConfigurationError) as caught:
                    SimpleStorage(*args)
                self.assertIn(expected, str(caught.exception))


class TestRedaction(unittest.TestCase):
    def test_repr_and_redacted_dict_hide_secrets(self):
        settings = PARSER.parse(["https://user:pw@x/", "password=hunter2", "secret_key_env=S"],
                                {"sleep": print}, environ={"S": "topsecret"})
        shown = redact_settings(settings)
        self.assertEqual(shown["password"], "***")
        self.assertEqual(shown["secret_key"], "***")
        self.assertEqual(shown["sleep"], "print")
        self.assertEqual(shown["timeout"], 30.0)
        text = repr(settings) + str(shown)
        for secret in ("hunter2", "topsecret", ":pw@"):
            self.assertNotIn(secret, text)
        self.assertIn("DemoSettings(", repr(settings))

    def test_settings_are_read_only(self):
        settings = PARSER.parse(["x"], environ={})
        with self.assertRaises(AttributeError):
            settings.url = "y"
        with self.assertRaises(AttributeError):
            settings.nonexistent


if __name__ == "__main__":
    unittest.main()
