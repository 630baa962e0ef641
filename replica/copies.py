"""The copies of one object: writing, deleting and opening them.

:class:`Copies` is shared by the replica's write, delete, read, repair and
journal-replay paths, so that a copy is written, removed and read the same
way everywhere: deletes that fail are journaled (through the
:class:`~replica.ledger.Ledger`), manifests go with their data, reads verify
every block when the object has manifests. The free functions
:func:`writer`, :func:`writer_with_manifest` and :func:`delete_copy` act
on one copy at one location.
"""
import concurrent.futures
import functools
import io
import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Set

from modules.errors import ObjectNotFound, StorageError
from replica import module_data as formats
from replica.checksum import Keyring
from replica.dispatcher import Dispatcher
from replica.failover import FailoverReadStream, open_failover_stream
from replica.fanout import ChunkChannel, FanOutResult
from replica.journal import COPY, DELETE
from replica.ledger import Ledger
from replica.location_set import LocationSet
from replica.locations import WRITE, Location, Placed
from replica.manifest import Manifest
from replica.verified import (
    READ_AHEAD,
    VerifiedCandidate,
    VerifiedReadStream,
    open_verified_stream,
)

__all__ = ["Copies", "Reference", "delete_copy", "writer", "writer_with_manifest"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reference:
    """The copy :func:`~replica.verified.find_reference` chose for an object, to open it later.

    Attributes:
        module_data: the replica module_data it was found for.
        object_id: that object's id.
        candidates: the candidates searched, in that order.
        start: index in ``candidates`` of the copy found.
        manifest: that copy's manifest (the object's reference).
        manifests: every manifest loaded, by location name.
        failures: location name -> error of the candidates passed over.
        found: :func:`time.monotonic` when it was found, in seconds.
    """

    module_data: str
    object_id: str
    candidates: List[VerifiedCandidate]
    start: int
    manifest: Manifest
    manifests: Dict[str, Manifest]
    failures: Dict[str, StorageError]
    found: float


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


def writer_with_manifest(context: Optional[dict], location: Location, child: str,
                         manifest_md: str, manifest: bytes,
                         manifest_failed: Set[str]) -> Callable[[ChunkChannel], None]:
    """Return a fan-out writer that stores the data, then its manifest, at ``location``.

    For objects whose manifest is known before the write (they fit in one
    chunk): one worker does both, in the order of the two-round write (a
    copy without its manifest never counts). When storing the manifest fails,
    the location's name is added to ``manifest_failed`` (its data copy is
    then there and must be removed) and the error is raised.

    Returns:
        callable: takes a :class:`~replica.fanout.ChunkChannel`; raises the
        SDK errors of the location's ``assign``.
    """
    def write(channel: ChunkChannel) -> None:
        location.call(context, "assign", child, channel)
        try:
            location.call(context, "assign", manifest_md, io.BytesIO(manifest))
        except BaseException:
            manifest_failed.add(location.name)
            raise
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


class Copies:
    """Write, delete and open the copies of objects at the replica's locations.

    Args:
        locations: the replica's locations.
        dispatcher: runs the calls (pool, deadlines, retry policy).
        ledger: where owed deletes, damaged copies and counters are recorded.
    """

    def __init__(self, locations: LocationSet, dispatcher: Dispatcher, ledger: Ledger,
                 keyring: Optional[Keyring] = None):
        self._locations = locations
        self._dispatcher = dispatcher
        self._ledger = ledger
        self._keyring = keyring

    # -- writing ---------------------------------------------------------------

    def blame_dropped(self, result: FanOutResult) -> None:
        """Count stalls detected by the fan-out against their locations' write health."""
        for name in result.dropped:
            self._locations.get(name).failed(result.failures[name], "assign", WRITE)

    def lost_manifests(self, context: Optional[dict], data: formats.ReplicaData,
                       names: Sequence[str], failures: Dict[str, StorageError]) -> None:
        """Remove the data copies at ``names`` whose manifest could not be stored.

        The counterpart of :meth:`write_manifests` for writes that stored
        data and manifest together (:func:`writer_with_manifest`).
        """
        for name in names:
            log.warning("object %s: storing the manifest at %s failed (%s); removing its copy",
                        data.object_id, name, failures.get(name))
        if names:
            self.delete(context, data, names)

    def write_manifests(self, context: Optional[dict], data: formats.ReplicaData,
                        names: Sequence[str], manifest: Manifest,
                        failures: Dict[str, StorageError]) -> List[str]:
        """Store ``manifest`` with each copy at ``names``; return where it was stored.

        A location whose manifest cannot be stored loses its data copy too
        (a copy without manifest never counts) and is added to ``failures``.
        """
        raw = manifest.to_bytes()
        calls = {name: functools.partial(self._locations.get(name).call, context, "assign",
                                         data.manifest_md(name), io.BytesIO(raw))
                 for name in names}
        stored = []
        lost = []
        for name, (ok, value) in self._dispatcher.parallel(calls, WRITE).items():
            if ok:
                stored.append(name)
            else:
                failures[name] = value
                lost.append(name)
                log.warning("object %s: storing the manifest at %s failed (%s); removing its "
                            "copy", data.object_id, name, value)
        if lost:
            self.delete(context, data, lost)
        return [name for name in names if name in stored]

    # -- deleting ----------------------------------------------------------------

    def delete(self, context: Optional[dict], data: formats.ReplicaData,
               names: Sequence[str]) -> None:
        """Delete the copies at ``names`` (in parallel); journal the ones that fail."""
        calls = {name: functools.partial(delete_copy, context, self._locations.get(name),
                                         data.child_md(name), data.manifest_md(name))
                 for name in names}
        for name, (ok, value) in self._dispatcher.parallel(calls, WRITE).items():
            if not ok and not isinstance(value, ObjectNotFound):
                log.warning("object %s: removing the copy at %s failed (%s); deferred",
                            data.object_id, name, value)
                self._ledger.add(DELETE, name, data)

    def delete_late(self, context: Optional[dict], data: formats.ReplicaData,
                    late: Dict[str, concurrent.futures.Future]) -> None:
        """Delete copies whose writer finishes after the write was given up on."""
        for name, future in late.items():
            def finished(done: concurrent.futures.Future, name: str = name) -> None:
                if done.cancelled() or done.exception() is not None:
                    return
                log.warning("object %s: the write to %s finished after the write failed; "
                            "removing that copy", data.object_id, name)
                self.delete(context, data, [name])
            future.add_done_callback(finished)

    # -- reading -------------------------------------------------------------------

    def open_verified(self, context: Optional[dict], data: formats.ReplicaData,
                      candidates: Sequence[Placed],
                      reference: Optional[Reference] = None) -> VerifiedReadStream:
        """Open a verifying stream over ``candidates`` (see :mod:`replica.verified`).

        With ``reference`` (found for the same object moments ago) the stream
        starts from it, over its candidates, without looking for it again.

        Raises:
            ObjectNotFound, DataCorrupted, LocationUnavailable: as
            :func:`~replica.verified.open_verified_stream`.
        """
        if reference is not None:
            return VerifiedReadStream(
                context, data.text, reference.start, reference.manifest,
                dict(reference.manifests), reference.candidates, self._dispatcher.attempt,
                self._dispatcher.pool, READ_AHEAD, dict(reference.failures),
                on_damage=functools.partial(self.damage_found, data),
                on_failover=self._count_failover,
                is_gone=functools.partial(self._ledger.is_buried, data.object_id),
                on_vanished=lambda name: self._ledger.count(vanished_copies=1),
                keyring=self._keyring)
        return open_verified_stream(
            context, data.text, self.verified_candidates(data, candidates),
            self._dispatcher.attempt, self._dispatcher.pool,
            on_damage=functools.partial(self.damage_found, data),
            on_failover=self._count_failover,
            is_gone=functools.partial(self._ledger.is_buried, data.object_id),
            on_vanished=lambda name: self._ledger.count(vanished_copies=1),
            keyring=self._keyring)

    def open_unverified(self, context: Optional[dict], data: formats.ReplicaData,
                        candidates: Sequence[Placed]) -> FailoverReadStream:
        """Open a failover stream over ``candidates`` (see :mod:`replica.failover`).

        Raises:
            ObjectNotFound, DataCorrupted, LocationUnavailable: as
            :func:`~replica.failover.open_failover_stream`.
        """
        return open_failover_stream(context, data.text, candidates, self._dispatcher.attempt,
                                    on_failover=self._count_failover)

    @staticmethod
    def verified_candidates(data: formats.ReplicaData,
                            candidates: Sequence[Placed]) -> List[VerifiedCandidate]:
        """Return (location, data module_data, manifest module_data) for each copy."""
        return [(location, child, data.manifest_md(location.name) or "")
                for location, child in candidates]

    def damage_found(self, data: formats.ReplicaData, name: str, reason: str) -> None:
        """A read found the copy at ``name`` damaged: count it and journal it for repair.

        A copy of an object this process deleted meanwhile is gone, not
        damaged: it is counted as vanished, and nothing is journaled.
        """
        if self._ledger.is_buried(data.object_id):
            self._ledger.count(vanished_copies=1)
            log.info("object %s: the copy at %s vanished while being read (deleted)",
                     data.object_id, name)
            return
        self._ledger.count(damaged_copies_found=1)
        if self._ledger.add(COPY, name, data):
            log.warning("object %s: damaged copy at %s journaled for repair (%s)",
                        data.object_id, name, reason)

    def _count_failover(self) -> None:
        self._ledger.count(read_failovers=1)
