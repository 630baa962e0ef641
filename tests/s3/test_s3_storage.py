"""S3Storage on a real SeaweedFS server: multipart, aborts, repair, errors, quota (issue 12)."""
import http.server
import io
import json
import logging
import os
import socket
import threading
import time
import tracemalloc
import unittest

from hypothesis import given, settings, strategies

from modules.errors import (
    AuthenticationFailed, ConfigurationError, DataCorrupted, InsufficientStorage,
    InvalidModuleData, LocationTimeout, LocationUnavailable, ObjectNotFound, SourceStreamError,
)
from modules.testing import FailingSource, payload
from replica.s3 import S3Storage
from tests.s3.support import ACCESS_KEY_ENV, BUCKET, SECRET_KEY_ENV, S3ServerCase

MIB = 1024 * 1024
WRONG_SECRET_ENV = "VSM_TEST_S3_WRONG_SECRET"


class TestS3Storage(S3ServerCase):
    """One server for all these tests (it starts in seconds, not milliseconds)."""

    # -- transfers ------------------------------------------------------------

    def test_multipart_round_trip_with_each_checksum_setting(self):
        """Above part_size the upload is multipart; when_supported sends CRCs SeaweedFS accepts."""
        data = payload(11 * MIB + 3, seed=1)
        for options in (("part_size=5MiB",), ("part_size=5MiB", "checksum=when_supported"),
                        ("part_size=5MiB", "upload_concurrency=1")):
            with self.subTest(options=options):
                storage = self.make_storage(*options)
                module_data = storage.new_data(None)
                storage.assign(None, module_data, io.BytesIO(data))
                self.assertEqual(storage.get_size(None, module_data), len(data))
                with storage.get_read_stream(None, module_data) as stream:
                    self.assertEqual(stream.read(), data)
                    stream.seek(6 * MIB - 5)
                    self.assertEqual(stream.read(10), data[6 * MIB - 5:6 * MIB + 5])
                self.assertEqual(self.pending_uploads(storage.prefix), [])

    def test_close_stops_the_part_threads(self):
        """No thread outlives close(): the part-sending pool is bounded and shut down."""
        storage = self.make_storage("part_size=5MiB", "upload_concurrency=3")
        storage.assign(None, storage.new_data(None), io.BytesIO(payload(16 * MIB)))
        running = [thread for thread in threading.enumerate()
                   if thread.name.startswith("s3-part")]
        self.assertTrue(0 < len(running) <= 3, running)
        storage.close()
        for thread in running:
            thread.join(10)
            self.assertFalse(thread.is_alive())

    def test_upload_memory_is_bounded_by_the_parts_in_flight(self):
        """A 60 MiB upload with 5 MiB parts, 2 at a time, never holds the object in memory."""
        storage = self.make_storage("part_size=5MiB", "upload_concurrency=2")
        storage.assign(None, storage.new_data(None), io.BytesIO(b"warm up the client"))
        size = 60 * MIB

        class Zeros(io.RawIOBase):
            position = 0

            def readable(self):
                return True

            def readinto(self, buffer):
                count = min(len(buffer), size - self.position)
                buffer[:count] = bytes(count)
                self.position += count
                return count

        module_data = storage.new_data(None)
        tracemalloc.start()
        try:
            storage.assign(None, module_data, Zeros())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertEqual(storage.get_size(None, module_data), size)
        # (2 parts sending + 1 being read) x 5 MiB, plus the source's own temporary copies
        self.assertLess(peak, 35 * MIB, "%.1f MiB held for a 60 MiB upload" % (peak / MIB))

    def test_failing_source_aborts_the_multipart_upload(self):
        """A source failing after two parts: nothing visible, the upload aborted."""
        storage = self.make_storage("part_size=5MiB", "upload_concurrency=2")
        module_data = storage.new_data(None)
        with self.assertRaises(SourceStreamError):
            storage.assign(None, module_data, FailingSource(payload(12 * MIB), 11 * MIB))
        self.assertFalse(storage.available(None, module_data))
        self.assertEqual(self.keys(storage.prefix), [])
        self.assertEqual(self.pending_uploads(storage.prefix), [])

    def test_read_stream_sends_one_request_for_a_sequential_read(self):
        storage = self.make_storage()
        data = payload(3 * MIB + 1, seed=2)
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(data))
        with storage.get_read_stream(None, module_data) as stream:
            self.assertEqual(b"".join(iter(lambda: stream.read(65536), b"")), data)
            self.assertEqual(stream.requests, 1)
            stream.seek(10)
            self.assertEqual(stream.read(5), data[10:15])
            self.assertEqual(stream.requests, 2)

    def test_random_seeks_and_reads_match_the_bytes(self):
        """Property: any sequence of seek/read on the S3 stream gives what the bytes say."""
        storage = self.make_storage()
        data = payload(300000, seed=9)
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(data))
        operations = strategies.lists(strategies.tuples(
            strategies.integers(min_value=0, max_value=len(data) + 10),
            strategies.integers(min_value=-1, max_value=70000)), min_size=1, max_size=6)

        @settings(max_examples=25, deadline=None, database=None)
        @given(operations)
        def check(steps):
            with storage.get_read_stream(None, module_data) as stream:
                for position, size in steps:
                    stream.seek(position)
                    expected = data[position:] if size < 0 else data[position:position + size]
                    self.assertEqual(stream.read(size), expected)
                    self.assertEqual(stream.tell(), position + len(expected))

        check()

    def test_object_replaced_between_two_ranged_reads_is_detected(self):
        """If-Match on every later range: a changed object gives DataCorrupted, not mixed bytes."""
        storage = self.make_storage()
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(b"a" * 100000))
        with storage.get_read_stream(None, module_data) as stream:
            self.assertEqual(stream.read(10), b"a" * 10)
            storage.assign(None, module_data, io.BytesIO(b"b" * 100000))
            stream.seek(50000)
            with self.assertRaises(DataCorrupted):
                stream.read(10)

    def test_deterministic_placement_and_no_request_for_new_data(self):
        """new_data/new_data_for never contact the service (it is stopped here)."""
        storage = S3Storage("s3://%s/p" % BUCKET, "endpoint_url=http://127.0.0.1:9",
                            "access_key_env=" + ACCESS_KEY_ENV,
                            "secret_key_env=" + SECRET_KEY_ENV, "retries=0", "timeout=1")
        self.addCleanup(storage.close)
        self.assertTrue(storage.capabilities["placement"])
        self.assertTrue(storage.capabilities["retries"])
        object_id = "0123456789abcdef0123456789abcdef"
        self.assertEqual(storage.new_data_for(None, object_id), "01/23/" + object_id)
        self.assertNotEqual(storage.new_data(None), storage.new_data(None))
        for bad in ("0123", object_id.upper(), None, "../" + object_id[3:]):
            with self.assertRaises(InvalidModuleData):
                storage.new_data_for(None, bad)
        with self.assertRaises(LocationUnavailable):
            storage.available(None, storage.new_data(None))
        stats = storage.statistics(None)
        self.assertEqual(stats["status"], "unavailable")
        self.assertEqual(stats["capacity"], {"total": -1, "free": -1, "used": -1})

    def test_repair_aborts_stale_uploads_only(self):
        """Uploads the service kept after a failed abort go at repair(), after upload_grace."""
        storage = self.make_storage()
        client = self.server.client()
        self.addCleanup(client.close)
        key = storage.prefix + storage.new_data(None)
        client.create_multipart_upload(Bucket=BUCKET, Key=key)
        self.assertEqual(storage.repair(None), {"aborted_uploads": 0, "kept_uploads": 1})
        eager = self.make_storage("upload_grace=0", prefix=storage.prefix)
        summary = eager.repair(None)
        json.dumps(summary)
        self.assertEqual(summary, {"aborted_uploads": 1, "kept_uploads": 0})
        self.assertEqual(self.pending_uploads(storage.prefix), [])
        self.assertEqual(eager.statistics(None)["operations"]["aborted_uploads"], 1)

    def test_forked_worker_gets_its_own_clients_and_threads(self):
        """vsm serve --workers forks after creating modules: a child must not hang or share."""
        storage = self.make_storage("part_size=5MiB", "upload_concurrency=2")
        data = payload(11 * MIB, seed=4)
        parent_data = storage.new_data(None)
        storage.assign(None, parent_data, io.BytesIO(data))  # starts the part threads
        child_data = storage.new_data(None)
        pid = os.fork()
        if pid == 0:  # the child: multipart upload and read, then report by exit status
            status = 1
            try:
                storage.assign(None, child_data, io.BytesIO(data))
                with storage.get_read_stream(None, parent_data) as stream:
                    status = 0 if stream.read() == data else 2
            finally:
                os._exit(status)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            self.fail("the forked child hung")
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        with storage.get_read_stream(None, child_data) as stream:
            self.assertEqual(stream.read(), data)

    # -- quota and statistics ---------------------------------------------------
    def test_without_quota_capacity_is_unknown_with_a_reason(self):
        stats = self.make_storage().statistics(None)
        json.dumps(stats)
        self.assertEqual(stats["status"], "ok")
        self.assertEqual(stats["capacity"], {"total": -1, "free": -1, "used": -1})
        self.assertIn("quota=", stats["capacity_reason"])

    def test_quota_bounds_writes_and_reports_capacity(self):
        storage = self.make_storage("quota=1MiB")
        first = storage.new_data(None)
        storage.assign(None, first, io.BytesIO(payload(600 * 1024)))
        stats = storage.statistics(None)
        self.assertEqual(stats["capacity"]["total"], MIB)
        self.assertEqual(stats["capacity"]["used"], 600 * 1024)
        self.assertEqual(stats["capacity"]["free"], MIB - 600 * 1024)
        second = storage.new_data(None)
        with self.assertRaises(InsufficientStorage):
            storage.assign(None, second, io.BytesIO(payload(600 * 1024)))
        self.assertFalse(storage.available(None, second))
        fresh = self.make_storage("quota=1MiB", prefix=storage.prefix)
        self.assertEqual(fresh.statistics(None)["capacity"]["used"], 600 * 1024,
                         "a new instance measures the usage by listing the prefix")

    # -- clear errors -------------------------------------------------------------
    def test_wrong_credentials_name_the_options_and_never_the_secret(self):
        wrong = "wrong-" + self.server.secret_key
        os.environ[WRONG_SECRET_ENV] = wrong
        self.addCleanup(os.environ.pop, WRONG_SECRET_ENV, None)
        args = [arg for arg in self.storage_args() if not arg.startswith("secret_key_env=")]
        storage = S3Storage(*args, "secret_key_env=" + WRONG_SECRET_ENV, "retries=0")
        self.addCleanup(storage.close)
        module_data = storage.new_data(None)
        calls = [lambda: storage.assign(None, module_data, io.BytesIO(b"x")),
                 lambda: storage.available(None, module_data),
                 lambda: storage.get_size(None, module_data),
                 lambda: storage.get_read_stream(None, module_data),
                 lambda: storage.delete(None, module_data)]
        with self.assertLogs("replica.s3", logging.DEBUG) as logs:
            logging.getLogger("replica.s3").debug("capture starts")
            for call in calls:
                with self.assertRaises(AuthenticationFailed) as caught:
                    call()
                message = str(caught.exception)
                self.assertIn("secret_key_env", message)
                self.assertIn(WRONG_SECRET_ENV, message)
                self.assertNotIn(wrong, message)
            stats = storage.statistics(None)
        text = json.dumps(stats) + repr(storage) + "\n".join(logs.output)
        self.assertEqual(stats["status"], "unavailable")
        self.assertIn("credentials", stats["reason"])
        for secret in (wrong, self.server.secret_key, self.server.access_key):
            self.assertNotIn(secret, text)

    def test_missing_bucket_is_a_clear_error_for_every_call(self):
        storage = self.make_storage(bucket="no-such-bucket")
        module_data = storage.new_data(None)
        calls = [lambda: storage.assign(None, module_data, io.BytesIO(b"x")),
                 lambda: storage.available(None, module_data),
                 lambda: storage.get_size(None, module_data),
                 lambda: storage.get_read_stream(None, module_data),
                 lambda: storage.delete(None, module_data)]
        for call in calls:
            with self.assertRaises(LocationUnavailable) as caught:
                call()
            self.assertIn("does not exist", str(caught.exception))
            self.assertIn("never creates buckets", str(caught.exception))
        stats = storage.statistics(None)
        self.assertEqual(stats["status"], "unavailable")
        self.assertIn("does not exist", stats["reason"])
        self.assertNotIn("no-such-bucket", self.server.client().list_buckets().get("Buckets"))

    def test_missing_object(self):
        storage = self.make_storage()
        module_data = storage.new_data(None)
        self.assertFalse(storage.available(None, module_data))
        with self.assertRaises(ObjectNotFound):
            storage.get_size(None, module_data)
        with self.assertRaises(ObjectNotFound):
            storage.get_read_stream(None, module_data)
        storage.delete(None, module_data)  # already gone is fine

    def test_stopped_server_is_unavailable_not_a_crash(self):
        storage = self.make_storage("timeout=2")
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(b"kept"))
        self.server.stop()
        try:
            started = time.monotonic()
            for call in (lambda: storage.available(None, module_data),
                         lambda: storage.assign(None, storage.new_data(None), io.BytesIO(b"x")),
                         lambda: storage.get_read_stream(None, module_data)):
                with self.assertRaises(LocationUnavailable):
                    call()
            self.assertEqual(storage.statistics(None)["status"], "unavailable")
            self.assertLess(time.monotonic() - started, 30)
        finally:
            self.server.start()
        with storage.get_read_stream(None, module_data) as stream:
            self.assertEqual(stream.read(), b"kept")


