"""A replica location: a named child module, its health and its error limiting.

A :class:`Location` resolves its module (created at construction for inline
specs and URLs; asked of ``context['func']['getModule']`` on every call that
has a context for named modules, and cached for calls without one), calls it,
translates any foreign exception into an SDK error (the one place where the
replica does so) and keeps its health:

* ``ok``: the last call succeeded;
* ``down``: the last call failed;
* ``error-limited``: ``error_limit`` consecutive failures; callers skip it
  (or try it last) until ``error_interval`` seconds pass, then it is probed
  again: one more failure limits it again at once, one success clears it.

Answers about the object (``ObjectNotFound``, ``InvalidModuleData``,
``DataCorrupted``) show the location works; source failures
(``SourceStreamError``) say nothing about it either way.
"""
import logging
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

from modules import StorageModule
from modules.context import get_module
from modules.errors import (
    ConfigurationError,
    LocationUnavailable,
    ObjectError,
    SourceStreamError,
    StorageError,
)
from modules.loader import load_module
from modules.redaction import redact_text
from replica.settings import HTTP_MODULE, LocationSpec

__all__ = ["Location", "OK", "DOWN", "ERROR_LIMITED", "describe_failures", "limited_error",
           "Placed", "scrub"]

log = logging.getLogger(__name__)

OK = "ok"
DOWN = "down"
ERROR_LIMITED = "error-limited"

_MAX_ERROR_TEXT = 300
# user:password@ in URLs that a foreign error message may quote


