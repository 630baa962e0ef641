"""Bad input never gets a 500 (issue 11 item 5): every parser fuzzed with hypothesis.

The WSGI application is called directly (Werkzeug's test environ, the real
application and modules), so each example costs milliseconds; a few
hostile bodies also go through a real server in ``TestHostileBodies``.
Examples are bounded (``max_examples``) and each has a deadline.
"""
import json
import shutil
import tempfile
import unittest
from base64 import b64encode
from urllib.parse import quote_from_bytes

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder, run_wsgi_app

from modules.host import make_app
from tests.host.support import AUTH, CONFIG, HostTestCase

_AUTHORIZATION = "Basic " + b64encode(("%s:%s" % AUTH).encode()).decode()

_SETTINGS = settings(max_examples=60, deadline=2000, database=None,
                     suppress_health_check=[HealthCheck.too_slow,
                                            HealthCheck.function_scoped_fixture])

#: Header values as a WSGI server hands them over: latin-1 text without line breaks.
_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xff), max_size=80)

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)

_CONDITIONAL_HEADERS = ("Range", "If-Match", "If-None-Match", "If-Modified-Since",
                        "If-Unmodified-Since", "If-Range", "Content-Type", "Content-Length",
                        "X-Copy-From", "Cache-Control", "X-Object-Meta-Fuzz",
                        "Transfer-Encoding", "Content-Encoding")


