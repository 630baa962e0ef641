"""The replica's verifying read stream: no byte leaves before its block is verified.

:func:`open_verified_stream` finds the object's manifest (the first intact
one, in candidate order) and returns a :class:`VerifiedReadStream` of the
manifest's size. Reads are served block by block: a whole block is read
from the current copy, checked against the manifest's digest, and only then
are any of its bytes returned. A block that fails its digest, a copy shorter
or longer than the manifest, a copy whose own manifest is missing, damaged
or different: that copy is reported to ``on_damage`` (the replica journals
it for repair) and the block is read from the next copy. When no copy has a
good version of a block, the read raises
:class:`~modules.errors.DataCorrupted` (or ``LocationUnavailable`` when some
copies could not be reached), never the bad bytes.

A copy that *vanishes* is not damaged. When the object is being deleted
(``is_gone()`` is true: the replica deleted it in this process), a copy
whose manifest or data disappears, ends early or changes is gone: it is
skipped without a damage report, and the read finishes from a copy that is
still there or raises :class:`~modules.errors.ObjectNotFound` (issue 9).
Only data that is present and wrong while the object lives is damage.

For sequential reads, the next blocks are fetched and verified ahead on the
replica's worker pool (at most ``read_ahead`` blocks per stream, only when a
worker is free), so hashing overlaps the caller's work. Reads from the child
stream are serialised by a lock; hashing runs outside it.
"""
import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from modules.errors import DataCorrupted, ObjectNotFound, StorageError, format_failures
from modules.streams import ReadStream
from replica.failover import exhausted_error
from replica.locations import Location
from replica.manifest import MAX_MANIFEST_BYTES, Manifest, parse
from replica.workers import WorkerPool

__all__ = ["VerifiedReadStream", "open_verified_stream", "load_manifest", "read_exactly",
           "find_reference", "READ_AHEAD"]

log = logging.getLogger(__name__)

#: Blocks fetched and verified ahead of a sequential reader.
READ_AHEAD = 2

Retry = Callable[[Location, Callable[[], Any]], Any]
#: (location, data module_data, manifest module_data)
VerifiedCandidate = Tuple[Location, str, str]


def load_manifest(context: Optional[dict], location: Location, manifest_md: str,
                  retry: Optional[Retry] = None) -> Manifest:
    """Read and parse the manifest stored at ``location``.

    Returns:
        Manifest: intact and self-consistent.

    Raises:
        ObjectNotFound: the manifest is not there.
        DataCorrupted: it is damaged or too large.
        LocationUnavailable: the location cannot be read now.
    """
    def fetch() -> bytes:
        stream = location.call(context, "get_read_stream", manifest_md)
        try:
            return read_exactly(stream, MAX_MANIFEST_BYTES + 1)
        finally:
            _close_quietly(stream)
    try:
        raw = retry(location, fetch) if retry is not None else fetch()
    except StorageError:
        raise
    except Exception as error:  # a child stream's foreign error, translated here
        raise location.failed(error, "read manifest") from error
    if len(raw) > MAX_MANIFEST_BYTES:
        raise DataCorrupted("the manifest at %s is larger than %d bytes (damaged)"
                            % (location.name, MAX_MANIFEST_BYTES), location=location.name)
    try:
        return parse(raw, location.name)
    except DataCorrupted as error:
        error.location = location.name
        raise


