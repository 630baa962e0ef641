"""Sharded object keys: ``'xx/yy/<32 hex>'``, the module_data of ``simple`` and ``HTTPStorage``.

Two levels of 256 shards keep directories (or collections) small for
millions of objects.
"""
import re
import uuid

from modules.errors import InvalidModuleData

__all__ = ["SHARDED_KEY", "OBJECT_ID", "new_sharded_key", "sharded_key_for"]

#: A key made by :func:`new_sharded_key`; groups: the two shards and the name.
SHARDED_KEY = re.compile(r"\A([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{32})\Z")
#: An object id as ``StorageModule.new_data_for`` receives it (a UUID4's hex).
OBJECT_ID = re.compile(r"\A[0-9a-f]{32}\Z")


def new_sharded_key() -> str:
    """Return a new random key ``'xx/yy/<32 hex>'`` whose shards are its name's first bytes."""
    name = uuid.uuid4().hex
    return "%s/%s/%s" % (name[:2], name[2:4], name)


def sharded_key_for(object_id: str) -> str:
    """Return the key ``'xx/yy/<object_id>'`` of a given object id (deterministic placement).

    Raises:
        InvalidModuleData: ``object_id`` is not 32 lowercase hex characters.
    """
    if not isinstance(object_id, str) or not OBJECT_ID.match(object_id):
        shown = object_id[:80] if isinstance(object_id, str) else object_id
        raise InvalidModuleData("object id %r is not 32 lowercase hex characters" % (shown,))
    return "%s/%s/%s" % (object_id[:2], object_id[2:4], object_id)
