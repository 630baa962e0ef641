"""Conditional requests (RFC 9110 section 13), stored headers and metadata, 411 (issue 11)."""
import concurrent.futures
import contextlib
import gzip
import io
import os
import shutil
import socket
import tempfile
import time
from base64 import b64encode
from unittest import mock

from werkzeug.http import http_date

from modules.cli import main
from modules.host.metadata import MAX_META_COUNT, MAX_META_VALUE_LENGTH
from tests.host.support import AUTH, PASSWORD, HostTestCase, stored_files


class ObjectTestCase(HostTestCase):

    def setUp(self):
        super().setUp()
        self.host.simple("store")

    def put(self, key: str, data: bytes = b"data", **headers):
        return self.host.request("PUT", "/objects/store/" + key, data=data, headers=headers)

    def get(self, key: str, method: str = "GET", **headers):
        return self.host.request(method, "/objects/store/" + key, headers=headers)


class TestConditionalPut(ObjectTestCase):
    """Issue 11 item 7 (case 02-conditional-put-ignored): conditional PUTs overwrote anyway."""

    def test_if_none_match_star_creates_only(self):
        self.assertEqual(self.put("k", b"one", **{"If-None-Match": "*"}).status_code, 201)
        answer = self.put("k", b"two", **{"If-None-Match": "*"})
        self.assertJsonError(answer, 412, "exists")
        self.assertEqual(self.get("k").content, b"one")

    def test_if_match_replaces_only_the_version_read(self):
        etag = self.put("k", b"one").headers["ETag"]
        self.put("k", b"two")
        self.assertJsonError(self.put("k", b"stale", **{"If-Match": etag}), 412, "changed")
        self.assertEqual(self.get("k").content, b"two")
        current = self.get("k").headers["ETag"]
        self.assertEqual(self.put("k", b"three", **{"If-Match": current}).status_code, 200)
        self.assertEqual(self.put("k", b"four", **{"If-Match": "*"}).status_code, 200)
        self.assertEqual(self.get("k").content, b"four")

    def test_if_match_on_a_missing_object_fails(self):
        self.assertEqual(self.put("new", b"x", **{"If-Match": "*"}).status_code, 412)
        self.assertEqual(self.get("new").status_code, 404)

    def test_weak_etags_never_match_if_match(self):
        etag = self.put("k", b"one").headers["ETag"]
        self.assertEqual(self.put("k", b"two", **{"If-Match": "W/" + etag}).status_code, 412)

    def test_if_unmodified_since(self):
        self.put("k", b"one")
        past = http_date(time.time() - 3600)
        future = http_date(time.time() + 3600)
        self.assertEqual(self.put("k", b"two", **{"If-Unmodified-Since": past}).status_code, 412)
        self.assertEqual(self.put("k", b"two", **{"If-Unmodified-Since": future}).status_code,
                         200)

    def test_nothing_is_left_behind_by_a_refused_put(self):
        directory = self.host.simple("other")
        self.host.request("PUT", "/objects/other/k", data=b"one")
        for _ in range(3):
            self.host.request("PUT", "/objects/other/k", data=b"two",
                              headers={"If-None-Match": "*"})
        self.assertEqual(len(stored_files(directory)), 1)

    def test_concurrent_create_only_puts_have_exactly_one_winner(self):
        def attempt(number: int) -> int:
            return self.host.request("PUT", "/objects/store/race", data=b"writer %d" % number,
                                     headers={"If-None-Match": "*"}).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(attempt, range(16)))
        self.assertEqual(statuses.count(201), 1, statuses)
        self.assertEqual(statuses.count(412), 15, statuses)
        winner = statuses.index(201)
        self.assertEqual(self.get("race").content, b"writer %d" % winner)