def find_reference(context: Optional[dict], module_data: str,
                   candidates: Sequence[VerifiedCandidate], retry: Optional[Retry],
                   failures: Dict[str, StorageError],
                   is_gone: Callable[[], bool] = lambda: False
                   ) -> Tuple[int, Manifest, Dict[str, Manifest]]:
    """Return the first candidate whose manifest is intact and whose data has its size.

    Candidates are checked in order: the manifest is read, and the data's
    ``get_size`` must equal the manifest's size (no data is read). Problems
    are recorded in ``failures`` (a copy whose data is gone as
    ``ObjectNotFound``, a copy of the wrong size or with a damaged manifest
    as ``DataCorrupted``).

    Returns:
        (index of that candidate, its manifest, every manifest loaded by name).

    ``is_gone`` tells whether the object is being deleted: then copies
    whose manifest is gone count as gone, not as damaged.

    Raises:
        ObjectNotFound: no copy of the object exists (or it is being deleted).
        DataCorrupted: copies exist but none has an intact manifest and the
            right size (the message says which).
        LocationUnavailable: no copy could be checked and some location
            could not be reached.
    """
    loaded: Dict[str, Manifest] = {}
    lost_manifest: List[int] = []
    for index, (location, md, manifest_md) in enumerate(candidates):
        try:
            manifest = load_manifest(context, location, manifest_md, retry)
        except ObjectNotFound as error:
            failures[location.name] = error
            lost_manifest.append(index)
            continue
        except StorageError as error:
            failures[location.name] = error
            continue
        loaded[location.name] = manifest
        try:
            size = _call(retry, location, context, "get_size", md)
        except ObjectNotFound:
            failures[location.name] = ObjectNotFound(
                "the data of the copy at %s is gone (its manifest is there)" % location.name,
                module_data=module_data, location=location.name)
            continue
        except StorageError as error:
            failures[location.name] = error
            continue
        if size != manifest.size:
            failures[location.name] = DataCorrupted(
                "the copy at %s holds %r bytes, its manifest says %d"
                % (location.name, size, manifest.size),
                module_data=module_data, location=location.name)
            log.warning("copy at %s has size %r, its manifest says %d; not reading it",
                        location.name, size, manifest.size)
            continue
        return index, manifest, loaded
    if lost_manifest and is_gone():
        raise ObjectNotFound("the object was deleted while it was being opened (%s)"
                             % format_failures(failures), module_data=module_data,
                             failures=failures)
    holders = []
    for index in lost_manifest:
        location, md, _ = candidates[index]
        try:
            if _call(retry, location, context, "available", md) is True:
                holders.append(location.name)
        except StorageError as error:
            log.debug("asking %s for a copy without manifest failed: %s", location.name, error)
    if holders and is_gone():  # deleted while we looked: the data goes next
        raise ObjectNotFound("the object was deleted while it was being opened (%s)"
                             % format_failures(failures), module_data=module_data,
                             failures=failures)
    for name in holders:
        failures[name] = DataCorrupted(
            "the copy at %s has lost its manifest and cannot be verified" % name,
            module_data=module_data, location=name)
    if holders and all(isinstance(error, (ObjectNotFound, DataCorrupted))
                       for error in failures.values()):
        raise DataCorrupted(
            "no copy of the object can be verified; copies without manifest exist at %s (their "
            "data files are byte-identical to what was written and can be inspected directly): "
            "%s" % (", ".join(holders), format_failures(failures)), module_data=module_data)
    raise exhausted_error(module_data, failures)


def _call(retry: Optional[Retry], location: Location, context: Optional[dict], method: str,
          *args: Any) -> Any:
    def call() -> Any:
        return location.call(context, method, *args)
    return retry(location, call) if retry is not None else call()


