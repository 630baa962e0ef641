"""Per-client throttling of failed logins: a growing wait, answered 429 meanwhile.

A client (an IP address) gets :data:`FREE_FAILURES` wrong passwords for
free. Each further failure makes it wait before its next attempt:
:data:`BASE_DELAY` seconds, doubling with every failure up to
:data:`MAX_DELAY` (1, 2, 4 ... 300 s). An attempt during the wait is not
even checked: it is answered ``429 Too Many Requests`` with
``Retry-After`` (RFC 6585 section 4). A successful login forgets the
client. This is the scheme of OpenSSH's and fail2ban's back-off, kept in
memory: the table holds at most :data:`MAX_CLIENTS` clients (the least
recently seen are forgotten first) and forgets a client that stayed quiet
for :data:`FORGET_AFTER` seconds after its wait ended.

The table is per process: with ``vsm serve --workers N`` a client gets at
most ``N`` times the attempts.
"""
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["LoginThrottle", "FREE_FAILURES", "BASE_DELAY", "MAX_DELAY", "MAX_CLIENTS",
           "FORGET_AFTER"]

#: Wrong passwords a client may send before it has to wait.
FREE_FAILURES = 5

#: The first wait, in seconds; each further failure doubles it.
BASE_DELAY = 1.0

#: The longest wait, in seconds.
MAX_DELAY = 300.0

#: Clients remembered at most (about 200 bytes each).
MAX_CLIENTS = 10000

#: Seconds after its wait ended when a quiet client is forgotten.
FORGET_AFTER = 900.0


@dataclass
class _Client:
    failures: int
    not_before: float
    last_seen: float


class LoginThrottle:
    """Remember failed logins per client and say how long each must wait.

    Args:
        free_failures, base_delay, max_delay, max_clients, forget_after:
            see the module constants.
        clock: monotonic seconds (injected by tests).

    Thread-safe.
    """

    def __init__(self, free_failures: int = FREE_FAILURES, base_delay: float = BASE_DELAY,
                 max_delay: float = MAX_DELAY, max_clients: int = MAX_CLIENTS,
                 forget_after: float = FORGET_AFTER, clock: Callable[[], float] = time.monotonic):
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self._free = free_failures
        self._base = base_delay
        self._max = max_delay
        self._max_clients = max_clients
        self._forget_after = forget_after
        self._clock = clock
        self._clients: "OrderedDict[str, _Client]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    def wait_for(self, client: str) -> Optional[int]:
        """Return the whole seconds ``client`` must still wait, or None when it may try now."""
        now = self._clock()
        with self._lock:
            entry = self._clients.get(client)
            if entry is None:
                return None
            if entry.not_before > now:
                return max(1, math.ceil(entry.not_before - now))
            if now - max(entry.not_before, entry.last_seen) > self._forget_after:
                del self._clients[client]
        return None

    def failed(self, client: str) -> int:
        """Record a failed login by ``client``; return its failures so far."""
        now = self._clock()
        with self._lock:
            entry = self._clients.pop(client, None)
            if entry is None:
                entry = _Client(0, now, now)
            entry.failures += 1
            entry.last_seen = now
            beyond = entry.failures - self._free
            if beyond > 0:
                entry.not_before = now + min(self._base * 2 ** min(beyond - 1, 60), self._max)
            self._clients[client] = entry  # most recently seen last
            while len(self._clients) > self._max_clients:
                self._clients.popitem(last=False)
            return entry.failures

    def succeeded(self, client: str) -> None:
        """Forget ``client``'s failures."""
        with self._lock:
            self._clients.pop(client, None)
