"""Every botocore failure becomes an SDK error here, and only here.

S3 answers with an error *code* (``NoSuchKey``, ``SignatureDoesNotMatch``,
``SlowDown`` ...) and an HTTP status; transport failures are botocore
exceptions. :func:`s3_error` maps both to :mod:`modules.errors`, and
:func:`converted` is the context manager the other layers wrap their calls
in. Messages name the operation, the location and what to check, pass
through :func:`modules.redaction.redact_text`, and never hold credentials.

The mapping follows the S3 API reference's "Error responses" list; a HEAD
request has no body, so only its status is known (403 and 404 without a
code).
"""
import contextlib
from typing import Iterator, Optional

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from modules.errors import (
    AuthenticationFailed,
    DataCorrupted,
    InsufficientStorage,
    LocationTimeout,
    LocationUnavailable,
    ObjectNotFound,
    StorageError,
)
from modules.redaction import redact_text

__all__ = ["s3_error", "converted", "error_code", "is_not_found", "NOT_FOUND_CODES"]

#: Codes (and bare statuses of HEAD answers) that mean "no such object".
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_BUCKET_MISSING = frozenset({"NoSuchBucket"})
_AUTH_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden",
    "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidSecurity",
    "AllAccessDisabled", "AccountProblem", "InvalidClientTokenId", "UnrecognizedClientException",
})
_REGION_CODES = frozenset({"AuthorizationHeaderMalformed", "PermanentRedirect", "301",
                           "IllegalLocationConstraintException"})
_FULL_CODES = frozenset({"EntityTooLarge", "QuotaExceeded", "InsufficientStorage",
                         "XMinioStorageFull", "StorageFull", "507"})
_CHANGED_CODES = frozenset({"PreconditionFailed", "412"})


def error_code(error: ClientError) -> str:
    """Return the S3 error code of ``error`` (its HTTP status as text when there is none)."""
    response = getattr(error, "response", None) or {}
    code = str((response.get("Error") or {}).get("Code") or "")
    if not code:
        code = str((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or "")
    return code


def is_not_found(error: BaseException) -> bool:
    """Tell whether ``error`` is S3's "no such key" (``NoSuchKey`` or a bare 404 on HEAD)."""
    return isinstance(error, ClientError) and error_code(error) in NOT_FOUND_CODES


def s3_error(operation: str, error: BaseException, *, location: str,
             credentials: str = "the credentials", module_data: Optional[str] = None,
             timeout: Optional[float] = None) -> StorageError:
    """Return the SDK error for a botocore failure of ``operation`` (raise it ``from error``).

    Args:
        operation: what was attempted, e.g. ``"PUT s3://bucket/key"``.
        error: a ``ClientError`` or ``BotoCoreError``.
        location: the location's name (``s3://bucket/prefix at <endpoint>``).
        credentials: where the credentials come from (named in
            :class:`AuthenticationFailed` messages; never the secrets).
        module_data: the object concerned, if any.
        timeout: the configured timeout, named in :class:`LocationTimeout`.

    Returns:
        StorageError: :class:`ObjectNotFound` (``NoSuchKey``, 404),
        :class:`AuthenticationFailed` (403, bad key or signature, expired
        token, no credentials found), :class:`InsufficientStorage` (quota or
        size refused), :class:`DataCorrupted` (412: the object changed
        between two ranged reads), :class:`LocationTimeout` (connect or read
        timeout), :class:`LocationUnavailable` (everything else: 5xx after
        botocore's retries, refused connections, a missing bucket, a wrong
        region).
    """
    def text(message: str) -> str:
        return redact_text("%s: %s" % (operation, message))

    if isinstance(error, ClientError):
        code = error_code(error)
        detail = str((error.response.get("Error") or {}).get("Message") or "")[:300]
        detail = "%s%s" % (code, " (%s)" % detail if detail and detail != code else "")
        if code in NOT_FOUND_CODES:
            return ObjectNotFound(text("no such object (%s)" % detail), module_data=module_data,
                                  location=location)
        if code in _BUCKET_MISSING:
            return LocationUnavailable(text(
                "the bucket does not exist (%s); create it, or fix the bucket name or "
                "endpoint_url (S3Storage never creates buckets)" % detail), location=location)
        if code in _AUTH_CODES:
            return AuthenticationFailed(text(
                "the service refused our credentials or their permissions (%s); check %s, and "
                "that this identity may read, write, list and delete in the bucket"
                % (detail, credentials)), location=location)
        if code in _REGION_CODES:
            return LocationUnavailable(text(
                "the bucket is in another region or behind another endpoint (%s); set region= "
                "(and endpoint_url=) to the bucket's" % detail), location=location)
        if code in _FULL_CODES:
            return InsufficientStorage(text("the service refused the data for lack of room "
                                            "(%s)" % detail), location=location)
        if code in _CHANGED_CODES:
            return DataCorrupted(text("the object changed while it was being read (%s); "
                                      "objects are immutable, so it was overwritten underneath"
                                      % detail), module_data=module_data, location=location)
        return LocationUnavailable(text("the service answered %s" % detail), location=location)
    if isinstance(error, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        return AuthenticationFailed(text("no usable credentials (%s); check %s" % (
            type(error).__name__, credentials)), location=location)
    if isinstance(error, (ConnectTimeoutError, ReadTimeoutError)):
        return LocationTimeout(text("no answer within %s (%s)" % (
            "%g s (timeout=)" % timeout if timeout else "the timeout", type(error).__name__)),
            location=location)
    if isinstance(error, IncompleteReadError):
        return LocationUnavailable(text("the connection was cut before the whole answer "
                                        "arrived"), location=location)
    if isinstance(error, BotoCoreError):
        return LocationUnavailable(text("%s: %s" % (type(error).__name__, error)),
                                   location=location)
    return LocationUnavailable(text("%s: %s" % (type(error).__name__, error)), location=location)


@contextlib.contextmanager
def converted(operation: str, *, location: str, credentials: str = "the credentials",
              module_data: Optional[str] = None, timeout: Optional[float] = None) -> Iterator[None]:
    """Run the body, turning botocore failures into SDK errors (see :func:`s3_error`).

    SDK errors raised inside pass through unchanged; the botocore error is
    chained as ``__cause__``.
    """
    try:
        yield
    except StorageError:
        raise
    except (ClientError, BotoCoreError) as error:
        raise s3_error(operation, error, location=location, credentials=credentials,
                       module_data=module_data, timeout=timeout) from error
