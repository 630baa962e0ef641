"""Headers stored with an object: representation headers and user metadata.

At upload the host keeps the representation headers a client gives
(``Content-Type`` in its own column; ``Content-Encoding``,
``Content-Disposition``, ``Content-Language``, ``Cache-Control`` here) and
user metadata ``X-Object-Meta-<name>: <value>`` as OpenStack Swift does,
and sends them back on GET and HEAD. The limits are Swift's defaults
(``swift/common/constraints.py``: 128-byte names, 256-byte values, 90
items, 4096 bytes in all); a request over them gets a 400 that says which.
Names must be RFC 9110 tokens and values free of control characters
(section 5.5), since they are sent back as response headers.
"""
import re
from typing import List, Optional, Tuple

from modules.host.http import HttpError, Request

__all__ = ["stored_headers", "merged", "content_type", "REPRESENTATION_HEADERS", "META_PREFIX", "MAX_META_NAME_LENGTH",
           "MAX_META_VALUE_LENGTH", "MAX_META_COUNT", "MAX_META_OVERALL_SIZE",
           "MAX_HEADER_VALUE_LENGTH"]

#: Representation headers stored with an object and sent back (besides Content-Type).
REPRESENTATION_HEADERS = ("Content-Encoding", "Content-Disposition", "Content-Language",
                          "Cache-Control")

#: The prefix of user metadata headers.
META_PREFIX = "X-Object-Meta-"

#: Longest metadata name after the prefix, in bytes (Swift's default).
MAX_META_NAME_LENGTH = 128

#: Longest metadata value, in bytes (Swift's default).
MAX_META_VALUE_LENGTH = 256

#: Most metadata items per object (Swift's default).
MAX_META_COUNT = 90

#: Most bytes of metadata names and values together (Swift's default).
MAX_META_OVERALL_SIZE = 4096

#: Longest stored representation header value, in bytes.
MAX_HEADER_VALUE_LENGTH = 1024

# RFC 9110 section 5.6.2 (token) and 5.5 (field-value: VCHAR, obs-text, SP and HTAB inside).
# Written here because neither Werkzeug nor cheroot exposes a validator for header fields.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _checked_value(name: str, value: str) -> str:
    """Return ``value``, or raise a 400 when it holds control characters (RFC 9110 5.5)."""
    if _CONTROL.search(value):
        raise HttpError(400, "%s holds control characters (RFC 9110 section 5.5); it would be "
                             "sent back as a header" % name)
    return value


def stored_headers(request: Request) -> Tuple[Tuple[str, str], ...]:
    """Return the headers of ``request`` to store with the object, as (name, value) pairs.

    Metadata names are kept in lower case after the prefix
    (``X-Object-Meta-color``); HTTP header names are case-insensitive.

    Raises:
        HttpError: 400 when metadata or a header is over its limit, empty-named, named
            with other than an RFC 9110 token, or holds control characters.
    """
    kept: List[Tuple[str, str]] = []
    for name in REPRESENTATION_HEADERS:
        value = request.header(name)
        if value is not None:
            if len(value.encode("latin-1", "replace")) > MAX_HEADER_VALUE_LENGTH:
                raise HttpError(400, "%s is longer than %d bytes" % (name,
                                                                     MAX_HEADER_VALUE_LENGTH))
            kept.append((name, _checked_value(name, value)))
    metadata: List[Tuple[str, str]] = []
    total = 0
    for name, value in request.headers.items():
        if not name.lower().startswith(META_PREFIX.lower()):
            continue
        suffix = name[len(META_PREFIX):].lower()
        if not suffix:
            raise HttpError(400, "metadata headers look like X-Object-Meta-<name>: <value>; "
                                 "the name is missing")
        if len(suffix) > MAX_META_NAME_LENGTH:
            raise HttpError(400, "the metadata name %r is longer than %d bytes"
                            % (suffix[:40] + "...", MAX_META_NAME_LENGTH))
        if not _TOKEN.match(suffix):
            raise HttpError(400, "the metadata name %r may hold only letters, digits and "
                                 "!#$%%&'*+-.^_`|~ (an RFC 9110 token)" % suffix)
        _checked_value(name, value)
        if len(value) > MAX_META_VALUE_LENGTH:
            raise HttpError(400, "the value of metadata %r is longer than %d bytes"
                            % (suffix, MAX_META_VALUE_LENGTH))
        total += len(suffix) + len(value)
        metadata.append((META_PREFIX + suffix, value))
    if len(metadata) > MAX_META_COUNT:
        raise HttpError(400, "at most %d X-Object-Meta-* headers per object, got %d"
                        % (MAX_META_COUNT, len(metadata)))
    if total > MAX_META_OVERALL_SIZE:
        raise HttpError(400, "X-Object-Meta-* names and values total %d bytes; at most %d"
                        % (total, MAX_META_OVERALL_SIZE))
    return tuple(kept + sorted(metadata))


def merged(base: Tuple[Tuple[str, str], ...],
           given: Tuple[Tuple[str, str], ...]) -> Tuple[Tuple[str, str], ...]:
    """Return ``base`` with the headers of ``given`` replacing those of the same name (copies)."""
    names = {name.lower() for name, _ in given}
    return tuple([item for item in base if item[0].lower() not in names] + list(given))


def content_type(request: Request) -> Optional[str]:
    """Return the request's Content-Type to store, or None (then the default is served).

    Raises:
        HttpError: 400 when it is longer than 255 bytes or holds control characters.
    """
    value = request.header("Content-Type")
    if value is None:
        return None
    if len(value) > 255:
        raise HttpError(400, "Content-Type is longer than 255 bytes")
    return _checked_value("Content-Type", value)
