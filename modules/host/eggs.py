"""Vendor eggs in the host: ``vsm serve --egg PATH`` and the data directory's ``eggs/``.

Eggs are put on ``sys.path`` once, when the process starts, before any
module is configured; the status page then lists them with their versions.
An egg cannot be reloaded safely in a running process (``zipimport``
caches the archive's directory, and instances of the old classes keep
serving), so an egg changed on disk is reported as needing a restart, and
so is a new egg dropped into ``eggs/``.

``sys.path`` belongs to the process, so the record of what was put there
is kept per process too (:func:`loaded_eggs`); pre-forked workers inherit it.
"""
import glob
import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from modules.errors import ConfigurationError
from modules.packaging.egg import EggInfo, egg_problems, read_egg

__all__ = ["LoadedEgg", "EGGS_DIRNAME", "egg_paths", "load_eggs", "loaded_eggs", "egg_report"]

log = logging.getLogger(__name__)

#: The folder of the data directory whose ``*.egg`` files are loaded at start.
EGGS_DIRNAME = "eggs"

_lock = threading.Lock()
_loaded: List["LoadedEgg"] = []


@dataclass(frozen=True)
class LoadedEgg:
    """An egg put on ``sys.path`` by this process, and its file as it was then."""

    path: str
    name: str
    version: str
    packages: Tuple[str, ...]
    stat: Tuple[int, int, int]  # (size, mtime in ns, inode) at load time

    @classmethod
    def of(cls, info: EggInfo) -> "LoadedEgg":
        """Return the record of the egg ``info`` describes, with its file as it is now."""
        return cls(info.path, info.name, info.version, tuple(info.packages),
                   _stat(info.path) or (0, 0, 0))

    def state(self) -> Tuple[str, str]:
        """Return ``('loaded', '')``, ``('changed', note)`` or ``('missing', note)``."""
        current = _stat(self.path)
        if current is None:
            return "missing", ("the egg file is gone; the loaded version keeps serving until vsm "
                               "serve restarts")
        if current == self.stat:
            return "loaded", ""
        try:
            newer = read_egg(self.path).label
        except ConfigurationError:
            newer = "an unreadable egg"
        return "changed", ("changed on disk (now %s): restart vsm serve to load it; %s keeps "
                           "serving until then" % (newer, self.version))


def egg_paths(data_dir: str, given: Iterable[str] = ()) -> List[str]:
    """Return the eggs to load: ``given`` first, then ``data_dir/eggs/*.egg`` by name."""
    found = [os.path.abspath(path) for path in given]
    for path in sorted(glob.glob(os.path.join(data_dir, EGGS_DIRNAME, "*.egg"))):
        if os.path.abspath(path) not in found:
            found.append(os.path.abspath(path))
    return found


def load_eggs(paths: Iterable[str]) -> List[LoadedEgg]:
    """Check every egg, then put them all first on ``sys.path`` (the first given wins).

    Nothing is loaded unless every egg is fit.

    Returns:
        list of LoadedEgg: the eggs loaded by this call.

    Raises:
        ConfigurationError: an egg is missing or unreadable, fails
            :func:`~modules.packaging.egg.egg_problems`, provides a package
            another egg provides, or one that this process imported already.
    """
    eggs: List[LoadedEgg] = []
    owners: Dict[str, str] = {}
    with _lock:
        for loaded in _loaded:
            owners.update((package, loaded.path) for package in loaded.packages)
    for path in paths:
        info = read_egg(path)
        problems = egg_problems(info)
        if problems:
            raise ConfigurationError("egg %s cannot be loaded: %s (see: vsm egg check %s)"
                                     % (info.path, "; ".join(problems), info.path))
        for package in info.packages:
            if package in owners and owners[package] != info.path:
                raise ConfigurationError("eggs %s and %s both provide the package %s: keep one"
                                         % (owners[package], info.path, package))
            if package in sys.modules and owners.get(package) != info.path:
                raise ConfigurationError("egg %s provides %s, which this process has imported "
                                         "from %s already" % (info.path, package, getattr(
                                             sys.modules[package], "__file__", "elsewhere")))
            owners[package] = info.path
        eggs.append(LoadedEgg.of(info))
    with _lock:
        known = {egg.path for egg in _loaded}
        fresh = [egg for egg in eggs if egg.path not in known]
        for egg in reversed(fresh):
            sys.path.insert(0, egg.path)
        _loaded.extend(fresh)
    for egg in fresh:
        log.info("loaded egg %s %s from %s (packages %s)", egg.name, egg.version, egg.path,
                 ", ".join(egg.packages))
    return fresh


def loaded_eggs() -> List[LoadedEgg]:
    """Return the eggs this process put on ``sys.path``, in load order."""
    with _lock:
        return list(_loaded)


def egg_report(data_dir: Optional[str] = None) -> List[Dict[str, str]]:
    """Describe the eggs for the status page.

    Returns:
        list of dict: ``{"name", "version", "path", "state", "note"}`` per
        loaded egg (state ``loaded``, ``changed`` or ``missing``), then one
        with state ``new`` per egg in ``data_dir/eggs`` that is not loaded.
    """
    report = []
    eggs = loaded_eggs()
    for egg in eggs:
        state, note = egg.state()
        report.append({"name": egg.name, "version": egg.version, "path": egg.path,
                       "state": state, "note": note})
    if data_dir is not None:
        known = {egg.path for egg in eggs}
        for path in egg_paths(data_dir):
            if path not in known:
                try:
                    label = read_egg(path)
                    name, version = label.name, label.version
                except ConfigurationError:
                    name, version = os.path.basename(path), "?"
                report.append({"name": name, "version": version, "path": path, "state": "new",
                               "note": "not loaded: restart vsm serve to load it"})
    return report


def _stat(path: str) -> Optional[Tuple[int, int, int]]:
    try:
        result = os.stat(path)
    except OSError:
        return None
    return result.st_size, result.st_mtime_ns, result.st_ino