class TestFuzzedRequests(unittest.TestCase):
    """Any request gets 2xx-4xx (501 only for repair of a module that cannot repair)."""

    @classmethod
    def setUpClass(cls):
        cls.data_dir = tempfile.mkdtemp(prefix="vsm-fuzz-")
        cls.app = make_app(cls.data_dir, admin_password=AUTH[1], create_defaults=True)
        for key in ("existing", "ranged"):
            status = cls.call("PUT", "/objects/loc-a/" + key, body=b"0123456789")[0]
            assert status == 201, status

    @classmethod
    def tearDownClass(cls):
        cls.app.close()
        shutil.rmtree(cls.data_dir, ignore_errors=True)

    @classmethod
    def call(cls, method, path="/", body=b"", headers=None, raw_path=None, query=b""):
        builder = EnvironBuilder(path=path, method=method, data=body,
                                 headers=dict({"Authorization": _AUTHORIZATION},
                                              **(headers or {})))
        environ = builder.get_environ()
        if raw_path is not None:
            environ["PATH_INFO"] = raw_path
        environ["QUERY_STRING"] = query.decode("latin-1")
        for name, value in (headers or {}).items():  # exactly as given, no normalising
            key = name.upper().replace("-", "_")
            environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
        app_iter, status, _ = run_wsgi_app(cls.app, environ)
        try:
            content = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        return int(status.split()[0]), content

    def assertNoServerError(self, status, content, allowed=()):
        self.assertTrue(200 <= status < 500 or status in allowed, (status, content[:300]))

    @_SETTINGS
    @given(method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "POST", "PATCH"]),
           prefix=st.sampled_from(["/objects/loc-a/", "/objects/", "/", CONFIG, "/objects/x/"]),
           raw=st.binary(max_size=60))
    def test_paths_and_keys(self, method, prefix, raw):
        status, content = self.call(method, body=b"x", raw_path=(prefix.encode() + raw)
                                    .decode("latin-1"))
        self.assertNoServerError(status, content, allowed=(501,))

    @_SETTINGS
    @given(method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE"]),
           key=st.sampled_from(["existing", "missing"]),
           headers=st.dictionaries(st.sampled_from(_CONDITIONAL_HEADERS), _HEADER_TEXT,
                                   max_size=4))
    def test_headers(self, method, key, headers):
        status, content = self.call(method, "/objects/loc-a/" + key, body=b"0123456789",
                                    headers=headers)
        self.assertNoServerError(status, content)
        if method in ("PUT", "DELETE") and key == "existing" and 200 <= status < 300:
            self.call("PUT", "/objects/loc-a/existing", body=b"0123456789")

    @_SETTINGS
    @given(names=st.lists(st.from_regex(r"\A(X-Object-Meta-)?[A-Za-z0-9!#$%&'*+.^_`|~-]{0,40}\Z"),
                          max_size=6),
           value=_HEADER_TEXT)
    def test_metadata_and_other_header_names(self, names, value):
        headers = {name: value for name in names if name}
        status, content = self.call("PUT", "/objects/loc-a/meta", body=b"m", headers=headers)
        self.assertNoServerError(status, content)
        if status in (200, 201):
            status, content = self.call("GET", "/objects/loc-a/meta")
            self.assertEqual((status, content), (200, b"m"))

    @_SETTINGS
    @given(range_value=st.from_regex(r"\A ?[bB]ytes ?= ?-?[0-9]{0,25}-?[0-9]{0,25}(,[0-9]{0,3}-[0-9]{0,3})?"
                                     r" ?\Z"),
           if_range=st.sampled_from([None, '"x"', "W/\"x\"", "Thu, 01 Jan 1970 00:00:00 GMT"]))
    def test_ranges(self, range_value, if_range):
        headers = {"Range": range_value}
        if if_range:
            headers["If-Range"] = if_range
        status, content = self.call("GET", "/objects/loc-a/ranged", headers=headers)
        self.assertIn(status, (200, 206, 416), content[:200])
        if status == 206:
            self.assertTrue(content and content in b"0123456789")

    @_SETTINGS
    @given(query=st.binary(max_size=80))
    def test_listing_query_strings(self, query):
        status, content = self.call("GET", "/objects/loc-a/", query=quote_from_bytes(
            query, safe="=&%+;").encode())
        self.assertNoServerError(status, content)

    @_SETTINGS
    @given(body=_JSON)
    def test_provisioning_json(self, body):
        status, content = self.call("PUT", CONFIG + "fuzzed", json.dumps(body).encode(),
                                    headers={"Content-Type": "application/json"})
        self.assertNoServerError(status, content)
        self.call("DELETE", CONFIG + "fuzzed")

    @_SETTINGS
    @given(body=_JSON | st.fixed_dictionaries({"after": _JSON, "limit": _JSON, "scrub": _JSON,
                                                "rate": _JSON}))
    def test_repair_json(self, body):
        status, content = self.call("POST", CONFIG + "loc-a/repair", json.dumps(body).encode())
        self.assertNoServerError(status, content, allowed=(501,))

    @_SETTINGS
    @given(body=st.binary(max_size=200))
    def test_json_bodies_that_are_not_json(self, body):
        for path, method in ((CONFIG + "fuzzed", "PUT"), (CONFIG + "loc-a/repair", "POST")):
            status, content = self.call(method, path, body)
            self.assertNoServerError(status, content, allowed=(501,))

    def test_deeply_nested_json_is_a_400(self):
        """Issue 11 item 5: RecursionError on deeply nested JSON was a 500."""
        for body in (b"[" * 100000 + b"]" * 100000, b'{"a":' * 50000 + b"1" + b"}" * 50000,
                     b'{"args": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
            for path, method in ((CONFIG + "nested", "PUT"), (CONFIG + "loc-a/repair", "POST")):
                with self.subTest(path=path, size=len(body)):
                    status, content = self.call(method, path, body)
                    self.assertEqual(status, 400, content[:300])
                    self.assertIn(b"nests", content)

    def test_lone_surrogates_are_a_400(self):
        """Issue 11 item 5: a lone UTF-16 surrogate in the repair JSON was a 500."""
        for path, method, body in (
                (CONFIG + "loc-a/repair", "POST", b'{"after": "\\ud800", "limit": 1}'),
                (CONFIG + "sur", "PUT", b'{"module": "simple.simple.SimpleStorage", '
                                        b'"args": ["\\udfff"]}')):
            with self.subTest(path=path):
                status, content = self.call(method, path, body)
                self.assertEqual(status, 400, content[:300])
                self.assertIn(b"surrogate", content)


class TestHostileBodies(HostTestCase):
    """The same hostile JSON through a real server."""

    def test_nested_and_surrogate_json_over_http(self):
        nested = b"[" * 50000 + b"]" * 50000
        self.assertJsonError(self.host.request("PUT", CONFIG + "x", data=nested), 400)
        self.host.simple("store")
        self.assertJsonError(self.host.request("POST", CONFIG + "store/repair",
                                               data=b'{"after": "\\udc00"}'), 400, "surrogate")