class TestConditionalGetAndDelete(ObjectTestCase):

    def test_get_and_head_with_if_none_match_and_if_modified_since(self):
        etag = self.put("k", b"hello").headers["ETag"]
        for method in ("GET", "HEAD"):
            with self.subTest(method=method):
                answer = self.get("k", method, **{"If-None-Match": etag})
                self.assertEqual(answer.status_code, 304)
                self.assertEqual(answer.headers["ETag"], etag)
                self.assertEqual(answer.content, b"")
                self.assertEqual(self.get("k", method, **{"If-None-Match": '"x", W/' + etag})
                                 .status_code, 304, "If-None-Match compares weakly")
                self.assertEqual(self.get("k", method, **{"If-None-Match": '"other"'})
                                 .status_code, 200)
                later = http_date(time.time() + 60)
                earlier = http_date(time.time() - 3600)
                self.assertEqual(self.get("k", method, **{"If-Modified-Since": later})
                                 .status_code, 304)
                self.assertEqual(self.get("k", method, **{"If-Modified-Since": earlier})
                                 .status_code, 200)
                self.assertEqual(self.get("k", method, **{"If-Modified-Since": later,
                                                          "If-None-Match": '"other"'})
                                 .status_code, 200, "If-None-Match wins over the date")

    def test_get_with_failing_if_match_is_412(self):
        self.put("k", b"hello")
        self.assertEqual(self.get("k", **{"If-Match": '"other"'}).status_code, 412)
        self.assertEqual(self.get("k", **{"If-Unmodified-Since": http_date(0)}).status_code, 412)
        self.assertEqual(self.get("missing", **{"If-Match": "*"}).status_code, 404)

    def test_if_range(self):
        etag = self.put("k", b"0123456789").headers["ETag"]
        ranged = {"Range": "bytes=2-4"}
        answer = self.get("k", **dict(ranged, **{"If-Range": etag}))
        self.assertEqual((answer.status_code, answer.content), (206, b"234"))
        answer = self.get("k", **dict(ranged, **{"If-Range": '"stale"'}))
        self.assertEqual((answer.status_code, answer.content), (200, b"0123456789"))
        answer = self.get("k", **dict(ranged, **{"If-Range": "W/" + etag}))
        self.assertEqual(answer.status_code, 200, "a weak validator never satisfies If-Range")
        modified = self.get("k").headers["Last-Modified"]
        self.assertEqual(self.get("k", **dict(ranged, **{"If-Range": modified})).status_code, 206)
        self.assertEqual(self.get("k", **dict(ranged, **{"If-Range": http_date(0)})).status_code,
                         200)

    def test_conditional_delete(self):
        etag = self.put("k", b"one").headers["ETag"]
        self.assertEqual(self.host.request("DELETE", "/objects/store/k",
                                           headers={"If-Match": '"other"'}).status_code, 412)
        self.assertEqual(self.get("k").status_code, 200)
        self.assertEqual(self.host.request("DELETE", "/objects/store/k",
                                           headers={"If-Match": etag}).status_code, 204)
        self.assertEqual(self.host.request("DELETE", "/objects/store/k",
                                           headers={"If-Match": etag}).status_code, 404)


class TestStoredHeaders(ObjectTestCase):

    HEADERS = {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Encoding": "gzip",
        "Content-Disposition": 'attachment; filename="report.csv"',
        "Content-Language": "de-CH",
        "Cache-Control": "max-age=60",
        "X-Object-Meta-Color": "blue",
        "X-Object-Meta-Owner": "finance team",
    }

    def test_representation_headers_and_metadata_come_back(self):
        body = gzip.compress(b"a,b\n")
        self.assertEqual(self.put("report", body, **self.HEADERS).status_code, 201)
        for method in ("GET", "HEAD"):
            answer = self.get("report", method)
            for name, value in self.HEADERS.items():
                with self.subTest(method=method, header=name):
                    self.assertEqual(answer.headers.get(name), value)
        listed = self.host.request("GET", "/objects/store/").json()["objects"][0]
        self.assertEqual(listed["metadata"], {"color": "blue", "owner": "finance team"})
        self.assertEqual(listed["headers"]["Content-Encoding"], "gzip")

    def test_an_overwrite_replaces_the_metadata(self):
        self.put("k", b"1", **{"X-Object-Meta-Color": "blue"})
        self.put("k", b"2")
        answer = self.get("k")
        self.assertNotIn("X-Object-Meta-Color", answer.headers)
        self.assertEqual(answer.headers["Cache-Control"], "no-cache")

    def test_a_copy_keeps_and_merges_the_metadata(self):
        self.put("k", b"1", **{"X-Object-Meta-Color": "blue", "X-Object-Meta-Size": "s"})
        answer = self.host.request("PUT", "/objects/store/copy", headers={
            "X-Copy-From": "/objects/store/k", "X-Object-Meta-Size": "xl"})
        self.assertEqual(answer.status_code, 201, answer.text)
        headers = self.get("copy").headers
        self.assertEqual((headers["X-Object-Meta-Color"], headers["X-Object-Meta-Size"]),
                         ("blue", "xl"))

    def test_metadata_over_the_limits_is_a_clear_400(self):
        too_long = {"X-Object-Meta-Note": "x" * (MAX_META_VALUE_LENGTH + 1)}
        self.assertJsonError(self.put("k", **too_long), 400, "longer than")
        too_many = {"X-Object-Meta-N%d" % number: "v" for number in range(MAX_META_COUNT + 1)}
        self.assertJsonError(self.put("k", **too_many), 400, "at most")
        self.assertJsonError(self.put("k", **{"Content-Disposition": "x" * 2000}), 400)
        self.assertEqual(self.get("k").status_code, 404, "nothing was stored")


