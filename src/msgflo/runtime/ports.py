"""A graph's port references as each audience reads them: FBP clients (payload objects and the
edge labels they show) and the coordinator (wire endpoints)."""

from __future__ import annotations

from msgflo.graph import PortRef
from msgflo.runtime.protocol.payloads import PortRefPayload
from msgflo.wiring import Endpoint as WirePort


def port_json(ref: PortRef) -> PortRefPayload:
    out: PortRefPayload = {"node": ref.node, "port": ref.port}
    if ref.index is not None:
        out["index"] = ref.index
    return out


def edge_id(src: PortRef | None, tgt: PortRef) -> str:
    """The readable label FBP clients show for an edge (``DATA`` stands for an IIP)."""
    left = "DATA" if src is None else f"{src.node}() {src.port.upper()}"
    return f"{left} -> {tgt.port.upper()} {tgt.node}()"


def wire(ref: PortRef) -> WirePort:
    return WirePort(ref.node, ref.port, ref.index)
