"""SimpleStorage under real filesystem faults."""
import io
import os
import shutil
import subprocess
import tempfile
import unittest

from modules.errors import (
    InsufficientStorage, InvalidModuleData, LocationUnavailable, ObjectNotFound, SourceStreamError,
)
from modules.testing import FailingSource, payload
from simple.simple import SimpleStorage


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


class TestMissingStorageDirectory(unittest.TestCase):
    def setUp(self):
        self.parent = tempfile.mkdtemp(prefix="vsm-simple-")
        self.addCleanup(shutil.rmtree, self.parent, True)
        self.root = os.path.join(self.parent, "mnt")
        os.mkdir(self.root)
        self.module = SimpleStorage(self.root)

    def test_removed_directory_is_never_recreated(self):
        module_data = self.module.new_data(None)
        self.module.assign(None, module_data, io.BytesIO(b"data"))
        shutil.rmtree(self.root)
        for call in (lambda: self.module.assign(None, self.module.new_data(None), io.BytesIO(b"x")),
                     lambda: self.module.available(None, module_data),
                     lambda: self.module.get_size(None, module_data),
                     lambda: self.module.get_read_stream(None, module_data),
                     lambda: self.module.delete(None, module_data)):
            with self.assertRaises(LocationUnavailable) as caught:
                call()
            self.assertIn("does not exist", str(caught.exception))
        self.assertFalse(os.path.exists(self.root), "SimpleStorage recreated its storage directory")
        stats = self.module.statistics(None)
        self.assertEqual(stats["capacity"], {"total": -1, "free": -1, "used": -1})
        self.assertEqual(stats["status"], "unavailable")
        self.assertIn("does not exist", stats["reason"])

    def test_directory_replaced_by_a_file(self):
        shutil.rmtree(self.root)
        with open(self.root, "w") as file:
            file.write("not a directory")
        with self.assertRaises(LocationUnavailable) as caught:
            self.module.assign(None, self.module.new_data(None), io.BytesIO(b"x"))
        self.assertIn("not a directory", str(caught.exception))
        self.assertEqual(self.module.statistics(None)["capacity"]["free"], -1)

    def test_missing_directory_at_construction_is_allowed_and_reported(self):
        module = SimpleStorage(os.path.join(self.parent, "not-mounted-yet"))
        self.assertEqual(module.statistics(None)["status"], "unavailable")
        with self.assertRaises(LocationUnavailable):
            module.available(None, module.new_data(None))


class TestWrites(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="vsm-simple-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.module = SimpleStorage(self.root)

    def stored_files(self):
        return [os.path.join(path, name) for path, _, names in os.walk(self.root) for name in names]

    def test_failed_source_leaves_no_temporary_file(self):
        module_data = self.module.new_data(None)
        with self.assertRaises(SourceStreamError) as caught:
            self.module.assign(None, module_data, FailingSource(payload(3000000), 2000000))
        self.assertIsInstance(caught.exception.__cause__, OSError)
        self.assertEqual(self.stored_files(), [])

    def test_text_stream_gets_a_clear_error(self):
        with self.assertRaises(SourceStreamError) as caught:
            self.module.assign(None, self.module.new_data(None), io.StringIO("text"))
        self.assertIn("binary stream", str(caught.exception))
        self.assertEqual(self.stored_files(), [])

    def test_temporary_files_left_by_a_crash_are_not_objects(self):
        module_data = self.module.new_data(None)
        directory = os.path.join(self.root, *module_data.split("/")[:2])
        os.makedirs(directory)
        name = module_data.split("/")[2]
        with open(os.path.join(directory, ".tmp-%s-deadbeef" % name), "wb") as file:
            file.write(b"half an object")
        self.assertFalse(self.module.available(None, module_data))
        with self.assertRaises(ObjectNotFound):
            self.module.get_size(None, module_data)
        with self.assertRaises(InvalidModuleData):
            self.module.available(None, "%s/.tmp-%s-deadbeef" % ("/".join(module_data.split("/")[:2]), name))

    def test_module_data_is_sharded(self):
        module_data = self.module.new_data(None)
        self.module.assign(None, module_data, io.BytesIO(b"x"))
        (path,) = self.stored_files()
        self.assertEqual(os.path.relpath(path, self.root), module_data)
        self.assertEqual(len(module_data.split("/")), 3)

    def test_no_file_descriptors_leak(self):
        before = open_fd_count()
        for index in range(50):
            module_data = self.module.new_data(None)
            self.module.assign(None, module_data, io.BytesIO(b"x" * index))
            with self.module.get_read_stream(None, module_data) as stream:
                stream.read()
            with self.assertRaises(SourceStreamError):
                self.module.assign(None, module_data, FailingSource(b"y" * 100, 50))
            self.module.delete(None, module_data)
        self.assertEqual(open_fd_count(), before)


class TestFullFilesystem(unittest.TestCase):
    """A location on a tiny tmpfs: ENOSPC becomes InsufficientStorage and leaves nothing."""

    def setUp(self):
        self.mount_point = tempfile.mkdtemp(prefix="vsm-tmpfs-")
        self.addCleanup(os.rmdir, self.mount_point)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", self.mount_point],
                                capture_output=True, text=True)
        if result.returncode != 0:
            self.skipTest("cannot mount a tmpfs here (%s); the full-filesystem check needs root"
                          % (result.stderr.strip() or "mount failed"))
        self.addCleanup(subprocess.run, ["umount", self.mount_point], capture_output=True)

    def test_enospc_is_insufficient_storage_and_leaves_nothing(self):
        module = SimpleStorage(self.mount_point)
        module_data = module.new_data(None)
        with self.assertRaises(InsufficientStorage):
            module.assign(None, module_data, io.BytesIO(payload(4 * 1024 * 1024)))
        self.assertFalse(module.available(None, module_data))
        leftovers = [name for _, _, names in os.walk(self.mount_point) for name in names]
        self.assertEqual(leftovers, [])
        small = module.new_data(None)
        module.assign(None, small, io.BytesIO(b"still works"))
        self.assertEqual(module.get_size(None, small), 11)
        self.assertGreater(module.statistics(None)["capacity"]["total"], 0)
