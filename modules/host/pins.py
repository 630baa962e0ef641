"""Reads pin what they read: retired data is destroyed only once no read can use it.

An overwrite or a delete retires the old data in the same transaction that
moves the index (a ``garbage`` row, :mod:`modules.host.store`). A GET that
looked the key up a moment before may still be opening or streaming that
data, in this process or in another process serving the same data
directory. Destroying it then would cut the read short or make it fail.

The rule is epoch-based reclamation over the garbage table's id sequence,
which only grows:

* a read registers itself, then takes the current sequence ``S``
  (:meth:`Store.garbage_sequence`), then looks its key up. Whatever it
  finds can only be retired later, under an id greater than ``S``;
* so garbage item ``I`` may be destroyed once no read of any process
  started with ``S < I``.

Within a process :class:`ReadPins` knows its reads exactly. Across
processes each one publishes, in the ``readers`` table, the lowest ``S`` of
its in-flight reads and the sequence at the time of publishing (every later
read starts at or above it): a background thread does so about once a
second when something changed, so reads themselves never write to the
database. A process that is gone (:mod:`modules.host.processes`) protects
nothing; its row is removed. Rows of processes on another machine are
trusted until they are older than :data:`STALE_SECONDS`.

Data no request ever read (a failed write, the intent of a process that
died) needs none of this and is destroyed at once.

Forking (``vsm serve --workers``, gunicorn ``--preload``) is safe: the
background thread does its work under a lock that is taken around
``fork()``, so the child never inherits a half-done round, and a child
registers under its own identity and starts its own thread on first use.
"""
import itertools
import logging
import os
import threading
import time
from typing import Callable, Dict, Optional

from modules.host import forking
from modules.host.processes import ProcessIdentity, current_process, is_running
from modules.host.store import INTENT_GRACE_SECONDS, RETIRED_KINDS, GarbageItem, Store

__all__ = ["ReadPins", "Pin", "PUBLISH_INTERVAL", "STALE_SECONDS"]

log = logging.getLogger(__name__)

#: Seconds between two publications of this process's reads (and sweeps of due garbage).
PUBLISH_INTERVAL = 1.0

#: A row of a process on another machine older than this no longer protects anything.
STALE_SECONDS = 600.0

#: Seconds at least between two publications (reads ending wake the thread early).
_MIN_PAUSE = 0.1

#: Heartbeat: a row is rewritten at least this often even when nothing changed.
_HEARTBEAT_SECONDS = 30.0


