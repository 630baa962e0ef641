"""``Content-Length`` and ``Content-Range`` of HTTPStorage's responses, parsed here only.

``Content-Range`` (RFC 9110 section 14.4) is parsed by Werkzeug; a header
that does not parse, or whose unit is not ``bytes``, counts as absent.
``Content-Length`` (RFC 9110 section 8.6) is a plain decimal number; it is
read by hand because Werkzeug parses it only from a WSGI environment.
"""
from typing import Mapping, NamedTuple, Optional

from werkzeug.http import parse_content_range_header

__all__ = ["ContentRange", "content_length", "content_range"]


class ContentRange(NamedTuple):
    """A parsed ``Content-Range``: ``start`` and ``stop`` (exclusive) are None for ``*/total``;
    ``total`` is None for ``start-end/*`` (the server does not know the length)."""

    start: Optional[int]
    stop: Optional[int]
    total: Optional[int]


def content_length(headers: Mapping[str, str]) -> Optional[int]:
    """Return ``Content-Length`` as an int, or None when it is absent or not a decimal number."""
    value = headers.get("Content-Length")
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        return None
    return int(value)


def content_range(headers: Mapping[str, str]) -> Optional[ContentRange]:
    """Return the response's byte ``Content-Range``, or None when it is absent or unusable."""
    value = headers.get("Content-Range")
    if not value:
        return None
    parsed = parse_content_range_header(value.strip())
    if parsed is None or (parsed.units or "").lower() != "bytes":
        return None
    if parsed.stop is not None and parsed.length is not None and parsed.stop > parsed.length:
        return None  # last byte past the length: invalid (RFC 9110 section 14.4)
    return ContentRange(parsed.start, parsed.stop, parsed.length)
