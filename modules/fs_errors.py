"""Translate local filesystem errors into SDK errors, in one place."""
import contextlib
import errno
import os
from typing import Iterator, Optional

from modules.errors import (
    InsufficientStorage,
    LocationUnavailable,
    ObjectNotFound,
    StorageError,
)

__all__ = ["convert_os_errors"]

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_FOUND = {errno.ENOENT}


@contextlib.contextmanager
def convert_os_errors(location: str, module_data: Optional[str] = None,
                      missing_is_not_found: bool = False) -> Iterator[None]:
    """Re-raise ``OSError`` from the block as the matching SDK error.

    ENOSPC/EDQUOT become :class:`InsufficientStorage`; ENOENT becomes
    :class:`ObjectNotFound` when ``missing_is_not_found`` (the caller has
    established that the storage itself exists); everything else (EACCES,
    EROFS, EIO, ENOTDIR, ...) becomes :class:`LocationUnavailable`. SDK
    errors pass through untouched.
    """
    try:
        yield
    except StorageError:
        raise
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        if error.errno in _NO_SPACE:
            raise InsufficientStorage("no space left in %s: %s" % (location, reason),
                                      location=location) from error
        if missing_is_not_found and error.errno in _NOT_FOUND:
            raise ObjectNotFound("no data stored for %r in %s" % (module_data, location),
                                 module_data=module_data, location=location) from error
        raise LocationUnavailable("%s cannot be used: %s" % (location, reason),
                                  location=location) from error
