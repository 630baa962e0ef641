"""WSGI middleware writing one access-log line per request.

The line follows the Common Log Format (client, date, request line,
status, bytes sent) and adds the body bytes received and the duration
until the last byte of the answer was handed to the server::

    127.0.0.1 - - [05/Dec/2026:08:30:12 +0000] "PUT /objects/m/a HTTP/1.1" 201 187 in=4096 0.012s

No secret is written: the ``Authorization`` header is never logged, the
query string passes through :func:`modules.redaction.redact_text`, and the
path is percent-encoded so that a hostile client cannot forge lines.
Lines go to the logger ``modules.host.access_log`` (not propagated to the
root logger); :func:`configure_access_log` points it at stderr or a file.
"""
import logging
import logging.handlers
import sys
import time
from typing import Any, Callable, Dict, Iterable, Optional
from urllib.parse import quote

from modules.redaction import redact_text

from modules.host.counting import CountingInput, observe

__all__ = ["AccessLog", "configure_access_log", "ACCESS_LOGGER", "OFF", "STDERR"]

#: The logger the lines go to.
ACCESS_LOGGER = logging.getLogger(__name__)

#: ``--access-log`` values: no log, or standard error.
OFF = "off"
STDERR = "-"

#: Characters kept as they are in logged paths and queries (everything else is %XX).
_SAFE = "/:@!$&'()*+,;=-._~%"


def configure_access_log(target: str) -> Optional[logging.Handler]:
    """Send access-log lines to ``target``: ``'-'`` (stderr), ``'off'`` or a file path.

    A file is opened in append mode and reopened when it is rotated away
    (``WatchedFileHandler``, for logrotate). Replaces any handler set by an
    earlier call.

    Returns:
        logging.Handler: the new handler, or None for ``'off'``.

    Raises:
        OSError: the file cannot be opened.
    """
    for handler in list(ACCESS_LOGGER.handlers):
        ACCESS_LOGGER.removeHandler(handler)
        handler.close()
    ACCESS_LOGGER.propagate = False
    if target == OFF:
        ACCESS_LOGGER.setLevel(logging.CRITICAL + 1)
        return None
    if target == STDERR:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.handlers.WatchedFileHandler(target, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    ACCESS_LOGGER.addHandler(handler)
    ACCESS_LOGGER.setLevel(logging.INFO)
    return handler


class AccessLog:
    """Wrap ``app`` so that each request writes one line to ``logger`` when its answer ends.

    Args:
        app: the WSGI application.
        logger: where the lines go (default :data:`ACCESS_LOGGER`).
        clock: monotonic seconds (injected by tests).
    """

    def __init__(self, app: Callable, logger: logging.Logger = ACCESS_LOGGER,
                 clock: Callable[[], float] = time.monotonic):
        self._app = app
        self._logger = logger
        self._clock = clock

    def __call__(self, environ: Dict[str, Any], start_response) -> Iterable[bytes]:
        record = _Record(environ, self._clock())
        if "wsgi.input" in environ:
            environ["wsgi.input"] = CountingInput(environ["wsgi.input"], record.add_received)

        def start(status: str, headers, exc_info=None):
            record.status = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info)

        try:
            body = self._app(environ, start)
        except BaseException:
            record.status = record.status or "500"
            self._write(record)
            raise
        return observe(body, record.add_sent, lambda: self._write(record), record.failed)

    def _write(self, record: "_Record") -> None:
        if not self._logger.isEnabledFor(logging.INFO):
            return
        environ = record.environ
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        target = quote(path.encode("latin-1", "replace"), safe=_SAFE)
        query = environ.get("QUERY_STRING")
        if query:
            target += "?" + quote(redact_text(query), safe=_SAFE + "?")
        method = quote(environ.get("REQUEST_METHOD", "-"), safe="")
        protocol = quote(environ.get("SERVER_PROTOCOL", "-"), safe="/.")
        self._logger.info('%s - - [%s] "%s %s %s" %s %d in=%d %.3fs',
                          environ.get("REMOTE_ADDR") or "-",
                          time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
                          method, target, protocol, record.status or "-", record.sent,
                          record.received, self._clock() - record.started)


class _Record:
    """What one request did so far."""

    __slots__ = ("environ", "started", "status", "sent", "received")

    def __init__(self, environ: Dict[str, Any], started: float):
        self.environ = environ
        self.started = started
        self.status: Optional[str] = None
        self.sent = 0
        self.received = 0

    def add_sent(self, count: int) -> None:
        self.sent += count

    def add_received(self, count: int) -> None:
        self.received += count

    def failed(self) -> None:
        self.status = self.status or "500"
