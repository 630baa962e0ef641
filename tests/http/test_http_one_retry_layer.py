"""HTTPStorage's side of issue 9 (one failure model), and deterministic placement.

* It retries transient failures itself, so it says so
  (``capabilities["retries"]``) and the replica calls it once per copy attempt.
* Its tenacity policy is built once per instance, not per request.
* A server answering 503 to everything gets at most ``retries + 1``
  requests per call (12 through the replica before issue 9).
* The pause loop that deletes an aborted upload's temporary is a tenacity
  policy with the injected ``sleep``.
* ``new_data_for`` places an object id at the same key in every instance.
"""
import io
import unittest
import uuid
from unittest import mock

from modules.errors import InvalidModuleData, LocationUnavailable, SourceStreamError
from modules.testing import FailingSource
from replica.http import HTTPStorage
from replica.http import transport as transport_module
from tests.http.support import QuirkyServerCase


class OneWay(io.RawIOBase):
    """A non-seekable source (an upload that cannot be retried)."""

    def __init__(self, data: bytes):
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


class TestCapabilities(unittest.TestCase):
    def test_declares_retries_placement_and_repair(self):
        """Issue 9: the replica must not retry a module that retries for itself."""
        storage = HTTPStorage("http://127.0.0.1:1/store/")
        self.addCleanup(storage.close)
        self.assertIs(storage.capabilities["retries"], True)
        self.assertIs(storage.capabilities["placement"], True)
        self.assertIs(storage.capabilities["repair"], True)
        self.assertIs(storage.capabilities["verified_reads"], False)


class TestPlacement(QuirkyServerCase):
    def test_same_object_id_same_key_in_every_instance(self):
        first, second = self.make_storage(), self.make_storage()
        object_id = uuid.uuid4().hex
        key = first.new_data_for(None, object_id)
        self.assertEqual(key, second.new_data_for(None, object_id))
        self.assertEqual(key, "%s/%s/%s" % (object_id[:2], object_id[2:4], object_id))
        self.assertNotEqual(key, first.new_data_for(None, uuid.uuid4().hex))
        self.assertEqual(self.server.recorded(), [], "placement must not contact the server")
        first.assign(None, key, io.BytesIO(b"placed"))
        with second.get_read_stream(None, second.new_data_for(None, object_id)) as stream:
            self.assertEqual(stream.read(), b"placed")

    def test_bad_object_ids_are_refused(self):
        storage = self.make_storage()
        for bad in ("", "ABCDEF" * 6, uuid.uuid4().hex[:31], "../" + uuid.uuid4().hex, None, 7,
                    uuid.uuid4().hex + "/x"):
            with self.subTest(bad=bad):
                with self.assertRaises(InvalidModuleData):
                    storage.new_data_for(None, bad)


class TestOneRetryLayer(QuirkyServerCase):
    def test_the_retry_policy_is_built_once_per_instance(self):
        """Issue 9: "Build each tenacity policy once per instance"."""
        with mock.patch.object(transport_module, "make_retrying",
                               wraps=transport_module.make_retrying) as made:
            storage = self.make_storage()
            self.server.fail_next("HEAD", 503)
            for _ in range(3):
                module_data = storage.new_data(None)
                storage.assign(None, module_data, io.BytesIO(b"x" * 1000))
                storage.get_size(None, module_data)
                with storage.get_read_stream(None, module_data) as stream:
                    stream.read()
                storage.delete(None, module_data)
        self.assertEqual(made.call_count, 1)
        self.assertEqual(self.retries(storage), 1)

    def test_a_server_answering_503_gets_retries_plus_one_requests_per_call(self):
        """Issue 9: 12 requests per get_size through the replica; now retries + 1 per call."""
        storage = self.make_storage("retries=2")
        module_data = storage.new_data(None)
        storage.assign(None, module_data, io.BytesIO(b"y" * 5000))
        with storage.get_read_stream(None, module_data) as opened_before:
            self.server.clear()
            for method in ("HEAD", "GET", "PUT", "MKCOL", "MOVE", "DELETE"):
                self.server.fail_next(method, 503, times=1000)
            for name, call in (
                    ("get_size", lambda: storage.get_size(None, module_data)),
                    ("get_read_stream", lambda: storage.get_read_stream(None, module_data)),
                    ("read", opened_before.read),
                    ("delete", lambda: storage.delete(None, module_data))):
                with self.subTest(call=name):
                    self.server.clear()
                    with self.assertRaises(LocationUnavailable):
                        call()
                    self.assertEqual(len(self.server.recorded()), 3)

    def test_the_discard_pauses_use_the_injected_sleep(self):
        """_discard's hand-written pause loop (time.sleep) became a tenacity policy."""
        storage = self.make_storage()
        self.server.fail_next("PUT", 500)  # answered before the temporary exists
        with self.assertRaises(LocationUnavailable):
            storage.assign(None, storage.new_data(None), OneWay(b"z" * 100))
        self.assertEqual(len(self.server.recorded("DELETE")), 3)
        self.assertEqual(self.sleeps, [0.1, 0.3])

    def test_a_found_temporary_is_deleted_without_pauses(self):
        storage = self.make_storage()
        with self.assertRaises(SourceStreamError):
            storage.assign(None, storage.new_data(None), FailingSource(b"s" * 300000, 200000))
        deletes = self.server.recorded("DELETE")
        self.assertGreaterEqual(len(deletes), 1)
        self.assertLessEqual(len(deletes), 3)
        self.assertEqual(len(self.sleeps), len(deletes) - 1)

    def test_a_closed_storage_does_not_try_to_discard(self):
        storage = self.make_storage()
        storage.close()
        with self.assertRaises(LocationUnavailable):
            storage.assign(None, storage.new_data(None), io.BytesIO(b"late"))
        self.assertEqual(self.server.recorded(), [])
        self.assertEqual(self.sleeps, [])


if __name__ == "__main__":
    unittest.main()
