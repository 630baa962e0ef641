"""Run the host application on cheroot, and stop it cleanly from any thread.

cheroot hands the application each request body as it arrives on the
socket (no spooling). What is changed here, and why:

* ``Expect: 100-continue`` (RFC 9110 section 10.1.1): cheroot answers
  ``100 Continue`` as soon as it has read the headers. Here the interim
  answer goes out only when the application first reads ``wsgi.input``
  (PEP 3333 allows exactly this), so a request the application refuses
  (401, 404, 411, 413, 429 ...) gets its final answer and no invitation.
* A response that starts while the request body is still unread closes
  the connection (``Connection: close``) instead of reading the rest of the
  body to keep the connection alive; a remainder of at most
  :data:`DRAIN_LIMIT` bytes is still read so that small requests keep
  their connection. Closing such a connection is a *lingering close* (as
  Apache httpd and nginx do): the server stops sending, then discards what
  the client still sends for at most :data:`LINGER_SECONDS`, so that a
  client that sent its body without waiting reads the answer instead of a
  connection reset. Nothing discarded is stored or spooled.
* A new connection takes a worker thread only once it has sent a byte
  (until then it waits in cheroot's selector, as kept-alive connections do).
  The request line and headers must then arrive within :data:`HEADER_DEADLINE`
  seconds (a slowloris client holds a thread at most that long), and be at
  most :data:`MAX_HEADER_SIZE` bytes together (cheroot's default is no
  limit: one client without credentials could make a worker hold hundreds
  of MiB of header). Above it: ``414`` for the request line, ``413`` for
  the headers, the connection closed.
* A request with two different ``Content-Length`` values is refused with
  ``400`` (RFC 9112 section 6.3: an invalid length is an unrecoverable
  error; cheroot kept the last one, a request-smuggling opening behind a
  proxy that keeps the first).
* Responses are written with ``socket.sendall`` (cheroot's writer is pure
  Python and copies every chunk), and ``wsgi.file_wrapper`` answers
  (:mod:`modules.host.file_wrapper`) with ``sendfile(2)``: zero-copy.

The listening socket may be made by the caller (:func:`listening_socket`)
and shared by several processes (``vsm serve --workers N``); see
:mod:`modules.host.workers`.
"""
import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Optional

from cheroot import makefile as cheroot_makefile
from cheroot import server as cheroot_server
from cheroot import wsgi as cheroot_wsgi
from cheroot.workers import threadpool as cheroot_threadpool

from modules.errors import StorageError
from modules.host.file_wrapper import FileWrapper

__all__ = ["HostServer", "listening_socket", "socket_url", "DEFAULT_HOST", "DEFAULT_PORT",
           "DEFAULT_THREADS", "DEFAULT_MAX_BODY_SIZE", "DEFAULT_TIMEOUT", "LINGER_SECONDS",
           "DRAIN_LIMIT", "HEADER_DEADLINE", "MAX_HEADER_SIZE"]

log = logging.getLogger(__name__)

#: Address ``vsm serve`` listens on by default (loopback only).
DEFAULT_HOST = "127.0.0.1"

#: Port ``vsm serve`` listens on by default.
DEFAULT_PORT = 8080

#: Worker threads answering requests (per process).
DEFAULT_THREADS = 16

#: The largest request body accepted (413 above it, before any body byte is read).
DEFAULT_MAX_BODY_SIZE = 64 * 1024 ** 3

#: Seconds a connection may stay silent (between requests, or within a body) before it is closed.
DEFAULT_TIMEOUT = 60

#: Seconds a client has to send its request line and headers, once it started.
HEADER_DEADLINE = 20.0

#: The largest request line plus headers, in bytes (414 or 413 above it). Enough for a
#: 4096-byte key percent-encoded twice (the path and ``X-Copy-From``) and Swift's metadata
#: limits; nginx allows 4 x 8 KiB lines, Apache 100 fields of 8 KiB.
MAX_HEADER_SIZE = 64 * 1024

#: Pending connections the kernel queues before they are accepted (``listen`` backlog).
BACKLOG = 256

#: Seconds a closing connection keeps discarding a body its client still sends.
LINGER_SECONDS = 5.0

#: Unread body bytes the server still reads after an answer to keep the connection alive.
DRAIN_LIMIT = 64 * 1024

#: Socket buffer of each connection: bodies arrive in reads of this size (cheroot uses 8 KiB).
READ_BUFFER = 256 * 1024

_CONTINUE = b"100-continue"


