"""The options of :class:`replica.s3.S3Storage`, declared once with :mod:`modules.options`.

Every option is accepted as a ``name=value`` string (the platform's way) or a
keyword; the bucket is given as ``s3://bucket/prefix`` (first positional
argument) or as ``bucket=`` and ``prefix=``::

    S3Storage("s3://backups/vsm", "endpoint_url=https://s3.eu-central-003.backblazeb2.com",
              "region=eu-central-003", "access_key_env=B2_KEY_ID",
              "secret_key_env=B2_APPLICATION_KEY", "part_size=16MiB")

Credentials come from the environment variables named by ``access_key_env``
and ``secret_key_env`` (never from the configuration itself), or from a
``profile`` of the AWS configuration files, or else from boto3's standard
chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
instance roles). The endpoint likewise falls back to boto3's
``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``.
"""
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence
from urllib.parse import urlsplit

from modules.errors import ConfigurationError
from modules.options import Option, OptionParser, Settings

__all__ = [
    "S3Config",
    "parse_options",
    "OPTIONS",
    "MIN_PART_SIZE",
    "MAX_PART_SIZE",
    "MAX_PARTS",
]

#: S3's smallest part of a multipart upload (all but the last), in bytes.
MIN_PART_SIZE = 5 * 1024 * 1024
#: S3's largest part, in bytes.
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
#: S3's largest number of parts in one multipart upload.
MAX_PARTS = 10000

# Loose on purpose: AWS allows [a-z0-9.-]{3,63}, but several S3-compatible
# servers accept more (capitals, underscores); the server has the last word.
_BUCKET = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]\Z")
# Our keys are "<prefix>xx/yy/<32 hex>" (38 characters); S3 keys have at most 1024 bytes.
_MAX_PREFIX_BYTES = 900


def _endpoint(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port
    except ValueError as error:
        raise ValueError("not a valid URL (%s)" % error) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("give http:// or https:// and a host, e.g. https://s3.example.com")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL must not carry credentials; use access_key_env= and "
                         "secret_key_env=")
    if parts.query or parts.fragment:
        raise ValueError("the URL must not have a query or fragment")
    return value.rstrip("/")


OPTIONS = OptionParser("S3Storage", [
    Option("url", "str", positional=True,
           help="s3://bucket/prefix (or give bucket= and prefix=)"),
    Option("bucket", "str", help="the bucket's name; S3Storage never creates it"),
    Option("prefix", "str", help="a key prefix inside the bucket, e.g. vsm/objects"),
    Option("endpoint_url", "str", validate=_endpoint,
           help="the S3 service URL; default AWS, or $AWS_ENDPOINT_URL_S3"),
    Option("region", "str", help="the signing region; default from the profile or us-east-1"),
    Option("access_key", "str", secret=True, env_option=True, inline=False,
           help="the access key id"),
    Option("secret_key", "str", secret=True, env_option=True, inline=False,
           help="the secret access key"),
    Option("session_token", "str", secret=True, env_option=True, inline=False,
           help="a temporary session token (STS)"),
    Option("profile", "str", help="a profile of ~/.aws/config and ~/.aws/credentials"),
    Option("addressing", "choice", default="auto", choices=("auto", "path", "virtual"),
           help="bucket in the path (most self-hosted servers) or in the host name"),
    Option("checksum", "choice", default="when_required",
           choices=("when_required", "when_supported"),
           help="when boto3 adds CRC checksums to requests and checks them on responses"),
    Option("timeout", "duration", default=30.0, minimum=0.1, maximum=3600,
           help="seconds allowed to connect, and between two bytes of an answer"),
    Option("retries", "int", default=3, minimum=0, maximum=20,
           help="extra attempts after a transient failure (botocore's standard retry mode)"),
    Option("part_size", "size", default="8MiB", minimum="5MiB", maximum="5GiB",
           help="objects above this are sent as multipart uploads of parts this big"),
    Option("upload_concurrency", "int", default=8, minimum=1, maximum=64,
           help="parts of one multipart upload sent at the same time"),
    Option("pool_size", "int", default=16, minimum=1, maximum=1000,
           help="connections kept open to the service"),
    Option("quota", "size", minimum=1,
           help="bytes this module may use under its prefix (S3 reports no capacity)"),
    Option("usage_refresh", "duration", default=300.0, minimum=0, maximum=86400,
           help="seconds between two listings that measure the used bytes (with quota)"),
    Option("upload_grace", "duration", default=86400.0, minimum=0,
           help="age after which repair() aborts an unfinished multipart upload"),
    Option("verify_tls", "bool", default=True, help="check the server's TLS certificate"),
    Option("ca_bundle", "str", help="a PEM file of trusted certificate authorities"),
])