class _FlakyHead(http.server.BaseHTTPRequestHandler):
    """Answers HEAD with 503 SlowDown ``failures`` times, then 200 with 42 bytes."""

    failures = 0
    seen = 0

    def do_HEAD(self):  # noqa: N802 (http.server's naming)
        type(self).seen += 1
        if type(self).seen <= type(self).failures:
            self.send_response(503)
            self.send_header("Content-Length", "0")
        else:
            self.send_response(200)
            self.send_header("Content-Length", "42")
            self.send_header("ETag", '"abc"')
        self.end_headers()

    def log_message(self, *args):
        pass


class _CuttingGet(http.server.BaseHTTPRequestHandler):
    """Serves DATA; a GET without Range is cut after half the bytes (the connection drops)."""

    DATA = bytes(range(256)) * 1000
    ranges = []
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        header = self.headers.get("Range")
        type(self).ranges.append(header)
        if header is None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.DATA)))
            self.send_header("ETag", '"v1"')
            self.end_headers()
            self.wfile.write(self.DATA[:len(self.DATA) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        start = int(header.split("=")[1].rstrip("-"))
        self.send_response(206)
        self.send_header("Content-Length", str(len(self.DATA) - start))
        last = len(self.DATA) - 1
        self.send_header("Content-Range", "bytes %d-%d/%d" % (start, last, len(self.DATA)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        self.wfile.write(self.DATA[start:])

    def log_message(self, *args):
        pass


class _FakeS3Case(unittest.TestCase):
    """A tiny HTTP server (``handler``) standing in for S3 where a real one cannot misbehave."""

    handler = _FlakyHead

    def setUp(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.addCleanup(self.thread.join, 10)
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        os.environ["VSM_TEST_FLAKY_AK"] = "AKIDEXAMPLE"
        os.environ["VSM_TEST_FLAKY_SK"] = "sk-flaky-secret"
        self.addCleanup(os.environ.pop, "VSM_TEST_FLAKY_AK", None)
        self.addCleanup(os.environ.pop, "VSM_TEST_FLAKY_SK", None)

    def storage(self, retries: int) -> S3Storage:
        storage = S3Storage("s3://bkt/p", "endpoint_url=http://127.0.0.1:%d"
                            % self.server.server_address[1], "access_key_env=VSM_TEST_FLAKY_AK",
                            "secret_key_env=VSM_TEST_FLAKY_SK", "addressing=path", "timeout=5",
                            "retries=%d" % retries)
        self.addCleanup(storage.close)
        return storage


class TestOneRetryLayer(_FakeS3Case):
    """botocore retries transient failures ``retries`` times; S3Storage adds no layer of its own."""

    handler = _FlakyHead

    def test_transient_failures_are_retried_exactly_retries_times(self):
        _FlakyHead.failures, _FlakyHead.seen = 2, 0
        storage = self.storage(retries=2)
        self.assertEqual(storage.get_size(None, storage.new_data(None)), 42)
        self.assertEqual(_FlakyHead.seen, 3)
        _FlakyHead.failures, _FlakyHead.seen = 2, 0
        storage = self.storage(retries=1)
        with self.assertRaises(LocationUnavailable) as caught:
            storage.get_size(None, storage.new_data(None))
        self.assertEqual(_FlakyHead.seen, 2, "one attempt and one retry, no more")
        self.assertIn("503", str(caught.exception))


class TestCutAnswers(_FakeS3Case):
    """A GET answer cut in the middle is asked again from where it stopped (retries= times)."""

    handler = _CuttingGet

    def test_cut_answer_is_resumed_from_its_position(self):
        _CuttingGet.ranges = []
        storage = self.storage(retries=1)
        with storage.get_read_stream(None, storage.new_data(None)) as stream:
            self.assertEqual(stream.read(), _CuttingGet.DATA)
            self.assertEqual(stream.requests, 2)
        half = len(_CuttingGet.DATA) // 2
        self.assertEqual(_CuttingGet.ranges, [None, "bytes=%d-" % half])

    def test_without_retries_the_cut_is_reported(self):
        _CuttingGet.ranges = []
        storage = self.storage(retries=0)
        with storage.get_read_stream(None, storage.new_data(None)) as stream:
            with self.assertRaises(LocationUnavailable):
                stream.read()
            self.assertEqual(stream.tell(), 0, "a failed read consumes nothing")


class TestHungService(unittest.TestCase):
    """A service that accepts connections and never answers: LocationTimeout, promptly."""

    def test_hung_service_times_out_with_the_configured_timeout(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # connections complete in the backlog; nothing ever answers
        os.environ["VSM_TEST_HUNG_AK"] = "AKIDEXAMPLE"
        os.environ["VSM_TEST_HUNG_SK"] = "sk-hung-secret"
        self.addCleanup(os.environ.pop, "VSM_TEST_HUNG_AK", None)
        self.addCleanup(os.environ.pop, "VSM_TEST_HUNG_SK", None)
        storage = S3Storage("s3://bkt/p", "endpoint_url=http://127.0.0.1:%d"
                            % listener.getsockname()[1], "access_key_env=VSM_TEST_HUNG_AK",
                            "secret_key_env=VSM_TEST_HUNG_SK", "timeout=0.5", "retries=0",
                            "addressing=path")
        self.addCleanup(storage.close)
        module_data = storage.new_data(None)
        started = time.monotonic()
        with self.assertRaises(LocationTimeout) as caught:
            storage.available(None, module_data)
        self.assertIn("timeout=", str(caught.exception))
        with self.assertRaises(LocationTimeout):
            storage.assign(None, module_data, io.BytesIO(b"x"))
        stats = storage.statistics(None)
        self.assertEqual(stats["status"], "unavailable")
        self.assertLess(time.monotonic() - started, 15)
        self.assertNotIn("sk-hung-secret", json.dumps(stats) + repr(storage))


class TestOptions(unittest.TestCase):
    """Argument parsing needs no server."""

    def setUp(self):
        os.environ["VSM_TEST_OPT_AK"] = "AKIDEXAMPLE"
        os.environ["VSM_TEST_OPT_SK"] = "sk-very-secret"
        self.addCleanup(os.environ.pop, "VSM_TEST_OPT_AK", None)
        self.addCleanup(os.environ.pop, "VSM_TEST_OPT_SK", None)

    def make(self, *args, **kwargs):
        storage = S3Storage(*args, **kwargs)
        self.addCleanup(storage.close)
        return storage

    def test_url_and_bucket_forms(self):
        for args, kwargs, prefix in ((["s3://bkt/a/b/"], {}, "a/b/"), (["s3://bkt"], {}, ""),
                                     ([], {"bucket": "bkt", "prefix": "/x//y"}, "x/y/"),
                                     (["bucket=bkt"], {}, "")):
            with self.subTest(args=args, kwargs=kwargs):
                storage = self.make(*args, "endpoint_url=http://127.0.0.1:9", **kwargs)
                self.assertEqual(storage.bucket, "bkt")
                self.assertEqual(storage.prefix, prefix)

    def test_secrets_are_never_shown(self):
        storage = self.make("s3://bkt/p", "access_key_env=VSM_TEST_OPT_AK",
                            "secret_key_env=VSM_TEST_OPT_SK", "part_size=16MiB")
        text = repr(storage) + json.dumps(storage.statistics(None)["options"])
        self.assertNotIn("sk-very-secret", text)
        self.assertNotIn("AKIDEXAMPLE", text)
        self.assertIn("part_size=16777216", repr(storage))

    def test_refusals(self):
        cases = [
            ([], "needs a bucket"),
            (["http://bkt/p"], "s3://bucket/prefix"),
            (["s3://user:pw@bkt/p"], "no credentials"),
            (["s3://bkt/p", "bucket=other"], "not both"),
            (["s3://bkt/../p"], "'..'"),
            (["s3://b"], "not a valid bucket name"),
            (["s3://bkt", "access_key_env=VSM_TEST_OPT_AK"], "both access_key_env"),
            (["s3://bkt", "secret_key=x"], "secret_key_env=VARIABLE"),
            (["s3://bkt", "access_key_env=VSM_TEST_UNSET_VARIABLE",
              "secret_key_env=VSM_TEST_OPT_SK"], "not set"),
            (["s3://bkt", "part_size=1MiB"], "part_size"),
            (["s3://bkt", "checksum=always"], "when_required, when_supported"),
            (["s3://bkt", "addressing=dns"], "auto, path, virtual"),
            (["s3://bkt", "endpoint_url=ftp://x"], "endpoint_url"),
            (["s3://bkt", "endpoint_url=https://u:p@x"], "credentials"),
            (["s3://bkt", "timeout=0"], "timeout"),
            (["s3://bkt", "profile=vsm-no-such-profile-here"], "vsm-no-such-profile-here"),
            (["s3://bkt", "colour=red"], "known:"),
            (["s3://bkt", "ca_bundle=/nonexistent/ca.pem"], "not a file"),
            (["s3://bkt", "ca_bundle=/etc/hostname", "verify_tls=no"], "makes no sense"),
        ]
        for args, expected in cases:
            with self.subTest(args=args):
                with self.assertRaises(ConfigurationError) as caught:
                    self.make(*args)
                self.assertIn(expected, str(caught.exception))
                self.assertNotIn("sk-very-secret", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
