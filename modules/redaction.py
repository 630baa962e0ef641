"""One place that hides secrets before configuration or errors are shown.

Everything that shows configuration or an error text to a person or a log
(the provisioning API, the status page, ``vsm`` output, error messages,
statistics, ``repr``) passes it through :func:`redact` (structured values)
or :func:`redact_text` (free text). Masked are:

* values under a secret-looking name, in dicts and in ``name=value``
  strings: ``password``, ``passwd``, ``secret``, ``token``, ``credential``,
  ``auth``, ``api_key``, ``*_key``, ``*_secret``, ``signature`` (names ending
  in ``_env``, ``_file`` or ``_path`` name where a secret is kept, not the
  secret, and are shown);
* the user-information part of URLs (``https://user:pw@host`` ->
  ``https://user:***@host``; a lone ``https://token@host`` -> ``https://***@host``)
  and secret-looking query parameters (``?X-Amz-Signature=...``);
* the same, at any depth, inside strings that hold JSON (an inline location
  spec ``{"module": ..., "args": [...]}`` given as one argument).
"""
import json
import re
from typing import Any

__all__ = ["MASK", "redact", "redact_text", "is_secret_name"]

#: What a masked value is shown as.
MASK = "***"

_SECRET_NAME = re.compile(
    r"pass|secret|token|credential|auth|api[_-]?key|signature|(?:^|[_-])key$|private",
    re.IGNORECASE)
_NOT_SECRET_SUFFIX = re.compile(r"[_-](env|file|path|dir|id)$", re.IGNORECASE)
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s\"'?#]*)(?::[^@/\s\"']*)?@",
    re.IGNORECASE)
_QUERY_SECRET = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&#\s\"']+)=(?P<value>[^&#\s\"']*)")
_TEXT_OPTION = re.compile(r"(?P<name>\b[A-Za-z_][A-Za-z0-9_.-]*)=(?P<value>[^\s,;\"'&]+)")


def is_secret_name(name: Any) -> bool:
    """Tell whether a configuration name (``password``, ``secret_key`` ...) holds a secret."""
    text = str(name)
    return bool(_SECRET_NAME.search(text)) and not _NOT_SECRET_SUFFIX.search(text)


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with every secret replaced by ``***``.

    Args:
        value: any JSON-like value (dict, list, tuple, str, number, None).

    Returns:
        The same shape; dicts, lists and tuples are copied, never modified.
    """
    if isinstance(value, dict):
        return {key: (MASK if is_secret_name(key) and item not in (None, "")
                      else redact(item)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(item) for item in value)
    if isinstance(value, str):
        return _redact_string(value)
    return value


def redact_text(text: Any) -> str:
    """Return ``str(text)`` with URL credentials and ``name=secret`` pairs masked.

    For free text such as error messages and log lines; structured values go
    through :func:`redact`.
    """
    text = _redact_urls(str(text))
    return _TEXT_OPTION.sub(
        lambda m: "%s=%s" % (m.group("name"), MASK) if is_secret_name(m.group("name"))
        else m.group(0), text)


def _redact_string(text: str) -> str:
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and len(stripped) < 1_000_000:
        try:
            parsed = json.loads(stripped)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, (dict, list)):
            return json.dumps(redact(parsed))
    name, separator, rest = text.partition("=")
    if separator and rest and "://" not in name and is_secret_name(name):
        return "%s=%s" % (name, MASK)
    if separator and "://" not in name:
        return "%s=%s" % (name, _redact_urls(rest))
    return _redact_urls(text)


def _redact_urls(text: str) -> str:
    def userinfo(match):
        user = match.group("user")
        has_password = match.group(0)[len(match.group("scheme")) + len(user):-1].startswith(":")
        if has_password and user:
            return "%s%s:%s@" % (match.group("scheme"), user, MASK)
        return "%s%s@" % (match.group("scheme"), MASK)

    text = _URL_USERINFO.sub(userinfo, text)
    if "://" in text:
        text = _QUERY_SECRET.sub(
            lambda m: "%s%s=%s" % (m.group("lead"), m.group("name"), MASK)
            if is_secret_name(m.group("name")) and m.group("value") else m.group(0), text)
    return text
