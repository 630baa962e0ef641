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
"""
from typing import Optional

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
]


class StorageError(Exception):
    """Root of every error the SDK and its modules raise on purpose."""

    #: Whether trying the same operation again (after a pause) may succeed.
    retryable = False


# -- errors about one object -------------------------------------------------

class ObjectError(StorageError):
    """An error about one object; ``module_data`` names it (may be None)."""

    def __init__(self, message: str, *, module_data=None, location: Optional[str] = None):
        super().__init__(message)
        self.module_data = module_data
        self.location = location


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

    def __init__(self, message: str, *, location: Optional[str] = None):
        super().__init__(message)
        self.location = location


class LocationUnavailable(LocationError, OSError):
    """The storage cannot be reached or used right now.

    Worth retrying, after a pause or at another location.
    """

    retryable = True


class LocationTimeout(LocationUnavailable, TimeoutError):
    """The storage did not answer within the configured time. Retryable."""


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
