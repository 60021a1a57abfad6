"""The coordinator and the parts it drives; see :mod:`msgflo.coordinator.coordinator`.

- :mod:`.registry`: discovered participants, expiry, the state file, discovery normalisation
- :mod:`.supervisor`: the processes the coordinator starts, restarts and stops
- :mod:`.initials`: the IIPs owed to each role
- :mod:`.binder`: how a planned binding is made (broker, or the consumer itself over MQTT)
- :mod:`.taps`: observing outports and edges
- :mod:`.events`: what listeners hear
"""

from msgflo.coordinator.coordinator import Coordinator, CoordinatorOptions, Role
from msgflo.coordinator.events import CoordinatorError, Event, EventKind, Listener
from msgflo.coordinator.registry import (
    GONE_AFTER_PERIODS,
    STATE_FILE,
    Change,
    Instance,
    Registry,
    normalize_discovery,
)
from msgflo.coordinator.supervisor import Child, Instances, SupervisorOptions
from msgflo.coordinator.taps import TapHandler

__all__ = [
    "GONE_AFTER_PERIODS",
    "STATE_FILE",
    "Change",
    "Child",
    "Coordinator",
    "CoordinatorError",
    "CoordinatorOptions",
    "Event",
    "EventKind",
    "Instance",
    "Instances",
    "Listener",
    "Registry",
    "Role",
    "SupervisorOptions",
    "TapHandler",
    "normalize_discovery",
]
