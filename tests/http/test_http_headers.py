"""Content-Length and Content-Range are parsed in one place (replica.http.headers, issue 12)."""
import unittest

from replica.http.headers import ContentRange, content_length, content_range


class TestHeaders(unittest.TestCase):
    def test_content_length(self):
        cases = {"0": 0, "42": 42, " 7 ": 7, "18446744073709551616": 2 ** 64}
        for value, expected in cases.items():
            with self.subTest(value=value):
                self.assertEqual(content_length({"Content-Length": value}), expected)
        for value in ("", "-1", "1.5", "12abc", "0x10", "٣", "1 2"):
            with self.subTest(value=value):
                self.assertIsNone(content_length({"Content-Length": value}))
        self.assertIsNone(content_length({}))

    def test_content_range(self):
        cases = {
            "bytes 0-0/10": ContentRange(0, 1, 10),
            "bytes 5-9/10": ContentRange(5, 10, 10),
            "bytes */10": ContentRange(None, None, 10),
            "bytes 0-9/*": ContentRange(0, 10, None),
            "  bytes 0-0/1  ": ContentRange(0, 1, 1),
        }
        for value, expected in cases.items():
            with self.subTest(value=value):
                self.assertEqual(content_range({"Content-Range": value}), expected)
        for value in ("", "junk", "items 0-1/2", "bytes 5-1/10", "bytes 0-20/10", "bytes a-b/c",
                      "bytes -1-2/3"):
            with self.subTest(value=value):
                self.assertIsNone(content_range({"Content-Range": value}))
        self.assertIsNone(content_range({}))


if __name__ == "__main__":
    unittest.main()
