"""Writing and deleting one copy of an object at one location.

Shared by the replica's write, delete, repair and journal-replay paths.
"""
from typing import Callable, Optional

from modules.errors import ObjectNotFound
from replica.fanout import ChunkChannel
from replica.locations import Location

__all__ = ["delete_copy", "writer"]


def writer(context: Optional[dict], location: Location,
           child: str) -> Callable[[ChunkChannel], None]:
    """Return the fan-out writer that stores a channel's bytes at ``location``.

    Returns:
        callable: takes a :class:`~replica.fanout.ChunkChannel`; raises the
        SDK errors of the location's ``assign``.
    """
    def write(channel: ChunkChannel) -> None:
        location.call(context, "assign", child, channel)
    return write


def delete_copy(context: Optional[dict], location: Location, child: str,
                manifest_md: Optional[str]) -> None:
    """Delete a copy: its manifest first (so it stops counting), then its data.

    Returns:
        None.

    Raises:
        ObjectNotFound: the data copy does not exist (a missing manifest is fine).
        StorageError: the location failed (translated by the location).
    """
    if manifest_md is not None:
        try:
            location.call(context, "delete", manifest_md)
        except ObjectNotFound:
            pass
    location.call(context, "delete", child)
