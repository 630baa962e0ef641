"""The SDK's one failure model (issue 9): declared attributes, one transient rule, one formatter."""
import pickle
import unittest

from modules.errors import (
    AuthenticationFailed,
    DataCorrupted,
    InsufficientStorage,
    InvalidModuleData,
    LocationTimeout,
    LocationUnavailable,
    ObjectNotFound,
    StorageError,
    describe_error,
    format_failures,
    is_transient,
)


class TestDeclaredAttributes(unittest.TestCase):
    def test_attributes_are_constructor_keywords(self):
        error = LocationUnavailable("501 from the server", location="dc1", retryable=False,
                                    status=501)
        self.assertEqual((error.location, error.retryable, error.status), ("dc1", False, 501))
        self.assertEqual(error.failures, {})
        self.assertTrue(LocationUnavailable.retryable, "the class default is untouched")

    def test_todays_signatures_keep_working(self):
        self.assertEqual(str(LocationUnavailable("plain")), "plain")
        found = ObjectNotFound("gone", module_data="md", location="a")
        self.assertEqual((found.module_data, found.location, found.status), ("md", "a", None))
        self.assertEqual(InvalidModuleData("bad").module_data, None)
        self.assertEqual(AuthenticationFailed("no", location="b").location, "b")

    def test_a_quorum_error_carries_the_failures_by_location(self):
        failures = {"a": InsufficientStorage("full", location="a"),
                    "b": LocationTimeout("slow", location="b")}
        error = LocationUnavailable("below quorum", failures=failures)
        self.assertIs(error.failures["a"], failures["a"])
        failures.clear()
        self.assertEqual(sorted(error.failures), ["a", "b"], "the mapping is copied")

    def test_errors_survive_pickling(self):
        error = pickle.loads(pickle.dumps(DataCorrupted("bad block", module_data="m")))
        self.assertEqual(str(error), "bad block")


class TestTransientRule(unittest.TestCase):
    def test_only_retryable_location_errors_that_are_not_timeouts(self):
        self.assertTrue(is_transient(LocationUnavailable("connection refused")))
        self.assertFalse(is_transient(LocationUnavailable("TLS failed", retryable=False)))
        self.assertFalse(is_transient(LocationTimeout("no answer within 1 s")))
        self.assertTrue(LocationTimeout("x").retryable, "worth trying later or elsewhere")
        for error in (ObjectNotFound("x"), DataCorrupted("x"), InsufficientStorage("x"),
                      AuthenticationFailed("x"), StorageError("x"), OSError("x"),
                      TimeoutError("x")):
            with self.subTest(error=type(error).__name__):
                self.assertFalse(is_transient(error))


class TestFailuresByLocation(unittest.TestCase):
    def test_the_formatter_masks_secrets(self):
        """Regression (issue 9): two of three failure formatters did not redact."""
        text = format_failures({
            "remote": LocationUnavailable("GET https://alice:hunter2@dav.example/x failed"),
            "s3": "AuthenticationFailed: signature=abc123 secret_key=xyz",
        })
        self.assertNotIn("hunter2", text)
        self.assertNotIn("abc123", text)
        self.assertNotIn("xyz", text)
        self.assertIn("remote: LocationUnavailable: GET https://alice:***@dav.example/x", text)
        self.assertTrue(text.startswith("remote: "))
        self.assertIn("; s3: AuthenticationFailed", text)

    def test_long_errors_are_cut_and_empty_says_so(self):
        self.assertEqual(format_failures({}), "no details")
        self.assertLess(len(describe_error(LocationUnavailable("x" * 5000))), 600)


if __name__ == "__main__":
    unittest.main()
