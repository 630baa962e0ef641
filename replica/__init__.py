"""The ``replica`` vendor module: objects mirrored over several storage locations.

Configure it on the platform as ``replica.replica.ReplicaStorage`` (see
``docs/replica.md``). Its parts, one concept a file: ``settings`` (parsing the
configuration), ``locations`` (a child module, its read and write health
and error limiting), ``location_set`` (the locations in order: which to
call, which to skip), ``dispatcher`` (the pool, deadlines and the one retry
policy), ``module_data`` (the versioned module_data), ``workers`` (the
bounded pool), ``fanout`` (the one-pass fan-out writer), ``failover`` (the
read stream that switches copies, for objects without manifests),
``manifest`` (block digests stored with each copy), ``verified`` (the read
stream that verifies every block), ``scrub`` (checking one copy),
``copies`` (writing, deleting and opening copies), ``ledger`` (journal,
tombstones and counters), ``repairer`` (scrubbing and repairing one
object's copies), ``journal`` (deferred deletes and copies), ``drain``
(replaying the journal) and ``statistics``; ``replica`` holds the
``ReplicaStorage`` contract methods.
"""
from replica.replica import ReplicaStorage

__all__ = ["ReplicaStorage"]
