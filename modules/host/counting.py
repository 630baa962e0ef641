"""Counting wrappers for WSGI middleware: body bytes read, response bytes sent, end of answer.

Shared by the access log and the metrics: each wraps ``wsgi.input`` in a
:class:`CountingInput` and the application's response with :func:`observe`,
whose ``close()`` (called by every WSGI server when the answer is over,
PEP 3333) reports the request as finished.
"""
from typing import Callable, Iterable, Iterator

from modules.host.file_wrapper import FileWrapper

__all__ = ["CountingInput", "ObservedBody", "observe"]


class CountingInput:
    """``wsgi.input`` calling ``count(n)`` for every ``n`` bytes the application reads."""

    def __init__(self, stream, count: Callable[[int], None]):
        self._stream = stream
        self._count = count

    def read(self, *args) -> bytes:
        data = self._stream.read(*args)
        self._count(len(data))
        return data

    def readline(self, *args) -> bytes:
        data = self._stream.readline(*args)
        self._count(len(data))
        return data

    def readlines(self, *args):
        lines = self._stream.readlines(*args)
        self._count(sum(len(line) for line in lines))
        return lines

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            self._count(len(line))
            yield line

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class ObservedBody:
    """A response iterable calling ``count(n)`` per chunk sent and ``finished()`` once, on close.

    ``failed()`` is called when iterating the application's response raises.
    """

    def __init__(self, body: Iterable[bytes], count: Callable[[int], None],
                 finished: Callable[[], None], failed: Callable[[], None] = lambda: None):
        self._body = body
        self._count = count
        self._finished = finished
        self._failed = failed
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._body:
                self._count(len(chunk))
                yield chunk
        except BaseException:
            self._failed()
            raise

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if not self._done:
                self._done = True
                self._finished()


def observe(body: Iterable[bytes], count: Callable[[int], None], finished: Callable[[], None],
            failed: Callable[[], None] = lambda: None) -> Iterable[bytes]:
    """Return ``body`` observed as :class:`ObservedBody` does.

    A :class:`~modules.host.file_wrapper.FileWrapper` is returned as it is,
    with a close hook, so that the server can still send it with
    ``sendfile`` (its bytes are counted when it closes).
    """
    if isinstance(body, FileWrapper):
        def closed() -> None:
            count(body.bytes_sent)
            finished()
        body.on_close.append(closed)
        return body
    return ObservedBody(body, count, finished, failed)
