"""The bindings a coordinator made on a broker where they outlive it (RabbitMQ), kept on disk so
that a coordinator started with an edited graph removes those of edges no longer in it; without
this a sink fed by a removed edge and a new one gets every record twice.

The record is ``bindings.json`` in the state directory when one is given, else one file per
broker under the user's state directory (``$XDG_STATE_HOME/msgflo/bindings/``, by default
``~/.local/state/msgflo/bindings/``).  Each entry names the graph nodes its edges join: a
coordinator only removes entries that name one of its own nodes, so coordinators of other graphs
on the same broker (same file) keep theirs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgflo.coordinator.events import Event, EventKind, Events
from msgflo.transport import Binding, BindingType, TransportError
from msgflo.wiring import Planned, Status

if TYPE_CHECKING:
    from msgflo.coordinator.binder import Binder

log = logging.getLogger(__name__)

LEDGER_FILE = "bindings.json"


def default_path(redacted_url: str) -> Path:
    """Where the record of a coordinator without a state directory lives: one file per broker."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    digest = hashlib.sha256(redacted_url.encode()).hexdigest()[:16]
    return Path(base) / "msgflo" / "bindings" / f"{digest}.json"


@dataclass(frozen=True, slots=True)
class Entry:
    """One binding as recorded: the wiring key (``edge A.out -> C.in``, ``node RR``) and the
    nodes it joins, which decide which coordinator may remove it."""

    key: str
    nodes: tuple[str, ...]
    binding: Binding

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "nodes": list(self.nodes), **self.binding.to_json()}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Entry:
        binding = Binding(
            src=str(raw["src"]),
            tgt=str(raw["tgt"]),
            type=BindingType(raw.get("type", BindingType.PUBSUB.value)),
            deadletter=str(raw["deadletter"]) if raw.get("deadletter") else None,
        )
        return cls(str(raw["key"]), tuple(str(n) for n in raw["nodes"]), binding)


class Ledger:
    """The record of one coordinator: read once when its first graph is loaded (what an earlier
    run left), rewritten after every re-plan."""

    def __init__(self, path: Path, events: Events) -> None:
        self.path = path
        self.events = events
        self.touched: set[str] = set()
        """Keys this coordinator recorded or removed: its writes leave other entries alone."""
        self.leftovers: dict[str, Entry] | None = None
        """What an earlier run made for this graph, until the plan says whether it stays."""
        self._written: dict[str, Entry] | None = None

    def started(self, nodes: Mapping[str, Any]) -> None:
        """The first graph is loaded: keep the recorded entries that name one of its nodes."""
        if self.leftovers is None:
            self.leftovers = {
                key: entry
                for key, entry in self.read().items()
                if any(node in nodes for node in entry.nodes)
            }

    async def clean(
        self, wiring: Mapping[str, Planned], binder: Binder, in_graph: Callable[[str], bool]
    ) -> None:
        """Remove what an earlier run bound for an edge gone from the graph, or that the plan
        now binds otherwise (an edge still pending keeps its old binding until it is not), then
        record what is bound now."""
        bound = {p.binding for p in wiring.values() if p.binding is not None}
        for key, entry in list((self.leftovers or {}).items()):
            planned = wiring.get(key)
            if planned is not None and planned.status is Status.PENDING:
                continue
            assert self.leftovers is not None
            del self.leftovers[key]
            self.touched.add(key)
            if entry.binding not in bound:
                await self._remove(
                    entry,
                    "no longer in the graph" if planned is None else "now wired otherwise",
                    binder,
                    in_graph,
                )
        ours = {
            key: Entry(key, _nodes(planned), planned.binding)
            for key, planned in wiring.items()
            if planned.binding is not None and planned.status is Status.BOUND
        }
        try:
            self.write(dict(self.leftovers or {}) | ours)
        except OSError as exc:
            self.events.warn_once("ledger", f"cannot record bindings in {self.path}: {exc}")

    async def _remove(
        self, entry: Entry, why: str, binder: Binder, in_graph: Callable[[str], bool]
    ) -> None:
        route = f"{entry.binding.src or '(none)'} -> {entry.binding.tgt}"
        try:
            await binder.unbind(entry.binding, in_graph)
        except TransportError as exc:
            self.events.warn_once(
                f"leftover {entry.key}", f"cannot remove binding {route} of {entry.key}: {exc}"
            )
            return
        self.events.emit(
            Event(
                EventKind.UNWIRED,
                message=f"removed binding {route} left by an earlier run: {entry.key} is {why}",
                data={"key": entry.key},
            )
        )

    def read(self) -> dict[str, Entry]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            entries = [Entry.from_json(item) for item in raw.get("bindings", [])]
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
            log.warning("ignoring unreadable binding record %s: %s", self.path, exc)
            return {}
        return {entry.key: entry for entry in entries}

    def write(self, ours: Mapping[str, Entry]) -> None:
        """Replace our entries with ``ours``; atomic, and skipped when nothing changed."""
        if self._written == ours or (self._written is None and not ours and not self.touched):
            return
        self.touched |= set(ours)
        entries = {k: e for k, e in self.read().items() if k not in self.touched} | dict(ours)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                records = [e.to_json() for e in entries.values()]
                json.dump({"version": 1, "bindings": records}, out, indent=1)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._written = dict(ours)


def _nodes(planned: Planned) -> tuple[str, ...]:
    return tuple(sorted({p for e in planned.edges for p in (e.src.process, e.tgt.process)}))
