"""CryptStorage against tampering, truncation, swaps, wrong keys and leaks (issue 13).

Each test changes the ciphertext at rest (or the keys) the way an attacker or
a failing disk would and checks that a read raises DataCorrupted and never
returns wrong bytes. A naive implementation (one nonce per object, no index
or last-chunk binding, no binding to the module_data) fails them.
"""
import io
import json
import logging
import os
import unittest

from modules.context import make_context
from modules.errors import ConfigurationError, DataCorrupted, InvalidModuleData
from replica.crypt import CryptStorage
from replica.crypt import format as fmt
from tests.crypt.support import (
    KEY_ENV, OLD_KEY_ENV, CountingStorage, files_under, inner_path, set_key, temp_dir,
)

CHUNK = 4096
SEALED = CHUNK + fmt.TAG_SIZE
MIB = 1024 * 1024


class CryptCase(unittest.TestCase):
    def setUp(self):
        self.key = set_key(self)
        self.dir = temp_dir(self)
        self.crypt = self.make_crypt()
        self.context = make_context({})

    def make_crypt(self, *extra, **options):
        options.setdefault("chunk_size", CHUNK)
        if not any(item.startswith("key_") for item in extra) and "key_file" not in options:
            options.setdefault("key_env", KEY_ENV)
        crypt = CryptStorage("file://%s" % self.dir, *extra, **options)
        self.addCleanup(crypt.close)
        return crypt

    def store(self, data: bytes, crypt=None) -> str:
        crypt = crypt or self.crypt
        module_data = crypt.new_data(self.context)
        crypt.assign(self.context, module_data, io.BytesIO(data))
        return module_data

    def read(self, module_data: str, crypt=None) -> bytes:
        with (crypt or self.crypt).get_read_stream(self.context, module_data) as stream:
            return stream.read()

    def path(self, module_data: str) -> str:
        return inner_path(self.dir, module_data)

    def assertUnreadable(self, module_data: str, crypt=None):
        with self.assertRaises(DataCorrupted):
            data = self.read(module_data, crypt)
            self.fail("read returned %d bytes instead of raising DataCorrupted" % len(data))


class TestNothingInPlaintext(CryptCase):
    def test_known_text_is_not_found_at_rest(self):
        """Issue 13: nothing in plaintext at rest (repeated text, and its chunk-sized pieces)."""
        text = b"CONFIDENTIAL-customer-record-4711;" * 5000
        module_data = self.store(text)
        self.assertEqual(self.read(module_data), text)
        stored = b"".join(open(path, "rb").read() for path in files_under(self.dir))
        self.assertGreater(len(stored), len(text))
        self.assertNotIn(b"CONFIDENTIAL", stored)
        self.assertNotIn(b"customer-record", stored)

    def test_the_same_plaintext_twice_gives_different_ciphertext(self):
        first, second = self.store(b"same" * 3000), self.store(b"same" * 3000)
        with open(self.path(first), "rb") as a, open(self.path(second), "rb") as b:
            self.assertNotEqual(a.read()[fmt.HEADER_SIZE:], b.read()[fmt.HEADER_SIZE:])


