"""The options of :class:`replica.http.HTTPStorage`, parsed and validated in one place.

The platform configures a module with a list of strings, so every option is
accepted both as a keyword argument and as a ``name=value`` string in the
positional arguments; the base URL may be the first positional argument on
its own::

    HTTPStorage("https://nas.example/dav/store/", "timeout=5", "password_env=DAV_PASSWORD",
                "username=backup")
"""
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple
from urllib.parse import quote, urlsplit, urlunsplit

from modules.errors import ConfigurationError

__all__ = [
    "HTTPOptions",
    "parse_options",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_RETRIES",
    "DEFAULT_RETRY_BACKOFF",
    "DEFAULT_RETRY_MAX_WAIT",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_TEMPORARY_GRACE",
    "DESTINATION_STYLES",
]

#: Seconds allowed to open a TCP (and TLS) connection.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds allowed between two bytes from the server (not a total deadline).
DEFAULT_READ_TIMEOUT = 30.0
#: Extra attempts after a transient failure (connection error, timeout, 5xx).
DEFAULT_RETRIES = 3
#: First pause between attempts, in seconds; it doubles on each retry.
DEFAULT_RETRY_BACKOFF = 0.2
#: Longest pause between two attempts, in seconds.
DEFAULT_RETRY_MAX_WAIT = 5.0
#: Connections kept open to the server (requests' ``pool_maxsize``).
DEFAULT_POOL_SIZE = 10
#: Bytes read from a source or a response per call.
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: Seconds a temporary upload is left alone before ``repair`` removes it.
DEFAULT_TEMPORARY_GRACE = 3600.0
#: How MOVE's Destination is sent: detected once, an absolute URL, or a path (RFC 4918 10.3).
DESTINATION_STYLES = ("auto", "absolute", "path")

_OPTION = re.compile(r"\A([a-z_][a-z0-9_]*)=(.*)\Z", re.DOTALL)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

# Options that may be given as strings; "sleep" (a callable) is keyword-only.
_STRING_OPTIONS = (
    "base_url", "username", "user", "password", "password_env", "token", "token_env",
    "verify_tls", "ca_bundle", "timeout", "connect_timeout", "read_timeout", "retries",
    "retry_backoff", "retry_max_wait", "pool_size", "chunk_size", "temporary_grace",
    "destination",
)
_SECRET_OPTIONS = {"password", "token"}


@dataclass(frozen=True)
class HTTPOptions:
    """Validated configuration of one HTTPStorage (secrets resolved, never printed)."""

    base_url: str
    username: Optional[str]
    password: Optional[str]
    token: Optional[str]
    verify: Any  # True, False or a CA bundle path, as requests takes it
    connect_timeout: float
    read_timeout: float
    retries: int
    retry_backoff: float
    retry_max_wait: float
    pool_size: int
    chunk_size: int
    sleep: Optional[Callable[[float], None]]
    temporary_grace: float = DEFAULT_TEMPORARY_GRACE
    destination: str = "auto"

    def __repr__(self) -> str:
        return "HTTPOptions(base_url=%r, auth=%s, verify=%r, timeouts=(%g, %g), retries=%d)" % (
            self.base_url, self.auth_description, self.verify, self.connect_timeout,
            self.read_timeout, self.retries)

    @property
    def auth_description(self) -> str:
        """Say which authentication is configured, without the secret."""
        if self.token is not None:
            return "bearer"
        if self.username is not None:
            return "basic(%s)" % self.username
        return "none"

    @property
    def timeout(self) -> Tuple[float, float]:
        """The ``(connect, read)`` timeout tuple for requests."""
        return (self.connect_timeout, self.read_timeout)


