"""Sharded object keys: ``'xx/yy/<32 hex>'``, the module_data of ``simple`` and ``HTTPStorage``.

Two levels of 256 shards keep directories (or collections) small for
millions of objects.
"""
import re
import uuid

__all__ = ["SHARDED_KEY", "new_sharded_key"]

#: A key made by :func:`new_sharded_key`; groups: the two shards and the name.
SHARDED_KEY = re.compile(r"\A([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{32})\Z")


def new_sharded_key() -> str:
    """Return a new random key ``'xx/yy/<32 hex>'`` whose shards are its name's first bytes."""
    name = uuid.uuid4().hex
    return "%s/%s/%s" % (name[:2], name[2:4], name)