class TestTampering(CryptCase):
    def flip(self, module_data: str, offset: int) -> None:
        with open(self.path(module_data), "r+b") as file:
            file.seek(offset)
            byte = file.read(1)
            file.seek(offset)
            file.write(bytes([byte[0] ^ 0x01]))

    def test_a_flipped_bit_in_a_chunk_is_detected_and_other_chunks_still_read(self):
        data = os.urandom(5 * CHUNK + 100)
        module_data = self.store(data)
        self.flip(module_data, fmt.chunk_offset(2, CHUNK) + 77)
        self.assertUnreadable(module_data)
        with self.crypt.get_read_stream(self.context, module_data) as stream:
            stream.seek(CHUNK * 4 + 10)
            self.assertEqual(stream.read(50), data[CHUNK * 4 + 10:CHUNK * 4 + 60])
            stream.seek(CHUNK * 2 + 5)
            with self.assertRaises(DataCorrupted):
                stream.read(10)

    def test_a_flipped_bit_in_a_tag_or_the_header_is_detected(self):
        for offset in (fmt.chunk_offset(1, CHUNK) - 1, 5, 20, fmt.HEADER_SIZE - 5):
            with self.subTest(offset=offset):
                data = os.urandom(3 * CHUNK)
                module_data = self.store(data)
                self.flip(module_data, offset)
                with self.assertRaises(DataCorrupted):
                    self.read(module_data)

    def test_an_empty_object_is_authenticated_when_opened(self):
        module_data = self.store(b"")
        self.assertEqual(self.read(module_data), b"")
        self.flip(module_data, fmt.HEADER_SIZE + 3)
        with self.assertRaises(DataCorrupted):
            self.crypt.get_read_stream(self.context, module_data).close()

    def test_counters_count_authentication_failures(self):
        module_data = self.store(os.urandom(2 * CHUNK))
        self.flip(module_data, fmt.HEADER_SIZE + 1)
        self.assertUnreadable(module_data)
        stats = self.crypt.statistics(self.context)
        self.assertGreaterEqual(stats["operations"]["authentication_failures"], 1)


class TestTruncationAndExtension(CryptCase):
    def test_dropping_the_last_chunk_is_detected(self):
        """Truncation at a chunk boundary: the new last chunk lacks the last flag."""
        data = os.urandom(4 * CHUNK + 10)
        module_data = self.store(data)
        with open(self.path(module_data), "r+b") as file:
            file.truncate(fmt.chunk_offset(4, CHUNK))
        self.assertEqual(self.crypt.get_size(self.context, module_data), 4 * CHUNK)
        self.assertUnreadable(module_data)

    def test_dropping_whole_chunks_of_an_exact_multiple_is_detected(self):
        module_data = self.store(os.urandom(4 * CHUNK))
        with open(self.path(module_data), "r+b") as file:
            file.truncate(fmt.chunk_offset(2, CHUNK))
        self.assertUnreadable(module_data)

    def test_truncation_inside_a_chunk_is_detected_by_get_size_and_reads(self):
        module_data = self.store(os.urandom(3 * CHUNK))
        with open(self.path(module_data), "r+b") as file:
            file.truncate(fmt.chunk_offset(2, CHUNK) + 7)
        with self.assertRaises(DataCorrupted):
            self.crypt.get_size(self.context, module_data)
        with self.assertRaises(DataCorrupted):
            self.crypt.get_read_stream(self.context, module_data).close()

    def test_appended_chunks_are_detected(self):
        data = os.urandom(2 * CHUNK + 5)
        module_data = self.store(data)
        path = self.path(module_data)
        with open(path, "rb") as file:
            sealed = file.read()
        with open(path, "ab") as file:
            file.write(sealed[fmt.chunk_offset(0, CHUNK):fmt.chunk_offset(1, CHUNK)])
        self.assertUnreadable(module_data)

    def test_an_object_shorter_than_the_header(self):
        module_data = self.store(b"abc")
        with open(self.path(module_data), "r+b") as file:
            file.truncate(10)
        with self.assertRaises(DataCorrupted):
            self.crypt.get_size(self.context, module_data)


