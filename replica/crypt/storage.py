"""``CryptStorage``: a wrapper that stores only ciphertext in its inner location."""
import logging
import re
import threading
import time
import uuid
from types import MappingProxyType
from typing import Any, Callable, Dict, Optional, Tuple

from modules.errors import ConfigurationError, DataCorrupted, InvalidModuleData, StorageError
from modules.reports import ScrubReport
from modules.wrapper import INHERIT, StorageWrapper
from replica.crypt import format as fmt
from replica.crypt.keys import KeyRing, load_key
from replica.crypt.streams import DecryptingStream, EncryptingSource, read_exactly
from replica.wrapped import open_inner, parse_wrapper_args

__all__ = ["CryptStorage"]

log = logging.getLogger(__name__)

_MODULE_DATA = re.compile(r"\Acrypt1:([0-9a-f]{32}):(.+)\Z", re.S)
_OBJECT_ID = re.compile(r"\A[0-9a-f]{32}\Z")
#: Longest module_data accepted (inner module_data of any sane module fits).
MAX_MODULE_DATA = 16384
_OPTIONS = {"key_env", "key_file", "old_key_env", "old_key_file", "chunk_size"}
_REPEATABLE = {"old_key_env", "old_key_file"}
_SCRUB_PIECE = 1024 * 1024


