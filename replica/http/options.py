"""The options of :class:`replica.http.HTTPStorage`, declared once with :mod:`modules.options`.

The platform configures a module with a list of strings, so every option is
accepted both as a keyword argument and as a ``name=value`` string in the
positional arguments; the base URL may be the first positional argument on
its own::

    HTTPStorage("https://nas.example/dav/store/", "timeout=5", "password_env=DAV_PASSWORD",
                "username=backup")

Types, units (``timeout=500ms``, ``chunk_size=4MiB``, ``upload_grace=2h``),
boolean words and the ``<name>_env=VARIABLE`` form of secrets are the SDK's
(see docs/module-authors.md); the rules that tie options together (basic
*or* bearer authentication, ``ca_bundle`` with verification on, the base
URL's shape) are checked here.
"""
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote, urlsplit, urlunsplit

from modules.errors import ConfigurationError
from modules.options import Option, OptionParser
from modules.redaction import redact_text

__all__ = [
    "HTTPOptions",
    "OPTIONS",
    "parse_options",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_RETRIES",
    "DEFAULT_RETRY_BACKOFF",
    "DEFAULT_RETRY_MAX_WAIT",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_UPLOAD_GRACE",
    "DESTINATION_STYLES",
]

#: Seconds allowed to open a TCP (and TLS) connection.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds allowed between two bytes from the server (not a total deadline).
DEFAULT_READ_TIMEOUT = 30.0
#: Extra attempts after a transient failure (connection refused or reset, 5xx; not a timeout).
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
DEFAULT_UPLOAD_GRACE = 3600.0
#: How MOVE's Destination is sent: detected once, an absolute URL, or a path (RFC 4918 10.3).
DESTINATION_STYLES = ("auto", "absolute", "path")

_MAX_TIMEOUT = 24 * 3600


