"""``wsgi.file_wrapper`` (PEP 3333 "Optional Platform-Specific File Handling").

An application that has a real file to send returns
``environ["wsgi.file_wrapper"](file, block_size)`` with a ``Content-Length``
header; ``vsm serve`` then sends the bytes from the file's current position
with ``sendfile(2)`` (zero-copy: the data never enters Python). Under any
other server, or when the file has no descriptor, it is an ordinary
iterable of ``block_size`` blocks. Middleware that counts bytes keeps the
zero-copy path by appending to :attr:`FileWrapper.on_close` instead of
wrapping the iterable.
"""
import io
from typing import Callable, Iterator, List, Optional

__all__ = ["FileWrapper", "DEFAULT_BLOCK_SIZE"]

#: Bytes per block when the wrapper is iterated.
DEFAULT_BLOCK_SIZE = 1024 * 1024


class FileWrapper:
    """Iterate ``filelike`` in blocks; let a server send it with ``sendfile`` instead.

    Attributes:
        filelike: the file (any object with ``read``; ``fileno`` and ``tell``
            for zero-copy).
        bytes_sent: body bytes handed to the client so far (by iteration or
            by the server's ``sendfile``).
        on_close: callables run by :meth:`close`, after the file is closed.
    """

    def __init__(self, filelike, block_size: int = DEFAULT_BLOCK_SIZE):
        self.filelike = filelike
        self.block_size = block_size
        self.bytes_sent = 0
        self.on_close: List[Callable[[], None]] = []

    def fileno(self) -> Optional[int]:
        """Return the file's descriptor, or None when it has none (then it is iterated)."""
        try:
            return self.filelike.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None

    def __iter__(self) -> Iterator[bytes]:
        while True:
            block = self.filelike.read(self.block_size)
            if not block:
                return
            self.bytes_sent += len(block)
            yield block

    def close(self) -> None:
        """Close the file, then run :attr:`on_close` (each one even if another fails)."""
        try:
            close = getattr(self.filelike, "close", None)
            if close is not None:
                close()
        finally:
            hooks, self.on_close = self.on_close, []
            _run_all(hooks)


def _run_all(hooks: List[Callable[[], None]]) -> None:
    if not hooks:
        return
    try:
        hooks[0]()
    finally:
        _run_all(hooks[1:])
