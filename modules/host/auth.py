"""The administrator's password and HTTP basic authentication.

The password comes from the environment variable ``VSM_ADMIN_PASSWORD``
when it is set, otherwise from the file ``admin-password`` in the data
directory, which is generated (random, mode 0600) at the first start.
The password is never logged, never put in an exception and never
returned by the API.

:class:`Authenticator` checks HTTP basic credentials (UTF-8, RFC 7617),
logs failed logins and throttles clients that keep guessing
(:mod:`modules.host.throttle`).
"""
import base64
import binascii
import hmac
import logging
import os
import secrets
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from werkzeug.datastructures import Authorization

from modules.errors import ConfigurationError

from modules.host.throttle import LoginThrottle

__all__ = ["ADMIN_USER", "PASSWORD_ENV", "PASSWORD_FILENAME", "REALM", "AdminPassword",
           "Authenticator", "Refusal", "load_admin_password", "basic_credentials",
           "check_basic_auth"]

log = logging.getLogger(__name__)

#: The only user name the host accepts.
ADMIN_USER = "administrator"

#: The challenge of 401 answers (RFC 7617: credentials are UTF-8).
REALM = 'Basic realm="vsm", charset="UTF-8"'

#: Environment variable holding the administrator's password.
PASSWORD_ENV = "VSM_ADMIN_PASSWORD"

#: The generated password's file inside the data directory.
PASSWORD_FILENAME = "admin-password"


@dataclass(frozen=True)
class AdminPassword:
    """The administrator's password and where it came from.

    ``source`` is ``'environment'`` or ``'file'``; ``path`` is the password
    file (also when the environment wins); ``generated`` is True when this
    start created the file (the only time the password may be printed).
    """

    secret: str
    source: str
    path: str
    generated: bool = False

    def __repr__(self) -> str:
        return "AdminPassword(source=%r, path=%r, generated=%r)" % (
            self.source, self.path, self.generated)

    __str__ = __repr__


def load_admin_password(data_dir: str, environ=None) -> AdminPassword:
    """Return the administrator's password, generating the file on the first start.

    Returns:
        AdminPassword: the secret and its source.

    Raises:
        ConfigurationError: the password file is empty or cannot be read or
            written (the message names the file and the environment variable).
    """
    environ = os.environ if environ is None else environ
    path = os.path.join(data_dir, PASSWORD_FILENAME)
    from_env = environ.get(PASSWORD_ENV)
    if from_env:
        return AdminPassword(from_env, "environment", path)
    if os.path.exists(path):
        return AdminPassword(_read_password_file(path), "file", path)
    secret = secrets.token_urlsafe(18)
    temporary = "%s.%s.tmp" % (path, secrets.token_hex(4))
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(secret + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # atomic: another process may have won the race
        except FileExistsError:
            return AdminPassword(_read_password_file(path), "file", path)
    except OSError as error:
        raise ConfigurationError("cannot create the password file %s (%s); set %s instead"
                                 % (path, error.strerror, PASSWORD_ENV)) from None
    finally:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
    log.info("generated the administrator password in %s", path)
    return AdminPassword(secret, "file", path, generated=True)


def _read_password_file(path: str) -> str:
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="utf-8") as file:
            secret = file.read().strip()
    except OSError as error:
        raise ConfigurationError("cannot read the password file %s (%s); fix its permissions or "
                                 "set %s" % (path, error.strerror, PASSWORD_ENV)) from None
    if mode & 0o077:
        log.warning("the password file %s can be read by other users (mode %o); "
                    "run: chmod 600 %s", path, mode & 0o777, path)
    if not secret:
        raise ConfigurationError("the password file %s is empty; delete it to generate a new "
                                 "password or set %s" % (path, PASSWORD_ENV))
    return secret


def basic_credentials(header: Optional[str]) -> Optional[Tuple[str, str]]:
    """Return ``(user, password)`` from an ``Authorization: Basic`` value, or None.

    Parsed by Werkzeug; the credentials are UTF-8 (RFC 7617 section 2.1,
    ``charset="UTF-8"``, which the host's 401 answers advertise) and
    normalised to Unicode NFC as that section asks (RFC 8265 OpaqueString).
    Returns None for another scheme, bad base64, invalid UTF-8 or a missing
    ``:``.
    """
    if not header:
        return None
    try:
        authorization = Authorization.from_header(header)
    except ValueError:  # Werkzeug raises UnicodeEncodeError for base64 with non-ASCII bytes
        return None
    if authorization is None or authorization.type != "basic":
        return None
    encoded = header.strip().partition(" ")[2].strip()
    try:  # Werkzeug accepts a value without ':' as a user with an empty password
        if b":" not in base64.b64decode(encoded, validate=True):
            return None
    except (binascii.Error, ValueError):
        return None
    return (unicodedata.normalize("NFC", authorization.username or ""),
            unicodedata.normalize("NFC", authorization.password or ""))


