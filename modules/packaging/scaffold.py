"""Write a ready source directory for a new module (what ``vsm new NAME`` does).

The templates are package data in ``modules/packaging/templates``, rendered
with :class:`string.Template` (``${name}``, ``${class_name}``,
``${dist_name}``, ``${sdk_version}``).
"""
import importlib.util
import keyword
import os
import re
import string
import sys
import sysconfig
from dataclasses import dataclass
from typing import Dict, List, Optional

from modules.errors import ConfigurationError

__all__ = ["Project", "create_project", "default_class_name", "SDK_DISTRIBUTION", "RESERVED_NAMES"]

#: The SDK's own distribution name: a vendor project must never reuse it,
#: or installing the project replaces the SDK (issue 15, point 1).
SDK_DISTRIBUTION = "vendor-storage-modules"

#: Package names a module may not take: the SDK's own and the usual test folders.
RESERVED_NAMES = frozenset({"modules", "simple", "replica", "tests", "test", "setup"})

_NAME = re.compile(r"\A[a-z][a-z0-9_]*\Z")
_CLASS = re.compile(r"\A[A-Z][A-Za-z0-9_]*\Z")
_TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

#: Generated file (relative path, with ``{name}`` for the package) -> template.
_FILES = (
    ("setup.py", "setup.py.tmpl"),
    ("setup.cfg", "setup.cfg.tmpl"),
    ("README.md", "README.md.tmpl"),
    (".gitignore", "gitignore.tmpl"),
    ("{name}/__init__.py", "init.py.tmpl"),
    ("{name}/{name}.py", "module.py.tmpl"),
    ("tests/__init__.py", "tests_init.py.tmpl"),
    ("tests/test_{name}.py", "test_module.py.tmpl"),
)


@dataclass(frozen=True)
class Project:
    """A generated project: where it is and what the platform calls its module."""

    directory: str
    name: str
    class_name: str
    dist_name: str
    files: List[str]

    @property
    def dotted_path(self) -> str:
        """The ``module`` value of the ``vendor_modules`` configuration."""
        return "%s.%s.%s" % (self.name, self.name, self.class_name)


def default_class_name(name: str) -> str:
    """Return the SDK's style of class name for package ``name``: CamelCase + ``Storage``.

    ``'simple'`` -> ``'SimpleStorage'``, ``'acme_vault'`` -> ``'AcmeVaultStorage'``;
    a trailing ``store`` becomes ``Storage`` (``'newstore'`` -> ``'NewStorage'``,
    ``'blob_storage'`` -> ``'BlobStorage'``).
    """
    parts = [part for part in name.split("_") if part]
    last = parts[-1] if parts else ""
    if last.endswith("storage") and last != "storage":
        parts[-1] = last[:-len("storage")]
    elif last.endswith("store") and last != "store":
        parts[-1] = last[:-len("store")]
    elif last in ("store", "storage") and len(parts) > 1:
        parts.pop()
    return "".join(part[:1].upper() + part[1:] for part in parts) + "Storage"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or keyword.iskeyword(name):
        raise ConfigurationError(
            "%r cannot name a module package: use lowercase letters, digits and underscores, "
            "starting with a letter (e.g. 'newstore')" % (name,))
    if name in RESERVED_NAMES:
        raise ConfigurationError("%r is taken by the SDK or the test runners; pick another name "
                                 "(e.g. your company's or product's)" % name)
    if _in_standard_library(name):
        raise ConfigurationError("%r is a module of Python's standard library; pick another "
                                 "name" % name)


def _in_standard_library(name: str) -> bool:
    """Tell whether ``name`` is a module of Python's standard library."""
    if name in getattr(sys, "stdlib_module_names", ()) or name in sys.builtin_module_names:
        return True
    if hasattr(sys, "stdlib_module_names"):
        return False
    # Python 3.9 has no list: look where the module would come from.
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    origin = getattr(spec, "origin", None) if spec is not None else None
    if not origin or origin in ("built-in", "frozen"):
        return bool(origin)
    origin = os.path.realpath(origin)
    libraries = {os.path.realpath(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib")}
    return any(origin.startswith(library + os.sep) for library in libraries) and \
        "site-packages" not in origin.split(os.sep)


def create_project(name: str, parent: str = ".", class_name: Optional[str] = None,
                   dist_name: Optional[str] = None, directory: Optional[str] = None) -> Project:
    """Write the source directory of module ``name``.

    Args:
        name: the package name (lowercase identifier), e.g. ``'newstore'``.
        parent: where the project directory is created (default: here).
        class_name: the module class (default: :func:`default_class_name`).
        dist_name: the distribution name in ``setup.cfg`` (default ``name``
            with ``_`` as ``-``); never the SDK's.
        directory: the project directory (default ``parent/name``); it must
            not exist or be empty.

    Returns:
        Project: what was written.

    Raises:
        ConfigurationError: a name is unusable or the directory is not empty
            (nothing is written then).
        OSError: the files cannot be written.
    """
    _check_name(name)
    class_name = class_name or default_class_name(name)
    if not _CLASS.match(class_name) or keyword.iskeyword(class_name):
        raise ConfigurationError("%r cannot name a class: use CamelCase letters and digits, "
                                 "e.g. 'NewStorage'" % (class_name,))
    dist_name = dist_name or name.replace("_", "-")
    if not re.match(r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z", dist_name):
        raise ConfigurationError("%r is not a valid distribution name" % (dist_name,))
    if re.sub(r"[-_.]+", "-", dist_name).lower() == SDK_DISTRIBUTION:
        raise ConfigurationError("the distribution name must not be the SDK's (%s): installing "
                                 "the project would replace the SDK" % SDK_DISTRIBUTION)
    directory = os.path.abspath(directory or os.path.join(parent, name))
    if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
        raise ConfigurationError("%s already exists and is not empty; choose another place with "
                                 "--dir, or remove it" % directory)
    values = {"name": name, "class_name": class_name, "dist_name": dist_name,
              "sdk_version": _sdk_version()}
    rendered: Dict[str, str] = {}
    for target, template in _FILES:
        rendered[target.format(name=name)] = _render(template, values)
    written = []
    for relative, text in rendered.items():
        path = os.path.join(directory, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "x", encoding="utf-8") as file:
            file.write(text)
        written.append(relative)
    return Project(directory, name, class_name, dist_name, written)


def _render(template: str, values: Dict[str, str]) -> str:
    with open(os.path.join(_TEMPLATE_DIR, template), encoding="utf-8") as file:
        return string.Template(file.read()).substitute(values)


def _sdk_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version(SDK_DISTRIBUTION)
    except (ImportError, PackageNotFoundError):
        return "(unknown version)"
    except Exception:  # broken metadata must not stop a scaffold; the version is a comment
        return "(unknown version)"
