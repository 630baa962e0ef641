"""The replica's locations, in configured order: which to call, in which order, which to skip.

:class:`LocationSet` owns the :class:`~replica.locations.Location` objects of
one replica. It answers the questions every path asks the same way, as
OpenStack Swift's ``NodeIter`` does for a proxy: which configured locations
hold a copy of an object (:meth:`LocationSet.split`), in which order to read
them (:meth:`LocationSet.read_order`: healthy first, then those whose last
read failed, error-limited last), and which to skip for writes
(:meth:`LocationSet.writable`).
"""
import logging
import time
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple

from modules.errors import LocationUnavailable
from replica import module_data as formats
from replica.locations import WRITE, Location, Placed
from replica.settings import LocationSpec

__all__ = ["LocationSet", "unconfigured_error"]

log = logging.getLogger(__name__)


class LocationSet:
    """The configured locations of one replica (thread-safe; the list never changes).

    Args:
        specs: the parsed location configurations, in configured order.
        error_limit: consecutive failures (per direction) that error-limit a location.
        error_interval: seconds an error-limited location is skipped.
        owner: the replica, so that a named module resolving to it is refused.
        clock: monotonic time source.

    Raises:
        ConfigurationError: a location's module cannot be created (the ones
            already created are closed).
    """

    def __init__(self, specs: Sequence[LocationSpec], error_limit: int, error_interval: float,
                 owner: Any = None, clock: Callable[[], float] = time.monotonic):
        self._locations: List[Location] = []
        try:
            for spec in specs:
                self._locations.append(Location(spec, error_limit, error_interval,
                                                owner=owner, clock=clock))
        except BaseException:
            self.close()
            raise
        self._by_name: Dict[str, Location] = {location.name: location
                                              for location in self._locations}

    def __iter__(self) -> Iterator[Location]:
        return iter(self._locations)

    def __len__(self) -> int:
        return len(self._locations)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> List[str]:
        """The location names, in configured order."""
        return [location.name for location in self._locations]

    def get(self, name: str) -> Location:
        """Return the location called ``name``.

        Raises:
            KeyError: no such location is configured.
        """
        return self._by_name[name]

    def split(self, data: formats.ReplicaData) -> Tuple[List[Placed], List[str]]:
        """Return (configured locations named in ``data``, in configured order; other names)."""
        present = [(location, data.child_md(location.name)) for location in self._locations
                   if location.name in data.copies]
        unconfigured = sorted(name for name in data.copies if name not in self._by_name)
        return present, unconfigured

    def candidates(self, data: formats.ReplicaData) -> List[Placed]:
        """Return the copies of ``data`` to read, in :meth:`read_order`.

        Raises:
            LocationUnavailable: the object is only at unconfigured locations.
        """
        present, unconfigured = self.split(data)
        if not present:
            raise unconfigured_error(data, unconfigured)
        return self.read_order(present)

    @staticmethod
    def read_order(placed: Sequence[Placed]) -> List[Placed]:
        """Order copies for reading: healthy first, then recently failed, error-limited last.

        Within each group the configured order is kept (see
        :meth:`Location.read_rank`). A location whose last read failed within
        ``error_interval`` (a timeout: "slow now") is tried after the others,
        so one slow location costs a series of reads one timeout, not one
        each.
        """
        return sorted(placed, key=lambda item: item[0].read_rank())

    @staticmethod
    def writable(location: Location) -> bool:
        """Return False while ``location`` is error-limited for writes (writes skip it)."""
        return not location.is_limited(WRITE)

    def close(self) -> None:
        """Close the modules the replica created (named ones belong to the platform)."""
        for location in self._locations:
            location.close()


def unconfigured_error(data: formats.ReplicaData, names: Sequence[str]) -> LocationUnavailable:
    """Return the error for an object stored only at locations no longer configured."""
    return LocationUnavailable(
        "object %s is stored only at locations that are not configured any more (%s); add them "
        "back under the same names to reach it" % (data.object_id, ", ".join(names)))
