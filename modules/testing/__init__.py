"""Testing aids for module authors: the conformance kit and fault injection.

* :class:`StorageModuleTestBase` — the conformance kit (:mod:`modules.testing.kit`).
* :class:`FaultyStorage` — wraps a real module and fails, hangs or reports a
  chosen capacity on command (:mod:`modules.testing.faults`).
* :class:`CapabilityChecks` — the per-capability checks, mixed in before the kit.
"""
from modules.testing.faults import FaultyStorage
from modules.testing.kit import CapabilityChecks, FailingSource, StorageModuleTestBase, payload

__all__ = ["StorageModuleTestBase", "CapabilityChecks", "FaultyStorage", "FailingSource", "payload"]
