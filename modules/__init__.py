"""The platform side of the Vendor Storage Module SDK.

``from modules import StorageModule`` is all a vendor module needs; the
SDK's exceptions are importable from here too.
"""
import abc
from types import MappingProxyType
from typing import Any, BinaryIO, Dict, Mapping, Optional

from modules.errors import (
    AuthenticationFailed,
    ConfigurationError,
    DataCorrupted,
    InsufficientStorage,
    InvalidModuleData,
    LocationError,
    LocationTimeout,
    LocationUnavailable,
    ObjectError,
    ObjectNotFound,
    SourceStreamError,
    StorageError,
    Unsupported,
)

__all__ = [
    "StorageModule",
    "StorageError",
    "ObjectError",
    "ObjectNotFound",
    "InvalidModuleData",
    "DataCorrupted",
    "LocationError",
    "LocationUnavailable",
    "LocationTimeout",
    "InsufficientStorage",
    "AuthenticationFailed",
    "ConfigurationError",
    "SourceStreamError",
    "Unsupported",
    "UNKNOWN",
    "CAPABILITIES",
]

#: The value of a capacity field that the module cannot know.
UNKNOWN = -1

#: The capability table: every key of :attr:`StorageModule.capabilities`, and
#: what a module promises by setting it True. A False (or absent) key means
#: the matching method raises :class:`~modules.errors.Unsupported` (for
#: methods) or the behaviour is not offered (for properties). The conformance
#: kit checks each: "works, or raises Unsupported and the capability says so".
CAPABILITIES: Mapping[str, str] = MappingProxyType({
    "repair": "repair(context, module_data=None, rate=None) brings stored data back to its "
              "intended state and returns a report (modules.reports.RepairReport as a dict)",
    "scrub": "scrub(context, module_data, rate=None) reads and verifies one object's stored "
             "data, changes nothing, and returns a report (modules.reports.ScrubReport as a dict)",
    "verified_reads": "read streams check the data against checksums and raise DataCorrupted "
                      "rather than return damaged bytes",
    "retries": "the module retries transient failures itself; callers call it once per "
               "attempt and must not retry its calls again",
    "placement": "new_data_for(context, object_id) gives the same module_data for the same "
                 "object id in every process and on every node, without contacting the storage",
})