class TestStoredHeadersAreValidHeaders(ObjectTestCase):
    """Review finding: metadata names with spaces or control characters and values with NUL,
    ESC or DEL were stored and sent back verbatim, making every later GET a malformed
    HTTP answer (RFC 9110 sections 5.1, 5.5)."""

    def _raw_put(self, key: str, header: bytes) -> bytes:
        host, port = self.host.url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
        authorization = b64encode(("%s:%s" % AUTH).encode())
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(b"PUT /objects/store/" + key.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                               b"Authorization: Basic " + authorization + b"\r\n" + header
                               + b"\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
            answer = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                part = connection.recv(65536)
                if not part:
                    break
                answer += part
        return answer

    def test_invalid_names_and_values_are_a_400_and_store_nothing(self):
        for number, header in enumerate([b"X-Object-Meta-a b: v", b"X-Object-Meta-a\x01: v",
                                         b"X-Object-Meta-(x): v", b"X-Object-Meta-A: v\x00x",
                                         b"X-Object-Meta-A: \x1b[31mred", b"Content-Language: en\x7f",
                                         b"Content-Type: text/plain\x01"]):
            with self.subTest(header=header):
                answer = self._raw_put("bad%d" % number, header)
                self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer[:300])
                self.assertIn(b"RFC 9110", answer)
                self.assertEqual(self.get("bad%d" % number).status_code, 404)

    def test_tokens_tabs_and_latin1_text_stay_allowed(self):
        answer = self._raw_put("good", b"X-Object-Meta-Odd.Name~1!: caf\xe9\tau lait")
        self.assertTrue(answer.startswith(b"HTTP/1.1 201"), answer[:300])
        self.assertEqual(self.get("good").headers["X-Object-Meta-odd.name~1!"], "caf\xe9\tau lait")


class TestLengthRequired(ObjectTestCase):
    """Issue 11 item 9: a PUT without Content-Length or chunked stored an empty object."""

    def test_put_without_length_is_411(self):
        host, port = self.host.url.split("//", 1)[1].rsplit(":", 1)
        authorization = b64encode(("%s:%s" % AUTH).encode()).decode()
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(("PUT /objects/store/nolength HTTP/1.1\r\nHost: x\r\n"
                                "Authorization: Basic %s\r\nConnection: close\r\n\r\n"
                                % authorization).encode())
            answer = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                part = connection.recv(65536)
                if not part:
                    break
                answer += part
        self.assertTrue(answer.startswith(b"HTTP/1.1 411"), answer[:200])
        self.assertEqual(self.get("nolength").status_code, 404)


class TestEncodedObjectsWithTheCli(ObjectTestCase):
    """Objects stored with Content-Encoding come back from ``vsm get`` as stored."""

    def test_vsm_get_keeps_gzip_bytes(self):
        body = gzip.compress(b"a,b\n" * 100)
        self.put("g.csv", body, **{"Content-Encoding": "gzip"})
        work = tempfile.mkdtemp(prefix="vsm-gzip-")
        self.addCleanup(shutil.rmtree, work, True)
        target = os.path.join(work, "out")
        with mock.patch.dict(os.environ, {"VSM_ADMIN_PASSWORD": PASSWORD,
                                          "VSM_URL": self.host.url}), \
                contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()) as err:
            code = main(["get", "store/g.csv", "-o", target])
        self.assertEqual(code, 0, err.getvalue())
        with open(target, "rb") as file:
            self.assertEqual(file.read(), body)
