"""Checksum choice for manifests (issue 10): xxh3-128 by default, older sha256 manifests keep
verifying, blake3, and keyed manifests that cannot be forged or moved without the key."""
import base64
import json
import os
import unittest

from modules.errors import ConfigurationError, DataCorrupted
from modules.testing import payload
from replica.checksum import ALGORITHMS, Checksum, Keyring, keyring_from_options, load_key
from replica.manifest import BLOCK_SIZE, BlockHasher, Manifest, parse
from tests.replica.helpers import MIB, ReplicaTestCase, temp_dir

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
OBJECT = "0123456789abcdef0123456789abcdef"


def manifest_of(data: bytes, checksum: Checksum, object_id=None) -> Manifest:
    hasher = BlockHasher(checksum, object_id=object_id)
    hasher.update(data)
    return hasher.manifest()


class TestAlgorithms(unittest.TestCase):

    def test_every_algorithm_round_trips_and_detects_a_flipped_byte(self):
        data = payload(2 * BLOCK_SIZE + 5, seed=3)
        for algorithm in ALGORITHMS:
            with self.subTest(algorithm=algorithm):
                keyring = Keyring(algorithm, KEY if algorithm in ("blake3-keyed", "hmac-sha256")
                                  else None)
                manifest = manifest_of(data, keyring.write, OBJECT)
                stored = json.loads(manifest.to_bytes())
                self.assertEqual(stored["algorithm"], algorithm)
                self.assertEqual(len(stored["blocks"][0]), ALGORITHMS[algorithm])
                again = parse(manifest.to_bytes(), "loc", keyring, OBJECT)
                self.assertTrue(again.verify_block(1, data[BLOCK_SIZE:2 * BLOCK_SIZE]))
                damaged = bytearray(data[BLOCK_SIZE:2 * BLOCK_SIZE])
                damaged[100] ^= 1
                self.assertFalse(again.verify_block(1, bytes(damaged)))

    def test_default_is_xxh3_128(self):
        manifest = manifest_of(b"hello", Keyring().write)
        self.assertEqual(json.loads(manifest.to_bytes())["algorithm"], "xxh3-128")

    def test_a_sha256_manifest_written_by_the_first_release_still_verifies(self):
        """Manifests written before the option existed are sha256 with a sha256 check."""
        import hashlib
        data = payload(BLOCK_SIZE + 10, seed=4)
        blocks = [hashlib.sha256(data[:BLOCK_SIZE]).hexdigest(),
                  hashlib.sha256(data[BLOCK_SIZE:]).hexdigest()]
        whole = hashlib.sha256(b"".join(bytes.fromhex(b) for b in blocks)).hexdigest()
        fields = {"v": 1, "algorithm": "sha256", "block_size": BLOCK_SIZE, "size": len(data),
                  "blocks": blocks, "digest": whole, "written_at": 1.0}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        fields["check"] = hashlib.sha256(canonical).hexdigest()
        manifest = parse(json.dumps(fields).encode(), "loc")
        self.assertEqual(manifest.algorithm, "sha256")
        self.assertTrue(manifest.verify_block(1, data[BLOCK_SIZE:]))


class TestKeyed(unittest.TestCase):

    def test_rewriting_copy_and_manifest_without_the_key_is_detected(self):
        keyring = Keyring("hmac-sha256", KEY)
        # A keyed-looking manifest sealed with another key is refused:
        other = manifest_of(b"evil bytes", Checksum("hmac-sha256", OTHER_KEY), OBJECT).to_bytes()
        with self.assertRaises(DataCorrupted) as caught:
            parse(other, "loc", keyring, OBJECT)
        self.assertIn("key id", str(caught.exception))
        # and a genuine manifest whose block digests were edited fails its keyed check
        genuine = json.loads(manifest_of(b"good bytes", keyring.write, OBJECT).to_bytes())
        genuine["blocks"] = [Checksum("hmac-sha256", OTHER_KEY).hexdigest(b"evil bytes")]
        with self.assertRaises(DataCorrupted):
            parse(json.dumps(genuine).encode(), "loc", keyring, OBJECT)

    def test_a_manifest_moved_to_another_object_is_refused(self):
        keyring = Keyring("blake3-keyed", KEY)
        raw = manifest_of(b"abc", keyring.write, OBJECT).to_bytes()
        parse(raw, "loc", keyring, OBJECT)
        with self.assertRaises(DataCorrupted):
            parse(raw, "loc", keyring, "f" * 32)

    def test_rotation_old_keys_verify_new_key_writes(self):
        old = manifest_of(b"abc", Checksum("hmac-sha256", OTHER_KEY), OBJECT).to_bytes()
        keyring = Keyring("hmac-sha256", KEY, old_keys=[OTHER_KEY])
        parse(old, "loc", keyring, OBJECT)
        self.assertEqual(keyring.write.key_id, Checksum("hmac-sha256", KEY).key_id)

    def test_require_key_refuses_unkeyed_manifests(self):
        unkeyed = manifest_of(b"abc", Checksum("xxh3-128")).to_bytes()
        parse(unkeyed, "loc", Keyring("hmac-sha256", KEY))
        with self.assertRaises(DataCorrupted):
            parse(unkeyed, "loc", Keyring("hmac-sha256", KEY, require_key=True))

    def test_keys_from_environment_and_file_never_quoted(self):
        environ = {"K_HEX": KEY.hex(), "K_B64": base64.b64encode(KEY).decode(), "BAD": "nope"}
        self.assertEqual(load_key(env="K_HEX", environ=environ), KEY)
        self.assertEqual(load_key(env="K_B64", environ=environ), KEY)
        directory = temp_dir(self)
        raw_path = os.path.join(directory, "raw")
        with open(raw_path, "wb") as handle:
            handle.write(KEY)
        self.assertEqual(load_key(path=raw_path), KEY)
        for bad in ({"env": "BAD"}, {"env": "UNSET"}, {"path": os.path.join(directory, "none")}):
            with self.subTest(bad=bad), self.assertRaises(ConfigurationError) as caught:
                load_key(environ=environ, **bad)
            self.assertNotIn("nope", str(caught.exception))
        with self.assertRaises(ConfigurationError):
            keyring_from_options("hmac-sha256")  # keyed without a key
        with self.assertRaises(ConfigurationError):
            keyring_from_options("xxh3-128", key_env="K_HEX", environ=environ)
        keyring = keyring_from_options("hmac-sha256", key_env="K_HEX", environ=environ)
        self.assertNotIn(KEY.hex(), repr(keyring) + repr(keyring.write))


