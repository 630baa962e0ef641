"""The SDK's exceptions: one root, two families.

``StorageError`` is the root; everything a module raises on purpose derives
from it, so a host can catch one class.

* **Object errors** (:class:`ObjectError`) are about one piece of data and
  carry its ``module_data``: :class:`ObjectNotFound`,
  :class:`InvalidModuleData`, :class:`DataCorrupted`.  Retrying the same call
  at the same location gives the same answer; another location may still
  hold a good copy.
* **Location errors** (:class:`LocationError`) are about the storage an
  operation ran against and carry the location's name and the cause:
  :class:`LocationUnavailable` (worth retrying, here later or elsewhere now),
  :class:`InsufficientStorage` (retry only after space is freed),
  :class:`AuthenticationFailed` (fix the credentials; never retried).
* :class:`ConfigurationError` is raised when a module is configured with
  arguments it cannot use. Fix the configuration; retrying never helps.

Builtins are mixed in where a generic caller benefits: ``ObjectNotFound`` is
a ``LookupError``, ``InvalidModuleData`` and ``ConfigurationError`` are
``ValueError``\\ s, ``LocationUnavailable`` and ``InsufficientStorage`` are
``OSError``\\ s, ``LocationTimeout`` is a ``TimeoutError``.

The failure model
-----------------
Every error carries its attributes as constructor keywords (never set on a
raised instance afterwards):

* ``location``: the name of the location the error is about (None when not
  about one location);
* ``retryable``: whether the same call may succeed later or at another
  location; the class sets the default (True only for
  :class:`LocationUnavailable` and its subclasses), a raiser may override it
  (an HTTP 501 or a TLS failure is a ``LocationUnavailable`` that will not
  change by itself);
* ``status``: the HTTP status the error was made from (None otherwise);
* ``failures``: for an error that sums up several locations (a write below
  its quorum, a read no copy could serve), the error of each location by
  name.

:func:`is_transient` is the one rule that decides what is retried, by every
retry policy of the SDK. :func:`format_failures` is the one way to show
"failures by location" to a person or a log; it masks secrets.
"""
from typing import Any, Mapping, Optional

from modules.redaction import redact_text

__all__ = [
    "StorageError",
    "ObjectError",
    "ObjectNotFound",
    "InvalidModuleData",
    "DataCorrupted",
    "LocationError",
    "LocationUnavailable",
    "LocationTimeout",
    "InsufficientStorage",
    "AuthenticationFailed",
    "ConfigurationError",
    "SourceStreamError",
    "Unsupported",
    "is_transient",
    "describe_error",
    "format_failures",
]

#: Longest text one location's failure takes in :func:`format_failures`.
_MAX_FAILURE_TEXT = 500


class StorageError(Exception):
    """Root of every error the SDK and its modules raise on purpose.

    Args:
        message: what went wrong and what to do about it.
        location: the name of the location the error is about, if any.
        retryable: override the class's :attr:`retryable` (None: keep it).
        status: the HTTP status the error was made from, if any.
        failures: location name -> that location's error, for an error that
            sums up several locations (a quorum not reached, no copy readable).
    """

    #: Class default: whether the same call may succeed later or elsewhere
    #: (see :func:`is_transient` for what is retried at the same location).
    retryable = False

    def __init__(self, message: str = "", *, location: Optional[str] = None,
                 retryable: Optional[bool] = None, status: Optional[int] = None,
                 failures: Optional[Mapping[str, BaseException]] = None):
        super().__init__(message)
        self.location = location
        if retryable is not None:
            self.retryable = bool(retryable)
        self.status = status
        self.failures = dict(failures) if failures else {}


# -- errors about one object -------------------------------------------------

class ObjectError(StorageError):
    """An error about one object; ``module_data`` names it (may be None)."""

    def __init__(self, message: str = "", *, module_data=None, location: Optional[str] = None,
                 **keywords: Any):
        super().__init__(message, location=location, **keywords)
        self.module_data = module_data


