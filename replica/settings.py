"""Parse the replica's configuration: its locations and its ``name=value`` options.

The platform passes a vendor module's ``args`` as a list of strings, so
:class:`~replica.replica.ReplicaStorage` takes ``*locations, **options`` and
also accepts every option inside the list as ``"name=value"``. Everything is
checked here, at construction: a bad configuration raises
:class:`~modules.errors.ConfigurationError` saying what to fix, and never
echoes a secret (URLs are shown without user information or query; inline
specs are shown by module and name only).
"""
import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple
from urllib.parse import unquote, urlsplit, urlunsplit

from modules.errors import ConfigurationError
from replica.checksum import ALGORITHMS, ALIASES

__all__ = ["LocationSpec", "Settings", "parse_settings", "OPTION_NAMES", "MAX_LOCATIONS"]

#: Dotted path of the module that serves ``file://`` locations.
FILE_MODULE = "simple.simple.SimpleStorage"
#: Dotted path of the module that serves ``http://`` and ``https://`` locations.
HTTP_MODULE = "replica.http.HTTPStorage"
#: Dotted path of the module that serves ``s3://bucket/prefix`` locations.
S3_MODULE = "replica.s3.S3Storage"
#: The most locations one replica may have.
MAX_LOCATIONS = 32
#: The longest location name (names key module_data).
MAX_NAME_LENGTH = 128

_OPTION = re.compile(r"\A([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", re.S)
_MODULE_NAME = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_INLINE_KEYS = {"module", "args", "name", "url", "draining"}


