"""Typed results that cross the boundary between a module and the platform.

A module's :meth:`~modules.StorageModule.statistics`, ``scrub`` and
``repair`` return plain JSON-serialisable dicts (that is what the platform
stores, shows and sends). The types here give those dicts a declared shape,
so that a host reads fields instead of guessing keys:

* :class:`Capacity` – total/free/used bytes, :data:`UNKNOWN` (-1) when unknown;
* :class:`Statistics` – a ``TypedDict`` with ``status`` (one of
  :data:`STATUSES`), ``reason`` and ``capacity``; modules add their own keys;
* :class:`ScrubReport` and :class:`RepairReport` – what one scrub or repair
  found and did, with :meth:`~ScrubReport.to_dict` (the plain JSON),
  :meth:`~ScrubReport.from_dict` (a module's dict back into the type, unknown
  keys kept) and :meth:`~ScrubReport.merge` (two reports into one, for
  totals over many objects);
* :func:`add_counts` – the per-object report folded into running totals of
  numbers, as ``vsm repair``/``vsm scrub`` print them.

Location-keyed fields follow the replica's convention: lists name locations
(``ok``, ``missing``, ``repaired``), dicts map a location to a reason
(``damaged``, ``unreachable``, ``failed``).
"""
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from typing import TypedDict

__all__ = [
    "UNKNOWN", "STATUS_OK", "STATUS_DEGRADED", "STATUS_UNAVAILABLE", "STATUSES",
    "Capacity", "CapacityDict", "Statistics", "statistics_status", "status_word",
    "ScrubReport", "RepairReport", "add_counts",
]

#: The value of a capacity field that the module cannot know.
UNKNOWN = -1

#: The storage works.
STATUS_OK = "ok"
#: The storage works with reduced redundancy or performance (``reason`` says why).
STATUS_DEGRADED = "degraded"
#: The storage cannot be used now (``reason`` says why).
STATUS_UNAVAILABLE = "unavailable"
#: Every value ``Statistics['status']`` may take.
STATUSES = (STATUS_OK, STATUS_DEGRADED, STATUS_UNAVAILABLE)

# words older modules used for "works"; read as STATUS_OK
_OK_SYNONYMS = frozenset({"ok", "healthy", "up", "online", "available", "good"})


class CapacityDict(TypedDict):
    """The JSON shape of :class:`Capacity`: integer bytes, -1 when unknown."""

    total: int
    free: int
    used: int


class Statistics(TypedDict, total=False):
    """The shape of :meth:`modules.StorageModule.statistics`.

    Keys:
        capacity: required; :class:`CapacityDict`.
        status: one of :data:`STATUSES` (absent means ``ok``).
        reason: for ``degraded``/``unavailable``, a sentence an administrator
            can act on (no secrets: pass it through
            :func:`modules.redaction.redact_text`).

    Modules add any other JSON-serialisable keys they find useful.
    """

    capacity: CapacityDict
    status: str
    reason: str