class CryptStorage(StorageWrapper):
    """Encrypt every object (AES-256-GCM, per chunk) into one inner location.

    See ``docs/crypt.md`` for configuration, key rotation and what is and is
    not protected; :mod:`replica.crypt.format` for the construction.

    Args:
        *args: exactly one inner location, given like a replica location: a
            configured module's name, an inline JSON spec, or a
            ``file:///dir``, ``http(s)://`` or ``s3://`` URL; and options as
            ``"name=value"`` strings.
        key_env: the environment variable holding the 32-byte key (hex or
            base64). Exactly one of ``key_env`` and ``key_file`` is required.
        key_file: a file holding the key as hex, base64 or 32 raw bytes.
        old_key_env, old_key_file: older keys accepted for reading
            (repeatable; a list as keyword arguments).
        chunk_size: plaintext bytes per chunk for new objects, a power of two
            from 4096 to 524288 (default 262144).

    module_data is ``"crypt1:<object id>:<inner module_data>"``.

    Raises:
        ConfigurationError: a location or option that cannot be used, no key
            or two keys, or a key that cannot be read or is not 32 bytes (the
            message names the variable or file, never the key).
    """

    capability_rules = MappingProxyType({
        "repair": INHERIT,          # forwarded to the inner location
        "scrub": True,              # every chunk authenticated (plus the inner scrub if any)
        "verified_reads": True,     # AEAD: damaged ciphertext raises DataCorrupted
        "retries": INHERIT,         # one inner call per operation: retries are the inner's
        "placement": INHERIT,       # new_data_for forwarded; the object id is the given one
    })

    def __init__(self, *args: Any, **kwargs: Any):
        spec, options = parse_wrapper_args("CryptStorage", args, kwargs, _OPTIONS, _REPEATABLE)
        self._keys = _key_ring(options)
        self._chunk_size = _chunk_size(options.get("chunk_size"))
        location = open_inner(spec, owner=self)
        super().__init__(spec.name, location.module, close_inner=location.close)
        #: time source and sleep of scrub's rate limit (injectable for tests)
        self._clock: Callable[[], float] = time.monotonic
        self._sleep: Callable[[float], None] = time.sleep
        self._lock = threading.Lock()
        self._counters = dict.fromkeys((
            "objects_written", "bytes_encrypted", "bytes_decrypted", "authentication_failures",
            "scrubs"), 0)

    def __repr__(self) -> str:
        return "CryptStorage(%r, key_id=%s)" % (self.inner_name, self._keys.current_id.hex())

    # -- module_data --------------------------------------------------------

    def wrap_data(self, context: Optional[dict], inner_data: str,
                  object_id: Optional[str] = None) -> str:
        """Return ``"crypt1:<object id>:<inner>"`` (a new random id unless ``object_id``)."""
        if object_id is None:
            object_id = uuid.uuid4().hex
        elif not isinstance(object_id, str) or not _OBJECT_ID.match(object_id):
            raise InvalidModuleData("object_id must be 32 lowercase hex characters, got %r"
                                    % (object_id,))
        if not isinstance(inner_data, str) or not inner_data:
            raise StorageError("inner location %s returned module_data %r, not a non-empty str"
                               % (self.inner_name, inner_data))
        return "crypt1:%s:%s" % (object_id, inner_data)

    def inner_data(self, module_data: str) -> str:
        """Return the inner module_data (raises InvalidModuleData for anything else)."""
        return self._parse(module_data)[1]

    def _parse(self, module_data: Any) -> Tuple[str, str]:
        if not isinstance(module_data, str) or len(module_data) > MAX_MODULE_DATA:
            raise InvalidModuleData("not CryptStorage module_data: %r" % (
                module_data if not isinstance(module_data, str) else module_data[:60],),
                module_data=module_data if isinstance(module_data, str) else None)
        match = _MODULE_DATA.match(module_data)
        if not match:
            raise InvalidModuleData("not CryptStorage module_data (expected 'crypt1:<32 hex>:"
                                    "<inner>'): %r" % module_data[:60], module_data=module_data)
        return match.group(1), match.group(2)

    # -- the contract -------------------------------------------------------

    def assign(self, context: Optional[dict], module_data: str, stream) -> None:
        """Encrypt ``stream`` chunk by chunk into the inner location.

        Raises:
            InvalidModuleData: ``module_data`` is not a CryptStorage one.
            SourceStreamError: the source failed or is not binary.
            StorageError: the inner location's errors, naming it.
        """
        object_id, inner = self._parse(module_data)
        header = fmt.Header.new(self._keys.current_id, self._chunk_size)
        key = fmt.object_key(self._keys.current, header, object_id)
        source = EncryptingSource(stream, header, key, header.raw + object_id.encode("ascii"),
                                  on_chunk=lambda size: self._count(bytes_encrypted=size))
        self.call_inner(context, "assign", inner, source, module_data=module_data)
        self._count(objects_written=1)

    def get_read_stream(self, context: Optional[dict], module_data: str) -> DecryptingStream:
        """Open a seekable, authenticated plaintext stream.

        Reads fetch and decrypt only the chunks holding the bytes asked for.

        Raises:
            ObjectNotFound: nothing is stored for ``module_data``.
            InvalidModuleData: ``module_data`` is not a CryptStorage one.
            DataCorrupted: the stored object is not in this format, is
                truncated, was encrypted with a key that is not configured,
                or (while reading) fails authentication.
            StorageError: the inner location's errors, naming it.
        """
        object_id, inner = self._parse(module_data)
        stream = self.call_inner(context, "get_read_stream", inner, module_data=module_data)
        try:
            header, size = self._open_header(stream, module_data)
            key = self._object_key(header, object_id, module_data)
            result = DecryptingStream(
                stream, header, key, header.raw + object_id.encode("ascii"), size,
                "encrypted object %s at %s" % (object_id, self.inner_name),
                lambda error: self.rewrite_error(error, "read", module_data),
                on_failure=lambda: self._count(authentication_failures=1),
                on_bytes=lambda count: self._count(bytes_decrypted=count))
        except BaseException:
            stream.close()
            raise
        if size == 0:  # nothing will be read: authenticate the empty chunk now
            try:
                result.authenticate_first_chunk()
            except BaseException:
                result.close()
                raise
        return result

    def get_size(self, context: Optional[dict], module_data: str) -> int:
        """Return the exact plaintext size from the stored size and the header (one small read).

        Raises:
            ObjectNotFound: nothing is stored for ``module_data``.
            InvalidModuleData: ``module_data`` is not a CryptStorage one.
            DataCorrupted: the stored object is not in this format or its
                length does not end on a chunk.
            StorageError: the inner location's errors, naming it.
        """
        self._parse(module_data)
        stream = self.call_inner(context, "get_read_stream", self.inner_data(module_data),
                                 module_data=module_data)
        try:
            return self._open_header(stream, module_data)[1]
        finally:
            stream.close()

    def statistics(self, context: Optional[dict]) -> Dict[str, Any]:
        """The inner statistics plus ``encryption``: algorithm, chunk size, key ids, counters.

        Key ids (not keys) are shown so administrators can follow a rotation.
        Never raises.
        """
        result = super().statistics(context)
        with self._lock:
            counters = dict(self._counters)
        result["encryption"] = {"algorithm": "AES-256-GCM", "chunk_size": self._chunk_size,
                                "key_id": self._keys.current_id.hex(),
                                "readable_key_ids": self._keys.key_ids()}
        result["operations"] = counters
        return result

    def scrub(self, context: Optional[dict], module_data: str,
              rate: Optional[float] = None) -> Dict[str, Any]:
        """Authenticate every chunk of one object; also run the inner scrub when offered.

        Args:
            rate: at most this many plaintext bytes per second on average.

        Returns:
            dict: a :class:`~modules.reports.ScrubReport`: the inner scrub's
            report when the inner location offers scrub (else ``ok`` names
            the inner location), with ``authenticated`` True/False, and the
            inner location in ``damaged`` (``"<name> (decryption)"``) when a
            chunk fails authentication, or in ``unreachable`` when the inner
            scrub ran but no copy could be read to authenticate.

        Raises:
            InvalidModuleData: ``module_data`` is not a CryptStorage one.
            ObjectNotFound: nothing is stored for ``module_data``.
            StorageError: the inner location's errors, naming it.
        """
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                                 or rate <= 0):
            raise ValueError("rate must be a positive number of bytes per second, got %r" % rate)
        object_id, inner = self._parse(module_data)
        inner_scrub = self.inner_offers(context, "scrub")
        if inner_scrub:
            kwargs = {} if rate is None else {"rate": rate}
            report = ScrubReport.from_dict(self.call_inner(context, "scrub", inner,
                                                           module_data=module_data, **kwargs))
        else:
            report = ScrubReport(verified=True)
        report.object = object_id
        try:
            checked = self._authenticate(context, module_data, rate)
        except DataCorrupted as error:
            report.extra["authenticated"] = False
            report.damaged["%s (decryption)" % self.inner_name] = str(error)
        except StorageError as error:
            if not inner_scrub:
                raise
            # the inner scrub's report already says what is missing or unreachable
            report.extra["authenticated"] = False
            report.unreachable["%s (decryption)" % self.inner_name] = str(error)
        else:
            report.extra["authenticated"] = True
            report.extra["bytes_authenticated"] = checked
            report.size = checked
            if not inner_scrub:
                report.bytes_checked += checked
            if not report.ok and not report.damaged:
                report.ok.append(self.inner_name)
        self._count(scrubs=1)
        return report.to_dict()

    # -- helpers --------------------------------------------------------------

    def _authenticate(self, context: Optional[dict], module_data: str,
                      rate: Optional[float]) -> int:
        started = self._clock()
        done = 0
        with self.get_read_stream(context, module_data) as stream:
            while True:
                piece = stream.read(_SCRUB_PIECE)
                if not piece:
                    return done
                done += len(piece)
                if rate:
                    ahead = done / rate - (self._clock() - started)
                    if ahead > 0:
                        self._sleep(ahead)

    def _open_header(self, stream, module_data: str) -> Tuple[fmt.Header, int]:
        try:
            stored = stream.seek(0, 2)
            stored = stream.tell() if stored is None else stored
            stream.seek(0)
            raw = read_exactly(stream, fmt.HEADER_SIZE)
        except (StorageError, OSError) as error:
            raise self.rewrite_error(error, "read", module_data) from error
        try:
            header = fmt.Header.parse(raw)
            return header, fmt.plaintext_size(stored, header.chunk_size)
        except fmt.FormatError as error:
            self._count(authentication_failures=1)
            raise DataCorrupted("encrypted object at %s cannot be read: %s" % (
                self.inner_name, error), module_data=module_data, location=self.inner_name) from None

    def _object_key(self, header: fmt.Header, object_id: str, module_data: str) -> bytes:
        master = self._keys.get(header.key_id)
        if master is None:
            self._count(authentication_failures=1)
            raise DataCorrupted(
                "object %s at %s was encrypted with key id %s, which is not configured (configured: "
                "%s); give that key with old_key_env= or old_key_file=" % (
                    object_id, self.inner_name, header.key_id.hex(),
                    ", ".join(self._keys.key_ids())), module_data=module_data,
                location=self.inner_name)
        return fmt.object_key(master, header, object_id)

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                self._counters[name] += value