@dataclass(frozen=True)
class LocationSpec:
    """One configured location, before any module is created.

    Attributes:
        name: the stable name that keys module_data, statistics and errors.
        kind: ``"named"`` (a module resolved through ``getModule``),
            ``"inline"`` (a JSON spec), ``"file"``, ``"http"`` or ``"s3"`` (a URL).
        module: the dotted class path to load (None for named modules).
        args: the constructor arguments for :func:`modules.loader.load_module`.
        target: what identifies the storage, to catch the same storage
            configured twice (credential-free; None when unknown).
        draining: the administrator is retiring this location: it receives
            no new copies, and repair moves the objects it would leave below
            ``write_quorum`` elsewhere (``"draining": true`` in a JSON spec).
    """

    name: str
    kind: str
    module: Optional[str] = None
    args: Any = None
    target: Optional[str] = None
    draining: bool = False


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one replica (see ``docs/replica.md``)."""

    locations: Tuple[LocationSpec, ...]
    write_quorum: int
    read_attempts: int
    read_backoff: float
    error_limit: int
    error_interval: float
    workers: int
    write_timeout: float
    call_timeout: float
    queue_timeout: float
    state_dir: Optional[str]
    journal_limit: int
    journal_interval: float
    integrity: str = "on"
    verify_available: str = "size"
    checksum: str = "xxh3-128"
    checksum_key_env: Optional[str] = None
    checksum_key_file: Optional[str] = None
    checksum_old_key_env: Optional[str] = None
    checksum_old_key_file: Optional[str] = None
    checksum_require_key: str = "off"

    def describe(self) -> Dict[str, Any]:
        """Return the options as a JSON-serialisable dict (no secrets: none are options)."""
        return {
            "write_quorum": self.write_quorum,
            "read_attempts": self.read_attempts,
            "read_backoff": self.read_backoff,
            "error_limit": self.error_limit,
            "error_interval": self.error_interval,
            "workers": self.workers,
            "write_timeout": self.write_timeout,
            "call_timeout": self.call_timeout,
            "queue_timeout": self.queue_timeout,
            "state_dir": self.state_dir,
            "journal_limit": self.journal_limit,
            "journal_interval": self.journal_interval,
            "integrity": self.integrity,
            "verify_available": self.verify_available,
            "checksum": self.checksum,
            "checksum_key_env": self.checksum_key_env,
            "checksum_key_file": self.checksum_key_file,
            "checksum_old_key_env": self.checksum_old_key_env,
            "checksum_old_key_file": self.checksum_old_key_file,
            "checksum_require_key": self.checksum_require_key,
            "draining": [spec.name for spec in self.locations if spec.draining],
        }


# name -> (type, default or None when it depends on the locations, lowest, highest)
_OPTIONS: Dict[str, Tuple[type, Any, float, float]] = {
    "write_quorum": (int, None, 1, MAX_LOCATIONS),
    "read_attempts": (int, 3, 1, 20),
    "read_backoff": (float, 0.02, 0.0, 10.0),
    "error_limit": (int, 10, 1, 1_000_000),
    "error_interval": (float, 60.0, 0.001, 86400.0),
    "workers": (int, None, 1, 1024),
    "write_timeout": (float, 60.0, 0.001, 86400.0),
    "call_timeout": (float, 30.0, 0.001, 86400.0),
    "queue_timeout": (float, 120.0, 0.001, 86400.0),
    "state_dir": (str, None, 0, 0),
    "journal_limit": (int, 100_000, 1, 100_000_000),
    "journal_interval": (float, 30.0, 0.0, 86400.0),
    "integrity": (tuple, "on", 0, 0),
    "verify_available": (tuple, "size", 0, 0),
    "checksum": (tuple, "xxh3-128", 0, 0),
    "checksum_key_env": (str, None, 0, 0),
    "checksum_key_file": (str, None, 0, 0),
    "checksum_old_key_env": (str, None, 0, 0),
    "checksum_old_key_file": (str, None, 0, 0),
    "checksum_require_key": (tuple, "off", 0, 0),
}

# option name -> the words it accepts (the first is the default)
_CHOICES: Dict[str, Tuple[str, ...]] = {
    "integrity": ("on", "off"),
    "verify_available": ("size", "deep"),
    "checksum": tuple(ALGORITHMS) + tuple(ALIASES),
    "checksum_require_key": ("off", "on"),
}

#: The option names :func:`parse_settings` accepts.
OPTION_NAMES = tuple(sorted(_OPTIONS))


def parse_settings(locations: Sequence[Any], options: Mapping[str, Any]) -> Settings:
    """Split ``locations`` into locations and ``name=value`` options and validate all.

    Returns:
        Settings: the validated configuration.

    Raises:
        ConfigurationError: no locations, too many, a location that cannot
            be understood, duplicate names or storages, an unknown or
            repeated option, or a value of the wrong type or out of range.
    """
    specs = []
    given: Dict[str, Any] = {}
    for item in locations:
        if isinstance(item, str):
            match = _OPTION.match(item.strip())
            if match and not item.lstrip().startswith("{"):
                _add_option(given, match.group(1), match.group(2), "args")
                continue
        specs.append(_parse_location(item))
    for name, value in options.items():
        _add_option(given, name, value, "keyword arguments")
    if not specs:
        raise ConfigurationError(
            "ReplicaStorage needs at least one location: a configured module's name, a JSON "
            "spec like '{\"module\": \"simple.simple.SimpleStorage\", \"args\": [\"/mnt/a\"], "
            "\"name\": \"a\"}', or a file:// or http(s):// URL")
    if len(specs) > MAX_LOCATIONS:
        raise ConfigurationError("ReplicaStorage takes at most %d locations, got %d"
                                 % (MAX_LOCATIONS, len(specs)))
    _check_unique(specs)
    values = {name: _convert(name, value) for name, value in given.items()}
    count = len(specs)
    values.setdefault("write_quorum", (count + 1) // 2)
    values.setdefault("workers", max(16, 8 * count))
    for name, (_, default, _, _) in _OPTIONS.items():
        values.setdefault(name, default)
    if not 1 <= values["write_quorum"] <= count:
        raise ConfigurationError(
            "write_quorum must be between 1 and the number of locations (%d), got %d"
            % (count, values["write_quorum"]))
    writable = sum(1 for spec in specs if not spec.draining)
    if writable < values["write_quorum"]:
        raise ConfigurationError(
            "only %d location(s) are not draining, fewer than write_quorum (%d): new objects could "
            "not be stored; add a location before draining this one, or lower write_quorum"
            % (writable, values["write_quorum"]))
    if values["workers"] < count:
        raise ConfigurationError(
            "workers must be at least the number of locations (%d) so that one write can reach "
            "every location at once, got %d" % (count, values["workers"]))
    if values["state_dir"] is not None:
        values["state_dir"] = _state_dir(values["state_dir"])
    values["checksum"] = ALIASES.get(values["checksum"], values["checksum"])
    return Settings(locations=tuple(specs), **values)


# -- options -----------------------------------------------------------------

def _add_option(given: Dict[str, Any], name: str, value: Any, where: str) -> None:
    if name not in _OPTIONS:
        raise ConfigurationError("unknown ReplicaStorage option %r in %s; known options: %s"
                                 % (name, where, ", ".join(OPTION_NAMES)))
    if name in given:
        raise ConfigurationError("option %r is given twice; give it once" % name)
    given[name] = value


def _convert(name: str, value: Any) -> Any:
    kind, _, lowest, highest = _OPTIONS[name]
    if kind is tuple:
        choices = _CHOICES[name]
        word = value.strip().lower() if isinstance(value, str) else value
        if word not in choices:
            raise ConfigurationError("option %s must be one of %s, got %r"
                                     % (name, ", ".join(choices), value))
        return word
    if kind is str:
        if not isinstance(value, (str, os.PathLike)) or not os.fspath(value).strip():
            raise ConfigurationError("option %s must be a non-empty %s, got %r" % (
            name, "name" if name.endswith("_env") else "path", value))
        return os.fspath(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigurationError("option %s must be a number, got %r" % (name, value))
    try:
        number = kind(value.strip()) if isinstance(value, str) else value
        if kind is int and number != int(number):
            raise ValueError(value)
        number = kind(number)
    except (TypeError, ValueError):
        raise ConfigurationError("option %s must be %s, got %r" % (
            name, "a whole number" if kind is int else "a number of seconds", value)) from None
    if isinstance(number, float) and not math.isfinite(number):
        raise ConfigurationError("option %s must be finite, got %r" % (name, value))
    if not lowest <= number <= highest:
        raise ConfigurationError("option %s must be between %s and %s, got %r"
                                 % (name, lowest, highest, value))
    return number


def _state_dir(path: str) -> str:
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigurationError("state_dir %s exists and is not a directory" % path)
    return path


# -- locations ---------------------------------------------------------------

def _parse_location(item: Any) -> LocationSpec:
    if isinstance(item, Mapping):
        return _inline(dict(item))
    if not isinstance(item, str):
        raise ConfigurationError(
            "a location must be a string (module name, JSON spec or URL) or a dict spec, got %s"
            % type(item).__name__)
    text = item.strip()
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except ValueError as error:
            raise ConfigurationError("a location starting with '{' must be a JSON object: %s"
                                     % error) from None
        if not isinstance(spec, dict):
            raise ConfigurationError("a JSON location must be an object")
        return _inline(spec)
    if "://" in text:
        return _url(text)
    if len(text) <= MAX_NAME_LENGTH and _MODULE_NAME.match(text):
        return LocationSpec(name=text, kind="named")
    hint = ""
    if text.startswith("/"):
        hint = " (for a local directory write file://%s)" % text
    raise ConfigurationError(
        "cannot understand location %r%s: give the name of a configured module (letters, digits, "
        "'_', '.', '-'), a JSON spec {\"module\": ..., \"args\": [...], \"name\": ...}, "
        "or a file:// or http(s):// URL" % (text[:80], hint))


def _inline(spec: Dict[str, Any]) -> LocationSpec:
    """Parse a JSON spec: ``module``/``args``/``name``, or ``url``, or only ``name`` (a
    configured module); each may add ``"draining": true``."""
    unknown = set(spec) - _INLINE_KEYS
    if unknown:
        raise ConfigurationError("unknown keys %s in a location spec; use module, args, name, "
                                 "url and draining" % ", ".join(sorted(map(str, unknown))))
    draining = spec.pop("draining", False)
    if not isinstance(draining, bool):
        raise ConfigurationError("\"draining\" in a location spec must be true or false, got %r"
                                 % (draining,))
    if "url" in spec or "module" not in spec:
        return dataclasses.replace(_reference(spec), draining=draining)
    return dataclasses.replace(_module_spec(spec), draining=draining)


def _reference(spec: Dict[str, Any]) -> LocationSpec:
    """A JSON spec that names a URL (``url``, ``name``) or a configured module (``name``)."""
    if "url" in spec:
        if set(spec) - {"url", "name"}:
            raise ConfigurationError("a location spec with \"url\" takes only name and draining "
                                     "besides it")
        url = spec["url"]
        if not isinstance(url, str) or "://" not in url:
            raise ConfigurationError("\"url\" in a location spec must be a file:// or http(s):// "
                                     "URL")
        parsed = _url(url)
        if spec.get("name") is None:
            return parsed
        _check_name(spec["name"], "location %s" % _credential_free(url))
        return dataclasses.replace(parsed, name=spec["name"])
    if "args" in spec:
        raise ConfigurationError("a location spec with \"args\" needs \"module\"")
    name = spec.get("name")
    if not isinstance(name, str) or not _MODULE_NAME.match(name) or len(name) > MAX_NAME_LENGTH:
        raise ConfigurationError(
            "a location spec needs \"module\" (a dotted path like 'simple.simple.SimpleStorage'), "
            "\"url\", or only \"name\": the name of a configured module")
    return LocationSpec(name=name, kind="named")


def _module_spec(spec: Dict[str, Any]) -> LocationSpec:
    module = spec.get("module")
    if not isinstance(module, str) or "." not in module.strip("."):
        raise ConfigurationError(
            "a location spec needs \"module\": a dotted path like 'simple.simple.SimpleStorage'")
    args = spec.get("args")
    if args is not None and not isinstance(args, (list, tuple, Mapping)):
        raise ConfigurationError("\"args\" of the %s location must be a list or an object" % module)
    name = spec.get("name")
    if name is None:
        name = _derive_inline_name(module, args)
    _check_name(name, "the %s location" % module)
    target = None
    if isinstance(args, (list, tuple)) and args and isinstance(args[0], str):
        if module == FILE_MODULE:
            target = "file:" + os.path.normpath(os.path.abspath(args[0]))
        else:
            target = "%s:%s" % (module, _credential_free(args[0]))
    return LocationSpec(name=name, kind="inline", module=module,
                        args=list(args) if isinstance(args, tuple) else args, target=target)


def _derive_inline_name(module: str, args: Any) -> str:
    if isinstance(args, (list, tuple)) and args and isinstance(args[0], str) and args[0].strip():
        return _credential_free(args[0].strip())
    raise ConfigurationError(
        "the %s location needs a \"name\" (its first argument is not a path or URL to name it "
        "after); names key the stored module_data, so choose one that never changes" % module)


def _url(text: str) -> LocationSpec:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        raise ConfigurationError("location %s is not a valid URL: %s"
                                 % (_credential_free(text), error)) from None
    scheme = parts.scheme.lower()
    fragment_name = unquote(parts.fragment) if parts.fragment else None
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError("file URL %s must name a local directory: file:///abs/dir"
                                     % _credential_free(text))
        if parts.query:
            raise ConfigurationError("file URL %s must not have a query"
                                     % _credential_free(text))
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ConfigurationError("file URL %r must hold an absolute path: file:///abs/dir"
                                     % text)
        path = os.path.normpath(path)
        name = fragment_name or "file://" + path
        _check_name(name, "file location %s" % path)
        return LocationSpec(name=name, kind="file", module=FILE_MODULE, args=[path],
                            target="file:" + path)
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise ConfigurationError("URL %s has no host" % _credential_free(text))
        base_url = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
        clean = _credential_free(base_url)
        name = fragment_name or clean
        _check_name(name, "location %s" % clean)
        host = parts.hostname.lower() + (":%d" % port if port else "")
        return LocationSpec(name=name, kind="http", module=HTTP_MODULE, args=[base_url],
                            target="%s://%s%s" % (scheme, host, parts.path.rstrip("/")))
    if scheme == "s3":  # endpoint and credentials: the standard AWS variables or profile
        if not parts.netloc or parts.netloc != parts.hostname or parts.query:
            raise ConfigurationError("S3 location %s must be s3://bucket/prefix#name (no "
                                     "credentials, port or query)" % _credential_free(text))
        url = urlunsplit(("s3", parts.netloc, parts.path, "", ""))
        name = fragment_name or url
        _check_name(name, "location %s" % url)
        return LocationSpec(name=name, kind="s3", module=S3_MODULE, args=[url],
                            target=url.rstrip("/"))
    raise ConfigurationError(
        "unknown scheme %r in location %s: use file:///abs/dir, http://, https:// or "
        "s3://bucket/prefix" % (parts.scheme, _credential_free(text)))


def _credential_free(text: str) -> str:
    """Return ``text`` without user information, query or fragment when it is a URL."""
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        if parts.port:
            host = "%s:%d" % (host, parts.port)
    except ValueError:
        return text.split("://", 1)[0] + "://<invalid URL>"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _check_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError("%s needs a non-empty string name, got %r" % (where, name))
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigurationError("the name of %s is longer than %d characters"
                                 % (where, MAX_NAME_LENGTH))
    if name != name.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ConfigurationError("the name %r of %s must not contain control characters or "
                                 "leading/trailing spaces" % (name, where))


def _check_unique(specs: Sequence[LocationSpec]) -> None:
    names: Dict[str, LocationSpec] = {}
    targets: Dict[str, LocationSpec] = {}
    for spec in specs:
        if spec.name in names:
            raise ConfigurationError(
                "location name %r is used twice; names must be unique (give a '#name' fragment on "
                "URLs or \"name\" in JSON specs)" % spec.name)
        names[spec.name] = spec
        if spec.target is not None:
            other = targets.get(spec.target)
            if other is not None:
                raise ConfigurationError(
                    "locations %r and %r are the same storage (%s); each copy must live on a "
                    "different location" % (other.name, spec.name, spec.target))
            targets[spec.target] = spec
