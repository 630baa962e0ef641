"""Deduplication as a wrapper module: :class:`DedupStorage` (see ``docs/dedup.md``).

``replica.dedup.hashing`` is the streaming digest (and why SHA-256),
``replica.dedup.index`` the SQLite index with reference counts,
``replica.dedup.owners`` how a crashed process is recognised,
``replica.dedup.storage`` the module.
"""
from replica.dedup.storage import DedupStorage

__all__ = ["DedupStorage"]