class _Copy:
    """One candidate copy as seen by one stream."""

    def __init__(self, location: Location, md: str, mf: str):
        self.location = location
        self.md = md
        self.mf = mf
        self.checked = False      # manifest and size agree with the reference
        self.unusable: Optional[StorageError] = None  # never read again by this stream
        self.stream: Any = None
        self.position = 0

    def drop(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            _close_quietly(stream)


class VerifiedReadStream(ReadStream):
    """A seekable stream over several copies that returns only verified blocks.

    Built by :func:`open_verified_stream`. ``location`` names the copy being
    read, ``failovers`` counts switches, ``damaged`` lists the locations
    found damaged so far.
    """

    def __init__(self, context: Optional[dict], module_data: str, start: int, manifest: Manifest,
                 manifests: Dict[str, Manifest], candidates: Sequence[VerifiedCandidate],
                 retry: Retry, pool: Optional[WorkerPool], read_ahead: int,
                 failures: Dict[str, StorageError],
                 on_damage: Optional[Callable[[str, str], None]] = None,
                 on_failover: Optional[Callable[[], None]] = None,
                 is_gone: Callable[[], bool] = lambda: False,
                 on_vanished: Optional[Callable[[str], None]] = None):
        super().__init__(manifest.size)
        self._is_gone = is_gone
        self._on_vanished = on_vanished
        self.manifest = manifest
        self._context = context
        self._module_data = module_data
        self._copies = [_Copy(*candidate) for candidate in candidates]
        self._manifests = dict(manifests)
        self._retry = retry
        self._pool = pool
        self._read_ahead = read_ahead
        self._on_damage = on_damage
        self._on_failover = on_failover
        self._lock = threading.Lock()
        self._current = start
        self._copies[start].checked = True
        self._cached: Tuple[int, bytes] = (-1, b"")
        self._last_block = -1
        self._ahead: Dict[int, Any] = {}
        self._pending: Set[Any] = set()
        self._pending_lock = threading.Lock()
        self._all_done = threading.Condition(self._pending_lock)
        self.failovers = 0
        self.damaged: List[str] = []
        for name, error in failures.items():
            if isinstance(error, (ObjectNotFound, DataCorrupted)):
                for copy in self._copies:
                    if copy.location.name == name:
                        self._mark_unusable(copy, error)

    @property
    def location(self) -> Optional[str]:
        """The name of the location serving the current block."""
        return self._copies[self._current].location.name

    # -- the primitive ----------------------------------------------------

    def _read_at(self, position: int, size: int) -> bytes:
        block_size = self.manifest.block_size
        index = position // block_size
        block = self._block(index)
        offset = position - index * block_size
        if offset == 0 and size >= len(block):
            return block
        return block[offset:offset + size]

    def _block(self, index: int) -> bytes:
        cached_index, cached = self._cached
        if cached_index == index:
            return cached
        future = self._ahead.pop(index, None)
        sequential = index == self._last_block + 1
        for stale in [key for key in self._ahead if key < index or not sequential]:
            self._ahead.pop(stale)  # still runs; _release waits for it
        if sequential:
            self._schedule(index)
        data = future.result() if future is not None else self._fetch(index)
        self._cached = (index, data)
        self._last_block = index
        return data

    def _schedule(self, index: int) -> None:
        if self._pool is None:
            return
        for ahead in range(index + 1, min(index + 1 + self._read_ahead,
                                          self.manifest.block_count())):
            if ahead in self._ahead:
                continue
            try:
                if not self._pool.reserve(1, 0):
                    return
            except StorageError:
                return
            try:
                future = self._pool.submit(self._fetch, ahead)
            except StorageError:
                self._pool.release(1)
                return
            with self._pending_lock:
                self._pending.add(future)
            future.add_done_callback(self._finished)
            self._ahead[ahead] = future

    def _finished(self, future: Any) -> None:
        with self._pending_lock:
            self._pending.discard(future)
            self._all_done.notify_all()

    # -- fetching and verifying one block ---------------------------------

    def _fetch(self, index: int) -> bytes:
        """Return block ``index`` verified, trying each copy; raise when none is good."""
        tried: Set[int] = set()
        failures: Dict[str, StorageError] = {}
        while True:
            with self._lock:
                if self.closed:
                    raise ValueError("I/O operation on closed stream")
                number = self._pick(tried)
                if number is None:
                    raise self._exhausted(index, failures)
                copy = self._copies[number]
                tried.add(number)
                try:
                    raw = self._read_raw(copy, index)
                except StorageError as error:
                    failures[copy.location.name] = error
                    self._move_on(number)
                    continue
            if self.manifest.verify_block(index, raw):
                return raw
            with self._lock:
                self._move_on(number)
            if self._is_gone():
                failures[copy.location.name] = self._vanished(copy, "changed")
                continue
            error = DataCorrupted("block %d (bytes %d-%d) of the copy at %s fails its %s digest"
                                  % (index, index * self.manifest.block_size,
                                     index * self.manifest.block_size + len(raw) - 1,
                                     copy.location.name, self.manifest.algorithm),
                                  module_data=self._module_data, location=copy.location.name)
            failures[copy.location.name] = error
            self._report_damage(copy, str(error))

    def _move_on(self, number: int) -> None:
        """Copy ``number`` failed: later blocks start at the next usable copy (lock held)."""
        if number != self._current:
            return
        count = len(self._copies)
        for step in range(1, count):
            candidate = (number + step) % count
            if self._copies[candidate].unusable is None:
                self._current = candidate
                self.failovers += 1
                if self._on_failover is not None:
                    self._on_failover()
                return

    def _pick(self, tried: Set[int]) -> Optional[int]:
        order = [self._current] + [n for n in range(len(self._copies)) if n != self._current]
        for number in order:
            if number not in tried and self._copies[number].unusable is None:
                return number
        return None

    def _read_raw(self, copy: _Copy, index: int) -> bytes:
        """Read block ``index`` from ``copy`` (the caller holds the lock)."""
        location = copy.location
        try:
            if not copy.checked:
                self._check_copy(copy)
            if copy.stream is None:
                copy.stream = self._retry(location, lambda: location.call(
                    self._context, "get_read_stream", copy.md))
                copy.position = 0
            start = index * self.manifest.block_size
            length = self.manifest.block_length(index)
            if copy.position != start:
                copy.stream.seek(start)
                copy.position = start
            data = read_exactly(copy.stream, length)
            copy.position += len(data)
        except (ObjectNotFound, DataCorrupted) as error:
            copy.drop()
            self._mark_unusable(copy, error)
            raise
        except Exception as error:  # any other failure of this copy: try the next one
            copy.drop()
            translated = location.failed(error, "read")
            log.warning("reading object from %s failed at block %d (%s); trying another copy",
                        location.name, index, translated)
            raise translated from (None if translated is error else error)
        if len(data) != length:
            copy.drop()
            error = DataCorrupted("the copy at %s ends at byte %d, before its size %d"
                                  % (location.name, start + len(data), self.manifest.size),
                                  module_data=self._module_data, location=location.name)
            self._mark_unusable(copy, error)
            raise error
        return data

    def _check_copy(self, copy: _Copy) -> None:
        """Check the copy's own manifest and size against the reference (lock held)."""
        name = copy.location.name
        manifest = self._manifests.get(name)
        if manifest is None:
            try:
                manifest = load_manifest(self._context, copy.location, copy.mf, self._retry)
            except ObjectNotFound:
                if not self._retry(copy.location, lambda: copy.location.call(
                        self._context, "available", copy.md)):
                    # manifest and data both gone: deleted, not damaged (issue 9)
                    raise ObjectNotFound("the copy at %s is gone (no manifest, no data)" % name,
                                         module_data=self._module_data,
                                         location=name) from None
                raise DataCorrupted("the copy at %s has no manifest" % name,
                                    module_data=self._module_data, location=name) from None
            self._manifests[name] = manifest
        if not manifest.same_object(self.manifest):
            raise DataCorrupted("the manifest at %s describes other bytes than the manifest "
                                "read first" % name, module_data=self._module_data, location=name)
        size = self._retry(copy.location, lambda: copy.location.call(
            self._context, "get_size", copy.md))
        if size != self.manifest.size:
            raise DataCorrupted("the copy at %s holds %r bytes, its manifest says %d"
                                % (name, size, self.manifest.size),
                                module_data=self._module_data, location=name)
        copy.checked = True

    def _mark_unusable(self, copy: _Copy, error: StorageError) -> None:
        if copy.unusable is None:
            if isinstance(error, DataCorrupted) and self._is_gone():
                error = self._vanished(copy, str(error))
            copy.unusable = error
            if isinstance(error, DataCorrupted):
                self._report_damage(copy, str(error))

    def _vanished(self, copy: _Copy, what: str) -> ObjectNotFound:
        """Mark ``copy`` as gone (its object is being deleted); return the error saying so."""
        log.info("the copy at %s vanished while being read (the object is being deleted): %s",
                 copy.location.name, what)
        gone = ObjectNotFound("the copy at %s vanished: the object is being deleted"
                              % copy.location.name, module_data=self._module_data,
                              location=copy.location.name)
        if copy.unusable is None:
            copy.unusable = gone
            if self._on_vanished is not None:
                self._on_vanished(copy.location.name)
        return gone

    def _report_damage(self, copy: _Copy, reason: str) -> None:
        name = copy.location.name
        if name in self.damaged:
            return
        self.damaged.append(name)
        log.error("damaged copy at %s: %s; reading another copy", name, reason)
        if self._on_damage is not None:
            try:
                self._on_damage(name, reason)
            except Exception:  # recording damage must not break the read
                log.exception("recording the damaged copy at %s failed", name)

    def _exhausted(self, index: int, failures: Dict[str, StorageError]) -> StorageError:
        for copy in self._copies:
            if copy.location.name not in failures and copy.unusable is not None:
                failures[copy.location.name] = copy.unusable
        if self._is_gone():
            return ObjectNotFound("the object was deleted while it was being read (%s)"
                                  % format_failures(failures), module_data=self._module_data,
                                  failures=failures)
        error = exhausted_error(self._module_data, failures)
        if isinstance(error, DataCorrupted):
            return DataCorrupted("no copy has a good version of block %d (bytes from %d) of the "
                                 "object: %s" % (index, index * self.manifest.block_size,
                                                 format_failures(failures)),
                                 module_data=self._module_data, failures=failures)
        return error

    def _release(self) -> None:
        with self._pending_lock:
            while self._pending:
                self._all_done.wait()
        self._ahead.clear()
        with self._lock:
            for copy in self._copies:
                copy.drop()


def open_verified_stream(context: Optional[dict], module_data: str,
                         candidates: Sequence[VerifiedCandidate], retry: Retry,
                         pool: Optional[WorkerPool] = None, read_ahead: int = READ_AHEAD,
                         on_damage: Optional[Callable[[str, str], None]] = None,
                         on_failover: Optional[Callable[[], None]] = None,
                         is_gone: Callable[[], bool] = lambda: False,
                         on_vanished: Optional[Callable[[str], None]] = None
                         ) -> VerifiedReadStream:
    """Find the object's manifest and return a verifying stream over ``candidates``.

    Returns:
        VerifiedReadStream: positioned at 0, of the manifest's size.

    ``is_gone`` tells whether the object is being deleted (vanishing copies
    are then gone, not damaged; see the module docstring); ``on_vanished``
    is called with the name of each copy found gone that way.

    Raises:
        ObjectNotFound: no copy of the object exists (or it is being deleted).
        DataCorrupted: copies exist but none has an intact manifest.
        LocationUnavailable: no manifest could be read.
    """
    failures: Dict[str, StorageError] = {}
    start, manifest, manifests = find_reference(context, module_data, candidates, retry, failures,
                                                is_gone)
    return VerifiedReadStream(context, module_data, start, manifest, manifests, candidates, retry,
                              pool, read_ahead, failures, on_damage, on_failover, is_gone,
                              on_vanished)


def read_exactly(stream: Any, size: int) -> bytes:
    """Read ``size`` bytes from ``stream`` (fewer only at its end)."""
    parts = []
    remaining = size
    while remaining > 0:
        data = stream.read(remaining)
        if not data:
            break
        if not isinstance(data, bytes):
            data = bytes(data)
        parts.append(data)
        remaining -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _close_quietly(stream: Any) -> None:
    try:
        stream.close()
    except Exception as error:  # closing a failed copy must not hide the real failure
        log.debug("closing a read stream failed: %s: %s", type(error).__name__, error)

