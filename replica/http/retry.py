"""The retry policies of HTTPStorage: tenacity, bounded, built once per instance.

* :func:`make_retrying`: a request (or one read of a stream) that failed
  transiently is sent again, at most ``retries`` more times, with exponential
  backoff. Only :func:`is_transient` errors are retried: connection failures,
  5xx, 408, 425 and 429 as mapped by :mod:`replica.http.errors`. A timeout is
  *not* retried: it means "this copy is slow now", and the caller (the
  replica) does better to use another copy than to wait again (issue 9). A
  TLS failure, refused credentials, a full server or a missing object are
  never retried either.
* :func:`make_discard_retrying`: after an aborted upload, the ``DELETE`` of
  its temporary is repeated after short pauses while it finds nothing (404),
  because the server may still be finishing the aborted ``PUT``.

Both take ``sleep`` (``time.sleep`` unless a test injects a recorder) and
re-raise the last error as it is (``reraise=True``), so callers see SDK
errors. tenacity keeps its per-call state in thread-local storage, so one
policy object serves every thread of the instance.
"""
import logging
import time
from typing import Callable, Optional, Sequence

import tenacity

from modules import errors

__all__ = ["is_transient", "make_retrying", "make_discard_retrying"]

log = logging.getLogger(__name__)

#: The status that makes the discard policy look again (the temporary is not there yet).
_NOT_THERE = 404


def is_transient(error: BaseException) -> bool:
    """Return True for errors worth another attempt on the same server now.

    The SDK's one rule, :func:`modules.errors.is_transient`: a retryable SDK
    error that is not a :class:`LocationTimeout`. As mapped by
    :mod:`replica.http.errors` that is a refused or reset connection, an
    early end of a response, 5xx, 408, 425, 429. Timeouts, TLS failures,
    authentication, space, not-found and protocol errors are not transient.
    """
    return errors.is_transient(error)


def make_retrying(attempts: int, backoff: float, max_wait: float,
                  sleep: Optional[Callable[[float], None]] = None,
                  on_retry: Optional[Callable[[BaseException], None]] = None,
                  what: str = "request") -> tenacity.Retrying:
    """Return a tenacity ``Retrying`` for at most ``attempts`` tries (>= 1).

    The pause starts at ``backoff`` seconds and doubles up to ``max_wait``.
    ``sleep`` replaces ``time.sleep`` (tests pass a recorder); ``on_retry``
    is called with each error that will be retried; ``what`` names the
    location in the log. The last error is re-raised as is.

    Returns:
        tenacity.Retrying: call it with the function and its arguments; it
        may be shared by threads and nested calls.
    """
    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if on_retry is not None and error is not None:
            on_retry(error)
        log.warning("%s: attempt %d of %d failed, retrying in %.2f s: %s", what,
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


def make_discard_retrying(pauses: Sequence[float], is_closed: Callable[[], bool],
                          sleep: Optional[Callable[[float], None]] = None) -> tenacity.Retrying:
    """Return the policy that repeats a temporary's ``DELETE`` while it answers 404.

    The wrapped function returns the status of one ``DELETE``. It is called
    again after each of ``pauses`` (seconds) while it returns 404, and no
    more once ``is_closed()`` is true; exceptions are not retried. The last
    status is returned (a 404 after the last pause: nothing was there).

    Returns:
        tenacity.Retrying: call it with the function.
    """
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(len(pauses) + 1) | (lambda state: is_closed()),
        wait=tenacity.wait_chain(*[tenacity.wait_fixed(pause) for pause in pauses])
        if pauses else tenacity.wait_none(),
        retry=tenacity.retry_if_result(lambda status: status == _NOT_THERE),
        retry_error_callback=lambda state: state.outcome.result(),
        reraise=True,
        sleep=sleep or time.sleep,
    )
