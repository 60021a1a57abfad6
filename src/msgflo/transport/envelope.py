"""The discovery message as it travels: the original's envelope and the fields a participant's
definition carries.  The shapes are for reading and building announcements; a definition may
carry keys of its own beside these (MicroFlo's, a user's), which the wire keeps."""

from __future__ import annotations

from typing import Any, Literal, Required, TypedDict


class DiscoveryPort(TypedDict, total=False):
    id: Required[str]
    queue: str
    """Absent for hidden ports, which msgflo-nodejs leaves out of the announcement."""
    type: str
    description: str
    deadletter: str
    """The queue that receives this inport's dead letters (ours only; the original ignores it)."""
    schema: Any


class DiscoveryPayload(TypedDict, total=False):
    id: Required[str]
    role: Required[str]
    component: Required[str]
    label: str
    icon: str
    description: str
    inports: Required[list[DiscoveryPort]]
    outports: Required[list[DiscoveryPort]]


class DiscoveryMessage(TypedDict):
    protocol: Literal["discovery"]
    command: Literal["participant"]
    payload: DiscoveryPayload
