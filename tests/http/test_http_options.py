"""HTTPStorage configuration: strings as the platform sends them, keywords, and mistakes."""
import os
import tempfile
import unittest

from modules.errors import ConfigurationError
from modules.loader import load_module
from replica.http import HTTPStorage
from replica.http.options import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_POOL_SIZE,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_RETRIES,
    parse_options,
)

SECRET = "correct-horse-battery-staple-7731"


class TestOptionParsing(unittest.TestCase):
    def test_url_alone_uses_defaults(self):
        options = parse_options(["http://127.0.0.1:8081/store"], {})
        self.assertEqual(options.base_url, "http://127.0.0.1:8081/store/")
        self.assertEqual(options.timeout, (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT))
        self.assertEqual(options.retries, DEFAULT_RETRIES)
        self.assertEqual(options.pool_size, DEFAULT_POOL_SIZE)
        self.assertIs(options.verify, True)
        self.assertEqual(options.auth_description, "none")

    def test_strings_and_keywords_mean_the_same(self):
        environ = {"DAV_PASSWORD": SECRET}
        from_strings = parse_options(
            ["https://nas.example/dav/", "timeout=5", "username=backup",
             "password_env=DAV_PASSWORD", "retries=2", "pool_size=4", "verify_tls=false",
             "chunk_size=65536"], {}, environ)
        from_keywords = parse_options(
            ["https://nas.example/dav/"], {"timeout": 5, "username": "backup",
                                           "password_env": "DAV_PASSWORD", "retries": 2,
                                           "pool_size": 4, "verify_tls": False,
                                           "chunk_size": 65536}, environ)
        self.assertEqual(from_strings, from_keywords)
        self.assertEqual(from_strings.timeout, (5.0, 5.0))
        self.assertEqual(from_strings.password, SECRET)
        self.assertIs(from_strings.verify, False)

    def test_the_sdk_parser_units_and_words(self):
        """Issue 12: HTTP options go through modules.options (units, one set of boolean words)."""
        options = parse_options(["http://h/", "timeout=500ms", "chunk_size=4MiB",
                                 "upload_grace=2h", "verify_tls=OFF", "destination=path",
                                 "retry_backoff=0"], {})
        self.assertEqual(options.timeout, (0.5, 0.5))
        self.assertEqual(options.chunk_size, 4 * 1024 * 1024)
        self.assertEqual(options.upload_grace, 7200.0)
        self.assertIs(options.verify, False)
        self.assertEqual(options.destination, "path")
        self.assertEqual(options.retry_backoff, 0.0)
        self.assertEqual(parse_options(["http://h/"], {}).upload_grace, 3600.0)
        for bad, named in (("destination=relative", "destination"), ("timeout=0", "timeout"),
                           ("upload_grace=-1", "upload_grace"), ("chunk_size=1TiB", "chunk_size")):
            with self.subTest(bad=bad):
                with self.assertRaises(ConfigurationError) as caught:
                    parse_options(["http://h/", bad], {})
                self.assertIn(named, str(caught.exception))

    def test_base_url_may_be_given_by_name(self):
        options = parse_options(["base_url=http://127.0.0.1:1/a/b"], {})
        self.assertEqual(options.base_url, "http://127.0.0.1:1/a/b/")

    def test_specific_timeouts_override_timeout(self):
        options = parse_options(["http://h/", "timeout=7", "connect_timeout=2"], {})
        self.assertEqual(options.timeout, (2.0, 7.0))

    def test_ca_bundle_becomes_verify(self):
        with tempfile.NamedTemporaryFile(suffix=".pem") as bundle:
            options = parse_options(["https://h/", "ca_bundle=" + bundle.name], {})
        self.assertEqual(options.verify, bundle.name)

    def test_bearer_token_from_environment(self):
        options = parse_options(["https://h/", "token_env=TOKEN"], {}, {"TOKEN": SECRET})
        self.assertEqual(options.token, SECRET)
        self.assertEqual(options.auth_description, "bearer")
        self.assertNotIn(SECRET, repr(options))

    def test_mistakes_are_configuration_errors_that_name_the_option(self):
        cases = [
            ([], {}, "base URL"),
            (["ftp://h/"], {}, "http://"),
            (["http:///nohost"], {}, "host"),
            (["http://h/?q=1"], {}, "query"),
            (["http://h/#frag"], {}, "fragment"),
            (["http://h/a/../b/"], {}, ".."),
            (["http://h:99999/"], {}, "malformed"),
            (["http://h/", "colour=blue"], {}, "colour"),
            (["http://h/", "not an option"], {}, "name=value"),
            (["http://h/", "timeout=5"], {"timeout": 6}, "twice"),
            (["http://h/", "timeout=-1"], {}, "timeout"),
            (["http://h/", "timeout=abc"], {}, "timeout"),
            (["http://h/", "timeout=nan"], {}, "timeout"),
            (["http://h/", "retries=many"], {}, "retries"),
            (["http://h/", "retries=-1"], {}, "retries"),
            (["http://h/", "pool_size=0"], {}, "pool_size"),
            (["http://h/", "chunk_size=1"], {}, "chunk_size"),
            (["http://h/", "verify_tls=maybe"], {}, "verify_tls"),
            (["http://h/", "ca_bundle=/no/such/bundle.pem"], {}, "ca_bundle"),
            (["http://h/", "username=u"], {}, "password"),
            (["http://h/", "password=x"], {}, "username"),
            (["http://h/", "username=u", "password=x", "password_env=P"], {}, "not both"),
            (["http://h/", "token=t", "username=u", "password=x"], {}, "not both"),
            (["http://h/", "username=a:b", "password=x"], {}, "':'"),
            (["http://h/", "user=a", "username=b", "password=x"], {}, "twice"),
            (["http://h/"], {"sleep": 5}, "sleep"),
            (["http://h/", 42], {}, "int"),
        ]
        for args, kwargs, expected in cases:
            with self.subTest(args=args, kwargs=kwargs):
                with self.assertRaises(ConfigurationError) as caught:
                    parse_options(args, kwargs, {})
                self.assertIn(expected, str(caught.exception))

    def test_missing_environment_variable_is_named(self):
        with self.assertRaises(ConfigurationError) as caught:
            parse_options(["http://h/", "username=u", "password_env=NO_SUCH_VARIABLE_X"], {}, {})
        self.assertIn("NO_SUCH_VARIABLE_X", str(caught.exception))

    def test_credentials_in_the_url_are_refused_without_echoing_them(self):
        with self.assertRaises(ConfigurationError) as caught:
            parse_options(["http://bob:%s@127.0.0.1/store/" % SECRET], {})
        self.assertIn("password_env", str(caught.exception))
        self.assertNotIn(SECRET, str(caught.exception))

    def test_a_bad_secret_value_is_not_echoed(self):
        with self.assertRaises(ConfigurationError) as caught:
            parse_options(["http://h/", "username=u", "password=" + SECRET + "\n"], {})
        self.assertNotIn(SECRET, str(caught.exception))


