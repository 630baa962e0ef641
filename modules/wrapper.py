"""A base class for modules that wrap one inner module (encryption, deduplication, ...).

The SDK says modules "may be used to extend existing Storage Modules with
additional capabilities like encryption or deduplication": a wrapper is a
:class:`~modules.StorageModule` that keeps its data in another one.
:class:`StorageWrapper` gives it, in the manner of PyFilesystem2's
``WrapFS``:

* **delegation**: every method of the contract passes through to the inner
  module, translating module_data with two hooks (:meth:`inner_data`,
  :meth:`wrap_data`); a subclass overrides only what it transforms;
* **errors that name the inner location**: an SDK error raised by the inner
  module is raised again as the same class, its message prefixed with the
  inner location's name, its ``location`` that name and its ``module_data``
  the wrapper's own; a foreign exception becomes
  :class:`~modules.errors.LocationUnavailable` (one place translates);
* **capability propagation**: :attr:`capability_rules` says, per capability,
  whether the wrapper takes the inner module's value (:data:`INHERIT`) or a
  value of its own; ``repair``, ``scrub`` and ``new_data_for`` are forwarded
  when the inner module offers them and raise
  :class:`~modules.errors.Unsupported` otherwise.

The inner module is given as a resolver ``context -> StorageModule`` so that
a configured module resolved by name (``context['func']['getModule']``)
works as well as one the wrapper created itself.
"""
import io
import logging
from types import MappingProxyType
from typing import Any, Callable, Dict, Mapping, Optional

from modules import StorageModule
from modules.errors import (
    LocationError,
    LocationUnavailable,
    ObjectError,
    SourceStreamError,
    StorageError,
    Unsupported,
)
from modules.redaction import redact, redact_text

__all__ = ["StorageWrapper", "INHERIT", "Resolver"]

log = logging.getLogger(__name__)

#: A capability rule: take the inner module's value.
INHERIT = "inherit"

#: Returns the inner module for a context (which may be None).
Resolver = Callable[[Optional[dict]], StorageModule]

_MAX_ERROR_TEXT = 500


