"""The configuration shared by the wrappers (``replica.crypt``, ``replica.dedup``).

A wrapper is configured like a replica with one location: its positional
arguments are the inner location (a configured module's name, an inline JSON
spec, or a URL, parsed by the replica's own parser,
:func:`replica.settings.parse_settings`) and ``"name=value"`` options, which
may also be given as keyword arguments. Some options may be repeated
(``old_key_env=A``, ``old_key_env=B``); as a keyword argument such an option
takes a list.
"""
from typing import Any, Dict, List, Mapping, Sequence, Set, Tuple

from modules.errors import ConfigurationError
from replica.locations import Location
from replica.settings import LocationSpec, parse_settings

__all__ = ["parse_wrapper_args", "open_inner"]

# Error limiting is the replica's business; a wrapper's only location is always tried.
_NEVER_LIMITED = 1_000_000_000


def parse_wrapper_args(wrapper: str, args: Sequence[Any], kwargs: Mapping[str, Any],
                       options: Set[str], repeatable: Set[str]) -> Tuple[LocationSpec,
                                                                         Dict[str, Any]]:
    """Split a wrapper's arguments into its inner location and its options.

    Args:
        wrapper: the wrapper's class name, for messages.
        args: positional arguments: exactly one location, any ``name=value``.
        kwargs: keyword arguments (options only).
        options: the option names the wrapper knows.
        repeatable: those that may be given more than once (their value is a
            list of strings).

    Returns:
        (LocationSpec, dict): the parsed inner location and the options
        (repeatable ones as lists, others as given; absent ones missing).

    Raises:
        ConfigurationError: no location or more than one, an unknown option,
            a non-repeatable option given twice, or a location that cannot be
            understood (the replica parser's message).
    """
    locations: List[Any] = []
    values: Dict[str, Any] = {}

    def add(name: str, value: Any, where: str) -> None:
        if name not in options:
            raise ConfigurationError("unknown %s option %r in %s; known options: %s"
                                     % (wrapper, name, where, ", ".join(sorted(options))))
        if name in repeatable:
            items = value if isinstance(value, (list, tuple)) else [value]
            values.setdefault(name, []).extend(items)
        elif name in values:
            raise ConfigurationError("%s option %r is given twice; give it once" % (wrapper, name))
        else:
            values[name] = value

    for item in args:
        if isinstance(item, str) and "=" in item and not item.lstrip().startswith("{") \
                and "://" not in item.split("=", 1)[0]:
            name, value = item.split("=", 1)
            add(name.strip(), value, "args")
        else:
            locations.append(item)
    for name, value in kwargs.items():
        add(name, value, "keyword arguments")
    if len(locations) != 1:
        raise ConfigurationError(
            "%s wraps exactly one location (a configured module's name, a JSON spec like "
            "'{\"module\": \"simple.simple.SimpleStorage\", \"args\": [\"/mnt/a\"]}', or a "
            "file://, http(s):// or s3:// URL); got %d" % (wrapper, len(locations)))
    spec = parse_settings(locations, {}).locations[0]
    return spec, values


def open_inner(spec: LocationSpec, owner: Any) -> Location:
    """Return the :class:`~replica.locations.Location` of a wrapper's inner module.

    Inline specs and URLs create their module now; named modules are
    resolved through the context on every call (``location.module(context)``).

    Raises:
        ConfigurationError: an inline or URL location's module cannot be created.
    """
    return Location(spec, _NEVER_LIMITED, 1.0, owner=owner)
