"""The ``Range`` request header (RFC 9110 section 14), single byte ranges only.

Parsing is Werkzeug's (:func:`werkzeug.http.parse_range_header`); this
module only applies the host's policy on top of it.
"""
import re
from typing import Optional, Tuple

from werkzeug.http import parse_range_header

__all__ = ["parse_range", "Unsatisfiable"]

_ZERO_SUFFIX = re.compile(r"\A\s*bytes\s*=\s*-\s*0+\s*\Z", re.IGNORECASE)


class Unsatisfiable(Exception):
    """The range lies outside the object: answer 416 with ``Content-Range: bytes */size``."""


def parse_range(header: Optional[str], size: int) -> Optional[Tuple[int, int]]:
    """Return ``(first, last)`` (inclusive) for a single byte range against ``size``.

    Returns None when the whole object should be sent with 200: no header,
    or a header that is not a single valid byte range (several ranges,
    other units, malformed text, last < first: RFC 9110 section 14.2 lets a
    server ignore those). A range reaching past the end is cut to the end.

    Raises:
        Unsatisfiable: the range starts at or after the end, asks for a
            zero-length suffix, or the object is empty (RFC 9110 section 15.5.17).
    """
    if header is None:
        return None
    if _ZERO_SUFFIX.match(header):  # Werkzeug rejects "-0"; RFC 9110 14.1.1: nothing to send
        raise Unsatisfiable()
    parsed = parse_range_header(header)
    if parsed is None or parsed.units.lower() != "bytes" or len(parsed.ranges) != 1:
        return None
    start, stop = parsed.ranges[0]
    if start < 0:  # suffix: the last -start bytes
        if size == 0:
            raise Unsatisfiable()
        return max(0, size + start), size - 1
    if start >= size:
        raise Unsatisfiable()
    last = size - 1 if stop is None else min(stop - 1, size - 1)
    return start, last
