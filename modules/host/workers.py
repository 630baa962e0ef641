"""Pre-forked worker processes sharing one listening socket (``vsm serve --workers N``).

The parent binds the socket, forks ``N`` children and supervises them: a
child that dies is replaced; SIGTERM or SIGINT (Ctrl+C) stops them all.
Each child builds its own application (so each configured module is
instantiated once per process, as the platform does) and accepts from the
shared socket; the kernel hands each new connection to one of them.

This is the classic pre-fork model (Apache httpd's prefork MPM, gunicorn's
arbiter); it is written here rather than taken from gunicorn because
``vsm serve`` runs cheroot (a team decision) and needs only this much.
POSIX only (``os.fork``).
"""
import ctypes
import ctypes.util
import errno
import logging
import os
import signal
import socket
import sys
import time
from typing import Callable, Dict, Optional

__all__ = ["WorkerPool", "FAST_FAILURE_SECONDS", "MAX_FAST_FAILURES", "STOP_TIMEOUT"]

log = logging.getLogger(__name__)

#: A child that dies within this many seconds of its start has failed to start.
FAST_FAILURE_SECONDS = 3.0

#: Consecutive failed starts after which the pool gives up (exit status 1).
MAX_FAST_FAILURES = 5

#: Seconds the children get to finish after SIGTERM before they are killed.
STOP_TIMEOUT = 15.0

_PR_SET_PDEATHSIG = 1

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class _StopRequested(Exception):
    """SIGTERM or SIGINT arrived in the parent."""


class WorkerPool:
    """Fork ``workers`` processes that each run ``run_worker(sock)``, and keep them running.

    Args:
        sock: the listening socket, shared by every child.
        workers: how many children (at least 1).
        run_worker: called in each child with the socket; returns the
            child's exit status. It runs with SIGTERM raising ``SystemExit``
            and SIGINT raising ``KeyboardInterrupt`` in the child's main thread.
        on_exit: called in the parent with the pid of each child that ended
            (e.g. to tell metrics that a process is gone).
    """

    def __init__(self, sock: socket.socket, workers: int,
                 run_worker: Callable[[socket.socket], int],
                 on_exit: Optional[Callable[[int], None]] = None):
        if workers < 1:
            raise ValueError("workers must be at least 1, got %d" % workers)
        self._socket = sock
        self._workers = workers
        self._run_worker = run_worker
        self._on_exit = on_exit
        self._children: Dict[int, float] = {}  # pid -> monotonic start time

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; return 0, or 1 when children keep failing to start.

        Must be called from the main thread.
        """
        previous = {signum: signal.signal(signum, _raise_stop)
                    for signum in (signal.SIGTERM, signal.SIGINT)}
        status = 0
        try:
            fast_failures = 0
            for _ in range(self._workers):
                self._spawn()
            while True:
                pid, wait_status = os.waitpid(-1, 0)
                started = self._children.pop(pid, None)
                if started is None:
                    continue
                self._reaped(pid)
                code = os.waitstatus_to_exitcode(wait_status)
                if time.monotonic() - started < FAST_FAILURE_SECONDS:
                    fast_failures += 1
                else:
                    fast_failures = 0
                if fast_failures >= MAX_FAST_FAILURES:
                    log.error("worker processes keep failing at start (last: pid %d, status %d); "
                              "stopping", pid, code)
                    status = 1
                    break
                log.warning("worker process %d ended unexpectedly (status %d); starting another",
                            pid, code)
                if fast_failures:
                    time.sleep(min(0.2 * 2 ** fast_failures, 5.0))
                self._spawn()
        except _StopRequested:
            pass
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_IGN)
            self._stop_children()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return status

    def _spawn(self) -> None:
        parent = os.getpid()
        # Until the child has its own handlers, a signal must not run the parent's
        # (which would make the child act as the supervisor): hold them across fork().
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
        finally:
            if os.getpid() == parent:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        if pid == 0:  # the child: never returns
            code = 1
            try:
                signal.signal(signal.SIGTERM, _exit_on_signal)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
                _die_with_parent(parent)
                code = self._run_worker(self._socket)
            except (KeyboardInterrupt, SystemExit):
                code = 0
            except BaseException:  # report and leave: the parent starts another
                log.exception("worker process %d failed", os.getpid())
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        self._children[pid] = time.monotonic()

    def _reaped(self, pid: int) -> None:
        if self._on_exit is not None:
            try:
                self._on_exit(pid)
            except Exception:  # the supervisor must go on
                log.exception("cleaning up after worker process %d failed", pid)

    def _stop_children(self) -> None:
        for pid in list(self._children):
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self._children and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self._children.clear()
                break
            if pid == 0:
                time.sleep(0.05)
            elif self._children.pop(pid, None) is not None:
                self._reaped(pid)
        for pid in list(self._children):
            log.warning("worker process %d did not stop in %.0f s; killing it", pid, STOP_TIMEOUT)
            _signal(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            self._children.pop(pid, None)
            self._reaped(pid)


def _raise_stop(signum, frame):
    raise _StopRequested()


def _exit_on_signal(signum, frame):
    raise SystemExit(0)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError as error:
        if error.errno != errno.ESRCH:
            raise


def _die_with_parent(parent: int) -> None:
    """Ask Linux to send SIGTERM to this child when the parent dies (``prctl``); else nothing.

    Without it, a ``kill -9`` of ``vsm serve`` would leave its workers serving.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError) as error:
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable: %s", error)
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        raise SystemExit(0)
