"""What HTTPStorage sends, and how it copes with real servers' quirks and faults.

Runs against wsgidav in a thread behind a steerable middleware
(:mod:`tests.http.quirky_server`): every request the client sends is
recorded, statuses can be injected, ``Range`` can be ignored.
"""
import io
import json
import os
import shutil
import unittest

from modules.errors import (
    AuthenticationFailed,
    DataCorrupted,
    InsufficientStorage,
    LocationUnavailable,
    ObjectNotFound,
    SourceStreamError,
)
from modules.testing import FailingSource, payload
from replica.http import HTTPStorage
from tests.http.support import QuirkyServerCase

MIB = 1024 * 1024


class OneWaySource(io.RawIOBase):
    """A non-seekable binary source (like a socket or a pipe)."""

    def __init__(self, data: bytes):
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


class TestUploadProtocol(QuirkyServerCase):
    def test_seekable_source_is_sent_with_content_length(self):
        storage = self.make_storage()
        data = payload(MIB + 3, seed=1)
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(data))
        (put,) = self.server.recorded("PUT")
        self.assertEqual(put.get("content_length"), str(len(data)))
        self.assertNotIn("transfer_encoding", put)

    def test_unseekable_source_is_sent_chunked(self):
        storage = self.make_storage()
        data = payload(MIB + 3, seed=2)
        module_data = storage.new_data(None)
        storage.assign(None, module_data, OneWaySource(data))
        (put,) = self.server.recorded("PUT")
        self.assertEqual(put.get("transfer_encoding", "").lower(), "chunked")
        with open(self.object_path(module_data), "rb") as stored:
            self.assertEqual(stored.read(), data)

    def test_upload_goes_to_a_temporary_and_is_moved_into_place(self):
        storage = self.make_storage()
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(b"abc"))
        (put,) = self.server.recorded("PUT")
        (move,) = self.server.recorded("MOVE")
        self.assertNotEqual(put["path"], "/%s/%s" % (self.store, module_data))
        self.assertIn("/.upload-", put["path"])
        self.assertEqual(move["path"], put["path"])
        self.assertEqual(move["destination"], self.base_url + module_data)
        self.assertEqual(move["overwrite"], "T")
        shard = os.path.dirname(self.object_path(module_data))
        self.assertEqual(os.listdir(shard), [module_data.rsplit("/", 1)[1]])

    def test_collections_are_created_below_the_base_url_once(self):
        storage = self.make_storage()
        first = storage.new_data(None)
        storage.assign(None, first, io.BytesIO(b"1"))
        mkcols = [r["path"] for r in self.server.recorded("MKCOL")]
        self.assertEqual(mkcols, ["/%s/%s/" % (self.store, first[:2]),
                                  "/%s/%s/" % (self.store, first[:5])])
        self.server.clear()
        again = first[:6] + first[6:10] + "0" * 28  # same shard, another object
        storage.assign(None, again, io.BytesIO(b"2"))
        self.assertEqual(self.server.recorded("MKCOL"), [], "known collections are not re-made")

    def test_collections_made_by_another_writer_are_fine(self):
        """MKCOL answered 405 (it exists: another instance won the race) is success."""
        first, second = self.make_storage(), self.make_storage()
        one = first.new_data(None)
        first.assign(None, one, io.BytesIO(b"1"))
        other = one[:6] + one[6:10] + "1" * 28
        self.server.clear()
        second.assign(None, other, io.BytesIO(b"2"))
        self.assertEqual(len(self.server.recorded("MKCOL")), 2)
        self.assertEqual(second.get_size(None, other), 1)
        self.assertEqual(self.sleeps, [])

    def test_missing_base_collection_is_not_created(self):
        storage = HTTPStorage(self.server.url + "absent/", sleep=self.sleeps.append)
        self.addCleanup(storage.close)
        module_data = storage.new_data(None)
        with self.assertRaises(LocationUnavailable) as caught:
            storage.assign(None, module_data, io.BytesIO(b"x"))
        self.assertIn("base URL", str(caught.exception))
        self.assertFalse(os.path.exists(os.path.join(self.root, "absent")))
        self.assertEqual(self.sleeps, [], "a missing collection is not worth retrying")

    def test_vanished_shard_collection_is_recreated(self):
        """Regression: a cached 'collection exists' went stale when the server was wiped."""
        storage = self.make_storage()
        first = storage.new_data(None)
        storage.assign(None, first, io.BytesIO(b"1"))
        shutil.rmtree(os.path.join(self.root, self.store, first[:2]))
        second = first[:6] + first[6:10] + "0" * 28
        storage.assign(None, second, io.BytesIO(b"2"))
        self.assertTrue(storage.available(None, second))

    def test_retried_put_for_a_seekable_source(self):
        storage = self.make_storage()
        self.server.fail_next("PUT", 503)
        data = payload(300000, seed=3)
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(data))
        puts = self.server.recorded("PUT")
        self.assertEqual(len(puts), 2)
        self.assertEqual(self.sleeps, [0.2])
        with storage.get_read_stream(None, module_data) as stream:
            self.assertEqual(stream.read(), data)

    def test_no_retry_for_an_unseekable_source(self):
        storage = self.make_storage()
        self.server.fail_next("PUT", 503)
        module_data = storage.new_data(None)
        with self.assertRaises(LocationUnavailable) as caught:
            storage.assign(None, module_data, OneWaySource(b"x" * 1000))
        self.assertIn("503", str(caught.exception))
        self.assertEqual(len(self.server.recorded("PUT")), 1)
        self.assertEqual(self.retries(storage), 0)
        self.assertFalse(storage.available(None, module_data))

    def test_source_failure_is_a_source_error_not_a_network_error(self):
        storage = self.make_storage()
        module_data = storage.new_data(None)
        with self.assertRaises(SourceStreamError) as caught:
            storage.assign(None, module_data, FailingSource(payload(3 * MIB), MIB + 5))
        self.assertIsInstance(caught.exception.__cause__, OSError)
        self.assertEqual(self.retries(storage), 0, "a failing source is not retried")
        self.assertFalse(storage.available(None, module_data))
        self.assertFalse(os.path.exists(self.object_path(module_data)))
        # The temporary is deleted on a best-effort basis: the server may still be
        # handling the aborted PUT (see docs/http.md), so it is not asserted here.

    def test_source_longer_or_shorter_than_measured(self):
        """A seekable source whose length differs from what seek(0, 2) said is refused."""

        class Claims(io.BytesIO):
            def __init__(self, data: bytes, claimed: int):
                super().__init__(data)
                self._claimed = claimed
                self._at_end = False

            def seek(self, offset, whence=0):
                self._at_end = whence == 2
                return self._claimed if self._at_end else super().seek(offset, whence)

            def tell(self):
                return self._claimed if self._at_end else super().tell()

        storage = self.make_storage()
        for data, claimed in ((b"0123456789", 4), (b"0123", 10)):
            with self.subTest(actual=len(data), claimed=claimed):
                module_data = storage.new_data(None)
                with self.assertRaises(SourceStreamError) as caught:
                    storage.assign(None, module_data, Claims(data, claimed))
                self.assertIn("measured", str(caught.exception))
                self.assertFalse(storage.available(None, module_data))

    def test_text_source_is_rejected_before_sending(self):
        storage = self.make_storage()
        module_data = storage.new_data(None)
        with self.assertRaises(SourceStreamError):
            storage.assign(None, module_data, io.StringIO("text"))
        self.assertEqual(self.server.recorded("PUT"), [])

    def test_server_that_keeps_a_truncated_body_is_caught(self):
        """A server answering 201 to a PUT whose body it cut short: nothing is moved in place."""
        storage = self.make_storage()
        self.server.truncate_put_to = 1000
        module_data = storage.new_data(None)
        with self.assertRaises(LocationUnavailable) as caught:
            storage.assign(None, module_data, OneWaySource(b"y" * 5000))
        self.assertIn("1000 of the 5000", str(caught.exception))
        self.assertEqual(self.server.recorded("MOVE"), [])
        self.assertFalse(storage.available(None, module_data))
        shard = os.path.dirname(self.object_path(module_data))
        self.assertEqual(os.listdir(shard), [], "the truncated temporary was not deleted")

    def test_move_retried_after_5xx(self):
        storage = self.make_storage()
        storage.assign(None, storage.new_data(None), io.BytesIO(b"learn the Destination form"))
        self.server.clear()
        for status in (502, 503):
            with self.subTest(status=status):
                self.server.clear()
                self.sleeps.clear()
                self.server.fail_next("MOVE", status)
                module_data = storage.new_data(None)
                storage.assign(None, module_data, OneWaySource(b"z" * 100))
                moves = self.server.recorded("MOVE")
                self.assertEqual(len(moves), 2)
                self.assertEqual([m["destination"][:4] for m in moves], ["http", "http"],
                                 "a known-good absolute Destination is kept on a 5xx")
                self.assertEqual(self.sleeps, [0.2])
                self.assertEqual(storage.get_size(None, module_data), 100)

    def test_full_server(self):
        storage = self.make_storage()
        for status in (507, 413):
            with self.subTest(status=status):
                self.server.fail_next("PUT", status)
                module_data = storage.new_data(None)
                with self.assertRaises(InsufficientStorage):
                    storage.assign(None, module_data, io.BytesIO(b"x" * 10))
                self.assertFalse(storage.available(None, module_data))
        self.assertEqual(self.retries(storage), 0, "a full server is not retried")

    def test_empty_object(self):
        storage = self.make_storage()
        for source in (io.BytesIO(b""), OneWaySource(b"")):
            module_data = storage.new_data(None)
            storage.assign(None, module_data, source)
            self.assertEqual(storage.get_size(None, module_data), 0)
            with storage.get_read_stream(None, module_data) as stream:
                self.assertEqual(stream.read(), b"")


