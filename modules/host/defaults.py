"""The configuration a new host starts with: three local locations and a mirror.

On the first start of an empty data directory the host creates the
directories ``locations/loc-a``, ``loc-b`` and ``loc-c`` inside it,
configures a ``simple.simple.SimpleStorage`` module on each, and a policy
``mirror``: ``replica.replica.ReplicaStorage`` over the three, by name,
keeping its journal in ``state/mirror``. It happens once: an administrator
who later removes them does not get them back.
"""
import logging
import os
import time
from typing import List

from modules.errors import ConfigurationError
from modules.loader import load_module_class

from modules.host.store import ModuleConfig, Store

__all__ = ["ensure_default_configuration", "DEFAULT_LOCATIONS", "DEFAULT_POLICY",
           "LOCATIONS_DIRNAME"]

log = logging.getLogger(__name__)

#: Names of the default locations.
DEFAULT_LOCATIONS = ("loc-a", "loc-b", "loc-c")

#: Name of the default policy.
DEFAULT_POLICY = "mirror"

#: Directory inside the data directory holding the default locations.
LOCATIONS_DIRNAME = "locations"

#: Directory inside the data directory holding the mirror's journal.
STATE_DIRNAME = "state"

_SIMPLE = "simple.simple.SimpleStorage"
_REPLICA = "replica.replica.ReplicaStorage"
_FLAG = "defaults_created"


def ensure_default_configuration(store: Store, data_dir: str) -> List[str]:
    """Create the default configuration if this data directory never had one.

    Returns:
        list: the names of the modules created (empty when nothing was done).

    Raises:
        LocationUnavailable: the database cannot be written.
        OSError: the location directories cannot be created.
    """
    if store.get_meta(_FLAG) is not None or store.list_modules():
        return []
    created = []
    for name in DEFAULT_LOCATIONS:
        directory = os.path.join(data_dir, LOCATIONS_DIRNAME, name)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if store.put_module(ModuleConfig(name=name, module=_SIMPLE, args=[directory],
                                         description="default location %s" % name)):
            created.append(name)
    try:
        load_module_class(_REPLICA)
    except ConfigurationError as error:
        log.warning("the default policy %r is not configured: %s", DEFAULT_POLICY, error)
        return created
    state_dir = os.path.join(data_dir, STATE_DIRNAME, DEFAULT_POLICY)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    mirror = ModuleConfig(name=DEFAULT_POLICY, module=_REPLICA,
                          args=list(DEFAULT_LOCATIONS) + ["state_dir=" + state_dir],
                          description="every object on %s" % ", ".join(DEFAULT_LOCATIONS))
    if store.put_module(mirror):
        created.append(DEFAULT_POLICY)
    store.set_meta_once(_FLAG, str(time.time()))
    return created
