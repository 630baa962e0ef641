"""Testing aids for module authors: the conformance kit and fault injection.

* :class:`StorageModuleTestBase` — the conformance kit (:mod:`modules.testing.kit`).
* :class:`FaultyStorage` — wraps a real module and fails, hangs or reports a
  chosen capacity on command (:mod:`modules.testing.faults`).
"""
from modules.testing.faults import FaultyStorage
from modules.testing.kit import FailingSource, StorageModuleTestBase, payload

__all__ = ["StorageModuleTestBase", "FaultyStorage", "FailingSource", "payload"]
