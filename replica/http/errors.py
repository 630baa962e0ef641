"""Translate HTTP statuses and transport failures into SDK errors, in one place.

Everything HTTPStorage and its read stream raise about the server comes from
:func:`status_error` or :func:`transport_error`:

============================  =============================================
404, 410                      ObjectNotFound (about an object), otherwise
                              LocationUnavailable (not retryable)
401, 403, 407                 AuthenticationFailed
507, 413                      InsufficientStorage
408, 429, 500, 502-504, 5xx   LocationUnavailable (retryable)
409, 501, 505, 3xx, other 4xx LocationUnavailable with ``retryable = False``
connect/read timeouts         LocationTimeout (a LocationUnavailable)
refused, reset, EOF           LocationUnavailable (retryable)
TLS failures                  LocationUnavailable (not retryable)
MOVE Destination refused      LocationUnavailable naming the proxy cause
============================  =============================================

Which of them :mod:`replica.http.retry` sends again is decided there
(timeouts are not: another copy is the better bet). Messages name
the method, the URL (which never carries credentials) and what to fix;
requests' exceptions are chained as ``__cause__`` after their reference to
the request (and so to its ``Authorization`` header) has been removed.
"""
from typing import Optional

import requests
import urllib3.exceptions

from modules.errors import (
    AuthenticationFailed,
    InsufficientStorage,
    LocationTimeout,
    LocationUnavailable,
    ObjectNotFound,
    StorageError,
)

__all__ = ["status_error", "transport_error", "destination_refused",
           "forced_destination_refused", "is_transport_error", "scrub"]

_RETRYABLE_STATUSES = {408, 425, 429}
_NOT_RETRYABLE_5XX = {501, 505}

#: Exception types raised while talking to a server (requests', urllib3's, sockets').
_TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


def is_transport_error(error: BaseException) -> bool:
    """Return True for the foreign exceptions :func:`transport_error` translates."""
    return isinstance(error, _TRANSPORT_ERRORS) and not isinstance(error, StorageError)


def status_error(method: str, url: str, response: requests.Response, *, location: str,
                 module_data: Optional[str] = None) -> StorageError:
    """Return the SDK error for an unexpected status in ``response`` (not raised here).

    ``module_data`` is given when the request was about one object: then 404
    and 410 mean :class:`ObjectNotFound`; otherwise they mean the location's
    collection is missing (:class:`LocationUnavailable`).

    Returns:
        StorageError: ObjectNotFound, AuthenticationFailed,
        InsufficientStorage or LocationUnavailable (``retryable`` False for
        statuses that will not change by themselves), with the HTTP status
        in its ``status`` attribute (a constructor keyword of the SDK errors).
    """
    status = response.status_code
    what = "%s %s answered %d %s" % (method, url, status, response.reason or "")
    what = what.rstrip()
    if status in (404, 410):
        if module_data is not None:
            return ObjectNotFound("no data stored for %r at %s (%s)" % (
                module_data, location, what), module_data=module_data, location=location,
                status=status)
        return LocationUnavailable("%s: the collection does not exist on the server; check the "
                                   "base URL and create it" % what, location=location,
                                   retryable=False, status=status)
    if status in (401, 407):
        return AuthenticationFailed(
            "%s: the server refused our credentials; check username= and password_env= "
            "(or token_env=) for %s" % (what, location), location=location, status=status)
    if status == 403:
        return AuthenticationFailed(
            "%s: the account is not allowed to do this; check its credentials and its "
            "permissions on %s" % (what, location), location=location, status=status)
    if status in (507, 413):
        advice = ("the server has no room left" if status == 507 else
                  "the server refused the object's size; raise its upload limit")
        return InsufficientStorage("%s: %s at %s" % (what, advice, location), location=location,
                                   status=status)
    if status == 409:
        message = "%s: a parent collection is missing; check that the base URL %s exists" % (
            what, location)
        retryable = False
    elif 300 <= status < 400:
        message = ("%s: redirected to %s; configure the final URL as the base URL (redirects "
                   "are not followed)" % (what, response.headers.get("Location", "?")))
        retryable = False
    elif status >= 500 and status not in _NOT_RETRYABLE_5XX:
        message, retryable = "%s: the server failed; retry later" % what, True
    elif status in _RETRYABLE_STATUSES:
        message, retryable = "%s: the server is busy; retry later" % what, True
    else:
        message = ("%s: the server does not support this request; is %s a WebDAV collection "
                   "with write access?" % (what, location))
        retryable = False
    return LocationUnavailable(message, location=location, retryable=retryable, status=status)