class StorageWrapper(StorageModule):
    """Delegate to one inner module, rewriting its errors and propagating its capabilities.

    Args:
        inner_name: the inner location's name as administrators know it
            (credential-free); it prefixes rewritten errors.
        resolve: ``resolve(context) -> StorageModule``, the inner module.
        close_inner: called once by :meth:`close` (for an inner module the
            wrapper created); None when the platform owns the inner module.

    Subclasses override the methods they transform and the two hooks
    :meth:`inner_data` (the inner module_data inside the wrapper's) and
    :meth:`wrap_data` (the wrapper's module_data around an inner one). The
    defaults make the wrapper transparent.
    """

    #: capability -> :data:`INHERIT` (the inner module's value) or the wrapper's own value.
    capability_rules: Mapping[str, Any] = MappingProxyType({
        "repair": INHERIT,
        "scrub": INHERIT,
        "verified_reads": INHERIT,
        "retries": INHERIT,
        "placement": INHERIT,
    })

    def __init__(self, inner_name: str, resolve: Resolver,
                 close_inner: Optional[Callable[[], None]] = None):
        super().__init__()
        self.inner_name = inner_name
        self._resolve = resolve
        self._close_inner = close_inner
        self._last_inner: Optional[StorageModule] = None

    def __repr__(self) -> str:
        return "%s(%r)" % (type(self).__name__, self.inner_name)

    # -- the inner module -------------------------------------------------

    def inner(self, context: Optional[dict]) -> StorageModule:
        """Return the inner module for ``context``.

        Raises:
            LocationUnavailable: it cannot be resolved (the resolver's SDK
                error is rewritten to name the inner location).
        """
        try:
            module = self._resolve(context)
        except StorageError as error:
            raise LocationUnavailable("%s: inner location %s cannot be used: %s" % (
                type(self).__name__, self.inner_name, error), location=self.inner_name) from error
        self._last_inner = module
        return module

    @property
    def capabilities(self) -> Mapping[str, Any]:  # type: ignore[override]
        """The capabilities, computed from :attr:`capability_rules` and the inner module's.

        For an inner module resolved by name, the inner capabilities are
        known after the first call with a context; until then inherited
        capabilities read False.
        """
        inner = self._last_inner
        if inner is None:
            try:
                inner = self._resolve(None)
            except Exception:  # a named module needs a context: not known yet
                inner = None
        inner_capabilities = getattr(inner, "capabilities", None) or {}
        values = dict(StorageModule.capabilities)
        for key, rule in self.capability_rules.items():
            values[key] = bool(inner_capabilities.get(key)) if rule == INHERIT else rule
        return MappingProxyType(values)

    def inner_offers(self, context: Optional[dict], capability: str) -> bool:
        """Return True when the inner module (resolved for ``context``) declares ``capability``."""
        return bool(getattr(self.inner(context), "capabilities", {}).get(capability))

    def call_inner(self, context: Optional[dict], method: str, *args: Any,
                   module_data: Optional[str] = None, **kwargs: Any) -> Any:
        """Call ``inner.method(context, *args, **kwargs)``, rewriting its errors.

        ``module_data`` is the wrapper's module_data the call is about; it
        goes into rewritten object errors.

        Returns:
            what the inner method returns.

        Raises:
            StorageError: the inner module's SDK error as the same class,
                naming the inner location (see :meth:`rewrite_error`);
                LocationUnavailable for any other exception (chained).
        """
        module = self.inner(context)
        try:
            return getattr(module, method)(context, *args, **kwargs)
        except Exception as error:  # rewritten here, in one place
            raise self.rewrite_error(error, method, module_data) from error

    def rewrite_error(self, error: BaseException, action: str,
                      module_data: Optional[str] = None) -> StorageError:
        """Return ``error`` as an SDK error naming the inner location.

        * :class:`SourceStreamError` is returned unchanged (the source's
          fault, not the location's);
        * any other SDK error comes back as the same class with the message
          ``"<inner name>: <message>"``, ``location`` the inner name, and for
          object errors ``module_data`` the wrapper's own; a class whose
          constructor does not take those keywords is returned unchanged;
        * a foreign exception becomes LocationUnavailable naming the inner
          location (secrets masked).
        """
        if isinstance(error, SourceStreamError):
            return error
        if not isinstance(error, StorageError):
            text = redact_text("%s: %s" % (type(error).__name__, error))[:_MAX_ERROR_TEXT]
            log.warning("%s: inner location %s failed in %s: %s", type(self).__name__,
                        self.inner_name, action, text)
            return LocationUnavailable("inner location %s failed in %s: %s" % (
                self.inner_name, action, text), location=self.inner_name)
        message = str(error)
        if not message.startswith(self.inner_name):
            message = "%s: %s" % (self.inner_name, message)
        kwargs: Dict[str, Any] = {}
        if isinstance(error, ObjectError):
            kwargs["module_data"] = module_data if module_data is not None else error.module_data
            kwargs["location"] = self.inner_name
        elif isinstance(error, LocationError):
            kwargs["location"] = self.inner_name
        if getattr(error, "retryable", False) != getattr(type(error), "retryable", False):
            kwargs["retryable"] = error.retryable
        try:
            return type(error)(message, **kwargs)
        except TypeError:  # a subclass with a constructor of its own: keep the original
            return error

    # -- hooks --------------------------------------------------------------

    def inner_data(self, module_data: str) -> str:
        """Return the inner module_data held in the wrapper's ``module_data`` (default: itself).

        Raises:
            InvalidModuleData: ``module_data`` is not this wrapper's.
        """
        return module_data

    def wrap_data(self, context: Optional[dict], inner_data: str,
                  object_id: Optional[str] = None) -> str:
        """Return the wrapper's module_data around ``inner_data`` (default: itself).

        ``object_id`` is given for :meth:`new_data_for` (deterministic
        placement) and None for :meth:`new_data`.
        """
        return inner_data

    # -- the contract, delegated ----------------------------------------

    def new_data(self, context: Optional[dict]) -> str:
        """Return the wrapper's module_data around a new inner one.

        Raises:
            LocationUnavailable: the inner location cannot be used now.
        """
        return self.wrap_data(context, self.call_inner(context, "new_data"))

    def assign(self, context: Optional[dict], module_data: str, stream) -> None:
        """Store ``stream`` in the inner module (see ``StorageModule.assign``)."""
        self.call_inner(context, "assign", self.inner_data(module_data), stream,
                        module_data=module_data)

    def available(self, context: Optional[dict], module_data: str) -> bool:
        """Return the inner module's answer (see ``StorageModule.available``)."""
        return bool(self.call_inner(context, "available", self.inner_data(module_data),
                                    module_data=module_data))

    def get_read_stream(self, context: Optional[dict], module_data: str):
        """Open the inner module's stream; its read errors name the inner location too."""
        return self.open_inner_stream(context, self.inner_data(module_data), module_data)

    def open_inner_stream(self, context: Optional[dict], inner_data: str, module_data: str):
        """Open the inner stream of ``inner_data``; errors of its reads are rewritten too.

        Returns:
            a binary stream with ``read``, ``seek``, ``tell``, ``close``.

        Raises:
            StorageError: the inner location's errors, naming it.
        """
        stream = self.call_inner(context, "get_read_stream", inner_data, module_data=module_data)
        return _RewritingStream(stream, self, module_data)

    def delete(self, context: Optional[dict], module_data: str) -> None:
        """Delete in the inner module (see ``StorageModule.delete``)."""
        self.call_inner(context, "delete", self.inner_data(module_data), module_data=module_data)

    def get_size(self, context: Optional[dict], module_data: str) -> int:
        """Return the inner module's size (see ``StorageModule.get_size``)."""
        return self.call_inner(context, "get_size", self.inner_data(module_data),
                               module_data=module_data)

    def statistics(self, context: Optional[dict]) -> Dict[str, Any]:
        """Return ``{'capacity', 'status', 'reason', 'inner'}`` from the inner statistics; never raises.

        ``inner`` is the inner module's statistics passed through
        :func:`modules.redaction.redact`; ``capacity`` is the inner one.
        """
        try:
            inner = self.call_inner(context, "statistics")
        except Exception as error:  # statistics must not raise: report instead
            return {"capacity": self.capacity(), "status": "unavailable",
                    "reason": redact_text(str(error))[:_MAX_ERROR_TEXT],
                    "inner_location": self.inner_name}
        inner = redact(inner) if isinstance(inner, dict) else {}
        result = {"capacity": inner.get("capacity") or self.capacity(),
                  "status": inner.get("status", "ok"), "inner_location": self.inner_name,
                  "inner": inner}
        if inner.get("reason"):
            result["reason"] = inner["reason"]
        elif inner.get("degraded"):
            result["status"] = "degraded"
            result["reason"] = "inner location %s is degraded" % self.inner_name
        return result

    # -- optional methods, forwarded when the inner module offers them --------

    def repair(self, context: Optional[dict], module_data: Optional[str] = None,
               rate: Optional[float] = None) -> Dict[str, Any]:
        """Forward to the inner module's ``repair`` when it offers one.

        Raises:
            Unsupported: the inner module has no ``repair`` capability.
            StorageError: the inner module's errors, naming it.
        """
        if not self.inner_offers(context, "repair"):
            raise Unsupported("%s: the inner location %s does not support repair" % (
                type(self).__name__, self.inner_name))
        inner = None if module_data is None else self.inner_data(module_data)
        kwargs = {} if rate is None else {"rate": rate}
        return self.call_inner(context, "repair", inner, module_data=module_data, **kwargs)

    def scrub(self, context: Optional[dict], module_data: str,
              rate: Optional[float] = None) -> Dict[str, Any]:
        """Forward to the inner module's ``scrub`` when it offers one.

        Raises:
            Unsupported: the inner module has no ``scrub`` capability.
            StorageError: the inner module's errors, naming it.
        """
        if not self.inner_offers(context, "scrub"):
            raise Unsupported("%s: the inner location %s does not support scrub" % (
                type(self).__name__, self.inner_name))
        kwargs = {} if rate is None else {"rate": rate}
        return self.call_inner(context, "scrub", self.inner_data(module_data),
                               module_data=module_data, **kwargs)

    def new_data_for(self, context: Optional[dict], object_id: str) -> str:
        """Return the wrapper's module_data around the inner ``new_data_for(object_id)``.

        Raises:
            Unsupported: the inner module has no ``placement`` capability.
            InvalidModuleData: ``object_id`` is not 32 lowercase hex characters.
        """
        if not self.inner_offers(context, "placement"):
            raise Unsupported("%s: the inner location %s does not support deterministic "
                              "placement (new_data_for)" % (type(self).__name__, self.inner_name))
        return self.wrap_data(context, self.call_inner(context, "new_data_for", object_id),
                              object_id)

    def close(self) -> None:
        """Close the inner module if the wrapper created it; safe to call twice."""
        close_inner, self._close_inner = self._close_inner, None
        if close_inner is not None:
            close_inner()


class _RewritingStream(io.RawIOBase):
    """An inner read stream whose errors are rewritten by the wrapper (see ``rewrite_error``)."""

    def __init__(self, stream, wrapper: StorageWrapper, module_data: str):
        super().__init__()
        self._stream = stream
        self._wrapper = wrapper
        self._module_data = module_data

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._stream, name)(*args)
        except (ValueError, StorageError) as error:
            if isinstance(error, StorageError):
                raise self._wrapper.rewrite_error(error, "read", self._module_data) from error
            raise  # ValueError: closed stream or bad seek, the caller's mistake
        except Exception as error:
            raise self._wrapper.rewrite_error(error, "read", self._module_data) from error

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        return self._call("read", -1 if size is None else size)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._call("seek", offset, whence)

    def tell(self) -> int:
        return self._call("tell")

    def close(self) -> None:
        if not self.closed:
            try:
                self._stream.close()
            finally:
                super().close()
