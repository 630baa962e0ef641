"""A module whose statistics hang until the test lets them go (as a hung location does)."""
import threading

from simple.simple import SimpleStorage

#: Set by a test to let every hung ``statistics()`` call return.
RELEASE = threading.Event()
#: How many ``statistics()`` calls have started.
CALLS = []


class HungStatisticsStorage(SimpleStorage):
    """``statistics()`` waits for :data:`RELEASE` (at most 30 s)."""

    def statistics(self, context):
        CALLS.append(1)
        RELEASE.wait(30)
        return super().statistics(context)
