"""A host asks ``get_size`` and then opens the object: the open reuses what get_size found.

Issue 10 (a GET through ``mirror`` loaded the manifest twice): the copy and
manifest that ``get_size`` chose are reused by the same thread's next
``get_read_stream`` of the same object, unless the object was deleted
meanwhile or the reference is stale.
"""
import unittest
from unittest import mock

from modules.errors import ObjectNotFound
from modules.testing import payload
from replica import replica as replica_module
from tests.replica.helpers import ReplicaTestCase


class TestSizeThenOpen(ReplicaTestCase):

    def calls(self, method):
        return sum(faulty.calls[method] for faulty in self.faulty.values())

    def test_the_open_after_get_size_loads_no_manifest_again(self):
        """Regression (issue 10): get_size then get_read_stream read the manifest twice."""
        data = payload(5000, seed=1)
        module_data = self.store(data)
        opens, sizes = self.calls("get_read_stream"), self.calls("get_size")
        self.assertEqual(self.replica.get_size(self.context, module_data), len(data))
        self.assertEqual(self.calls("get_read_stream") - opens, 1)  # the manifest
        self.assertEqual(self.calls("get_size") - sizes, 1)
        with self.replica.get_read_stream(self.context, module_data) as stream:
            self.assertEqual(self.calls("get_size") - sizes, 1, "the open asked the size again")
            self.assertEqual(stream.read(), data)
        self.assertEqual(self.calls("get_read_stream") - opens, 2)  # + the data, once

    def test_a_second_open_looks_again(self):
        data = payload(3000, seed=2)
        module_data = self.store(data)
        self.replica.get_size(self.context, module_data)
        self.assertEqual(self.read(module_data), data)
        sizes = self.calls("get_size")
        self.assertEqual(self.read(module_data), data)
        self.assertEqual(self.calls("get_size") - sizes, 1, "a reference was used twice")

    def test_another_object_is_not_opened_from_the_reference(self):
        first, second = payload(1000, seed=3), payload(1000, seed=4)
        first_md, second_md = self.store(first), self.store(second)
        self.replica.get_size(self.context, first_md)
        self.assertEqual(self.read(second_md), second)
        self.assertEqual(self.read(first_md), first)

    def test_an_object_deleted_after_get_size_is_not_found(self):
        module_data = self.store(payload(2000, seed=5))
        self.replica.get_size(self.context, module_data)
        self.replica.delete(self.context, module_data)
        with self.assertRaises(ObjectNotFound):
            self.replica.get_read_stream(self.context, module_data)

    def test_a_stale_reference_is_not_used(self):
        data = payload(2000, seed=6)
        module_data = self.store(data)
        with mock.patch.object(replica_module, "REFERENCE_TTL", -1.0):
            self.replica.get_size(self.context, module_data)
            sizes = self.calls("get_size")
            self.assertEqual(self.read(module_data), data)
        self.assertEqual(self.calls("get_size") - sizes, 1)


if __name__ == "__main__":
    unittest.main()