def _base_url(value: str) -> str:
    """Normalise the base URL (path quoted, one trailing slash); ValueError says what is wrong."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as error:
        raise ValueError("the base URL is malformed: %s" % error) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the base URL must start with http:// or https:// and name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "the base URL must not carry credentials (user:password@host); use username= with "
            "password_env= (or token_env=) so the secret stays out of the configuration")
    if parts.query or parts.fragment:
        raise ValueError("the base URL must not have a query (?...) or fragment (#...)")
    if any(char.isspace() for char in value.strip()):
        raise ValueError("the base URL must not contain spaces (write a space as %20)")
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")  # keep it ASCII for headers
    if not path.endswith("/"):
        path += "/"
    if "/../" in path or "/./" in path:
        raise ValueError("the base URL path must not contain '.' or '..' segments")
    netloc = parts.hostname if ":" not in parts.hostname else "[%s]" % parts.hostname
    if port is not None:
        netloc += ":%d" % port
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _username(value: str) -> str:
    if ":" in value:
        raise ValueError("a basic-authentication user name must not contain ':'")
    return value


def _ca_bundle(value: str) -> str:
    if not os.path.exists(value):
        raise ValueError("no such file or directory (give a PEM file or a directory of "
                         "certificates)")
    return value


def _sleep(value: Any) -> Any:
    if not callable(value):
        raise ValueError("sleep must be a callable taking seconds (for tests)")
    return value


_TIMEOUT = dict(minimum="1ms", maximum=_MAX_TIMEOUT)

#: The declared options of HTTPStorage (also the source of docs/http.md's table).
OPTIONS = OptionParser("HTTPStorage", [
    Option("base_url", "str", required=True, positional=True, validate=_base_url,
           help="the base URL of an existing WebDAV collection, e.g. "
                "https://nas.example/dav/store/"),
    Option("username", "str", validate=_username, aliases=("user",),
           help="HTTP basic authentication user (also user=)"),
    Option("password", "str", secret=True, env_option=True,
           help="the basic-authentication password (prefer password_env=)"),
    Option("token", "str", secret=True, env_option=True,
           help="a bearer token (prefer token_env=)"),
    Option("verify_tls", "bool", default=True, help="check the server's TLS certificate"),
    Option("ca_bundle", "str", validate=_ca_bundle,
           help="a PEM file or directory of a private certificate authority"),
    Option("timeout", "duration", help="sets connect_timeout and read_timeout", **_TIMEOUT),
    Option("connect_timeout", "duration", help="seconds to open a connection", **_TIMEOUT),
    Option("read_timeout", "duration", help="seconds between two bytes from the server",
           **_TIMEOUT),
    Option("retries", "int", default=DEFAULT_RETRIES, minimum=0, maximum=100,
           help="extra attempts after a transient failure"),
    Option("retry_backoff", "duration", default=DEFAULT_RETRY_BACKOFF, minimum=0,
           maximum=_MAX_TIMEOUT, help="first pause between attempts; doubles each retry"),
    Option("retry_max_wait", "duration", default=DEFAULT_RETRY_MAX_WAIT, minimum=0,
           maximum=_MAX_TIMEOUT, help="longest pause between attempts"),
    Option("pool_size", "int", default=DEFAULT_POOL_SIZE, minimum=1, maximum=1000,
           help="connections kept open to the server"),
    Option("chunk_size", "size", default=DEFAULT_CHUNK_SIZE, minimum=4096,
           maximum="256MiB", help="bytes read from a source or a response per call"),
    Option("upload_grace", "duration", default=DEFAULT_UPLOAD_GRACE, minimum=0,
           maximum="365d", help="age after which repair() removes a temporary upload"),
    Option("destination", "choice", default="auto", choices=DESTINATION_STYLES,
           help="MOVE's Destination form: detected once, absolute URL or path"),
    Option("sleep", "object", validate=_sleep,
           help="replaces time.sleep between retries (tests; keyword only)"),
])


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
    upload_grace: float = DEFAULT_UPLOAD_GRACE
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
                  environ: Optional[Mapping[str, str]] = None) -> HTTPOptions:
    """Merge positional ``name=value`` strings and keywords into validated options.

    Returns:
        HTTPOptions: the configuration, with secrets read from the environment
        variables named by ``password_env`` / ``token_env``.

    Raises:
        ConfigurationError: an option is unknown, given twice, malformed or
            inconsistent; the message names it (never a secret: URLs in it
            are redacted).
    """
    try:
        settings = OPTIONS.parse(args, kwargs, environ)
    except ConfigurationError as error:
        # The parser quotes a bad value; a base URL may carry user:password@.
        raise ConfigurationError(redact_text(str(error))) from None

    username = settings.username
    password, token = settings.password, settings.token
    if token is not None and (username is not None or password is not None):
        raise ConfigurationError(
            "configure either basic authentication (username + password/password_env) or a "
            "bearer token (token/token_env), not both")
    if password is not None and username is None:
        raise ConfigurationError("a password was configured without username=")
    if username is not None and password is None:
        raise ConfigurationError(
            "username=%r needs password= or password_env=NAME_OF_ENVIRONMENT_VARIABLE" % username)

    verify: Any = settings.verify_tls
    if settings.ca_bundle is not None:
        if verify is False:
            raise ConfigurationError("ca_bundle makes no sense with verify_tls=false; drop one")
        verify = settings.ca_bundle

    timeout = settings.timeout
    connect_timeout = settings.connect_timeout or timeout or DEFAULT_CONNECT_TIMEOUT
    read_timeout = settings.read_timeout or timeout or DEFAULT_READ_TIMEOUT
    return HTTPOptions(
        base_url=settings.base_url,
        username=username,
        password=password,
        token=token,
        verify=verify,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries=settings.retries,
        retry_backoff=settings.retry_backoff,
        retry_max_wait=max(settings.retry_max_wait, settings.retry_backoff),
        pool_size=settings.pool_size,
        chunk_size=settings.chunk_size,
        sleep=settings.sleep,
        upload_grace=settings.upload_grace,
        destination=settings.destination,
    )