class ObjectNotFound(ObjectError, LookupError):
    """No data is stored for this module_data here (never assigned, or deleted).

    Not worth retrying at the same location; another location may hold a copy.
    """


class InvalidModuleData(ObjectError, ValueError):
    """The module_data is not something this module produced.

    Malformed, of the wrong type, or naming a place outside the module's
    storage. Never retryable: the caller passed the wrong value.
    """


class DataCorrupted(ObjectError):
    """The stored bytes fail verification (wrong size or checksum).

    Not worth retrying at the same location; read another copy and repair
    this one.
    """


# -- errors about an operation or a location --------------------------------

class LocationError(StorageError):
    """An error about the storage an operation ran against.

    ``location`` names it (a module's own name, a directory, a URL without
    credentials); ``__cause__`` holds the underlying error when there is one.
    """


class LocationUnavailable(LocationError, OSError):
    """The storage cannot be reached or used right now.

    Worth retrying, after a pause or at another location.
    """

    retryable = True


class LocationTimeout(LocationUnavailable, TimeoutError):
    """The storage did not answer within the configured time.

    ``retryable`` (worth trying later or elsewhere) but not transient in the
    sense of :func:`is_transient`: a timeout means "this location is slow
    now", and another attempt there costs the caller the whole timeout
    again. Callers with other locations move on to the next one, as
    OpenStack Swift's proxy does with a node that timed out.
    """


class InsufficientStorage(LocationError, OSError):
    """The storage has no room for the data. Retry only after freeing space."""


class AuthenticationFailed(LocationError, PermissionError):
    """The storage refused our credentials. Fix them; never retried."""


class ConfigurationError(StorageError, ValueError):
    """A module or host was given configuration it cannot use.

    The message says which argument is wrong and what is expected. Never
    retryable.
    """


class SourceStreamError(StorageError):
    """The stream given to ``assign`` failed or is not a binary stream.

    The source's own error is chained as ``__cause__``. Nothing was stored.
    Retrying helps only with a fresh source stream.
    """


class Unsupported(StorageError, NotImplementedError):
    """The module does not offer this optional operation.

    Its ``capabilities`` mapping says so as well.
    """


# -- the rules -----------------------------------------------------------------

def is_transient(error: BaseException) -> bool:
    """Return True when ``error`` is worth another attempt at the same location, now.

    The one rule for retry policies (the replica's ``read_attempts``; meant
    for every module that retries): an SDK error whose ``retryable`` is
    true (a :class:`LocationUnavailable` its raiser did not mark as
    permanent) and that is not a :class:`LocationTimeout` (a slow location
    is left for another copy, not asked again). Foreign exceptions are not
    transient: translate them to SDK errors first.
    """
    return (isinstance(error, StorageError) and bool(error.retryable)
            and not isinstance(error, LocationTimeout))


def describe_error(error: Any) -> str:
    """Render one error as ``"ErrorClass: message"`` (a text as is), secrets masked.

    Cut at 500 characters; passed through :func:`modules.redaction.redact_text`.
    """
    if isinstance(error, BaseException):
        text = "%s: %s" % (type(error).__name__, error)
    else:
        text = str(error)
    if len(text) > _MAX_FAILURE_TEXT:
        text = text[:_MAX_FAILURE_TEXT] + "..."
    return redact_text(text)


def format_failures(failures: Mapping[str, Any]) -> str:
    """Render "failures by location" as one line, with secrets masked.

    The one formatter of the SDK for this; use it wherever several
    locations' errors are shown (error messages, logs, reports).

    Args:
        failures: location name -> its error (an exception or a text).

    Returns:
        str: ``"name: ErrorClass: message; ..."`` in the mapping's order,
        each error rendered by :func:`describe_error`, the whole passed
        through :func:`modules.redaction.redact_text`; ``"no details"`` when
        empty.
    """
    if not failures:
        return "no details"
    return redact_text("; ".join("%s: %s" % (name, describe_error(error))
                                 for name, error in failures.items()))
