"""Testing aids for module authors: the conformance kit and fault injection.

``StorageModuleTestBase`` is the conformance kit (see :mod:`modules.testing.kit`).
"""
from modules.testing.kit import FailingSource, StorageModuleTestBase, payload

__all__ = ["StorageModuleTestBase", "FailingSource", "payload"]
