"""Which process owns an unfinished upload, and whether that process is gone.

An owner is ``"<host>|<boot id>|<pid>|<start time>"``: the node's name, the
kernel's boot id (``/proc/sys/kernel/random/boot_id``), the process id and
the process's start time in clock ticks since boot (field 22 of
``/proc/<pid>/stat``, see proc(5)). The start time tells a live process
from a later one that reuses its pid; the boot id tells that every process
of a previous boot is gone. Where ``/proc`` is missing, liveness falls back
to ``os.kill(pid, 0)``.

A process on another node is never declared gone: this node cannot know
(``state_dir`` is meant for the processes of one node).
"""
import os
import socket
from typing import Optional

__all__ = ["current_owner", "owner_is_gone"]

_SEPARATOR = "|"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            return file.read().strip()
    except OSError:
        return "-"


def _start_time(pid: int) -> Optional[str]:
    try:
        with open("/proc/%d/stat" % pid, "rb") as file:
            stat = file.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def current_owner() -> str:
    """Return the owner string of the calling process (compute it again after a fork)."""
    pid = os.getpid()
    return _SEPARATOR.join((socket.gethostname(), _boot_id(), str(pid), _start_time(pid) or "-"))


def owner_is_gone(owner: str) -> bool:
    """Return True when the process named by ``owner`` certainly no longer runs.

    False for a live process, for a process on another node, and for an
    owner string that cannot be parsed (never reclaim what might be in use).
    """
    parts = owner.split(_SEPARATOR)
    if len(parts) != 4 or not parts[2].isdigit():
        return False
    host, boot_id, pid_text, start = parts
    if host != socket.gethostname():
        return False
    if boot_id != "-" and _boot_id() not in ("-", boot_id):
        return True  # the node rebooted since
    pid = int(pid_text)
    if start != "-" and os.path.isdir("/proc/self"):
        return _start_time(pid) != start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists, under another user
        return False
    return False