@dataclass(frozen=True)
class S3Config:
    """The validated configuration of one S3Storage (secrets resolved, never printed).

    ``prefix`` is ``""`` or ends with ``/``. ``access_key``/``secret_key``/
    ``session_token`` are None when boto3's own credential chain is used.
    """

    bucket: str
    prefix: str
    endpoint_url: Optional[str]
    region: Optional[str]
    access_key: Optional[str]
    secret_key: Optional[str]
    session_token: Optional[str]
    profile: Optional[str]
    addressing: str
    checksum: str
    timeout: float
    retries: int
    part_size: int
    upload_concurrency: int
    pool_size: int
    quota: Optional[int]
    usage_refresh: float
    upload_grace: float
    verify: Any  # True, False or a CA bundle path, as botocore takes it
    settings: Settings

    def __repr__(self) -> str:
        return "S3Config(%r)" % (self.shown(),)

    @property
    def location(self) -> str:
        """``s3://bucket/prefix``, plus `` at <endpoint>`` when one is configured."""
        text = "s3://%s/%s" % (self.bucket, self.prefix)
        return text + (" at %s" % self.endpoint_url if self.endpoint_url else "")

    @property
    def credentials_source(self) -> str:
        """Say where the credentials come from, naming the options to check, never the values."""
        settings = self.settings
        if self.access_key is not None:
            return "access_key_env/secret_key_env (%s and %s)" % (
                settings.source("access_key"), settings.source("secret_key"))
        if self.profile is not None:
            return "profile=%s" % self.profile
        return ("boto3's default credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE, ~/.aws/credentials); or give access_key_env= and secret_key_env=, "
                "or profile=")

    def shown(self) -> Dict[str, Any]:
        """The options as given and defaulted, secrets masked (for ``repr`` and statistics)."""
        shown = {name: value for name, value in self.settings.redacted().items()
                 if value is not None}
        shown.update(bucket=self.bucket, prefix=self.prefix)
        shown.pop("url", None)
        return shown


def parse_options(args: Sequence[Any], kwargs: Mapping[str, Any],
                  environ: Optional[Mapping[str, str]] = None) -> S3Config:
    """Validate S3Storage's arguments (see the module docstring).

    Returns:
        S3Config: bucket, prefix, credentials and transfer settings.

    Raises:
        ConfigurationError: an option is unknown, malformed, out of range or
            inconsistent; the message names it and never shows a secret.
    """
    settings = OPTIONS.parse(args, kwargs, environ)
    bucket, prefix = _bucket_and_prefix(settings)
    if (settings.access_key is None) != (settings.secret_key is None):
        raise ConfigurationError(
            "S3Storage needs both access_key_env= and secret_key_env= (environment variables "
            "holding the access key id and the secret key), or neither")
    if settings.session_token is not None and settings.access_key is None:
        raise ConfigurationError("S3Storage session_token_env= needs access_key_env= and "
                                 "secret_key_env=")
    if settings.profile is not None and settings.access_key is not None:
        raise ConfigurationError("S3Storage takes either profile= or access_key_env=/"
                                 "secret_key_env=, not both")
    verify: Any = settings.verify_tls
    if settings.ca_bundle is not None:
        if not verify:
            raise ConfigurationError("S3Storage: ca_bundle makes no sense with verify_tls=false")
        if not os.path.isfile(settings.ca_bundle):
            raise ConfigurationError("S3Storage ca_bundle %r is not a file (give a PEM file of "
                                     "certificate authorities)" % settings.ca_bundle)
        verify = settings.ca_bundle
    part_size = settings.part_size
    return S3Config(
        bucket=bucket, prefix=prefix, endpoint_url=settings.endpoint_url,
        region=settings.region, access_key=settings.access_key,
        secret_key=settings.secret_key, session_token=settings.session_token,
        profile=settings.profile, addressing=settings.addressing, checksum=settings.checksum,
        timeout=settings.timeout, retries=settings.retries, part_size=part_size,
        upload_concurrency=settings.upload_concurrency, pool_size=settings.pool_size,
        quota=settings.quota, usage_refresh=settings.usage_refresh,
        upload_grace=settings.upload_grace, verify=verify, settings=settings)


def _bucket_and_prefix(settings: Settings):
    url = settings.url
    if url is not None:
        if settings.bucket is not None or settings.prefix is not None:
            raise ConfigurationError("S3Storage takes either s3://bucket/prefix or bucket= and "
                                     "prefix=, not both")
        try:
            parts = urlsplit(url.strip())
        except ValueError as error:
            raise ConfigurationError("S3Storage URL is malformed: %s" % error) from None
        if parts.scheme.lower() != "s3" or not parts.netloc:
            raise ConfigurationError(
                "S3Storage's first argument must be s3://bucket/prefix (or give bucket=); "
                "got a value starting %r" % url[:5])
        if "@" in parts.netloc or ":" in parts.netloc or parts.query or parts.fragment:
            raise ConfigurationError(
                "S3Storage URL must be just s3://bucket/prefix: no credentials, port, query or "
                "fragment (give endpoint_url= and access_key_env=/secret_key_env=)")
        bucket, prefix = parts.netloc, parts.path
    elif settings.bucket is not None:
        bucket, prefix = settings.bucket, settings.prefix or ""
    else:
        raise ConfigurationError("S3Storage needs a bucket: s3://bucket/prefix as its first "
                                 "argument, or bucket= (and prefix=)")
    if not _BUCKET.match(bucket):
        raise ConfigurationError("S3Storage bucket %r is not a valid bucket name (letters, digits, "
                                 "'.', '-' and '_', 3 to 255 characters)" % bucket[:80])
    return bucket, _normalise_prefix(prefix)


def _normalise_prefix(prefix: str) -> str:
    segments = [segment for segment in prefix.split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        raise ConfigurationError("S3Storage prefix must not contain '.' or '..' segments")
    if any(ord(char) < 32 or ord(char) == 127 for char in prefix):
        raise ConfigurationError("S3Storage prefix must not contain control characters")
    normalised = "/".join(segments) + "/" if segments else ""
    if len(normalised.encode("utf-8")) > _MAX_PREFIX_BYTES:
        raise ConfigurationError("S3Storage prefix is longer than %d bytes" % _MAX_PREFIX_BYTES)
    return normalised
