"""The replica's module_data: a versioned JSON string naming each copy.

Format (version 1)::

    {"v": 1, "id": "<32 hex>",
     "copies": {"<location name>": {"md": "<child module_data>", "mf": "<child module_data>"}}}

``mf`` (since the integrity work) names the copy's manifest at the same
location (see :mod:`replica.manifest`); entries without it were written
before manifests existed, or with ``integrity=off``, and are read unverified.

``id`` is the object's own id (journal entries and logs use it). Each copy
entry is a dict so that later features can record more per copy (the
integrity work adds e.g. a manifest reference): extra keys in a copy entry
are kept and returned untouched; everything else is validated strictly, and
any other value raises :class:`~modules.errors.InvalidModuleData`.
"""
import json
import re
import uuid
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional

from modules.errors import InvalidModuleData

__all__ = ["ReplicaData", "encode", "decode", "new_object_id", "VERSION", "MAX_LENGTH"]

#: The format version this code writes and reads.
VERSION = 1
#: The longest module_data accepted (a few KiB is typical).
MAX_LENGTH = 64 * 1024
#: The longest child module_data accepted.
MAX_CHILD_LENGTH = 16 * 1024
#: The most copies one module_data may name.
MAX_COPIES = 64
#: The longest location name accepted in module_data.
MAX_NAME_LENGTH = 128

_OBJECT_ID = re.compile(r"\A[0-9a-f]{32}\Z")
_TOP_KEYS = frozenset({"v", "id", "copies"})
#: ``"seal": "keyed"``: the object's manifests were sealed with a key; an
#: unkeyed manifest of it is never trusted (a trust anchor the platform stores).
_OPTIONAL_KEYS = frozenset({"seal"})
#: The values of ``"seal"``.
KEYED_SEAL = "keyed"


@dataclass(frozen=True)
class ReplicaData:
    """A decoded module_data.

    Attributes:
        object_id: the object's id (32 lowercase hex digits).
        copies: location name -> copy entry (a read-only dict with at least
            ``"md"``, the child's module_data).
        text: the module_data string this was decoded from.
        keyed: True when every manifest of the object must carry a keyed
            seal (written by a replica with a keyed ``checksum``).
    """

    object_id: str
    copies: Mapping[str, Mapping[str, Any]]
    text: str
    keyed: bool = False

    def child_md(self, name: str) -> str:
        """Return the child module_data recorded for location ``name``.

        Raises:
            KeyError: no copy is recorded for ``name``.
        """
        return self.copies[name]["md"]

    def manifest_md(self, name: str) -> Optional[str]:
        """Return the child module_data of the manifest at ``name`` (None: written without).

        Raises:
            KeyError: no copy is recorded for ``name``.
        """
        return self.copies[name].get("mf")

    @property
    def verified(self) -> bool:
        """True when every copy has a manifest (objects written with integrity on)."""
        return all("mf" in entry for entry in self.copies.values())


def new_object_id() -> str:
    """Return a new random object id (32 lowercase hex digits)."""
    return uuid.uuid4().hex


def encode(object_id: str, copies: Mapping[str, Mapping[str, Any]], keyed: bool = False) -> str:
    """Return the module_data string for ``object_id`` and its copy entries.

    Returns:
        str: compact JSON with sorted keys (the same input gives the same text).

    Raises:
        InvalidModuleData: the result would not pass :func:`decode` (bad id,
            no copies, a non-string child module_data, too long).
    """
    value = {"v": VERSION, "id": object_id,
             "copies": {name: dict(entry) for name, entry in copies.items()}}
    if keyed:
        value["seal"] = KEYED_SEAL
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    decode(text)
    return text


def decode(module_data: Any) -> ReplicaData:
    """Parse and validate a replica module_data.

    Returns:
        ReplicaData: the object id and its copy entries.

    Raises:
        InvalidModuleData: ``module_data`` is not a str, is too long, is not
            JSON, is of another version, or has a wrong field, type or size.
    """
    if not isinstance(module_data, str):
        raise _invalid(module_data, "must be a str, got %s" % type(module_data).__name__)
    if len(module_data) > MAX_LENGTH:
        raise _invalid(module_data, "is %d characters long; replica module_data is at most %d"
                       % (len(module_data), MAX_LENGTH))
    try:
        value = json.loads(module_data)
    except (ValueError, RecursionError):
        raise _invalid(module_data, "is not JSON") from None
    if not isinstance(value, dict):
        raise _invalid(module_data, "is not a JSON object")
    if not _TOP_KEYS <= set(value) <= _TOP_KEYS | _OPTIONAL_KEYS:
        raise _invalid(module_data, "must have exactly the keys v, id and copies (and seal)")
    if value.get("seal", KEYED_SEAL) != KEYED_SEAL:
        raise _invalid(module_data, "has an unknown seal %r" % (value["seal"],))
    version = value["v"]
    if isinstance(version, bool) or version != VERSION:
        raise _invalid(module_data, "has version %r; this replica reads version %d"
                       % (version, VERSION))
    object_id = value["id"]
    if not isinstance(object_id, str) or not _OBJECT_ID.match(object_id):
        raise _invalid(module_data, "has an id that is not 32 lowercase hex digits")
    copies = value["copies"]
    if not isinstance(copies, dict) or not copies:
        raise _invalid(module_data, "must name at least one copy")
    if len(copies) > MAX_COPIES:
        raise _invalid(module_data, "names %d copies; at most %d" % (len(copies), MAX_COPIES))
    checked: Dict[str, Mapping[str, Any]] = {}
    for name, entry in copies.items():
        if not name or len(name) > MAX_NAME_LENGTH:
            raise _invalid(module_data, "has a copy with an empty or overlong location name")
        if not isinstance(entry, dict) or not isinstance(entry.get("md"), str):
            raise _invalid(module_data, "copy %r must be an object with a string \"md\"" % name)
        if not entry["md"] or len(entry["md"]) > MAX_CHILD_LENGTH:
            raise _invalid(module_data, "copy %r has an empty or overlong \"md\"" % name)
        manifest = entry.get("mf")
        if manifest is not None and (not isinstance(manifest, str) or not manifest
                                     or len(manifest) > MAX_CHILD_LENGTH):
            raise _invalid(module_data, "copy %r has an unusable manifest reference \"mf\"" % name)
        checked[name] = MappingProxyType(entry)
    return ReplicaData(object_id=object_id, copies=MappingProxyType(checked), text=module_data,
                       keyed="seal" in value)


def _invalid(module_data: Any, problem: str) -> InvalidModuleData:
    return InvalidModuleData(
        "replica module_data %s (expected what ReplicaStorage.new_data returned: "
        "{\"v\": 1, \"id\": ..., \"copies\": {...}})" % problem, module_data=module_data)
