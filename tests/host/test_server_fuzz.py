"""Hostile request heads against the real server and application: never a 5xx (issue 11).

Property-based (hypothesis): request lines and headers around what
``HostServer`` changes in cheroot (``Expect``, ``Content-Length``,
``Transfer-Encoding``, credentials), sent over a real socket. Every answer
is a 1xx-4xx status or a closed connection, and the server keeps answering.
"""
import base64
import socket
import unittest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.host.support import AUTH, HostTestCase

_SETTINGS = settings(max_examples=60, deadline=5000, database=None,
                     suppress_health_check=[HealthCheck.too_slow,
                                            HealthCheck.function_scoped_fixture])

_GOOD = "Basic " + base64.b64encode(("%s:%s" % AUTH).encode()).decode()

_TOKEN = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1, max_size=12)
_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xff), max_size=40)

_HEADERS = st.lists(st.one_of(
    st.tuples(st.just("Expect"), st.sampled_from(["100-continue", "100-Continue", " 100-continue ",
                                                  "200-ok", ""]) | _VALUE),
    st.tuples(st.just("Content-Length"), st.sampled_from(["0", "5", "-1", "abc", "99999999999",
                                                          "5, 5", ""]) | _VALUE),
    st.tuples(st.just("Transfer-Encoding"), st.sampled_from(["chunked", "gzip", "chunked, gzip",
                                                             "identity"]) | _VALUE),
    st.tuples(st.just("Authorization"), st.sampled_from([_GOOD, "Basic", "Basic !!!",
                                                         "Bearer x"]) | _VALUE),
    st.tuples(_TOKEN, _VALUE)), max_size=6)


def _exchange(port: int, head: bytes, body: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(head + body)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        answer = b""
        try:
            while len(answer) < 65536:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except OSError:  # reset or timeout: no answer is an acceptable answer
            pass
        return answer


class TestHostileHeads(HostTestCase):

    def setUp(self):
        super().setUp()
        self.host.simple("s")

    @_SETTINGS
    @given(method=st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST", "BREW"]) | _TOKEN,
           path=st.sampled_from(["/objects/s/k", "/objects/s/", "/", "/health",
                                 "/cdmi/system_configuration/vendor_modules/s"]),
           version=st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x"]),
           headers=_HEADERS, body=st.binary(max_size=64))
    def test_no_server_error(self, method, path, version, headers, body):
        lines = ["%s %s %s" % (method, path, version), "Host: x"]
        lines += ["%s: %s" % (name, value) for name, value in headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        answer = _exchange(self.host.server.port, head, body)
        allowed = set()
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            allowed.add(b"505")  # RFC 9110 section 15.6.6
        if any(name == "Transfer-Encoding" for name, _ in headers):
            allowed.add(b"501")  # RFC 9112 section 6.1: a transfer coding it does not know
        for status_line in [line for line in answer.split(b"\r\n") if line.startswith(b"HTTP/")]:
            parts = status_line.split(b" ")
            self.assertTrue(len(parts) > 1, answer[:300])
            self.assertTrue(parts[1][:1] in b"1234" or parts[1] in allowed, answer[:300])
        self.assertEqual(self.host.request("GET", "/health", auth=None).status_code, 200)


if __name__ == "__main__":  # pragma: no cover
    unittest.main()
