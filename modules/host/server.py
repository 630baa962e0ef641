"""Run the host application on waitress, and stop it cleanly from any thread."""
import logging
import threading
from typing import Any, Callable, Optional

__all__ = ["HostServer", "DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_THREADS",
           "DEFAULT_MAX_BODY_SIZE"]

log = logging.getLogger(__name__)

#: Address ``vsm serve`` listens on by default (loopback only).
DEFAULT_HOST = "127.0.0.1"

#: Port ``vsm serve`` listens on by default.
DEFAULT_PORT = 8080

#: Worker threads answering requests.
DEFAULT_THREADS = 16

#: The largest request body accepted (waitress answers 413 above it).
DEFAULT_MAX_BODY_SIZE = 64 * 1024 ** 3

#: Bytes per socket read (waitress reads 8 KiB by default; uploads are ~25% faster so).
RECV_BYTES = 256 * 1024


class HostServer:
    """A waitress server for one WSGI application.

    Waitress reads each request body completely before the application
    runs, keeping at most 512 KiB in memory and spooling the rest to a
    temporary file (``TMPDIR``); the application then streams it from there
    into the module. Responses stream through a bounded buffer.

    Args:
        app: the WSGI application.
        host, port: where to listen (port 0 picks a free port; see :attr:`port`).
        threads: worker threads.
        max_body_size: the largest request body, in bytes.
    """

    def __init__(self, app: Callable, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 threads: int = DEFAULT_THREADS, max_body_size: int = DEFAULT_MAX_BODY_SIZE,
                 **adjustments: Any):
        import waitress  # imported here so that the rest of ``vsm`` works without it

        self._server = waitress.create_server(
            app, host=host, port=port, threads=threads, max_request_body_size=max_body_size,
            ident="vsm", clear_untrusted_proxy_headers=True,
            **dict({"recv_bytes": RECV_BYTES}, **adjustments))
        self._stopped = threading.Event()
        self._shutdown_lock = threading.Lock()
        self._shutting_down = False

    @property
    def host(self) -> str:
        """The address listened on."""
        return self._server.effective_host

    @property
    def port(self) -> int:
        """The port listened on."""
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        """``http://host:port/``."""
        host = self.host
        if ":" in host:
            host = "[%s]" % host
        return "http://%s:%d/" % (host, self.port)

    def serve_forever(self) -> None:
        """Answer requests until :meth:`shutdown` (or SIGINT/SIGTERM raising in this thread)."""
        try:
            self._server.run()
        finally:
            self._server.task_dispatcher.shutdown()
            self._close_sockets()
            self._stopped.set()

    def shutdown(self, timeout: Optional[float] = 10.0) -> bool:
        """Stop serving (from any thread); return True once :meth:`serve_forever` returned.

        Running requests get up to 5 seconds to finish while the event loop
        still flushes their answers; then every connection is closed.
        """
        with self._shutdown_lock:
            first, self._shutting_down = not self._shutting_down, True
        if first and not self._stopped.is_set():
            self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
            try:
                self._server.trigger.pull_trigger(self._close_sockets)
            except OSError as error:  # the loop closed its trigger: it is ending by itself
                log.debug("the server loop is already ending: %s", error)
        return self._stopped.wait(timeout)

    def _close_sockets(self) -> None:
        """Close the listening socket and every connection, ending the event loop."""
        for channel in list(self._server._map.values()):
            try:
                channel.close()
            except OSError as error:
                log.debug("closing %r: %s", channel, error)