def _key_ring(options: Dict[str, Any]) -> KeyRing:
    given = [name for name in ("key_env", "key_file") if options.get(name) is not None]
    if len(given) != 1:
        raise ConfigurationError(
            "CryptStorage needs exactly one key: key_env=NAME (an environment variable holding "
            "32 bytes as hex or base64) or key_file=PATH; got %s" % (" and ".join(given) or "none"))
    if given[0] == "key_env":
        current = (load_key(env=options["key_env"]), "environment variable %s"
                   % options["key_env"])
    else:
        current = (load_key(path=options["key_file"]), "key file %s" % options["key_file"])
    old = [(load_key(env=name), "environment variable %s" % name)
           for name in options.get("old_key_env", [])]
    old += [(load_key(path=path), "key file %s" % path) for path in options.get("old_key_file", [])]
    return KeyRing(current, old)


def _chunk_size(value: Any) -> int:
    if value is None:
        return fmt.DEFAULT_CHUNK_SIZE
    try:
        size = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        size = None
    if isinstance(size, bool) or not isinstance(size, int) or size & (size - 1) \
            or not fmt.MIN_CHUNK_SIZE <= size <= fmt.MAX_WRITE_CHUNK_SIZE:
        raise ConfigurationError("chunk_size must be a power of two from %d to %d bytes, got %r"
                                 % (fmt.MIN_CHUNK_SIZE, fmt.MAX_WRITE_CHUNK_SIZE, value))
    return size