class TestConstruction(unittest.TestCase):
    def test_loaded_by_dotted_path_with_string_args(self):
        os.environ["HTTP_OPTIONS_TEST_PASSWORD"] = SECRET
        self.addCleanup(os.environ.pop, "HTTP_OPTIONS_TEST_PASSWORD", None)
        storage = load_module("replica.http.HTTPStorage", [
            "http://127.0.0.1:8081/store/", "timeout=5", "username=alice",
            "password_env=HTTP_OPTIONS_TEST_PASSWORD"])
        self.addCleanup(storage.close)
        self.assertIsInstance(storage, HTTPStorage)
        self.assertEqual(storage.base_url, "http://127.0.0.1:8081/store/")
        self.assertNotIn(SECRET, repr(storage))
        self.assertNotIn(SECRET, str(storage))
        self.assertIn("alice", repr(storage))

    def test_loader_reports_bad_args_as_configuration_error(self):
        with self.assertRaises(ConfigurationError):
            load_module("replica.http.HTTPStorage", ["http://127.0.0.1/", "nonsense=1"])

    def test_session_auth_does_not_print_the_secret(self):
        storage = HTTPStorage("http://127.0.0.1:1/", username="u", password=SECRET)
        self.addCleanup(storage.close)
        self.assertNotIn(SECRET, repr(storage._transport._session.auth))
        self.assertNotIn(SECRET, repr(storage._options))

    def test_new_data_is_sharded_and_validated(self):
        storage = HTTPStorage("http://127.0.0.1:1/store/")
        self.addCleanup(storage.close)
        value = storage.new_data(None)
        self.assertRegex(value, r"\A[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}\Z")
        self.assertEqual(value[:2], value[6:8])
        self.assertEqual(storage._object_url(value), "http://127.0.0.1:1/store/" + value)


if __name__ == "__main__":
    unittest.main()