def parse_options(args: Sequence[Any], kwargs: Dict[str, Any],
                  environ: Optional[Dict[str, str]] = None) -> HTTPOptions:
    """Merge positional ``name=value`` strings and keywords into validated options.

    Returns:
        HTTPOptions: the configuration, with secrets read from the environment
        variables named by ``password_env`` / ``token_env``.

    Raises:
        ConfigurationError: an option is unknown, given twice, malformed or
            inconsistent; the message names it (never its secret value).
    """
    environ = os.environ if environ is None else environ
    values: Dict[str, Any] = {}
    for index, arg in enumerate(args):
        match = _OPTION.match(arg) if isinstance(arg, str) else None
        if match:
            name, value = match.group(1), match.group(2)
        elif index == 0:
            name, value = "base_url", arg
        else:
            shown = "a %s" % type(arg).__name__ if not isinstance(arg, str) else (
                "%r" % arg[:60] if "=" not in arg else "an argument without a valid name")
            raise ConfigurationError(
                "HTTPStorage argument %d is %s; after the base URL every argument must be "
                "'name=value' with one of: %s" % (index + 1, shown, ", ".join(_STRING_OPTIONS)))
        _put(values, name, value)
    for name, value in kwargs.items():
        _put(values, name, value)

    unknown = sorted(set(values) - set(_STRING_OPTIONS) - {"sleep"})
    if unknown:
        raise ConfigurationError("HTTPStorage does not know the option(s) %s; known: %s" % (
            ", ".join(unknown), ", ".join(_STRING_OPTIONS + ("sleep",))))

    if "user" in values and "username" in values:
        raise ConfigurationError("give either username or user (the same option), not both")
    username = _text(values, "username") if "username" in values else _text(values, "user")
    password = _secret(values, environ, "password", "password_env")
    token = _secret(values, environ, "token", "token_env")
    if token is not None and (username is not None or password is not None):
        raise ConfigurationError(
            "configure either basic authentication (username + password/password_env) or a "
            "bearer token (token/token_env), not both")
    if password is not None and username is None:
        raise ConfigurationError("a password was configured without username=")
    if username is not None and password is None:
        raise ConfigurationError(
            "username=%r needs password= or password_env=NAME_OF_ENVIRONMENT_VARIABLE" % username)
    if username is not None and ":" in username:
        raise ConfigurationError("username must not contain ':' (basic authentication)")

    verify: Any = _boolean(values, "verify_tls", True)
    ca_bundle = _text(values, "ca_bundle")
    if ca_bundle is not None:
        if verify is False:
            raise ConfigurationError("ca_bundle makes no sense with verify_tls=false; drop one")
        if not os.path.exists(ca_bundle):
            raise ConfigurationError("ca_bundle %r does not exist (give a PEM file or a "
                                     "directory of certificates)" % ca_bundle)
        verify = ca_bundle

    timeout = _number(values, "timeout", None)
    connect_timeout = _number(values, "connect_timeout", timeout or DEFAULT_CONNECT_TIMEOUT)
    read_timeout = _number(values, "read_timeout", timeout or DEFAULT_READ_TIMEOUT)
    retry_backoff = _number(values, "retry_backoff", DEFAULT_RETRY_BACKOFF, allow_zero=True)
    retry_max_wait = _number(values, "retry_max_wait", DEFAULT_RETRY_MAX_WAIT, allow_zero=True)

    temporary_grace = _number(values, "temporary_grace", DEFAULT_TEMPORARY_GRACE,
                              allow_zero=True, maximum=365 * 24 * 3600)
    destination = values.get("destination", "auto")
    if destination not in DESTINATION_STYLES:
        raise ConfigurationError("HTTPStorage option destination must be one of %s, got %r"
                                 % (", ".join(DESTINATION_STYLES), destination))

    sleep = values.get("sleep")
    if sleep is not None and not callable(sleep):
        raise ConfigurationError("sleep must be a callable taking seconds (for tests)")

    return HTTPOptions(
        base_url=_base_url(values.get("base_url")),
        username=username,
        password=password,
        token=token,
        verify=verify,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries=_integer(values, "retries", DEFAULT_RETRIES, minimum=0, maximum=100),
        retry_backoff=retry_backoff,
        retry_max_wait=max(retry_max_wait, retry_backoff),
        pool_size=_integer(values, "pool_size", DEFAULT_POOL_SIZE, minimum=1, maximum=1000),
        chunk_size=_integer(values, "chunk_size", DEFAULT_CHUNK_SIZE, minimum=4096,
                            maximum=256 * 1024 * 1024),
        sleep=sleep,
        temporary_grace=temporary_grace,
        destination=destination,
    )