def check_basic_auth(header: Optional[str], password: str) -> bool:
    """Return True when ``header`` (an ``Authorization`` value) names the administrator.

    The credentials are UTF-8 (see :func:`basic_credentials`); the password
    is compared in constant time.
    """
    credentials = basic_credentials(header)
    if credentials is None:
        return False
    user, given = credentials
    user_ok = hmac.compare_digest(user.encode("utf-8"), ADMIN_USER.encode("utf-8"))
    password_ok = hmac.compare_digest(
        given.encode("utf-8"), unicodedata.normalize("NFC", password).encode("utf-8"))
    return user_ok and password_ok


@dataclass(frozen=True)
class Refusal:
    """Why a request is not let in: ``status`` 401 or 429, a message, extra headers."""

    status: int
    message: str
    headers: List[Tuple[str, str]] = field(default_factory=list)


class Authenticator:
    """Check the administrator's credentials, log failed logins and throttle guessers.

    Requests without an ``Authorization`` header are refused (401) but are
    not failed logins (browsers first ask without credentials). Wrong
    credentials are logged at WARNING with the client's address and the
    user name given (never the password) and counted by a
    :class:`~modules.host.throttle.LoginThrottle`: after a few, the client
    must wait a growing time, and meanwhile gets 429 with ``Retry-After``
    without its credentials being checked.

    Args:
        password: the administrator's password.
        throttle: the per-client table (default: a new one with the
            module's defaults).
    """

    def __init__(self, password: str, throttle: Optional[LoginThrottle] = None):
        self._password = password
        self.throttle = throttle if throttle is not None else LoginThrottle()

    def __repr__(self) -> str:
        return "Authenticator(clients=%d)" % len(self.throttle)

    def refusal(self, environ: Dict[str, Any]) -> Optional[Refusal]:
        """Return None when ``environ`` (WSGI) carries the administrator's credentials.

        Returns:
            Refusal: 401 (missing or wrong credentials, with
            ``WWW-Authenticate``) or 429 (the client must wait, with
            ``Retry-After`` in seconds).
        """
        header = environ.get("HTTP_AUTHORIZATION")
        if not header:
            return _unauthorized()
        client = environ.get("REMOTE_ADDR") or "unknown"
        wait = self.throttle.wait_for(client)
        if wait is not None:
            log.debug("login attempt from %s refused: it must wait %d s", client, wait)
            return Refusal(429, "too many failed logins from %s; try again in %d s"
                           % (client, wait), [("Retry-After", str(wait))])
        if check_basic_auth(header, self._password):
            self.throttle.succeeded(client)
            return None
        failures = self.throttle.failed(client)
        delay = self.throttle.wait_for(client)
        credentials = basic_credentials(header)
        user = credentials[0] if credentials else _describe_scheme(header)
        log.warning("failed login from %s as user %r (%d failure(s)%s)", client, user[:64],
                    failures, "; next attempt allowed in %d s" % delay if delay else "")
        return _unauthorized([("Retry-After", str(delay))] if delay else [])


#: Authorization schemes named in the log when credentials are not usable basic ones.
_KNOWN_SCHEMES = ("basic", "bearer", "digest", "negotiate", "ntlm", "hoba", "mutual",
                  "aws4-hmac-sha256")


def _describe_scheme(header: str) -> str:
    """Name the scheme of unusable credentials, and never more (the rest may be a secret)."""
    scheme = header.strip().partition(" ")[0].lower()
    return "(unusable %s credentials)" % (scheme if scheme in _KNOWN_SCHEMES else "unknown-scheme")


def _unauthorized(extra: Optional[List[Tuple[str, str]]] = None) -> Refusal:
    return Refusal(401, "log in as %r with HTTP basic authentication; the password is in the "
                        "host's data directory (file admin-password) or in %s"
                   % (ADMIN_USER, PASSWORD_ENV), [("WWW-Authenticate", REALM)] + (extra or []))