def transport_error(method: str, url: str, error: BaseException, *, location: str,
                    timeout=None) -> StorageError:
    """Return the SDK error for a failure to talk to the server (not raised here).

    ``error`` is a requests, urllib3 or socket exception; it is scrubbed of
    its request (see :func:`scrub`) so that chaining it leaks no header.

    Returns:
        LocationTimeout for timeouts, LocationUnavailable otherwise (not
        retryable for TLS certificate failures).
    """
    scrub(error)
    detail = _describe(error)
    if isinstance(error, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
        connect = isinstance(error, (requests.ConnectTimeout,
                                     urllib3.exceptions.ConnectTimeoutError))
        limit = ""
        if timeout is not None:
            limit = " within %g s" % (timeout[0] if connect else timeout[1])
        return LocationTimeout("%s %s: the server did not %s%s (%s)" % (
            method, url, "accept the connection" if connect else "answer", limit, detail),
            location=location)
    if isinstance(error, (requests.exceptions.SSLError, urllib3.exceptions.SSLError)):
        return LocationUnavailable(
            "%s %s: TLS failed (%s); give ca_bundle= for a private CA, or verify_tls=false "
            "only on a trusted network" % (method, url, detail), location=location,
            retryable=False)
    return LocationUnavailable("%s %s: cannot reach the server (%s)" % (method, url, detail),
                               location=location, retryable=True)


def destination_refused(source_url: str, absolute: StorageError, path: StorageError, *,
                        location: str) -> LocationUnavailable:
    """Return the error for a ``MOVE`` whose ``Destination`` the server refused in both forms.

    ``absolute`` is the error for the absolute URL, ``path`` the error for
    the path-absolute form (RFC 4918 section 10.3 allows both). nginx's dav
    module answers 400, Apache mod_dav and wsgidav 502, when the Destination's
    scheme differs from the one the request arrived with, which is what a
    TLS-terminating proxy in front of a plain-http WebDAV server causes; and
    Apache refuses a path-absolute Destination. The error is retryable when
    the absolute form failed with a retryable status (a passing 502).

    Returns:
        LocationUnavailable: with the absolute form's status in ``status``.
    """
    return LocationUnavailable(
        "MOVE %s: the server refused the Destination header both as an absolute URL (%s) and "
        "as a path (%s). A WebDAV server behind a proxy that terminates TLS sees plain http "
        "and refuses an https:// Destination: make the proxy rewrite the Destination header "
        "to the backend's scheme (Apache: RequestHeader edit Destination ^https: http: early), "
        "or configure the server's own http:// URL as the base URL of %s" % (
            source_url, _short(absolute), _short(path), location),
        location=location, retryable=bool(absolute.retryable), status=absolute.status)


def forced_destination_refused(source_url: str, form: str, error: StorageError, *,
                               location: str) -> LocationUnavailable:
    """Return the error for a ``MOVE`` refused in the one Destination ``form`` configured.

    ``form`` is ``"absolute"`` or ``"path"`` (the ``destination`` option);
    ``error`` is the server's refusal (400 or 502), whose status and
    retryability are kept.

    Returns:
        LocationUnavailable: saying which option to change.
    """
    return LocationUnavailable(
        "MOVE %s: the server refused the %s Destination header (%s) and destination=%s is "
        "configured; try destination=auto (behind a proxy that terminates TLS the server "
        "needs the path form; Apache mod_dav needs the absolute URL) for %s" % (
            source_url, "absolute URL as" if form == "absolute" else "path-absolute",
            _short(error), form, location),
        location=location, retryable=bool(error.retryable), status=error.status)


def _short(error: StorageError) -> str:
    status = error.status
    return "answered %d" % status if status is not None else type(error).__name__


def scrub(error: BaseException) -> BaseException:
    """Drop references from ``error`` (and its causes) to requests and responses.

    requests attaches the prepared request, whose headers hold the
    ``Authorization`` secret, to its exceptions.

    Returns:
        BaseException: ``error`` itself.
    """
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for attribute in ("request", "response"):
            if getattr(current, attribute, None) is not None:
                try:
                    setattr(current, attribute, None)
                except AttributeError:
                    pass
        current = current.__cause__ or current.__context__
    return error


def _describe(error: BaseException) -> str:
    """Name the innermost useful reason ('Connection refused', 'timed out')."""
    reason = error
    for _ in range(5):
        inner = getattr(reason, "reason", None)
        if isinstance(inner, BaseException):
            reason = inner
            continue
        args = getattr(reason, "args", ())
        if len(args) == 1 and isinstance(args[0], BaseException):
            reason = args[0]
            continue
        break
    text = str(reason) or type(reason).__name__
    # urllib3 prefixes '<urllib3.connection.HTTPConnection object at 0x...>: '.
    if text.startswith("<") and ">: " in text:
        text = text.split(">: ", 1)[1]
    return "%s: %s" % (type(reason).__name__, text[:300])
