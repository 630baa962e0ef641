"""Which process wrote a row, and whether that process is still running.

Write intents and read publications in the host database carry the
identity of the process that recorded them, so that ``vsm repair`` and a
restarting host can tell the rows of a process that is gone (``kill -9``,
a crash, a reboot) from those of a process still working, without waiting
for a timeout. A pid alone is not enough: pids are reused. The identity is
``host:pid:start`` where ``start`` is the kernel's boot id and the
process's start time in clock ticks (``/proc/<pid>/stat`` field 22,
proc(5)); together they name one process for the life of the machine.
Where ``/proc`` is missing the start part is empty and only the pid is
checked.
"""
import os
import socket
from typing import NamedTuple, Optional

__all__ = ["ProcessIdentity", "current_process", "identity_of", "is_running"]

_BOOT_ID = "/proc/sys/kernel/random/boot_id"


class ProcessIdentity(NamedTuple):
    """One process on one machine: ``host``, ``pid`` and its ``start`` stamp."""

    host: str
    pid: int
    start: str

    def __str__(self) -> str:
        return "%s:%d:%s" % (self.host, self.pid, self.start)

    @classmethod
    def parse(cls, text: str) -> Optional["ProcessIdentity"]:
        """Return the identity written by ``str()``, or None for anything else."""
        host, _, rest = (text or "").rpartition(":")
        host, _, pid = host.rpartition(":")
        try:
            return cls(host, int(pid), rest)
        except ValueError:
            return None


def _start_stamp(pid: int) -> Optional[str]:
    """Return ``'<boot id>/<start ticks>'`` of ``pid``, '' without /proc, None when gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as file:
            stat = file.read().decode("ascii", "replace")
    except FileNotFoundError:
        return None if os.path.isdir("/proc/self") else ""
    except OSError:
        return ""
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        with open(_BOOT_ID) as file:
            boot = file.read().strip()
    except OSError:
        boot = ""
    return "%s/%s" % (boot, fields[19] if len(fields) > 19 else "")


def current_process() -> ProcessIdentity:
    """Return the identity of the calling process (computed anew: it changes after fork)."""
    return identity_of(os.getpid())


def identity_of(pid: int) -> ProcessIdentity:
    """Return the identity of process ``pid`` of this machine (start part '' when unknown)."""
    return ProcessIdentity(socket.gethostname(), pid, _start_stamp(pid) or "")


def is_running(identity: ProcessIdentity) -> Optional[bool]:
    """Tell whether the process ``identity`` names still runs.

    Returns:
        True or False for a process of this machine; None for another
        machine's process (the caller decides, e.g. by the age of its row).
    """
    if identity.host != socket.gethostname():
        return None
    stamp = _start_stamp(identity.pid)
    if stamp is None:
        return False
    if stamp and identity.start:
        return stamp == identity.start
    try:
        os.kill(identity.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
