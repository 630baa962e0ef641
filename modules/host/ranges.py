"""The ``Range`` request header (RFC 9110 section 14), single byte ranges only."""
import re
from typing import Optional, Tuple

__all__ = ["parse_range", "Unsatisfiable"]

_RANGE = re.compile(r"\A\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*\Z", re.IGNORECASE)


class Unsatisfiable(Exception):
    """The range lies outside the object: answer 416 with ``Content-Range: bytes */size``."""


def parse_range(header: Optional[str], size: int) -> Optional[Tuple[int, int]]:
    """Return ``(first, last)`` (inclusive) for a single byte range against ``size``.

    Returns None when the whole object should be sent with 200: no header,
    or a header that is not a single valid byte range (several ranges,
    other units, malformed text, last < first: RFC 9110 lets a server
    ignore those). A range reaching past the end is cut to the end.

    Raises:
        Unsatisfiable: the range starts at or after the end, asks for a
            zero-length suffix, or the object is empty.
    """
    if header is None:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # suffix: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise Unsatisfiable()
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None  # invalid range: ignore the header
    if first >= size:
        raise Unsatisfiable()
    return first, min(last, size - 1)
