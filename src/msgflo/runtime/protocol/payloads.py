"""Payloads of the FBP protocol messages whose shape the runtime fixes (fbp-protocol 0.9.8), so
that mypy checks the places that build them. ``messages.OUTPUTS`` still trims every outgoing
payload to the fields its schema allows; these types say which ones the runtime fills."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class PortRefPayload(TypedDict):
    """``src``/``tgt`` of an edge: a node's port, with ``index`` for an addressable port."""

    node: str
    port: str
    index: NotRequired[int]


class InitialSource(TypedDict):
    """``src`` of an initial packet."""

    data: Any


class EdgePayload(TypedDict):
    """``graph:addedge``/``removeedge``/``changeedge``."""

    src: PortRefPayload
    tgt: PortRefPayload
    metadata: dict[str, Any]
    graph: NotRequired[str]


class InitialPayload(TypedDict):
    """``graph:addinitial``/``removeinitial``."""

    src: InitialSource
    tgt: PortRefPayload
    metadata: dict[str, Any]
    graph: NotRequired[str]


class RuntimePayload(TypedDict):
    """``runtime:runtime``: what this runtime is and what the client may do."""

    type: str
    version: str
    capabilities: list[str]
    allCapabilities: list[str]
    id: str
    label: str
    graph: str | None
    namespace: str | None


class ComponentPayload(TypedDict):
    """``component:component``: one component of the library, with its ports."""

    name: str
    subgraph: bool
    inPorts: list[dict[str, Any]]
    outPorts: list[dict[str, Any]]
    description: NotRequired[str]
    icon: NotRequired[str]


class NetworkStatus(TypedDict):
    """``network:status``, ``network:started`` and ``network:stopped``."""

    graph: str
    started: bool
    running: bool
    uptime: NotRequired[float]
    time: NotRequired[str]
    debug: NotRequired[bool]


class RuntimePacket(TypedDict):
    """``runtime:packet``: data on an exported port of the running graph."""

    port: str
    event: str
    graph: str
    payload: Any


class NetworkData(TypedDict):
    """``network:data``: a packet on an edge (``src`` is absent for an initial packet)."""

    id: str
    graph: str
    tgt: PortRefPayload
    data: Any
    src: NotRequired[PortRefPayload]


class ErrorPayload(TypedDict):
    """``protocol:error``: the message the client shows."""

    message: str
