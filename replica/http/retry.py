"""The retry policy of HTTPStorage: tenacity, bounded, transient SDK errors only."""
import logging
import time
from typing import Callable, Optional

import tenacity

from modules.errors import LocationUnavailable

__all__ = ["is_transient", "make_retrying"]

log = logging.getLogger(__name__)


def is_transient(error: BaseException) -> bool:
    """Return True for errors worth another attempt: retryable LocationUnavailable.

    That covers connection failures, timeouts, 5xx, 408 and 429 as mapped
    by :mod:`replica.http_errors`; authentication, space, not-found and
    protocol errors are never retried.
    """
    return isinstance(error, LocationUnavailable) and bool(getattr(error, "retryable", False))


def make_retrying(attempts: int, backoff: float, max_wait: float,
                  sleep: Optional[Callable[[float], None]] = None,
                  on_retry: Optional[Callable[[BaseException], None]] = None,
                  what: str = "request") -> tenacity.Retrying:
    """Return a tenacity ``Retrying`` for at most ``attempts`` tries (>= 1).

    The pause starts at ``backoff`` seconds and doubles up to ``max_wait``.
    ``sleep`` replaces ``time.sleep`` (tests pass a recorder); ``on_retry``
    is called with each error that will be retried. The last error is
    re-raised as is (``reraise=True``), so callers see SDK errors.

    Returns:
        tenacity.Retrying: call it with the function and its arguments.
    """
    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if on_retry is not None and error is not None:
            on_retry(error)
        log.warning("%s failed (attempt %d of %d), retrying in %.2f s: %s", what,
                    state.attempt_number, attempts,
                    state.next_action.sleep if state.next_action else 0.0, error)

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, attempts)),
        wait=tenacity.wait_exponential(multiplier=backoff, min=backoff, max=max_wait)
        if backoff > 0 else tenacity.wait_none(),
        retry=tenacity.retry_if_exception(is_transient),
        reraise=True,
        sleep=sleep or time.sleep,
        before_sleep=before_sleep,
    )