class TestRequestsAndRetries(QuirkyServerCase):
    def test_idempotent_requests_are_retried_with_backoff(self):
        storage = self.make_storage()
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(b"abc"))
        self.server.clear()
        self.server.fail_next("HEAD", 503, times=2)
        self.assertTrue(storage.available(None, module_data))
        self.assertEqual(len(self.server.recorded("HEAD")), 3)
        self.assertEqual(self.sleeps, [0.2, 0.4])
        self.assertEqual(storage.statistics(None)["requests"]["retries"], 2)

    def test_retries_stop(self):
        storage = self.make_storage("retries=2")
        module_data = storage.new_data(None)
        self.server.fail_next("HEAD", 500, times=100)
        with self.assertRaises(LocationUnavailable):
            storage.get_size(None, module_data)
        self.assertEqual(len(self.server.recorded("HEAD")), 3)
        self.assertEqual(len(self.sleeps), 2)

    def test_retries_zero(self):
        storage = self.make_storage("retries=0")
        self.server.fail_next("DELETE", 503)
        with self.assertRaises(LocationUnavailable):
            storage.delete(None, storage.new_data(None))
        self.assertEqual(self.sleeps, [])

    def test_backoff_is_capped(self):
        storage = self.make_storage("retries=6", "retry_backoff=1", "retry_max_wait=3")
        self.server.fail_next("HEAD", 503, times=100)
        with self.assertRaises(LocationUnavailable):
            storage.available(None, storage.new_data(None))
        self.assertEqual(self.sleeps, [1, 2, 3, 3, 3, 3])

    def test_status_mapping(self):
        storage = self.make_storage()
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(b"abc"))
        cases = [(401, AuthenticationFailed), (403, AuthenticationFailed),
                 (507, InsufficientStorage), (400, LocationUnavailable),
                 (501, LocationUnavailable), (301, LocationUnavailable),
                 (410, ObjectNotFound), (404, ObjectNotFound)]
        for status, expected in cases:
            with self.subTest(status=status):
                self.sleeps.clear()
                self.server.fail_next("HEAD", status)
                with self.assertRaises(expected) as caught:
                    storage.get_size(None, module_data)
                self.assertEqual(caught.exception.status, status)
                self.assertEqual(self.sleeps, [], "%d must not be retried" % status)
                self.assertIn(str(status), str(caught.exception))
        self.assertEqual(storage.get_size(None, module_data), 3)

    def test_delete_of_a_missing_object_is_fine(self):
        storage = self.make_storage()
        storage.delete(None, storage.new_data(None))

    def test_bearer_token(self):
        self.server.bearer_token = "tok-123"
        storage = self.make_storage("token=tok-123")
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(b"abc"))
        self.assertTrue(all(r["authorization"] == "Bearer tok-123"
                            for r in self.server.recorded()))
        wrong = self.make_storage("token=nope")
        with self.assertRaises(AuthenticationFailed) as caught:
            wrong.available(None, module_data)
        self.assertNotIn("nope", str(caught.exception))
        self.assertNotIn("nope", json.dumps(wrong.statistics(None)))

    def test_head_without_content_length_falls_back_to_a_ranged_get(self):
        storage = self.make_storage()
        data = payload(5000, seed=4)
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(data))
        self.server.head_without_length = True
        self.assertEqual(storage.get_size(None, module_data), 5000)
        with storage.get_read_stream(None, module_data) as stream:
            self.assertEqual(stream.read(), data)

    def test_statistics_without_propfind_support(self):
        storage = self.make_storage()
        self.server.fail_next("PROPFIND", 405)
        stats = storage.statistics(None)
        self.assertEqual(stats["status"], "ok")
        self.assertEqual(stats["capacity"], {"total": -1, "free": -1, "used": -1})
        self.assertIn("PROPFIND", stats["capacity_reason"])

    def test_statistics_when_the_server_fails(self):
        storage = self.make_storage()
        self.server.fail_next("PROPFIND", 500)
        stats = storage.statistics(None)
        self.assertEqual(stats["status"], "unavailable")
        self.assertIn("500", stats["reason"])
        self.assertEqual(stats["capacity"]["total"], -1)
        self.assertEqual(stats["last_error"]["method"], "PROPFIND")
        json.dumps(stats)


