"""The administrator's password and HTTP basic authentication.

The password comes from the environment variable ``VSM_ADMIN_PASSWORD``
when it is set, otherwise from the file ``admin-password`` in the data
directory, which is generated (random, mode 0600) at the first start.
The password is never logged, never put in an exception and never
returned by the API.
"""
import base64
import binascii
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Optional

from modules.errors import ConfigurationError

__all__ = ["ADMIN_USER", "PASSWORD_ENV", "PASSWORD_FILENAME", "AdminPassword",
           "load_admin_password", "check_basic_auth"]

log = logging.getLogger(__name__)

#: The only user name the host accepts.
ADMIN_USER = "administrator"

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
        with os.fdopen(fd, "w") as file:
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
        with open(path) as file:
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


def check_basic_auth(header: Optional[str], password: str) -> bool:
    """Return True when ``header`` (an ``Authorization`` value) names the administrator.

    The password is compared in constant time.
    """
    if not header:
        return False
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, separator, given = decoded.partition(b":")
    if not separator:
        return False
    user_ok = hmac.compare_digest(user, ADMIN_USER.encode())
    password_ok = hmac.compare_digest(given, password.encode("utf-8"))
    return user_ok and password_ok
