"""Where an object's copies live on the *configured* locations (deterministic placement).

An object's module_data (:mod:`replica.module_data`) names the copies made
when it was created, and the platform never lets it change. To give existing
objects copies on a location added later (or on one that was down when the
object was created), the replica derives the missing copies' module_data
from the object id, through the optional contract method
``new_data_for(context, object_id)`` of the location's module (capability
``placement``, see :class:`modules.StorageModule`):

* the data copy lives at ``new_data_for(object_id)``;
* its manifest (objects written with integrity on) at
  ``new_data_for(manifest_id(object_id))``, a second id derived from the
  first with BLAKE2b (:func:`manifest_id`).

Nothing is remembered: every process and every node configured with the same
arguments derives the same places, and a replica with an empty ``state_dir``
finds the copies again. The module_data's own entries always win: a location
named in it keeps the copy recorded there.

A location without the capability (or whose module cannot be resolved now)
cannot receive copies of existing objects; :func:`expand` reports it in
:attr:`Layout.unplaced` so that ``repair`` and the statistics can say so.
Locations marked ``draining`` get entries too, so that copies placed there
before the mark are still read and deleted; the write paths (``assign``,
``repair``) never write to a draining location (see ``docs/replica.md``).
"""
import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Sequence

from modules.errors import LocationUnavailable, StorageError
from modules.redaction import redact_text
from replica import module_data as formats
from replica.locations import Location

__all__ = ["Layout", "expand", "manifest_id", "supports_placement", "PLACED"]

log = logging.getLogger(__name__)

#: The key that marks a copy entry derived here (never stored in module_data).
PLACED = "placed"

_MANIFEST_PERSON = b"vsm-replica-mf"  # BLAKE2b personalisation: manifests' ids only


@dataclass(frozen=True)
class Layout:
    """An object's copies on the configured locations.

    Attributes:
        data: the object's module_data with a derived entry (marked
            ``"placed": True``) for every configured location
            it does not name and that supports placement; ``data.text`` is
            the original module_data, unchanged.
        placed: names of the locations whose entries were derived.
        unplaced: location name -> why it cannot receive this object.
    """

    data: formats.ReplicaData
    placed: Sequence[str]
    unplaced: Mapping[str, str]


def manifest_id(object_id: str) -> str:
    """Return the id under which the manifest of ``object_id``'s derived copies is placed.

    32 lowercase hex digits: BLAKE2b-128 of the object id with a fixed
    personalisation, so it never equals an object id in practice and is the
    same everywhere.
    """
    return hashlib.blake2b(object_id.encode("ascii"), digest_size=16,
                           person=_MANIFEST_PERSON).hexdigest()


def supports_placement(module: Any) -> bool:
    """Return True when ``module`` declares capability ``placement`` (inherited by subclasses)."""
    capabilities = getattr(module, "capabilities", None) or {}
    try:
        return bool(capabilities.get("placement"))
    except AttributeError:  # a module whose capabilities is not a mapping
        return False


def expand(context: Optional[dict], data: formats.ReplicaData,
           locations: Sequence[Location]) -> Layout:
    """Add derived copy entries for the configured locations ``data`` does not name.

    The derived entry has ``"mf"`` when every recorded copy has one (an
    object written with integrity on).

    Returns:
        Layout: never raises for a location's problem (it is in ``unplaced``).
    """
    missing = [location for location in locations if location.name not in data.copies]
    if not missing:
        return Layout(data, (), MappingProxyType({}))
    copies: Dict[str, Mapping[str, Any]] = dict(data.copies)
    placed = []
    unplaced: Dict[str, str] = {}
    with_manifest = data.verified
    for location in missing:
        try:
            module = location.module(context)
        except Exception as error:  # a platform resolver may raise anything: report it
            unplaced[location.name] = redact_text("cannot be resolved now: %s" % (
                location.translate(error, "getModule"),))
            continue
        if not supports_placement(module):
            unplaced[location.name] = (
                "%s does not support deterministic placement (capability 'placement'); it only "
                "receives objects created after it was added" % type(module).__name__)
            continue
        try:
            entry = {"md": _derive(context, location, data.object_id), PLACED: True}
            manifest_md = _derive(context, location, manifest_id(data.object_id))
            if manifest_md == entry["md"]:  # asked even without manifests: a module that
                # ignored the id would put every object's copy in one place
                raise LocationUnavailable(
                    "location %s gives the same module_data for two object ids (its "
                    "new_data_for ignores the id)" % location.name, location=location.name)
            if with_manifest:
                entry["mf"] = manifest_md
        except StorageError as error:
            unplaced[location.name] = redact_text("new_data_for failed: %s: %s" % (
                type(error).__name__, error))
            continue
        copies[location.name] = MappingProxyType(entry)
        placed.append(location.name)
    expanded = dataclasses.replace(data, copies=MappingProxyType(copies))
    return Layout(expanded, tuple(placed), MappingProxyType(unplaced))


def _derive(context: Optional[dict], location: Location, object_id: str) -> str:
    child = location.call(context, "new_data_for", object_id)
    if not isinstance(child, str) or not child or len(child) > formats.MAX_CHILD_LENGTH:
        raise LocationUnavailable("location %s returned unusable module_data from new_data_for "
                                  "(a %s)" % (location.name, type(child).__name__),
                                  location=location.name)
    return child
