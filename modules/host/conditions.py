"""Conditional requests (RFC 9110 section 13) on objects.

Header parsing is Werkzeug's (``If-Match``/``If-None-Match`` as
:class:`werkzeug.datastructures.ETags`, dates, ``If-Range``); this module
evaluates the preconditions in the order of RFC 9110 section 13.2.2
against an object's index row:

1. ``If-Match`` (strong comparison; ``*`` means "exists"), false: 412;
2. else ``If-Unmodified-Since``, false: 412;
3. ``If-None-Match`` (weak comparison; ``*`` means "exists"), false: 304
   for GET/HEAD, 412 otherwise;
4. else for GET/HEAD ``If-Modified-Since``, false: 304;
5. ``If-Range`` decides whether a GET's ``Range`` applies (section 13.1.5).

For PUT and DELETE the host evaluates them inside the database
transaction that changes the index (:meth:`Store.put_object`), so two
concurrent create-only PUTs (``If-None-Match: *``) cannot both win.
An object's ETag is its quoted SHA-256; its Last-Modified is when it was
stored, to the second.
"""
from datetime import datetime
from typing import Optional

from werkzeug.http import parse_date, quote_etag, unquote_etag

from modules.host.http import HttpError, Request
from modules.host.store import ObjectRecord

__all__ = ["Preconditions", "PreconditionFailed", "etag_of", "last_modified_of"]


class PreconditionFailed(HttpError):
    """A precondition evaluated false: 412, or 304 for GET/HEAD (``status`` says which)."""


def etag_of(record: ObjectRecord) -> Optional[str]:
    """Return the object's ETag header value (``'"<sha256>"'``) or None."""
    return quote_etag(record.sha256) if record.sha256 else None


def last_modified_of(record: ObjectRecord) -> int:
    """Return the object's Last-Modified as whole seconds since the epoch (HTTP dates have no
    fractions, so comparisons use the same precision)."""
    return int(record.created)


def _seconds(value: Optional[datetime]) -> Optional[int]:
    return int(value.timestamp()) if value is not None else None


class Preconditions:
    """The conditional headers of one request, ready to evaluate against object rows."""

    def __init__(self, request: Request):
        self._method = request.method
        self._if_match = request.if_match if request.header("If-Match") else None
        self._if_none_match = request.if_none_match if request.header("If-None-Match") else None
        self._if_modified_since = _seconds(request.if_modified_since)
        self._if_unmodified_since = _seconds(request.if_unmodified_since)
        self._if_range = request.header("If-Range")

    def __bool__(self) -> bool:
        return any(value is not None for value in (
            self._if_match, self._if_none_match, self._if_modified_since,
            self._if_unmodified_since))

    def create_only(self) -> bool:
        """Return True for ``If-None-Match: *`` (the request must not replace an object)."""
        return self._if_none_match is not None and self._if_none_match.star_tag

    def check(self, record: Optional[ObjectRecord]) -> None:
        """Evaluate the preconditions against the current row (None: no object).

        Callers ignore preconditions where the answer without them would be
        neither 2xx nor 412 (RFC 9110 section 13.2.1): a GET or DELETE of
        a missing object is a 404 before this is called.

        Raises:
            PreconditionFailed: status 412, or 304 for GET and HEAD.
        """
        safe = self._method in ("GET", "HEAD")
        etag = record.sha256 if record is not None else None
        modified = last_modified_of(record) if record is not None else None
        if self._if_match is not None:
            if record is None or not (self._if_match.star_tag
                                      or (etag and self._if_match.contains(etag))):
                raise PreconditionFailed(412, "If-Match: the object %s" % (
                    "does not exist" if record is None else
                    "has changed (its ETag is %s)" % etag_of(record)))
        elif self._if_unmodified_since is not None and modified is not None:
            if modified > self._if_unmodified_since:
                raise PreconditionFailed(412, "If-Unmodified-Since: the object was modified "
                                              "after that date")
        if self._if_none_match is not None:
            matched = record is not None and (self._if_none_match.star_tag or (
                etag and self._if_none_match.contains_weak(etag)))
            if matched:
                if safe:
                    raise PreconditionFailed(304, "not modified")
                raise PreconditionFailed(412, "If-None-Match: the object %s" % (
                    "exists" if self._if_none_match.star_tag else
                    "still has that ETag"))
        elif safe and self._if_modified_since is not None and modified is not None:
            if modified <= self._if_modified_since:
                raise PreconditionFailed(304, "not modified")

    def range_applies(self, record: ObjectRecord) -> bool:
        """Return False when ``If-Range`` says the ``Range`` must be ignored (send 200).

        RFC 9110 section 13.1.5: an entity tag must match strongly (a weak
        one never does); a date must equal the Last-Modified exactly.
        """
        if self._if_range is None:
            return True
        value = self._if_range.strip()
        if value.startswith('"') or value.startswith("W/"):
            tag, weak = unquote_etag(value)
            return not weak and bool(record.sha256) and tag == record.sha256
        date = parse_date(value)
        return date is not None and _seconds(date) == last_modified_of(record)