@dataclass(frozen=True)
class Capacity:
    """Bytes of a storage: ``total``, ``free`` and ``used``, each :data:`UNKNOWN` when unknown."""

    total: int = UNKNOWN
    free: int = UNKNOWN
    used: int = UNKNOWN

    def __post_init__(self):
        for name in ("total", "free", "used"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < UNKNOWN:
                raise ValueError("capacity %s must be a number of bytes or -1, got %r"
                                 % (name, value))
            object.__setattr__(self, name, int(value))

    def to_dict(self) -> CapacityDict:
        """Return ``{'total': int, 'free': int, 'used': int}``."""
        return {"total": self.total, "free": self.free, "used": self.used}

    @classmethod
    def from_dict(cls, value: Any) -> "Capacity":
        """Read a module's ``capacity`` dict; anything missing or malformed is :data:`UNKNOWN`.

        Never raises: a host must show a module whose statistics are odd.
        """
        if not isinstance(value, Mapping):
            return cls()

        def number(name: str) -> int:
            item = value.get(name, UNKNOWN)
            if isinstance(item, bool) or not isinstance(item, (int, float)) or item < 0:
                return UNKNOWN
            return int(item)

        return cls(number("total"), number("free"), number("used"))


def status_word(value: Any) -> str:
    """Return the :data:`STATUSES` word for a status a module reported.

    ``ok`` and the synonyms older modules used (``healthy``, ``up``,
    ``online``, ``available``, ``good``, any case) are ``ok``; ``degraded``
    is ``degraded``; anything else is ``unavailable``.
    """
    word = str(value).strip().lower()
    if word in _OK_SYNONYMS:
        return STATUS_OK
    return STATUS_DEGRADED if word == STATUS_DEGRADED else STATUS_UNAVAILABLE


def statistics_status(stats: Any) -> Tuple[str, str]:
    """Return ``(status, reason)`` of a module's statistics dict.

    ``status`` is one of :data:`STATUSES`. A truthy ``degraded`` key (the
    replica's) is ``degraded``, its reason the key itself when it is text,
    ``"not healthy: a, b"`` for a list, else ``degraded_reason`` or
    ``reason`` (possibly empty: the caller may explain further). Otherwise
    ``status`` decides (see :func:`status_word`; missing is ``ok``); an
    unknown word is ``unavailable`` with that word as reason when no
    ``reason`` is given.
    """
    if not isinstance(stats, Mapping):
        return STATUS_UNAVAILABLE, "no statistics"
    reason = stats.get("reason")
    reason = "" if reason is None else str(reason)
    degraded = stats.get("degraded")
    if degraded:
        if isinstance(degraded, str):
            return STATUS_DEGRADED, degraded
        if isinstance(degraded, (list, tuple)):
            return STATUS_DEGRADED, "not healthy: " + ", ".join(map(str, degraded))
        return STATUS_DEGRADED, str(stats.get("degraded_reason") or reason)
    status = stats.get("status", STATUS_OK)
    word = status_word(status)
    if word == STATUS_UNAVAILABLE:
        return word, reason or str(status).strip().lower()
    return word, reason if word == STATUS_DEGRADED else ""


# -- scrub and repair reports ---------------------------------------------------

def _merge_value(left: Any, right: Any) -> Any:
    if isinstance(left, list) and isinstance(right, list):
        return left + [item for item in right if item not in left]
    if isinstance(left, dict) and isinstance(right, dict):
        merged = dict(left)
        merged.update(right)
        return merged
    if _is_number(left) and _is_number(right):
        return left + right
    if left is None:
        return right
    return left if right is None else right


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class _Report:
    """Shared machinery of the report types (not public: use the subclasses)."""

    #: The object this report is about (a module-chosen id), or None for totals.
    object: Optional[str] = None
    #: Keys a module added that the type does not declare; kept as given.
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """Return the report as the plain JSON dict the platform stores and shows."""
        result = dict(self.extra)
        for item in dataclasses.fields(self):
            if item.name != "extra":
                value = getattr(self, item.name)
                result[item.name] = list(value) if isinstance(value, list) else (
                    dict(value) if isinstance(value, dict) else value)
        return result

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]):
        """Build the report from a module's dict; keys the type does not declare go to ``extra``.

        Raises:
            TypeError: ``value`` is not a mapping.
        """
        if not isinstance(value, Mapping):
            raise TypeError("a %s is built from a dict, got %s" % (cls.__name__,
                                                                    type(value).__name__))
        known = {item.name: item for item in dataclasses.fields(cls) if item.name != "extra"}
        kwargs: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        for key, item in value.items():
            if key in known:
                kwargs[key] = item
            else:
                extra[key] = item
        return cls(extra=extra, **kwargs)

    def merge(self, other: "_Report"):
        """Return a new report combining this one and ``other`` (neither is changed).

        Lists are joined (without repeating an item), location -> reason
        dicts are combined, numbers are added; ``object`` is kept when both
        agree and None otherwise (a total over several objects).

        Raises:
            TypeError: ``other`` is a report of another type.
        """
        if type(other) is not type(self):
            raise TypeError("cannot merge a %s into a %s" % (type(other).__name__,
                                                             type(self).__name__))
        values: Dict[str, Any] = {}
        for item in dataclasses.fields(self):
            if item.name == "object":
                values["object"] = self.object if self.object == other.object else None
            elif item.name == "extra":
                extra = dict(self.extra)
                for key, value in other.extra.items():
                    extra[key] = _merge_value(extra[key], value) if key in extra else value
                values["extra"] = extra
            else:
                values[item.name] = _merge_value(getattr(self, item.name),
                                                 getattr(other, item.name))
        return type(self)(**values)

    def counts(self) -> Dict[str, Any]:
        """Return the report as numbers: lists and location dicts counted, numbers kept."""
        total: Dict[str, Any] = {}
        add_counts(total, self.to_dict())
        return total


