"""The replica's module_data format: round trip, extension point, strict validation."""
import json
import unittest

from modules.errors import InvalidModuleData
from replica import module_data as formats

OBJECT_ID = "0123456789abcdef0123456789abcdef"


class TestModuleData(unittest.TestCase):

    def test_round_trip(self):
        text = formats.encode(OBJECT_ID, {"a": {"md": "xx/yy/1"}, "b": {"md": "2"}})
        self.assertEqual(json.loads(text), {"v": 1, "id": OBJECT_ID,
                                            "copies": {"a": {"md": "xx/yy/1"}, "b": {"md": "2"}}})
        data = formats.decode(text)
        self.assertEqual(data.object_id, OBJECT_ID)
        self.assertEqual(data.child_md("a"), "xx/yy/1")
        self.assertEqual(data.text, text)

    def test_extra_keys_in_a_copy_entry_are_kept(self):
        """Per-copy dicts are the extension point for later features (e.g. a manifest)."""
        text = formats.encode(OBJECT_ID, {"a": {"md": "1", "manifest": {"blocks": 3}}})
        self.assertEqual(formats.decode(text).copies["a"]["manifest"], {"blocks": 3})

    def test_new_ids_differ(self):
        self.assertNotEqual(formats.new_object_id(), formats.new_object_id())
        self.assertRegex(formats.new_object_id(), r"\A[0-9a-f]{32}\Z")

    def test_invalid_values(self):
        good = {"v": 1, "id": OBJECT_ID, "copies": {"a": {"md": "1"}}}
        cases = [
            None, 42, b"{}", "", "{", "[]", "x" * 100000, json.dumps([good]),
            json.dumps(dict(good, v=2)), json.dumps(dict(good, v=True)),
            json.dumps(dict(good, extra=1)), json.dumps({"v": 1, "id": OBJECT_ID}),
            json.dumps(dict(good, id="../../etc")), json.dumps(dict(good, id=OBJECT_ID.upper())),
            json.dumps(dict(good, copies={})), json.dumps(dict(good, copies=[])),
            json.dumps(dict(good, copies={"a": "1"})), json.dumps(dict(good, copies={"a": {}})),
            json.dumps(dict(good, copies={"a": {"md": 1}})),
            json.dumps(dict(good, copies={"a": {"md": ""}})),
            json.dumps(dict(good, copies={"": {"md": "1"}})),
            json.dumps(dict(good, copies={"a": {"md": "x" * 20000}})),
            json.dumps(dict(good, copies={"n%d" % i: {"md": "1"} for i in range(100)})),
            "[" * 100000,
        ]
        for value in cases:
            with self.subTest(value=repr(value)[:60]):
                with self.assertRaises(InvalidModuleData):
                    formats.decode(value)

    def test_encode_refuses_what_decode_would_refuse(self):
        with self.assertRaises(InvalidModuleData):
            formats.encode("not-an-id", {"a": {"md": "1"}})
        with self.assertRaises(InvalidModuleData):
            formats.encode(OBJECT_ID, {})


if __name__ == "__main__":
    unittest.main()