class Location:
    """One location of a replica (thread-safe).

    Args:
        spec: the parsed configuration of the location.
        error_limit: consecutive failures after which it is error-limited.
        error_interval: seconds an error-limited location is skipped.
        owner: the replica, so that a named module resolving to it is refused.
        clock: monotonic time source (injectable for tests).

    Raises:
        ConfigurationError: an inline or URL location's module cannot be
            created (the message names the location).
    """

    def __init__(self, spec: LocationSpec, error_limit: int, error_interval: float,
                 owner: Any = None, clock: Callable[[], float] = time.monotonic):
        self.spec = spec
        self.name = spec.name
        self._error_limit = error_limit
        self._error_interval = error_interval
        self._owner_id = id(owner)
        self._clock = clock
        self._lock = threading.Lock()
        self._module: Optional[StorageModule] = None
        self._consecutive = 0
        self._errors = 0
        self._calls = 0
        self._last_error: Optional[str] = None
        self._last_error_at: Optional[float] = None
        self._limited_until: Optional[float] = None
        if spec.kind != "named":
            self._module = _create(spec)

    def __repr__(self) -> str:
        return "Location(%r)" % self.name

    # -- module resolution ------------------------------------------------

    @property
    def owned(self) -> bool:
        """True when the replica created this location's module (and closes it)."""
        return self.spec.kind != "named"

    def module(self, context: Optional[dict]) -> StorageModule:
        """Return the child module, resolving a named one through ``context``.

        Returns:
            StorageModule: the child.

        Raises:
            LocationUnavailable: a named module cannot be resolved (unknown
                name, or no context and never resolved before).
        """
        if self.spec.kind != "named":
            return self._module
        has_resolver = isinstance(context, dict) and isinstance(context.get("func"), dict) \
            and "getModule" in context["func"]
        if not has_resolver:
            with self._lock:
                module = self._module
            if module is None:
                raise LocationUnavailable(
                    "location %s is a configured module that has not been resolved yet; call with "
                    "a context that has func.getModule" % self.name, location=self.name)
            return module
        try:
            module = get_module(context, self.name)
        except ConfigurationError as error:
            raise LocationUnavailable("location %s cannot be resolved: %s" % (self.name, error),
                                      location=self.name) from error
        if id(module) == self._owner_id:
            raise LocationUnavailable("location %s resolves to this replica itself; a replica "
                                      "cannot be its own location" % self.name, location=self.name)
        with self._lock:
            self._module = module
        return module

    # -- calls ------------------------------------------------------------

    def call(self, context: Optional[dict], method: str, *args: Any) -> Any:
        """Call ``method`` of the child with ``(context, *args)`` and keep health.

        A successful ``new_data`` or ``new_data_for`` does not count as the location working
        (most modules allocate module_data without touching their storage);
        its failures count like any other.

        Returns:
            whatever the child returns.

        Raises:
            StorageError: the child's SDK error, or LocationUnavailable for a
                foreign exception (chained) or an unresolvable module.
        """
        try:
            module = self.module(context)
            result = getattr(module, method)(context, *args)
        except Exception as error:  # translated here, in one place
            translated = self.failed(error, method)
            if translated is error:
                raise
            raise translated from error
        if method not in ("new_data", "new_data_for"):
            self.succeeded()
        return result

    def failed(self, error: BaseException, action: str) -> StorageError:
        """Record ``error`` from ``action`` (if it is the location's fault); return it as SDK error.

        Returns:
            StorageError: ``error`` itself when it is an SDK error, otherwise
            a LocationUnavailable naming the location (the caller raises it
            ``from`` the original).
        """
        translated = self.translate(error, action)
        if isinstance(translated, ObjectError):
            self.succeeded()  # the location answered; the object is at fault
        elif not isinstance(translated, SourceStreamError):  # the source's fault says nothing
            self._record_error(translated)
        return translated

    def translate(self, error: BaseException, action: str) -> StorageError:
        """Return ``error`` as an SDK error that names this location (no health change)."""
        if isinstance(error, StorageError):
            return error
        text = scrub(str(error))
        log.warning("location %s: %s raised %s: %s", self.name, action,
                    type(error).__name__, text)
        return LocationUnavailable("location %s failed in %s: %s: %s" % (
            self.name, action, type(error).__name__, text), location=self.name)

    def succeeded(self) -> None:
        """Record a successful call: the location is healthy again."""
        with self._lock:
            self._calls += 1
            was_limited = self._consecutive >= self._error_limit
            self._consecutive = 0
            self._limited_until = None
        if was_limited:
            log.warning("location %s answers again; no longer error-limited", self.name)

    def _record_error(self, error: StorageError) -> None:
        now = self._clock()
        text = scrub("%s: %s" % (type(error).__name__, error))[:_MAX_ERROR_TEXT]
        with self._lock:
            self._calls += 1
            self._errors += 1
            self._consecutive += 1
            self._last_error = text
            self._last_error_at = now
            newly = False
            if self._consecutive >= self._error_limit:
                newly = self._limited_until is None or self._limited_until <= now
                self._limited_until = now + self._error_interval
        if newly:
            log.error("location %s failed %d times in a row; skipping it for %.0f s (last: %s)",
                      self.name, self._error_limit, self._error_interval, text)

    # -- health -----------------------------------------------------------

    def is_limited(self) -> bool:
        """Return True while the location is error-limited (to be skipped or tried last)."""
        with self._lock:
            return self._limited_until is not None and self._clock() < self._limited_until

    def health(self) -> str:
        """Return ``'ok'``, ``'down'`` or ``'error-limited'``."""
        with self._lock:
            if self._limited_until is not None and self._clock() < self._limited_until:
                return ERROR_LIMITED
            return DOWN if self._consecutive else OK

    def snapshot(self) -> Dict[str, Any]:
        """Return health and error counters as a JSON-serialisable dict."""
        now = self._clock()
        with self._lock:
            limited_for = None
            if self._limited_until is not None and now < self._limited_until:
                limited_for = round(self._limited_until - now, 3)
            return {
                "name": self.name,
                "kind": self.spec.kind,
                "health": ERROR_LIMITED if limited_for is not None
                else (DOWN if self._consecutive else OK),
                "errors": self._errors,
                "consecutive_errors": self._consecutive,
                "calls": self._calls,
                "last_error": self._last_error,
                "last_error_age": None if self._last_error_at is None
                else round(now - self._last_error_at, 3),
                "limited_for": limited_for,
            }

    def close(self) -> None:
        """Close the child module if this location created it (logs, never raises)."""
        if not self.owned or self._module is None:
            return
        try:
            self._module.close()
        except Exception as error:  # closing must not stop closing the others
            log.warning("closing location %s failed: %s: %s", self.name,
                        type(error).__name__, error)


def scrub(text: str) -> str:
    """Return ``text`` with secrets masked (see :func:`modules.redaction.redact_text`)."""
    return redact_text(text)


#: A configured location and the object's child module_data there.
Placed = Tuple[Location, str]


def limited_error(location: Location) -> LocationUnavailable:
    """Return the error saying that ``location`` is error-limited and was skipped."""
    return LocationUnavailable("location %s is error-limited after repeated failures; skipped "
                               "for now" % location.name, location=location.name)


def describe_failures(failures: Dict[str, BaseException]) -> str:
    """Return one line listing each location's failure, with secrets scrubbed."""
    return scrub("; ".join("%s: %s: %s" % (name, type(error).__name__, error)
                           for name, error in failures.items())) or "no details"


def _create(spec: LocationSpec) -> StorageModule:
    try:
        return load_module(spec.module, spec.args)
    except ConfigurationError as error:
        if spec.module == HTTP_MODULE and "cannot import" in str(error):
            raise ConfigurationError(
                "location %s: http:// and https:// locations need %s, which cannot be loaded "
                "here (%s)" % (spec.name, HTTP_MODULE, error)) from error
        raise ConfigurationError("location %s: %s" % (spec.name, error)) from error

