"""S3-compatible locations: :class:`S3Storage` (AWS, Backblaze B2, MinIO, SeaweedFS, Ceph ...).

Configured as ``replica.s3.S3Storage`` with ``["s3://bucket/prefix",
"endpoint_url=...", "access_key_env=...", "secret_key_env=..."]``; see
``docs/s3.md``.
"""
from replica.s3.storage import S3Storage

__all__ = ["S3Storage"]