class TestReplicaChecksumOption(ReplicaTestCase):

    def manifest_json(self, module_data: str, name: str) -> dict:
        index = self.names.index(name)
        child = json.loads(module_data)["copies"][name]["mf"]
        with open(os.path.join(self.dirs[index], *child.split("/")), "rb") as handle:
            return json.loads(handle.read())

    def test_new_objects_use_xxh3_and_sha256_objects_stay_readable(self):
        data = payload(2 * MIB + 3, seed=9)
        module_data = self.store(data)
        self.assertEqual(self.manifest_json(module_data, "loc-b")["algorithm"], "xxh3-128")
        older = self.make_replica(checksum="sha256")
        old_md = self.store(data, older)
        self.assertEqual(self.manifest_json(old_md, "loc-a")["algorithm"], "sha256")
        self.assertEqual(self.read(old_md), data)   # the default replica verifies sha256
        self.assertEqual(self.read(module_data, older), data)

    def test_a_flipped_byte_is_caught_with_xxh3(self):
        data = payload(3 * MIB, seed=10)
        module_data = self.store(data)
        path = self.copy_path(module_data, "loc-a")
        with open(path, "r+b") as handle:
            handle.seek(MIB + 7)
            value = handle.read(1)[0]
            handle.seek(MIB + 7)
            handle.write(bytes([value ^ 1]))
        self.assertEqual(self.read(module_data), data)
        self.assertEqual(list(self.replica.scrub(self.context, module_data)["damaged"]), ["loc-a"])

    def test_unknown_checksum_is_a_configuration_error(self):
        with self.assertRaises(ConfigurationError) as caught:
            self.make_replica(checksum="md5")
        self.assertIn("xxh3-128", str(caught.exception))


class TestReplicaKeyed(ReplicaTestCase):
    """A keyed replica: copies rewritten or swapped by someone without the key are caught."""

    def setUp(self):
        os.environ["VSM_TEST_MANIFEST_KEY"] = KEY.hex()
        self.addCleanup(os.environ.pop, "VSM_TEST_MANIFEST_KEY", None)
        self.options = {"checksum": "hmac-sha256", "checksum_key_env": "VSM_TEST_MANIFEST_KEY"}
        super().setUp()

    def paths(self, module_data: str, name: str):
        index = self.names.index(name)
        copy = json.loads(module_data)["copies"][name]
        return (os.path.join(self.dirs[index], *copy["md"].split("/")),
                os.path.join(self.dirs[index], *copy["mf"].split("/")))

    def test_copy_rewritten_with_a_fresh_unkeyed_manifest_is_damage(self):
        data = payload(MIB + 9, seed=21)
        module_data = self.store(data)
        data_path, manifest_path = self.paths(module_data, "loc-a")
        evil = payload(MIB + 9, seed=22)
        with open(data_path, "wb") as handle:
            handle.write(evil)
        forged = manifest_of(evil, Checksum("sha256"))   # what an attacker without the key can do
        with open(manifest_path, "wb") as handle:
            handle.write(forged.to_bytes())
        # the object's module_data says it was sealed with a key: no unkeyed manifest counts
        self.assertEqual(json.loads(module_data)["seal"], "keyed")
        self.assertEqual(self.read(module_data), data)
        self.assertIn("loc-a", self.replica.scrub(self.context, module_data)["damaged"])
        self.assertFalse(self.replica.available(self.context, module_data)
                         and not self.replica.scrub(self.context, module_data)["damaged"])

    def test_copies_swapped_between_objects_are_damage(self):
        first = self.store(payload(1000, seed=23))
        second_data = payload(1000, seed=24)
        second = self.store(second_data)
        for source, target in zip(self.paths(first, "loc-a"), self.paths(second, "loc-a")):
            with open(source, "rb") as handle, open(target, "wb") as out:
                out.write(handle.read())
        self.assertEqual(self.read(second), second_data)
        self.assertIn("loc-a", self.replica.scrub(self.context, second)["damaged"])

    def test_the_key_is_never_shown(self):
        module_data = self.store(b"secret-free statistics")
        shown = json.dumps(self.replica.statistics(self.context)) + repr(self.replica) + module_data
        self.assertNotIn(KEY.hex(), shown)
        self.assertEqual(self.read(module_data), b"secret-free statistics")

    def test_a_replica_without_the_key_refuses_keyed_manifests_not_silently(self):
        module_data = self.store(b"keyed")
        from replica.replica import ReplicaStorage
        keyless = ReplicaStorage(*self.names)
        self.addCleanup(keyless.close)
        with self.assertRaises(DataCorrupted) as caught:
            self.read(module_data, keyless)
        self.assertIn("key id", str(caught.exception))