def listening_socket(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                     backlog: int = BACKLOG) -> socket.socket:
    """Return a TCP socket bound to ``(host, port)`` and listening (IPv4 or IPv6).

    Port 0 picks a free port (read it with ``getsockname()``). The socket is
    inheritable by forked children, which is how ``--workers`` shares it.

    Raises:
        OSError: the address cannot be resolved or bound.
    """
    infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                               socket.AI_PASSIVE)
    if not infos:  # pragma: no cover - getaddrinfo raises rather than returning nothing
        raise OSError("cannot resolve %r" % host)
    family, _, _, _, address = infos[0]
    sock = socket.create_server(address, family=family, backlog=backlog, dualstack_ipv6=False)
    # Accepted connections inherit it: without it, a response written in two pieces
    # (headers, body) waits for the client's delayed ACK (40 ms on Linux).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM back (POSIX, main thread) until the block ends; then deliver."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def socket_url(sock: socket.socket) -> str:
    """Return ``http://host:port/`` for a listening socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = "[%s]" % host
    return "http://%s:%d/" % (host, port)


class _ContinueOnFirstRead:
    """``wsgi.input`` that sends ``100 Continue`` when the application first reads it.

    PEP 3333 ("Proceed with the request normally, but provide the
    application with a wsgi.input stream that will send the '100 Continue'
    response if/when the application first attempts to read").
    """

    def __init__(self, rfile, request: "_Request"):
        self._rfile = rfile
        self._request = request

    def _go_ahead(self) -> None:
        if self._request.continue_pending:
            self._request.send_continue()

    def read(self, size: Optional[int] = None) -> bytes:
        self._go_ahead()
        return self._rfile.read(size)

    def readline(self, size: Optional[int] = None) -> bytes:
        self._go_ahead()
        return self._rfile.readline(size)

    def readlines(self, hint: int = 0):
        self._go_ahead()
        return self._rfile.readlines(hint)

    def __iter__(self):
        self._go_ahead()
        return iter(self._rfile)

    def close(self) -> None:
        self._rfile.close()


class _SingleLengthHeaders(dict):
    """Header dict that refuses a second, different ``Content-Length`` (RFC 9112 section 6.3).

    cheroot's reader assigns each header line in turn, so a repeated one
    silently replaced the first; raising ``ValueError`` here makes cheroot
    answer ``400 Bad Request`` with this message.
    """

    def __setitem__(self, key, value):
        if key == b"Content-Length" and key in self and self[key] != value:
            raise ValueError("Content-Length is given twice with different values")
        super().__setitem__(key, value)


class _HeaderReader(cheroot_server.HeaderReader):
    """Read the headers, hiding ``Expect: 100-continue`` from cheroot's eager answer."""

    def __call__(self, rfile, hdict=None):
        checked = super().__call__(rfile, _SingleLengthHeaders(hdict or {}))
        if hdict is None:
            hdict = {}
        hdict.update(checked)
        if hdict.get(b"Expect", b"").strip().lower() == _CONTINUE:
            del hdict[b"Expect"]
            hdict[_DEFERRED] = _CONTINUE
        return hdict


#: Key under which :class:`_HeaderReader` parks the expectation (not a valid header name).
_DEFERRED = b"\x00expect"


class _Request(cheroot_server.HTTPRequest):
    """One request: a deadline for its head, deferred ``100 Continue``, no unwanted bodies."""

    header_reader = _HeaderReader()
    continue_pending = False

    def parse_request(self) -> None:
        """Read the request line and headers within :data:`HEADER_DEADLINE` seconds.

        A client that trickles its headers (slowloris) holds a worker thread
        for at most that long; bodies are read only after authentication.
        """
        reader = getattr(self.conn.rfile, "deadline_io", None)
        if reader is None:
            return super().parse_request()
        reader.set_deadline(HEADER_DEADLINE)
        try:
            return super().parse_request()
        finally:
            reader.set_deadline(None)

    def read_request_headers(self) -> bool:
        ready = super().read_request_headers()
        expectation = self.inheaders.pop(_DEFERRED, None)
        if expectation is not None:
            self.inheaders[b"Expect"] = expectation  # the application sees the header
            # RFC 9110 section 10.1.1: ignore 100-continue from HTTP/1.0 clients.
            self.continue_pending = ready and self.response_protocol == "HTTP/1.1"
        return ready

    def send_continue(self) -> None:
        """Write ``100 Continue`` once, unless the final answer has already started."""
        self.continue_pending = False
        if self.sent_headers:
            return
        try:
            self.conn.wfile.write(b"%s 100 Continue\r\n\r\n"
                                  % self.server.protocol.encode("ascii"))
        except OSError as error:
            log.debug("cannot send 100 Continue: %s", error)

    def _unread_body(self) -> Optional[int]:
        """Return the body bytes not yet read (None: unknown, a chunked body not at its end)."""
        rfile = getattr(self, "rfile", None)
        if isinstance(rfile, cheroot_server.ChunkedRFile):
            return 0 if rfile.closed else None
        return getattr(rfile, "remaining", 0) or 0

    def send_headers(self) -> None:
        unread = self._unread_body()
        if unread != 0:
            if self.continue_pending or unread is None or unread > DRAIN_LIMIT:
                # The body was refused (or not wanted): never read it, close afterwards.
                self.close_connection = True
                self.conn.linger_on_close = True
        self.continue_pending = False  # too late for an interim answer
        super().send_headers()


class _SocketWriter:
    """The connection's write side: each write goes straight to ``socket.sendall``.

    cheroot's own writer is built on the pure-Python ``_pyio`` buffered
    writer and copies every chunk at least twice (more when the kernel
    takes it in pieces); a 1 MiB response chunk costs milliseconds. cheroot
    already hands over whole header blocks and body chunks, so no buffering
    is lost.
    """

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self.bytes_written = 0
        self.closed = False

    def write(self, data) -> int:
        self._sock.sendall(data)
        self.bytes_written += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        self.closed = True


class _DeadlineSocketIO(socket.SocketIO):
    """A socket's raw read side that can enforce an overall deadline (see :class:`_Reader`)."""

    deadline: Optional[float] = None
    _timeout: Optional[float] = None

    def readinto(self, buffer) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self._sock.settimeout(min(left, self._timeout or left))
        return super().readinto(buffer)

    def set_deadline(self, seconds: Optional[float]) -> None:
        """Let reads go on for at most ``seconds`` from now (None: only the socket's timeout)."""
        if seconds is None:
            if self.deadline is not None:
                self.deadline = None
                self._sock.settimeout(self._timeout)
        else:
            if self.deadline is None:
                self._timeout = self._sock.gettimeout()
            self.deadline = time.monotonic() + seconds


class _Reader(cheroot_makefile.StreamReader):
    """cheroot's buffered reader over a :class:`_DeadlineSocketIO`."""

    def __init__(self, sock: socket.socket, mode: str = "rb", bufsize: int = READ_BUFFER):
        self.deadline_io = _DeadlineSocketIO(sock, mode)
        # Skip StreamReader.__init__, which would make a plain SocketIO; keep its methods.
        super(cheroot_makefile.StreamReader, self).__init__(self.deadline_io, bufsize)
        self.bytes_read = 0


def _makefile(sock: socket.socket, mode: str = "r", bufsize: int = READ_BUFFER):
    if "w" in mode:
        return _SocketWriter(sock)
    return _Reader(sock, mode, bufsize)


class _Connection(cheroot_server.HTTPConnection):
    """A connection with a larger read buffer, a direct writer and a bounded lingering close."""

    RequestHandlerClass = _Request
    rbufsize = READ_BUFFER
    linger_on_close = False
    #: True once the connection waited in the selector for its first byte (see
    #: :meth:`_CherootServer.process_conn`).
    waited = False

    def __init__(self, server, sock, makefile=None):
        # cheroot passes its own MakeFile for plain sockets; TLS would bring another.
        plain = makefile in (None, cheroot_server.MakeFile)
        super().__init__(server, sock, _makefile if plain else makefile)

    def close(self) -> None:
        if self.linger_on_close:
            self.linger_on_close = False
            _discard_until_eof(self.socket, LINGER_SECONDS)
        super().close()


def _discard_until_eof(sock: socket.socket, seconds: float) -> None:
    """Half-close ``sock`` and drop what the peer still sends, for at most ``seconds``."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return
    deadline = time.monotonic() + seconds
    buffer = bytearray(64 * 1024)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(min(left, 1.0))
            if not sock.recv_into(buffer):
                return
    except OSError:  # timeout, reset: either way the peer has had its answer
        return


class _Gateway(cheroot_wsgi.Gateway_10):
    """WSGI 1.0 gateway: the deferring ``wsgi.input`` and a zero-copy ``wsgi.file_wrapper``."""

    def get_environ(self):
        environ = super().get_environ()
        request = self.req
        if request.continue_pending:
            environ["wsgi.input"] = _ContinueOnFirstRead(environ["wsgi.input"], request)
        environ["wsgi.multiprocess"] = self.req.server.multiprocess
        environ["wsgi.file_wrapper"] = FileWrapper
        return environ

    def respond(self):
        """Call the application and send its answer (cheroot's loop, plus ``sendfile``)."""
        response = self.req.server.wsgi_app(self.env, self.start_response)
        try:
            if isinstance(response, FileWrapper) and self._send_file(response):
                return
            for chunk in filter(None, response):
                if not isinstance(chunk, bytes):
                    raise ValueError("WSGI applications must yield bytes")
                self.write(chunk)
        finally:
            self.req.ensure_headers_sent()
            if hasattr(response, "close"):
                response.close()

    def _send_file(self, wrapper: FileWrapper) -> bool:
        """Send ``Content-Length`` bytes of the wrapped file with sendfile(2); False: iterate."""
        request = self.req
        count = self.remaining_bytes_out
        if (count is None or request.chunked_write or request.method == b"HEAD"
                or wrapper.fileno() is None or not self.started_response
                or not isinstance(request.conn.socket, socket.socket)):
            return False
        try:
            offset = wrapper.filelike.tell()
        except (AttributeError, OSError):
            return False
        request.ensure_headers_sent()
        if count:
            sent = request.conn.socket.sendfile(wrapper.filelike, offset, count)
            wrapper.bytes_sent += sent
            request.conn.wfile.bytes_written += sent
            if sent < count:
                # The file is shorter than its Content-Length: the answer cannot be completed.
                request.close_connection = True
                raise OSError("the file ended after %d of %d bytes" % (sent, count))
        self.remaining_bytes_out = 0
        return True


class _ThreadPool(cheroot_threadpool.ThreadPool):
    """cheroot's worker pool with a :meth:`stop` that never waits without bound.

    cheroot's own ``stop`` joins a worker without a timeout once its
    deadline has passed. Under load, a worker was seen still waiting for work
    with no shutdown request left for it, and ``vsm serve`` never exited
    after SIGTERM (about 1 stop in 25). Here every live worker gets a
    request, a worker still alive at the deadline gets another one and its
    connection closed, and the whole stop takes at most ``timeout`` + 2 s; a
    worker still busy after that is left (``vsm`` exits regardless, see
    :func:`modules.cli.console_main`).
    """

    def stop(self, timeout=5):
        """Stop the worker threads (at most ``timeout`` + 2 seconds)."""
        deadline = time.monotonic() + (timeout if timeout is not None and timeout >= 0 else 5)
        workers = list(self._clear_threads())
        for _ in workers:
            self._queue.put(cheroot_threadpool._SHUTDOWNREQUEST)
        for worker in workers:
            worker.join(max(deadline - time.monotonic(), 0))
        late = [worker for worker in workers if worker.is_alive()]
        for worker in late:
            self._queue.put(cheroot_threadpool._SHUTDOWNREQUEST)
            self._force_close(worker.conn)
        deadline = time.monotonic() + 2
        for worker in late:
            worker.join(max(deadline - time.monotonic(), 0))
        still = sum(worker.is_alive() for worker in late)
        if still:
            log.warning("%d server thread(s) did not stop within %g s", still, timeout)


class _CherootServer(cheroot_wsgi.Server):
    """cheroot's WSGI server on a socket made beforehand, logging through :mod:`logging`."""

    ConnectionClass = _Connection
    multiprocess = False
    #: cheroot's select() timeout, which is also how long stop() may wait (0.5 s by default).
    expiration_interval = 0.1

    def __init__(self, sock: socket.socket, app: Callable, **kwargs: Any):
        self._listener = sock
        super().__init__(sock.getsockname()[:2], app, **kwargs)
        self.requests = _ThreadPool(self, min=kwargs.get("numthreads", 10),
                                    max=kwargs.get("max", -1))
        self.gateway = _Gateway

    def bind(self, family, type, proto=0):  # noqa: A002 - cheroot's signature
        """Adopt the listening socket given to the constructor (cheroot would make its own)."""
        self.socket = self._listener
        self.bind_addr = self._listener.getsockname()[:2]

    def prepare(self):
        super().prepare()
        # Several processes may accept from this socket: a worker that loses the race
        # must get EAGAIN at once rather than wait in accept() (cheroot waits 1 s).
        self.socket.settimeout(0)

    def process_conn(self, conn):
        """Give ``conn`` to a worker thread once it has something to read.

        cheroot hands a newly accepted connection to a worker at once, which
        then blocks reading its request line: 100 connections that send
        nothing (port scanners, browsers' speculative pre-connects) held
        every thread for :data:`HEADER_DEADLINE` seconds in turn, and nobody
        else was answered for a minute. A new connection first waits in the
        selector, like a kept-alive one between requests (closed after
        ``timeout`` seconds of silence).
        """
        if not conn.waited:
            conn.waited = True
            self.put_conn(conn)  # the selector calls back when it is readable
            return
        super().process_conn(conn)

    def error_log(self, msg="", level=logging.INFO, traceback=False):
        """cheroot's diagnostics (client errors, crashes of a request) go to the log.

        A :class:`~modules.errors.StorageError` raised by a response body that
        had already started (a location failed mid-answer) was reported by
        the application with the object's name; cheroot would add it again
        as a ``socket.error`` with a traceback (it subclasses ``OSError``).
        """
        if traceback and isinstance(sys.exc_info()[1], StorageError):
            log.debug("connection closed after a storage failure mid-answer: %s",
                      sys.exc_info()[1])
            return
        log.log(level, "%s", msg, exc_info=traceback)


class HostServer:
    """A cheroot server for one WSGI application.

    Request bodies are streamed to the application as they arrive (nothing
    is spooled to disk); ``100 Continue`` is sent only when the application
    reads the body (see the module docstring). Responses stream.

    Args:
        app: the WSGI application.
        host, port: where to listen (port 0 picks a free port; see :attr:`port`);
            ignored when ``sock`` is given.
        threads: worker threads.
        max_body_size: the largest request body, in bytes (413 above it).
        sock: an already listening socket (shared by ``--workers``); it is
            closed by :meth:`shutdown`.
        timeout: seconds of silence after which a connection is closed.
        multiprocess: tell the application (``wsgi.multiprocess``) that
            other processes serve the same socket.

    Raises:
        OSError: the address cannot be bound.
    """

    def __init__(self, app: Callable, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 threads: int = DEFAULT_THREADS, max_body_size: int = DEFAULT_MAX_BODY_SIZE,
                 sock: Optional[socket.socket] = None, timeout: float = DEFAULT_TIMEOUT,
                 multiprocess: bool = False):
        if threads < 1:
            raise ValueError("threads must be at least 1, got %d" % threads)
        self._socket = sock if sock is not None else listening_socket(host, port)
        self._server = _CherootServer(self._socket, app, numthreads=threads, max=threads,
                                      server_name="vsm", timeout=timeout,
                                      request_queue_size=BACKLOG, shutdown_timeout=5)
        self._server.max_request_body_size = max_body_size
        self._server.max_request_header_size = MAX_HEADER_SIZE
        self._server.multiprocess = multiprocess
        self._started = False
        self._stop_requested = False
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        """The address listened on."""
        return self._socket.getsockname()[0]

    @property
    def port(self) -> int:
        """The port listened on."""
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://host:port/``."""
        return socket_url(self._socket)

    def serve_forever(self) -> None:
        """Answer requests until :meth:`shutdown` (or SIGINT/SIGTERM raising in this thread).

        Whatever interrupts it (even a signal during start-up), the worker
        threads are stopped and the socket is closed before it returns.
        """
        with self._lock:
            if self._stop_requested:
                return
            self._started = True
        try:
            with _signals_held():
                # cheroot starts its threads before it records them: a SIGTERM raising
                # in between would leave threads that nothing stops.
                self._server.prepare()
            with self._lock:
                stop_now = self._stop_requested
            if not stop_now:
                self._server.serve()
        finally:
            self._halt()
            self._stopped.set()

    def shutdown(self, timeout: Optional[float] = 10.0) -> bool:
        """Stop serving (from any thread); return True once :meth:`serve_forever` returned.

        Running requests get up to 5 seconds to finish; then their
        connections are closed.
        """
        with self._lock:
            self._stop_requested = True
            if not self._started:
                self._socket.close()
                self._stopped.set()
                return True
        self._server.stop()  # before prepare() ended: serve_forever sees _stop_requested
        return self._stopped.wait(timeout)

    def _halt(self) -> None:
        if self._server.ready:
            self._server.stop()
        else:  # prepare() was interrupted, or stop() already ran: make sure threads end
            self._server.requests.stop(5)
            self._socket.close()