# -- helpers ------------------------------------------------------------------

def _put(values: Dict[str, Any], name: str, value: Any) -> None:
    if name in values:
        raise ConfigurationError("HTTPStorage option %r is given twice" % name)
    values[name] = value


def _text(values: Dict[str, Any], name: str) -> Optional[str]:
    value = values.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\0" in value or "\n" in value:
        shown = "a secret" if name in _SECRET_OPTIONS else repr(value)[:60]
        raise ConfigurationError("HTTPStorage option %s must be a non-empty one-line string, "
                                 "got %s" % (name, shown))
    return value


def _secret(values: Dict[str, Any], environ, name: str, env_name: str) -> Optional[str]:
    direct = _text(values, name)
    variable = _text(values, env_name)
    if direct is not None and variable is not None:
        raise ConfigurationError("give either %s= or %s=, not both" % (name, env_name))
    if variable is None:
        return direct
    secret = environ.get(variable)
    if not secret:
        raise ConfigurationError(
            "%s=%s names an environment variable that is not set (or empty) in this "
            "process; export it before starting the server" % (env_name, variable))
    if "\n" in secret or "\r" in secret or "\0" in secret:
        raise ConfigurationError("the environment variable %s named by %s contains a line "
                                 "break or NUL" % (variable, env_name))
    return secret


def _boolean(values: Dict[str, Any], name: str, default: bool) -> bool:
    value = values.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigurationError("HTTPStorage option %s must be true or false, got %r" % (
        name, value))


def _number(values: Dict[str, Any], name: str, default: Optional[float],
            allow_zero: bool = False, maximum: float = 24 * 3600) -> Optional[float]:
    value = values.get(name, default)
    if value is None:
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero) \
            or number > maximum:
        raise ConfigurationError("HTTPStorage option %s must be a number of seconds %s, got %r"
                                 % (name, ">= 0" if allow_zero else "> 0", value))
    return number


def _integer(values: Dict[str, Any], name: str, default: int, minimum: int, maximum: int) -> int:
    value = values.get(name, default)
    try:
        number = int(value, 10) if isinstance(value, str) else value
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int) or not minimum <= number <= maximum:
        raise ConfigurationError("HTTPStorage option %s must be an integer from %d to %d, got %r"
                                 % (name, minimum, maximum, value))
    return number


def _base_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            "HTTPStorage needs the base URL of a WebDAV collection as its first argument, "
            "e.g. 'https://nas.example/dav/store/'; got %s" % (
                "nothing" if value is None else type(value).__name__ if not isinstance(value, str)
                else "an empty string"))
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as error:
        raise ConfigurationError("base URL is malformed: %s" % error) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError("base URL must start with http:// or https:// and name a host, "
                                 "got %r" % _without_userinfo(parts))
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            "base URL must not carry credentials (user:password@host); use username= with "
            "password_env= (or token_env=) so the secret stays out of the configuration")
    if parts.query or parts.fragment:
        raise ConfigurationError("base URL must not have a query (?...) or fragment (#...)")
    if any(char.isspace() for char in value.strip()) or "\0" in value:
        raise ConfigurationError("base URL must not contain spaces or control characters "
                                 "(write a space as %20)")
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")  # keep it ASCII for headers
    if not path.endswith("/"):
        path += "/"
    if "/../" in path or "/./" in path:
        raise ConfigurationError("base URL path must not contain '.' or '..' segments")
    netloc = parts.hostname if ":" not in parts.hostname else "[%s]" % parts.hostname
    if port is not None:
        netloc += ":%d" % port
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _without_userinfo(parts) -> str:
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