class TestReadStreamProtocol(QuirkyServerCase):
    def setUp(self):
        super().setUp()
        self.storage = self.make_storage("chunk_size=65536")
        self.data = payload(3 * MIB + 77, seed=5)
        self.module_data = self.storage.new_data(None)
        self.storage.assign(None, self.module_data, io.BytesIO(self.data))
        self.server.clear()

    def gets(self):
        return [r.get("range") for r in self.server.recorded("GET")]

    def test_sequential_reads_use_one_request(self):
        with self.storage.get_read_stream(None, self.module_data) as stream:
            parts = []
            while True:
                chunk = stream.read(100000)
                if not chunk:
                    break
                parts.append(chunk)
        self.assertEqual(b"".join(parts), self.data)
        self.assertEqual(self.gets(), ["bytes=0-"])

    def test_nothing_is_requested_until_the_first_read(self):
        with self.storage.get_read_stream(None, self.module_data) as stream:
            stream.seek(1000)
            stream.seek(MIB)
            self.assertEqual(self.gets(), [])
            self.assertEqual(stream.read(10), self.data[MIB:MIB + 10])
        self.assertEqual(self.gets(), ["bytes=%d-" % MIB])

    def test_seek_re_requests_only_when_the_position_changes(self):
        with self.storage.get_read_stream(None, self.module_data) as stream:
            self.assertEqual(stream.read(10), self.data[:10])
            stream.seek(10)  # where the response already is
            self.assertEqual(stream.read(10), self.data[10:20])
            stream.seek(5)
            self.assertEqual(stream.read(10), self.data[5:15])
            stream.seek(-100, 2)
            self.assertEqual(stream.read(), self.data[-100:])
            self.assertEqual(stream.read(), b"")
        self.assertEqual(self.gets(), ["bytes=0-", "bytes=5-",
                                       "bytes=%d-" % (len(self.data) - 100)])

    def test_server_ignoring_range_is_skipped_forward(self):
        self.server.ignore_range = True
        with self.storage.get_read_stream(None, self.module_data) as stream:
            stream.seek(2 * MIB + 5)
            self.assertEqual(stream.read(1000), self.data[2 * MIB + 5:2 * MIB + 1005])
            stream.seek(7)
            self.assertEqual(stream.read(3), self.data[7:10])
            self.assertEqual(stream.read(5), self.data[10:15])

    def test_object_truncated_underneath_is_data_corrupted(self):
        stream = self.storage.get_read_stream(None, self.module_data)
        self.addCleanup(stream.close)
        with open(self.object_path(self.module_data), "r+b") as stored:
            stored.truncate(1000)
        stream.seek(2000)  # beyond the new end: 416
        with self.assertRaises(DataCorrupted):
            stream.read(10)
        stream.seek(0)  # inside, but the total in Content-Range differs
        with self.assertRaises(DataCorrupted):
            stream.read(10)

    def test_object_deleted_underneath_is_not_found(self):
        stream = self.storage.get_read_stream(None, self.module_data)
        self.addCleanup(stream.close)
        self.storage.delete(None, self.module_data)
        with self.assertRaises(ObjectNotFound):
            stream.read(10)

    def test_a_failed_get_is_retried_from_the_position(self):
        with self.storage.get_read_stream(None, self.module_data) as stream:
            stream.seek(12345)
            self.server.fail_next("GET", 503)
            self.assertEqual(stream.read(100), self.data[12345:12445])
        self.assertEqual(self.gets(), ["bytes=12345-", "bytes=12345-"])
        self.assertEqual(len(self.sleeps), 1)


if __name__ == "__main__":
    unittest.main()