class StorageModule(abc.ABC):
    """Base class of every Vendor Storage Module.

    The platform instantiates a module once per server process with the
    arguments an administrator configured, then calls its methods from many
    threads for the life of the process (months). Implementations must be
    thread-safe and must not grow: no thread, file or socket per call that
    outlives the call.

    **The context.** Every method but ``__init__`` receives ``context``, a
    dict of utility functions supplied by the platform::

        context['func']['getModule'](name) -> StorageModule

    returns the configured module instance called ``name`` (raising
    :class:`~modules.errors.ConfigurationError` for an unknown name). This is
    how modules compose: a module that wraps others (replication,
    encryption, deduplication) asks the context for them by name. A module
    that needs no other module may ignore ``context``; hosts may pass
    ``None`` or ``{}`` in that case.

    **module_data.** :meth:`new_data` returns a ``str`` that the platform
    stores and hands back unchanged to every other call about that object.
    It is opaque to the platform and names one immutable piece of data: once
    :meth:`assign` has stored bytes under it, they never change.

    **The methods, by obligation.**

    * *Required* (abstract; a subclass that omits one cannot be
      instantiated): :meth:`new_data`, :meth:`assign`, :meth:`available`,
      :meth:`get_read_stream`, :meth:`delete`, :meth:`get_size`,
      :meth:`statistics`.
    * *Optional* (defaults given here): :meth:`repair`, :meth:`scrub`,
      :meth:`new_data_for`, :meth:`close`, and the :attr:`capabilities`
      mapping that says which optional operations a module really offers
      (every key is described in :data:`CAPABILITIES`). The defaults of
      ``repair``, ``scrub`` and ``new_data_for`` raise
      :class:`~modules.errors.Unsupported`; a module that overrides one sets
      its capability True.
    * *Helpers* (not to be overridden): :meth:`capacity`.

    **Errors.** Raise the SDK's exceptions (:mod:`modules.errors`), never a
    bare ``OSError`` or a library's own: :class:`ObjectNotFound` when there
    is no data for a module_data, :class:`InvalidModuleData` when the value
    is not one this module produced, :class:`LocationUnavailable` when the
    storage cannot be used now, :class:`InsufficientStorage` when it is full.
    """

    #: What this module offers beyond the required methods (see :data:`CAPABILITIES`
    #: for every key and what it promises). Wrappers copy and adjust it
    #: (:class:`modules.wrapper.StorageWrapper`); callers read it instead of
    #: probing with try/except.
    capabilities: Mapping[str, Any] = MappingProxyType({
        "repair": False,          # repair() does real work
        "scrub": False,           # scrub() verifies stored data
        "verified_reads": False,  # read streams check checksums
        "retries": False,         # the module retries transient failures itself;
                                  # callers must not retry its calls again
        "placement": False,       # new_data_for() gives the same module_data for the
                                  # same object id, in every process and on every node
    })

    def __init__(self, **kwargs):
        """Configure the instance from the administrator's arguments.

        The platform passes its configured ``args`` list positionally (see
        :func:`modules.loader.load_module`); keyword arguments are accepted
        too. Validate everything here.

        Raises:
            ConfigurationError: an argument is missing, unknown or unusable;
                the message names it and says what is expected.
        """

    # -- required -------------------------------------------------------

    @abc.abstractmethod
    def new_data(self, context: Optional[dict]) -> str:
        """Allocate module_data for an object about to be stored.

        Called before any data is assigned. Typically an object id or a
        path, often JSON-encoded.

        Returns:
            str: a new value, different on every call.

        Raises:
            LocationUnavailable: the storage cannot be used now.
        """

    @abc.abstractmethod
    def assign(self, context: Optional[dict], module_data: str, stream: BinaryIO) -> None:
        """Store the bytes read from ``stream`` under ``module_data``.

        ``stream`` is a binary file-like object with ``read(n)``; read it in
        chunks until it returns ``b''``, never all at once. Storing is all or
        nothing: if the stream raises or the storage fails, nothing partial
        may remain readable and :meth:`available` must stay False. Calling
        ``assign`` again with the same bytes for a module_data that already
        holds them (a retry) is safe and leaves the data intact.

        Returns:
            None.

        Raises:
            InvalidModuleData: ``module_data`` is not this module's.
            InsufficientStorage: no room for the data.
            LocationUnavailable: the storage cannot be used now.
            SourceStreamError: reading the source failed or it is not a
                binary stream (the source's error is chained as
                ``__cause__``); SDK errors raised by the source pass through.
        """

    @abc.abstractmethod
    def available(self, context: Optional[dict], module_data: str) -> bool:
        """Tell whether the data for ``module_data`` is stored here.

        The platform skips copying an object to a location that answers
        True; after False it calls :meth:`assign` immediately.

        Returns:
            bool: True only if a complete copy is stored.

        Raises:
            InvalidModuleData: ``module_data`` is not this module's.
            LocationUnavailable: the storage cannot be asked now.
        """

    @abc.abstractmethod
    def get_read_stream(self, context: Optional[dict], module_data: str):
        """Open the stored data for reading.

        Returns:
            A binary stream with ``read(n=-1)``, ``seek(offset, whence=0)``,
            ``tell()`` and ``close()``, usable as a context manager. The
            caller closes it.

        Raises:
            ObjectNotFound: nothing is stored for ``module_data``.
            InvalidModuleData: ``module_data`` is not this module's.
            LocationUnavailable: the storage cannot be used now.
        """

    @abc.abstractmethod
    def delete(self, context: Optional[dict], module_data: str) -> None:
        """Destroy the data for ``module_data``; it is never used again.

        Deleting data that is already gone succeeds.

        Returns:
            None.

        Raises:
            InvalidModuleData: ``module_data`` is not this module's.
            LocationUnavailable: the storage cannot be used now.
        """

    @abc.abstractmethod
    def get_size(self, context: Optional[dict], module_data: str) -> int:
        """Return the size in bytes of the stored data.

        The platform calls this before ranged reads and server-side copies.

        Returns:
            int: the number of bytes a full read returns.

        Raises:
            ObjectNotFound: nothing is stored for ``module_data``.
            InvalidModuleData: ``module_data`` is not this module's.
            LocationUnavailable: the storage cannot be used now.
        """

    @abc.abstractmethod
    def statistics(self, context: Optional[dict]) -> Dict[str, Any]:
        """Describe the storage for administrators.

        Must not raise because the storage is unreachable: report it instead.

        Returns:
            dict: JSON-serialisable, with at least ``capacity``: a dict of
            integer ``total``, ``free`` and ``used`` bytes, each
            :data:`UNKNOWN` (-1) when unknown. Anything else useful may be
            added.
        """

    # -- optional -------------------------------------------------------

    def repair(self, context: Optional[dict], module_data: Optional[str] = None,
               rate: Optional[float] = None) -> Dict[str, Any]:
        """Bring stored data back to its intended state (capability ``repair``).

        For modules that keep copies, an index or a journal. With
        ``module_data``: repair that one object. Without: the module's own
        backlog (journal entries, leftovers of crashed processes).

        Args:
            module_data: the object to repair, or None for the backlog.
            rate: at most this many bytes per second of reading (None: no
                limit); modules that read nothing may ignore it.

        Returns:
            dict: a JSON-serialisable summary in the shape of
            :class:`modules.reports.RepairReport` (``to_dict()``); modules
            may add keys.

        Raises:
            Unsupported: the module has nothing to repair (the default);
                ``capabilities['repair']`` is False.
            InvalidModuleData: ``module_data`` is not this module's.
            ObjectNotFound: nothing is stored for ``module_data``.
            LocationUnavailable: the storage cannot be used now.
        """
        raise Unsupported("%s does not support repair" % type(self).__name__)

    def scrub(self, context: Optional[dict], module_data: str,
              rate: Optional[float] = None) -> Dict[str, Any]:
        """Read and verify the stored data of one object; change nothing (capability ``scrub``).

        Args:
            module_data: the object to verify.
            rate: at most this many bytes per second of reading, on average
                (None: no limit).

        Returns:
            dict: a JSON-serialisable report in the shape of
            :class:`modules.reports.ScrubReport` (``to_dict()``): ``ok``,
            ``damaged``, ``missing``, ``unreachable``, ``bytes_checked``...

        Raises:
            Unsupported: the module cannot verify its data (the default);
                ``capabilities['scrub']`` is False.
            InvalidModuleData: ``module_data`` is not this module's.
            ObjectNotFound: nothing is stored for ``module_data``.
            LocationUnavailable: the storage cannot be used now.
        """
        raise Unsupported("%s does not support scrub" % type(self).__name__)

    def new_data_for(self, context: Optional[dict], object_id: str) -> str:
        """Allocate the module_data of the object ``object_id``, deterministically.

        Optional (capability ``placement``). Unlike :meth:`new_data`, the same
        ``object_id`` gives the same module_data in every process and on
        every node configured with the same arguments, without contacting
        the storage and without remembering anything. A wrapper such as the
        replica uses it to place a copy of an existing object on a location
        that was added later, and to find that copy again from any process.

        Args:
            object_id: 32 lowercase hexadecimal characters (a UUID4's hex).

        Returns:
            str: module_data usable with every other method.

        Raises:
            InvalidModuleData: ``object_id`` is not 32 lowercase hex characters.
            Unsupported: the module cannot place data deterministically (the
                default); ``capabilities['placement']`` is False.
        """
        raise Unsupported("%s does not support deterministic placement (new_data_for)"
                          % type(self).__name__)

    def close(self) -> None:
        """Release pools, sessions and threads; the instance is not used again.

        Hosts call this when a module's configuration is replaced. The
        default does nothing.
        """

    # -- helpers (not to be overridden) ---------------------------------

    @staticmethod
    def capacity(total: int = UNKNOWN, free: int = UNKNOWN, used: int = UNKNOWN) -> Dict[str, int]:
        """Return a ``capacity`` dict for :meth:`statistics`, with ints and -1 for unknown."""
        return {"total": int(total), "free": int(free), "used": int(used)}