class TestSwaps(CryptCase):
    def test_reordered_chunks_are_detected(self):
        module_data = self.store(os.urandom(4 * CHUNK))
        path = self.path(module_data)
        with open(path, "rb") as file:
            sealed = bytearray(file.read())
        one = sealed[fmt.chunk_offset(1, CHUNK):fmt.chunk_offset(2, CHUNK)]
        two = sealed[fmt.chunk_offset(2, CHUNK):fmt.chunk_offset(3, CHUNK)]
        sealed[fmt.chunk_offset(1, CHUNK):fmt.chunk_offset(3, CHUNK)] = two + one
        with open(path, "wb") as file:
            file.write(sealed)
        self.assertUnreadable(module_data)

    def test_a_chunk_swapped_in_from_another_object_is_detected(self):
        first = self.store(os.urandom(3 * CHUNK))
        second = self.store(os.urandom(3 * CHUNK))
        with open(self.path(first), "rb") as file:
            foreign = file.read()[fmt.chunk_offset(1, CHUNK):fmt.chunk_offset(2, CHUNK)]
        with open(self.path(second), "r+b") as file:
            file.seek(fmt.chunk_offset(1, CHUNK))
            file.write(foreign)
        self.assertUnreadable(second)

    def test_a_whole_object_swapped_with_another_is_detected(self):
        """Issue 13: inner objects swapped with each other (header included) do not decrypt."""
        first_data, second_data = os.urandom(2 * CHUNK + 3), os.urandom(2 * CHUNK + 3)
        first, second = self.store(first_data), self.store(second_data)
        path_one, path_two = self.path(first), self.path(second)
        os.rename(path_one, path_one + ".x")
        os.rename(path_two, path_one)
        os.rename(path_one + ".x", path_two)
        self.assertUnreadable(first)
        self.assertUnreadable(second)

    def test_module_data_pointing_at_another_objects_ciphertext_is_detected(self):
        """Same inner data, another object id: the ciphertext is bound to its own id."""
        module_data = self.store(b"bound to its id" * 100)
        object_id, inner = module_data.split(":")[1], module_data.split(":", 2)[2]
        forged = "crypt1:%s:%s" % (object_id[::-1], inner)
        self.assertUnreadable(forged)


class TestKeys(CryptCase):
    def test_a_wrong_key_raises_data_corrupted_naming_the_key_id(self):
        module_data = self.store(b"secret" * 100)
        set_key(self, OLD_KEY_ENV)
        other = self.make_crypt(key_env=OLD_KEY_ENV)
        with self.assertRaises(DataCorrupted) as caught:
            self.read(module_data, other)
        self.assertIn("key id", str(caught.exception))
        self.assertIn("old_key_env", str(caught.exception))

    def test_rotation_reads_old_objects_and_writes_with_the_new_key(self):
        old_object = self.store(b"written with the old key")
        set_key(self, OLD_KEY_ENV, self.key)  # the old key moves to OLD_KEY_ENV
        set_key(self, KEY_ENV)                # and KEY_ENV gets a new one
        rotated = self.make_crypt(old_key_env=OLD_KEY_ENV)
        self.assertEqual(self.read(old_object, rotated), b"written with the old key")
        new_object = self.store(b"written with the new key", rotated)
        self.assertEqual(self.read(new_object, rotated), b"written with the new key")
        stats = rotated.statistics(self.context)["encryption"]
        self.assertEqual(len(stats["readable_key_ids"]), 2)
        new_only = self.make_crypt()
        self.assertEqual(self.read(new_object, new_only), b"written with the new key")
        self.assertUnreadable(old_object, new_only)

    def test_keys_from_files_hex_base64_and_raw(self):
        key = os.urandom(32)
        texts = {"hex": key.hex().encode() + b"\n", "base64": __import__("base64").b64encode(key),
                 "raw": key}
        written = None
        for kind, content in texts.items():
            with self.subTest(kind=kind):
                path = os.path.join(temp_dir(self), "key")
                with open(path, "wb") as file:
                    file.write(content)
                crypt = self.make_crypt(key_file=path)
                if written is None:
                    written = self.store(b"one key, three spellings", crypt)
                self.assertEqual(self.read(written, crypt), b"one key, three spellings")

    def test_unusable_keys_are_configuration_errors_that_never_show_the_key(self):
        secret = "ab" * 31  # 62 hex characters: one byte short
        set_key(self, OLD_KEY_ENV, secret)
        missing_file = os.path.join(self.dir, "missing")
        cases = [
            ({"key_env": OLD_KEY_ENV}, "not usable"),
            ({"key_env": "VSM_CRYPT_TEST_UNSET_VARIABLE"}, "not set"),
            ({"key_file": missing_file}, "cannot read key file"),
            ({}, "exactly one key"),
            ({"key_env": KEY_ENV, "key_file": missing_file}, "exactly one key"),
            ({"key_env": KEY_ENV, "chunk_size": "3000"}, "power of two"),
            ({"key_env": KEY_ENV, "chunk_size": str(MIB)}, "power of two"),
            ({"key_env": KEY_ENV, "colour": "red"}, "unknown CryptStorage option"),
        ]
        for options, expected in cases:
            with self.subTest(options=options):
                with self.assertRaises(ConfigurationError) as caught:
                    CryptStorage("file://%s" % self.dir, **options)
                self.assertIn(expected, str(caught.exception))
                self.assertNotIn(secret, str(caught.exception))
                self.assertNotIn(self.key, str(caught.exception))
        with self.assertRaises(ConfigurationError):
            CryptStorage("file://%s" % self.dir, "file:///tmp", key_env=KEY_ENV)

    def test_keys_never_appear_in_repr_statistics_errors_or_logs(self):
        key_bytes = __import__("base64").b64decode(self.key)
        forbidden = [self.key, key_bytes.hex(), repr(key_bytes)[2:-1][:20]]
        with self.assertLogs(level=logging.DEBUG) as logs:
            logging.getLogger("replica").debug("log capture started")
            module_data = self.store(b"payload")
            with open(self.path(module_data), "r+b") as file:
                file.seek(fmt.HEADER_SIZE + 2)
                file.write(b"\0\0")
            try:
                self.read(module_data)
            except DataCorrupted as error:
                error_text = str(error)
            try:
                self.crypt.get_size(self.context, "crypt1:" + "0" * 32 + ":zz/zz/nope")
            except Exception as error:  # an SDK error about the inner module_data
                error_text += str(error)
        shown = " ".join([repr(self.crypt), json.dumps(self.crypt.statistics(self.context)),
                          error_text, " ".join(logs.output), repr(vars(self.crypt).get("_keys"))])
        for text in forbidden:
            self.assertNotIn(text, shown)


