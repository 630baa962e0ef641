"""Objects that must be consistent across ``fork()``: pre-forking servers build the app first.

``vsm serve --workers N`` and gunicorn ``--preload`` build the application
in one process and fork the workers from it. Only the forking thread
survives in a child: a lock another thread held stays locked, SQLite
connections must not be carried over (sqlite.org, "How To Corrupt An
SQLite Database File", 2.6) and module instances lose their threads. An
object registered here gets its ``_before_fork``, ``_after_fork_in_parent``
and ``_after_fork_in_child`` methods (those it has) called around every
fork, through :func:`os.register_at_fork`, while the child is still
single-threaded. Registration holds the object weakly.
"""
import logging
import os
import weakref

__all__ = ["register"]

log = logging.getLogger(__name__)

_INSTANCES: "weakref.WeakSet" = weakref.WeakSet()


def register(instance) -> None:
    """Call ``instance``'s fork hooks around every ``fork()`` from now on."""
    _INSTANCES.add(instance)


def _run(hook: str, reverse: bool = False):
    def run() -> None:
        instances = list(_INSTANCES)
        for instance in reversed(instances) if reverse else instances:
            method = getattr(instance, hook, None)
            if method is None:
                continue
            try:
                method()
            except Exception:  # one object's trouble must not stop the others' hooks
                log.exception("%s of %r failed", hook, instance)
    return run


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork()
    os.register_at_fork(before=_run("_before_fork", reverse=True),
                        after_in_parent=_run("_after_fork_in_parent"),
                        after_in_child=_run("_after_fork_in_child"))
