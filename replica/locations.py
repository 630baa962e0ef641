"""A replica location: a named child module, its health and its error limiting.

A :class:`Location` resolves its module (created at construction for inline
specs and URLs; asked of ``context['func']['getModule']`` on every call that
has a context for named modules, and cached for calls without one), calls it,
translates any foreign exception into an SDK error (the one place where the
replica does so) and keeps its health, separately for each direction:

* **write** health follows ``assign`` and ``delete`` (and failures of
  ``new_data``); **read** health follows every other call;
* each direction is ``ok`` (its last call succeeded), ``down`` (its last
  call failed) or ``error-limited`` (``error_limit`` consecutive failures:
  callers skip it, or try it last, until ``error_interval`` seconds pass;
  then it is probed again: one more failure limits it again at once, one
  success clears it).

So a location that rejects every write (a read-only mount, a full disk)
while reads still work is error-limited for writes and keeps serving reads:
successful reads never clear its write errors (issue 9).

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
    describe_error,
)
from modules.loader import load_module
from modules.redaction import redact_text
from replica.settings import HTTP_MODULE, LocationSpec

__all__ = ["Location", "OK", "DOWN", "ERROR_LIMITED", "READ", "WRITE", "direction_of",
           "limited_error", "Placed"]

log = logging.getLogger(__name__)

OK = "ok"
DOWN = "down"
ERROR_LIMITED = "error-limited"

#: The two directions whose health is kept apart.
READ = "read"
WRITE = "write"
#: Child methods whose outcome is the location's write health.
_WRITE_METHODS = frozenset(("assign", "delete", "new_data", "new_data_for"))

_MAX_ERROR_TEXT = 300


def direction_of(action: str) -> str:
    """Return WRITE for a child method (or action) that changes the storage, else READ."""
    return WRITE if action in _WRITE_METHODS else READ


class _Health:
    """The health of one direction of one location (the owner's lock protects it)."""

    def __init__(self) -> None:
        self.consecutive = 0
        self.errors = 0
        self.calls = 0
        self.last_error: Optional[str] = None
        self.last_error_at: Optional[float] = None
        self.limited_until: Optional[float] = None

    def succeeded(self, limit: int) -> bool:
        """Record a success; return True when this ends an error-limited spell."""
        was_limited = self.consecutive >= limit
        self.calls += 1
        self.consecutive = 0
        self.limited_until = None
        return was_limited

    def failed(self, text: str, now: float, limit: int, interval: float) -> bool:
        """Record a failure; return True when this starts an error-limited spell."""
        self.calls += 1
        self.errors += 1
        self.consecutive += 1
        self.last_error = text
        self.last_error_at = now
        if self.consecutive < limit:
            return False
        newly = self.limited_until is None or self.limited_until <= now
        self.limited_until = now + interval
        return newly

    def limited(self, now: float) -> bool:
        return self.limited_until is not None and now < self.limited_until

    def recently_failed(self, now: float, interval: float) -> bool:
        return bool(self.consecutive) and self.last_error_at is not None \
            and now - self.last_error_at < interval

    def state(self, now: float) -> str:
        if self.limited(now):
            return ERROR_LIMITED
        return DOWN if self.consecutive else OK

    def snapshot(self, now: float) -> Dict[str, Any]:
        return {
            "health": self.state(now),
            "errors": self.errors,
            "consecutive_errors": self.consecutive,
            "calls": self.calls,
            "last_error": self.last_error,
            "last_error_age": None if self.last_error_at is None
            else round(now - self.last_error_at, 3),
            "limited_for": round(self.limited_until - now, 3) if self.limited(now) else None,
        }


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
        self._health = {READ: _Health(), WRITE: _Health()}
        if spec.kind != "named":
            self._module = _create(spec)

    def __repr__(self) -> str:
        return "Location(%r)" % self.name

    @property
    def retries_itself(self) -> bool:
        """True when the child declares ``capabilities['retries']`` (it retries for itself).

        Known once the module is resolved (at construction for inline and URL
        locations, after the first call for named ones); False before.
        """
        with self._lock:
            module = self._module
        capabilities = getattr(module, "capabilities", None) or {}
        try:
            return bool(capabilities.get("retries", False))
        except Exception:  # a child's odd capabilities object must not break calls
            return False

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

        The outcome counts for the write health for ``assign``, ``delete``
        and ``new_data``, for the read health otherwise. A successful
        ``new_data`` does not count as the location working (most modules
        allocate module_data without touching their storage); its failures
        count like any other write failure.

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
            self.succeeded(direction_of(method))
        return result

    def failed(self, error: BaseException, action: str,
               direction: Optional[str] = None) -> StorageError:
        """Record ``error`` from ``action`` (if it is the location's fault); return it as SDK error.

        ``direction`` (READ or WRITE) defaults to :func:`direction_of` ``(action)``.

        Returns:
            StorageError: ``error`` itself when it is an SDK error, otherwise
            a LocationUnavailable naming the location (the caller raises it
            ``from`` the original).
        """
        direction = direction or direction_of(action)
        translated = self.translate(error, action)
        if isinstance(translated, ObjectError):
            self.succeeded(direction)  # the location answered; the object is at fault
        elif not isinstance(translated, SourceStreamError):  # the source's fault says nothing
            self._record_error(translated, direction)
        return translated

    def translate(self, error: BaseException, action: str) -> StorageError:
        """Return ``error`` as an SDK error that names this location (no health change)."""
        if isinstance(error, StorageError):
            return error
        text = redact_text(str(error))
        log.warning("location %s: %s raised %s: %s", self.name, action,
                    type(error).__name__, text)
        return LocationUnavailable("location %s failed in %s: %s: %s" % (
            self.name, action, type(error).__name__, text), location=self.name)

    def succeeded(self, direction: str = READ) -> None:
        """Record a successful call in ``direction``: that direction is healthy again."""
        with self._lock:
            was_limited = self._health[direction].succeeded(self._error_limit)
        if was_limited:
            log.warning("location %s answers %ss again; no longer error-limited for %ss",
                        self.name, direction, direction)

    def _record_error(self, error: StorageError, direction: str) -> None:
        now = self._clock()
        text = describe_error(error)[:_MAX_ERROR_TEXT]
        with self._lock:
            newly = self._health[direction].failed(text, now, self._error_limit,
                                                   self._error_interval)
        if newly:
            log.error("location %s failed %d %ss in a row; skipping it for %ss for %.0f s "
                      "(last: %s)", self.name, self._error_limit, direction, direction,
                      self._error_interval, text)

    # -- health -----------------------------------------------------------

    def is_limited(self, direction: str = READ) -> bool:
        """Return True while ``direction`` is error-limited (to be skipped or tried last)."""
        now = self._clock()
        with self._lock:
            return self._health[direction].limited(now)

    def read_rank(self) -> int:
        """Return 0 (read first), 1 (its last read failed less than ``error_interval`` ago)
        or 2 (error-limited for reads: read last).

        A location whose failure is older than ``error_interval`` ranks 0
        again, so that it is probed in its configured place.
        """
        now = self._clock()
        with self._lock:
            health = self._health[READ]
            if health.limited(now):
                return 2
            return 1 if health.recently_failed(now, self._error_interval) else 0

    def health(self, direction: Optional[str] = None) -> str:
        """Return ``'ok'``, ``'down'`` or ``'error-limited'``.

        For one ``direction`` (READ or WRITE), or, without one, the worse of
        the two (error-limited, then down, then ok).
        """
        now = self._clock()
        with self._lock:
            if direction is not None:
                return self._health[direction].state(now)
            return _worse(self._health[READ].state(now), self._health[WRITE].state(now))

    def snapshot(self) -> Dict[str, Any]:
        """Return health and error counters as a JSON-serialisable dict.

        Keys: ``name``, ``kind``, ``health`` (the worse direction),
        ``read_health`` and ``write_health`` (each ok/down/error-limited),
        ``read`` and ``write`` (each: ``health``, ``errors``,
        ``consecutive_errors``, ``calls``, ``last_error``, ``last_error_age``
        in seconds, ``limited_for`` in seconds or None), and the totals
        ``errors``, ``consecutive_errors``, ``calls``, ``last_error``,
        ``last_error_age``, ``limited_for`` over both directions.
        """
        now = self._clock()
        with self._lock:
            read = self._health[READ].snapshot(now)
            write = self._health[WRITE].snapshot(now)
        latest = read if (read["last_error_age"] is not None and (
            write["last_error_age"] is None or read["last_error_age"] <= write["last_error_age"])) \
            else write
        limits = [value for value in (read["limited_for"], write["limited_for"])
                  if value is not None]
        return {
            "name": self.name,
            "kind": self.spec.kind,
            "health": _worse(read["health"], write["health"]),
            "read_health": read["health"],
            "write_health": write["health"],
            "errors": read["errors"] + write["errors"],
            "consecutive_errors": max(read["consecutive_errors"], write["consecutive_errors"]),
            "calls": read["calls"] + write["calls"],
            "last_error": latest["last_error"],
            "last_error_age": latest["last_error_age"],
            "limited_for": max(limits) if limits else None,
            "read": read,
            "write": write,
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


#: A configured location and the object's child module_data there.
Placed = Tuple[Location, str]


def limited_error(location: Location, direction: str = READ) -> LocationUnavailable:
    """Return the error saying that ``location`` is error-limited and was skipped."""
    return LocationUnavailable("location %s is error-limited for %ss after repeated failures; "
                               "skipped for now" % (location.name, direction),
                               location=location.name)


_SEVERITY = {OK: 0, DOWN: 1, ERROR_LIMITED: 2}


def _worse(first: str, second: str) -> str:
    return first if _SEVERITY[first] >= _SEVERITY[second] else second


def _create(spec: LocationSpec) -> StorageModule:
    try:
        return load_module(spec.module, spec.args)
    except ConfigurationError as error:
        if spec.module == HTTP_MODULE and "cannot import" in str(error):
            raise ConfigurationError(
                "location %s: http:// and https:// locations need %s, which cannot be loaded "
                "here (%s)" % (spec.name, HTTP_MODULE, error)) from error
        raise ConfigurationError("location %s: %s" % (spec.name, error)) from error