class ReadPins:
    """The in-flight reads of this process, published for the others.

    Args:
        store: the host database.
        sweep: called by the background thread after each publication
            (the host destroys due garbage there); exceptions are logged.
        interval: seconds between publications.
        identify: returns the identity of the calling process (tests stand
            for another process with it).

    The background thread starts with :meth:`start` (or the first read)
    and again in a forked child; :meth:`close` stops it and removes this
    process's row.
    """

    def __init__(self, store: Store, sweep: Optional[Callable[[], None]] = None,
                 interval: float = PUBLISH_INTERVAL,
                 identify: Callable[[], ProcessIdentity] = current_process):
        self._store = store
        self._identify = identify
        self._sweep = sweep
        self._interval = interval
        self._lock = threading.Lock()
        self._busy = threading.Lock()  # held by the background thread during a round
        self._reads: Dict[int, int] = {}  # token -> S (0 while S is being taken)
        self._tokens = itertools.count(1)
        self._identity: Optional[ProcessIdentity] = None
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._closed = False
        self._last: Optional[tuple] = None
        self._last_time = 0.0
        self._held_for_fork = False
        forking.register(self)

    def set_sweep(self, sweep: Optional[Callable[[], None]]) -> None:
        """Run ``sweep`` in the background thread after each publication."""
        self._sweep = sweep

    # -- reads --------------------------------------------------------------

    def begin(self) -> "Pin":
        """Register a read and return its pin; look the key up *after* this returns.

        Raises:
            LocationUnavailable: the database cannot be read or written.
        """
        self._ensure_registered()
        token = next(self._tokens)
        with self._lock:
            self._reads[token] = 0  # protects everything until S is known
        try:
            sequence = self._store.garbage_sequence()
        except BaseException:
            self.finish(token)
            raise
        with self._lock:
            self._reads[token] = sequence
        return Pin(self, token)

    def finish(self, token: int) -> None:
        """End the read ``token`` (use :meth:`Pin.release`)."""
        with self._lock:
            self._reads.pop(token, None)
            idle = not self._reads
        if idle:
            self._wake.set()

    def in_flight(self) -> int:
        """Return how many reads of this process are running."""
        with self._lock:
            return len(self._reads)

    # -- the rule -------------------------------------------------------------

    def may_destroy(self, item: GarbageItem) -> bool:
        """Return True when no read of any process may still use ``item``'s data.

        Never raises: when the database cannot be read the answer is False.
        """
        if item.kind not in RETIRED_KINDS:
            return True  # never committed: nobody can be reading it
        with self._lock:
            if any(sequence < item.id for sequence in self._reads.values()):
                return False
        own = str(self._identity) if self._identity is not None else None
        try:
            rows = self._store.list_readers()
        except Exception as error:  # a busy or broken database: decide later
            log.warning("cannot read the readers table: %s", error)
            return False
        for row in rows:
            if row.process == own or not row.protects(item.id):
                continue
            if self._gone(row.process, row.updated):
                self._forget(row.process)
                continue
            return False
        return True

    def writer_gone(self, writer: Optional[str], since: float) -> bool:
        """Return True when the process that recorded an intent can no longer finish it.

        An intent without a writer (schema 1) or of another machine counts
        as gone after :data:`modules.host.store.INTENT_GRACE_SECONDS`.
        """
        identity = ProcessIdentity.parse(writer) if writer else None
        if identity is not None:
            running = is_running(identity)
            if running is not None:
                return not running
        return time.time() - since > INTENT_GRACE_SECONDS

    def prune(self) -> int:
        """Remove the readers rows of processes that are gone; return how many.

        Never raises (a database error leaves the rows for the next time).
        """
        own = str(self._identity) if self._identity is not None else None
        try:
            rows = self._store.list_readers()
        except Exception as error:
            log.warning("cannot read the readers table: %s", error)
            return 0
        gone = [row.process for row in rows
                if row.process != own and self._gone(row.process, row.updated)]
        for process in gone:
            self._forget(process)
        return len(gone)

    @staticmethod
    def _gone(process: str, updated: float) -> bool:
        identity = ProcessIdentity.parse(process)
        if identity is None:
            return True
        running = is_running(identity)
        if running is None:
            return time.time() - updated > STALE_SECONDS
        return not running

    def _forget(self, process: str) -> None:
        try:
            self._store.remove_reader(process)
            log.info("removed the readers row of process %s (it is gone)", process)
        except Exception as error:
            log.warning("cannot remove the readers row of %s: %s", process, error)

    # -- publication --------------------------------------------------------

    def identity(self) -> ProcessIdentity:
        """Return this process's identity (as recorded in intents and the readers table)."""
        self._ensure_registered()
        return self._identity

    def start(self) -> None:
        """Register this process and start the background thread (idempotent)."""
        self._ensure_registered()

    def _ensure_registered(self) -> None:
        # The thread is None before start(), after close() and in a freshly forked child.
        if self._thread is not None:
            return
        with self._lock:
            if self._closed or self._thread is not None:
                return
            self._identity = self._identify()
            # Until the first publication every read this process starts takes S >= now.
            self._store.publish_reader(str(self._identity), self._store.garbage_sequence(), 0)
            self._last = None
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="vsm-read-pins",
                                            daemon=True)
            self._thread.start()

    def publish(self) -> None:
        """Publish this process's reads now (the thread does it every interval)."""
        identity = self._identity
        if identity is None:
            return
        published = self._store.garbage_sequence()  # read before looking at the reads
        with self._lock:
            oldest = min(self._reads.values()) if self._reads else None
        state = (published, oldest)
        now = time.monotonic()
        if state == self._last and now - self._last_time < _HEARTBEAT_SECONDS:
            return
        self._store.publish_reader(str(identity), published, oldest)
        self._last, self._last_time = state, now

    def _run(self) -> None:
        stop = self._stop
        while not stop.is_set():
            try:
                with self._busy:
                    self.publish()
                    if self._sweep is not None:
                        self._sweep()
            except Exception:
                log.exception("publishing reads or sweeping garbage failed (retrying)")
            self._wake.wait(self._interval)
            self._wake.clear()
            stop.wait(_MIN_PAUSE)  # at most a few publications a second under load

    def close(self) -> None:
        """Stop the background thread and remove this process's row."""
        with self._lock:
            self._closed = True
            thread, identity = self._thread, self._identity
            self._thread = None
        self._stop.set()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
        if identity is not None:
            try:
                self._store.remove_reader(str(identity))
            except Exception as error:
                log.debug("cannot remove this process's readers row: %s", error)


    # -- fork ---------------------------------------------------------------

    def _before_fork(self) -> None:
        self._busy.acquire()  # wait for the background round to finish
        self._lock.acquire()
        self._held_for_fork = True

    def _after_fork_in_parent(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self._lock.release()
            self._busy.release()

    def _after_fork_in_child(self) -> None:
        # Only the forking thread survives: fresh locks, no thread, none of the parent's reads.
        self._lock = threading.Lock()
        self._busy = threading.Lock()
        self._held_for_fork = False
        self._reads = {}
        self._identity = None  # registers under its own identity on first use
        self._thread = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._last = None


class Pin:
    """One read's hold on what it looks up; :meth:`release` when the response ends."""

    def __init__(self, pins: ReadPins, token: int):
        self._pins = pins
        self._token = token
        self._released = False

    def release(self) -> None:
        """End the read (idempotent)."""
        if not self._released:
            self._released = True
            self._pins.finish(self._token)
