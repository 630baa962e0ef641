"""Build small eggs by hand for the egg tests (real byte code, chosen contents)."""
import importlib.util
import marshal
import os
import zipfile
from typing import Dict, Optional

#: A module in an egg that passes the kit: SimpleStorage under another name.
GOOD_MODULE = """from simple.simple import SimpleStorage


class EggStorage(SimpleStorage):
    '''SimpleStorage shipped in an egg.'''
"""


def pyc(source: str, filename: str = "<egg>", magic: Optional[bytes] = None) -> bytes:
    """Return the bytes of a ``.pyc`` file for ``source`` (PEP 552 header, unchecked hash)."""
    code = compile(source, filename, "exec")
    header = (magic or importlib.util.MAGIC_NUMBER) + (0b01).to_bytes(4, "little") + bytes(8)
    return header + marshal.dumps(code)


def make_egg(path: str, files: Dict[str, bytes], name: str = "eggstore",
             version: str = "1.2.3", requires: Optional[str] = None) -> str:
    """Write an egg at ``path`` with ``files`` and EGG-INFO naming ``name`` ``version``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("EGG-INFO/PKG-INFO", "Metadata-Version: 2.1\nName: %s\nVersion: %s\n"
                         % (name, version))
        archive.writestr("EGG-INFO/top_level.txt", "\n".join(sorted(
            {entry.split("/")[0] for entry in files})) + "\n")
        if requires is not None:
            archive.writestr("EGG-INFO/requires.txt", requires)
        for entry, data in files.items():
            archive.writestr(entry, data)
    return path


def good_egg(path: str, package: str = "eggstore", version: str = "1.2.3",
             module: str = GOOD_MODULE) -> str:
    """An egg holding ``package`` (compiled) whose ``store.EggStorage`` passes the kit."""
    return make_egg(path, {package + "/__init__.pyc": pyc(""),
                           package + "/store.pyc": pyc(module)}, name=package, version=version)
