"""Mask configuration arguments that look like secrets before showing them."""
import re
from typing import Any

__all__ = ["redact_args", "MASK"]

#: What a masked value is shown as.
MASK = "***"

_SECRET_NAME = re.compile(r"pass|secret|token|credential|api[_-]?key|auth", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@",
                           re.IGNORECASE)


def redact_args(args: Any) -> Any:
    """Return a copy of ``args`` with secret-looking values replaced by ``***``.

    Masked: dict values under secret-looking keys (``password``, ``token``,
    ``secret``, ``api_key`` ...), ``name=value`` strings with such a name, and
    the password part of URLs (``https://user:pw@host`` -> ``https://user:***@host``).
    """
    if isinstance(args, dict):
        return {key: (MASK if _SECRET_NAME.search(str(key)) and value not in (None, "")
                      else redact_args(value)) for key, value in args.items()}
    if isinstance(args, list):
        return [redact_args(item) for item in args]
    if isinstance(args, str):
        name, separator, value = args.partition("=")
        if separator and value and _SECRET_NAME.search(name) and "://" not in name:
            return "%s=%s" % (name, MASK)
        return _URL_PASSWORD.sub(lambda match: "%s%s:%s@" % (
            match.group("scheme"), match.group("user"), MASK), args)
    return args
