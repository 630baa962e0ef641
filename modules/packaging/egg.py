"""Read a module's egg and say what is wrong with it.

An egg for the platform holds the vendor's packages only, as byte code
compiled for the platform's Python; the platform provides ``modules``.
:func:`read_egg` reads its metadata and contents; :func:`egg_problems`
lists each deviation with what to do about it.
"""
import email.parser
import importlib.util
import os
import re
import zipfile
from dataclasses import dataclass, field
from typing import List, Tuple

from modules.errors import ConfigurationError

__all__ = ["EggInfo", "read_egg", "egg_problems", "SDK_PACKAGES", "SDK_DISTRIBUTION"]

#: The SDK's distribution name; an egg must have its own.
SDK_DISTRIBUTION = "vendor-storage-modules"

#: Top-level packages a vendor's egg must not carry: the platform provides
#: ``modules`` (and the SDK ships ``replica``); ``simple`` is the SDK's
#: sample; tests stay out.
SDK_PACKAGES = ("modules", "simple", "replica", "tests", "test")

#: Size of the header of a ``.pyc`` file that starts with the magic number.
_MAGIC_LENGTH = len(importlib.util.MAGIC_NUMBER)


@dataclass
class EggInfo:
    """What an egg holds.

    Attributes:
        path: the egg's absolute path.
        name: the distribution name from ``EGG-INFO/PKG-INFO``.
        version: its version.
        packages: top-level packages and modules, sorted.
        code: every entry outside ``EGG-INFO/``.
        compiled_for: ``(entry, magic)`` of ``.pyc`` files compiled for
            another Python than this one.
        requires: the distributions the egg needs (``install_requires``,
            from ``EGG-INFO/requires.txt``; optional extras left out).
    """

    path: str
    name: str
    version: str
    packages: List[str]
    code: List[str]
    compiled_for: List[Tuple[str, bytes]] = field(default_factory=list)
    requires: List[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``'name version'``."""
        return "%s %s" % (self.name, self.version)


def read_egg(path: str) -> EggInfo:
    """Read the egg at ``path``.

    Returns:
        EggInfo: its metadata and contents.

    Raises:
        ConfigurationError: the file is missing, not a zip archive, or has
            no ``EGG-INFO/PKG-INFO`` with a name and a version.
    """
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ConfigurationError("no egg at %s (build one with: python setup.py bdist_egg)" % path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            try:
                metadata = archive.read("EGG-INFO/PKG-INFO").decode("utf-8", "replace")
            except KeyError:
                raise ConfigurationError("%s has no EGG-INFO/PKG-INFO: it is not an egg (build it "
                                         "with: python setup.py bdist_egg)" % path) from None
            try:
                requires = _requirements(archive.read("EGG-INFO/requires.txt").decode("utf-8",
                                                                                      "replace"))
            except KeyError:
                requires = []
            stale = []
            for name in names:
                if name.endswith(".pyc"):
                    with archive.open(name) as member:
                        magic = member.read(_MAGIC_LENGTH)
                    if magic != importlib.util.MAGIC_NUMBER:
                        stale.append((name, magic))
    except (zipfile.BadZipFile, OSError) as error:
        raise ConfigurationError("%s cannot be read as an egg: %s" % (path, error)) from error
    headers = email.parser.Parser().parsestr(metadata, headersonly=True)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise ConfigurationError("%s: EGG-INFO/PKG-INFO lacks Name or Version; set them in "
                                 "setup.cfg [metadata]" % path)
    code = [entry for entry in names if not entry.startswith("EGG-INFO/") and not entry.endswith("/")]
    packages = sorted({_top_level(entry) for entry in code})
    return EggInfo(path, name.strip(), version.strip(), packages, code, stale, requires)


def _requirements(text: str) -> List[str]:
    """The unconditional requirements of a ``requires.txt`` (before any ``[extra]`` section)."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            break
        if line and not line.startswith("#"):
            found.append(line)
    return found


def _missing(requirement: str) -> bool:
    """Tell whether the distribution a requirement names is not installed here."""
    from importlib.metadata import PackageNotFoundError, distribution

    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    if match is None:
        return False
    try:
        distribution(match.group(0))
    except PackageNotFoundError:
        return True
    return False


def _top_level(entry: str) -> str:
    first = entry.split("/", 1)[0]
    if "/" not in entry:
        first = re.sub(r"(\.cpython-[^.]*)?\.(pyc|py|so|pyd)\Z", "", first)
    return first


def egg_problems(info: EggInfo) -> List[str]:
    """Return what is wrong with ``info`` for the platform (empty when nothing).

    Each problem says what to fix: the distribution name is the SDK's; the
    egg carries ``modules``, ``simple``, ``replica`` or tests; it holds
    source files or no compiled code; its byte code is for another Python
    version; a distribution it requires is not installed here.
    """
    problems = []
    if re.sub(r"[-_.]+", "-", info.name).lower() == SDK_DISTRIBUTION:
        problems.append("the distribution is named %s, like the SDK: set your own name in "
                        "setup.cfg [metadata] (vsm new does)" % info.name)
    carried = [package for package in info.packages if package in SDK_PACKAGES]
    if carried:
        problems.append("the egg carries %s: the platform provides modules and the SDK ships "
                        "replica, and simple and tests do not belong in it; build only your "
                        "packages (EGG_PACKAGES in setup.py)"
                        % ", ".join(carried))
    sources = [entry for entry in info.code if entry.endswith(".py")]
    if sources:
        problems.append("the egg holds %d source file(s) (e.g. %s): set exclude_source_files = 1 "
                        "under [bdist_egg] in setup.cfg" % (len(sources), sources[0]))
    if not any(entry.endswith(".pyc") for entry in info.code):
        problems.append("the egg holds no compiled code: build it with a setup.py that forces "
                        "byte-compiling (vsm new writes one; PYTHONDONTWRITEBYTECODE=1 makes plain "
                        "setuptools skip it)")
    if info.compiled_for:
        problems.append("%d file(s) are compiled for another Python version (e.g. %s): build the "
                        "egg with the Python the platform runs (this is %s)" % (
                            len(info.compiled_for), info.compiled_for[0][0], _python_version()))
    missing = [requirement for requirement in info.requires if _missing(requirement)]
    if missing:
        problems.append("the egg requires %s, not installed here: install it (pip install) here "
                        "and on every platform node, or drop it from install_requires"
                        % ", ".join(missing))
    if not [package for package in info.packages if package not in SDK_PACKAGES]:
        problems.append("the egg holds no package of its own")
    return problems


def _python_version() -> str:
    import sys
    return "Python %d.%d" % sys.version_info[:2]