class TestSeekCostAndSize(unittest.TestCase):
    """Issue 13: a 10-byte read anywhere costs at most 2 MiB of inner reads; get_size one small read."""

    def setUp(self):
        set_key(self)
        self.inner = CountingStorage(temp_dir(self))
        self.context = make_context({"counted": self.inner})
        self.crypt = CryptStorage("counted", "key_env=%s" % KEY_ENV, "chunk_size=524288")
        self.data = os.urandom(5 * MIB + 333)
        self.module_data = self.crypt.new_data(self.context)
        self.crypt.assign(self.context, self.module_data, io.BytesIO(self.data))

    def test_ten_byte_reads_anywhere(self):
        size = len(self.data)
        for offset in (0, MIB - 5, 2 * MIB + 12345, size - 10, size - 3):
            with self.subTest(offset=offset):
                self.inner.reset()
                with self.crypt.get_read_stream(self.context, self.module_data) as stream:
                    stream.seek(offset)
                    self.assertEqual(stream.read(10), self.data[offset:offset + 10])
                self.assertLessEqual(self.inner.bytes_read, 2 * MIB)
                self.assertEqual(self.inner.streams_opened, 1)

    def test_get_size_is_exact_with_one_small_read(self):
        self.inner.reset()
        self.assertEqual(self.crypt.get_size(self.context, self.module_data), len(self.data))
        self.assertLessEqual(self.inner.bytes_read, fmt.HEADER_SIZE)
        self.assertLessEqual(self.inner.streams_opened, 1)

    def test_invalid_module_data_is_rejected_before_any_inner_call(self):
        for value in ("crypt1:nothex:aa", "crypt2:%s:x" % ("0" * 32), "plain", None, 7):
            with self.subTest(value=value):
                with self.assertRaises(InvalidModuleData):
                    self.crypt.get_size(self.context, value)
        self.assertEqual(self.inner.streams_opened, 0)


if __name__ == "__main__":
    unittest.main()

