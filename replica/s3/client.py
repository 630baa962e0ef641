"""The boto3 client of one S3Storage, built from its :class:`~replica.s3.options.S3Config`.

Transfers use botocore's own retry layer (``standard`` mode: connection
errors, timeouts, throttling and 5xx are retried with exponential backoff and
jitter, ``retries`` extra attempts), so :class:`~replica.s3.S3Storage`
declares ``capabilities["retries"]`` and nothing above retries again.
Clients are thread-safe (boto3's documentation, "Multithreading or
multiprocessing with clients"); sessions are not, so each S3Storage makes
its session and clients once, in its constructor.
"""
from typing import Any, Optional

import boto3.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from modules.errors import ConfigurationError
from replica.s3.options import S3Config

__all__ = ["make_clients", "DEFAULT_REGION", "PROBE_TIMEOUT"]

#: The signing region when neither ``region=``, the profile nor the environment give one.
DEFAULT_REGION = "us-east-1"
#: Longest wait, in seconds, of the reachability probe of ``statistics()`` (a
#: status page must not hang on a hung service for the whole ``timeout``).
PROBE_TIMEOUT = 5.0


def make_clients(config: S3Config):
    """Return ``(client, probe_client)`` for ``config``.

    The probe client makes one attempt only and waits at most
    :data:`PROBE_TIMEOUT`, so that ``statistics()`` reports an unreachable
    service promptly instead of sleeping through retries.

    Returns:
        tuple: two botocore S3 clients sharing one session.

    Raises:
        ConfigurationError: the profile does not exist or botocore refuses the
            configuration (the message says which option to fix).
    """
    try:
        session = boto3.session.Session(
            aws_access_key_id=config.access_key,
            aws_secret_access_key=config.secret_key,
            aws_session_token=config.session_token,
            profile_name=config.profile,
            region_name=config.region,
        )
        region = session.region_name or DEFAULT_REGION
        client = session.client("s3", region_name=region, endpoint_url=config.endpoint_url,
                                verify=config.verify, config=_config(config, config.retries + 1))
        probe = session.client("s3", region_name=region, endpoint_url=config.endpoint_url,
                               verify=config.verify,
                               config=_config(config, 1, min(config.timeout, PROBE_TIMEOUT),
                                              pool_size=2))
    except BotoCoreError as error:
        # ProfileNotFound, InvalidRegionError, ...: the text names the profile or region,
        # never a secret.
        raise ConfigurationError("S3Storage cannot be configured: %s: %s" % (
            type(error).__name__, error)) from None
    return client, probe


def _config(config: S3Config, attempts: int, timeout: Optional[float] = None,
            pool_size: Optional[int] = None) -> Config:
    s3: Any = {}
    if config.addressing != "auto":
        s3["addressing_style"] = config.addressing
    return Config(
        connect_timeout=timeout or config.timeout,
        read_timeout=timeout or config.timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
        max_pool_connections=pool_size or config.pool_size,
        s3=s3 or None,
        request_checksum_calculation=config.checksum,
        response_checksum_validation=config.checksum,
        user_agent_extra="vsm-replica-s3",
    )