@dataclass
class ScrubReport(_Report):
    """What a scrub of one object found (see ``StorageModule.scrub``).

    Attributes:
        size: the object's size in bytes, None when unknown.
        verified: True when the copies could be checked against checksums.
        ok: locations whose copy is intact.
        damaged: location -> reason, for copies that fail verification.
        missing: locations that should hold a copy and do not.
        unverified: locations whose copy exists but cannot be checked.
        unreachable: location -> error, for locations that could not be asked.
        bytes_checked: bytes read and verified.
    """

    size: Optional[int] = None
    verified: bool = False
    ok: List[str] = field(default_factory=list)
    damaged: Dict[str, str] = field(default_factory=dict)
    missing: List[str] = field(default_factory=list)
    unverified: List[str] = field(default_factory=list)
    unreachable: Dict[str, str] = field(default_factory=dict)
    bytes_checked: int = 0

    @property
    def healthy(self) -> bool:
        """True when nothing is damaged, missing or unreachable."""
        return not (self.damaged or self.missing or self.unreachable)

    def merge(self, other: "ScrubReport") -> "ScrubReport":
        merged = super().merge(other)
        merged.verified = self.verified and other.verified
        merged.size = self.size if self.size == other.size else None
        return merged


@dataclass
class RepairReport(_Report):
    """What a repair did (see ``StorageModule.repair``).

    Attributes:
        repaired: locations (or items) brought back to their intended state.
        failed: location or item -> error, for what could not be repaired.
        present: locations that already held a good copy.
        reclaimed: items freed that nothing referenced any more (wrappers
            that keep an index, such as deduplication).
        remaining: items still waiting for a later repair.
    """

    repaired: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)
    present: List[str] = field(default_factory=list)
    reclaimed: int = 0
    remaining: int = 0

    @property
    def healthy(self) -> bool:
        """True when nothing failed and nothing remains."""
        return not self.failed and not self.remaining


def add_counts(total: Dict[str, Any], report: Any) -> None:
    """Add the numbers of one scrub or repair report (a dict or a report) into ``total``.

    Lists and location -> reason dicts count their items, other nested dicts
    add up recursively, numbers add up, anything else (strings, booleans,
    None) is dropped. ``total`` is changed in place; a key whose total is not
    a number (or dict) is left alone.
    """
    if isinstance(report, _Report):
        report = report.to_dict()
    if not isinstance(report, Mapping):
        return
    for key, value in report.items():
        if isinstance(value, Mapping) and all(isinstance(item, str) for item in value.values()):
            value = len(value)  # location -> reason: count the locations
        if isinstance(value, Mapping):
            if isinstance(total.setdefault(key, {}), dict):
                add_counts(total[key], value)
            continue
        if isinstance(value, (list, tuple)):
            value = len(value)
        if _is_number(value) and _is_number(total.get(key, 0)):
            total[key] = total.get(key, 0) + value
