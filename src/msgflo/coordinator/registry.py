"""The registry of discovered participants: who announced what, who went silent, and a state
file so that a restarted coordinator knows the network before anyone announces again."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from msgflo.coordinator.events import Event, EventKind

log = logging.getLogger(__name__)

GONE_AFTER_PERIODS = 3
"""A participant silent for this many discovery periods is marked gone."""

STATE_FILE = "participants.json"


class Change(enum.StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    BACK = "back"
    SEEN = "seen"


@dataclass(slots=True)
class Instance:
    """One participant process, known by its discovery ``id``."""

    id: str
    role: str
    component: str
    definition: dict[str, Any]
    first_seen: float
    last_seen: float
    gone: bool = False
    session: bool = False
    """Announced since this coordinator started (not only remembered from the state file)."""


def normalize_discovery(data: Any) -> tuple[dict[str, Any] | None, str]:
    """A usable definition from a discovery message, or ``None`` and why not.

    Accepts what real participants send: MicroFlo's extra keys, ``null`` where a string belongs,
    ports as an object instead of a list, a missing ``id`` (the role stands in) or a missing
    ``role`` (the id stands in).
    """
    if not isinstance(data, Mapping):
        return None, f"not a JSON object: {str(data)[:80]!r}"
    if data.get("protocol") != "discovery" or data.get("command") != "participant":
        return None, f"not a discovery message ({data.get('protocol')}:{data.get('command')})"
    payload = data.get("payload")
    if not isinstance(payload, Mapping):
        return None, "discovery message without a payload object"
    definition = dict(payload)
    role = _text(payload.get("role")) or _text(payload.get("id"))
    if not role:
        return None, "discovery message names neither role nor id"
    definition["role"] = role
    definition["id"] = _text(payload.get("id")) or role
    definition["component"] = _text(payload.get("component")) or role
    definition["label"] = _text(payload.get("label"))
    for key in ("inports", "outports"):
        ports = _ports(payload.get(key))
        if ports is None:
            return None, f"{key} is neither a list nor an object"
        definition[key] = ports
    return definition, ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _ports(raw: Any) -> list[dict[str, Any]] | None:
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        raw = [
            {"id": key, **(value if isinstance(value, Mapping) else {})}
            for key, value in raw.items()
        ]
    if not isinstance(raw, list):
        return None
    return [dict(p) for p in raw if isinstance(p, Mapping) and _text(p.get("id"))]


def sender_of(data: Any) -> str:
    """Who sent a discovery message, as far as it says, for a warning about it."""
    payload = data.get("payload") if isinstance(data, Mapping) else None
    if isinstance(payload, Mapping):
        for key in ("id", "role", "component"):
            if _text(payload.get(key)):
                return str(payload[key])
    return "an unnamed sender"


def change_event(instance: Instance, change: Change, count: int) -> Event | None:
    """What listeners hear of a discovery; a mere heartbeat (``SEEN``) says nothing."""
    role = instance.role
    if change is Change.ADDED:
        said = f"participant {instance.id} ({instance.component}) discovered, {count} running"
        return Event(
            EventKind.PARTICIPANT_ADDED,
            role,
            f"{role}: {said}",
            {"id": instance.id, "count": count},
        )
    if change is Change.UPDATED:
        said = f"participant {instance.id} announced new ports"
        return Event(EventKind.PARTICIPANT_UPDATED, role, f"{role}: {said}", {"id": instance.id})
    if change is Change.BACK:
        said = f"participant {instance.id} is back"
        return Event(EventKind.PARTICIPANT_BACK, role, f"{role}: {said}", {"id": instance.id})
    return None


_WIRING_KEYS = ("component", "inports", "outports")


class Registry:
    """Participants by instance id; several instances may share a role."""

    def __init__(self) -> None:
        self.instances: dict[str, Instance] = {}

    def observe(self, definition: dict[str, Any], now: float) -> tuple[Instance, Change]:
        known = self.instances.get(definition["id"])
        if known is None:
            instance = Instance(
                id=definition["id"],
                role=definition["role"],
                component=definition["component"],
                definition=definition,
                first_seen=now,
                last_seen=now,
                session=True,
            )
            self.instances[instance.id] = instance
            return instance, Change.ADDED
        change = Change.SEEN
        if known.gone:
            change = Change.BACK
        elif any(known.definition.get(k) != definition.get(k) for k in _WIRING_KEYS):
            change = Change.UPDATED
        known.definition, known.component, known.role = (
            definition,
            definition["component"],
            definition["role"],
        )
        known.last_seen, known.gone, known.session = now, False, True
        return known, change

    def expire(self, now: float, silence: float) -> list[Instance]:
        gone = [i for i in self.instances.values() if not i.gone and now - i.last_seen > silence]
        for instance in gone:
            instance.gone = True
        return gone

    def of_role(self, role: str, *, live: bool = True) -> list[Instance]:
        return [i for i in self.instances.values() if i.role == role and not (live and i.gone)]

    def count(self, role: str) -> int:
        return len(self.of_role(role))

    def discovered(self, role: str) -> bool:
        """Announced since this coordinator started, not only remembered."""
        return any(i.session for i in self.of_role(role))

    def consumers_of(self, queue: str) -> list[tuple[str, str]]:
        """(instance id, inport) of every live participant consuming ``queue``."""
        return [
            (instance.id, port["id"])
            for instance in self.instances.values()
            if not instance.gone
            for port in instance.definition.get("inports", [])
            if port.get("queue") == queue
        ]

    def definitions(self) -> dict[str, dict[str, Any]]:
        """The newest definition per role, gone instances included: a participant that is away
        keeps its bindings, so what is sent to it waits in its queue."""
        newest: dict[str, Instance] = {}
        for instance in self.instances.values():
            current = newest.get(instance.role)
            if current is None or (current.gone, -current.last_seen) > (
                instance.gone,
                -instance.last_seen,
            ):
                newest[instance.role] = instance
        return {role: instance.definition for role, instance in newest.items()}

    def save(self, path: Path) -> None:
        """Atomically: a coordinator killed mid-write leaves the previous file intact."""
        path.parent.mkdir(parents=True, exist_ok=True)
        records = [asdict(i) for i in self.instances.values()]
        for record in records:
            del record["session"]
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"version": 1, "participants": records}, out, indent=1)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: Path) -> Registry:
        registry = cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            for record in raw.get("participants", []):
                instance = Instance(**record)
                registry.instances[instance.id] = instance
        except FileNotFoundError:
            pass
        except (ValueError, TypeError, AttributeError, OSError) as exc:
            log.warning("ignoring unreadable state file %s: %s", path, exc)
            registry.instances.clear()
        return registry


class StateFile:
    """Keeps a registry on disk without writing on every heartbeat: changes are saved at once,
    mere sightings at most twice a discovery period."""

    def __init__(
        self, path: Path | None, registry: Registry, period: float, warn: Callable[[str], None]
    ) -> None:
        self.path = path
        self.registry = registry
        self.period = period
        self._warn = warn
        self._last_save = 0.0

    def save(self, *, force: bool = False) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now - self._last_save < self.period / 2:
            return
        self._last_save = now
        try:
            self.registry.save(self.path)
        except OSError as exc:
            self._warn(f"cannot write state file {self.path}: {exc}")


async def expire_forever(
    registry: Registry, period: float, gone: Callable[[Instance, float], None]
) -> None:
    """Mark participants silent for :data:`GONE_AFTER_PERIODS` periods as gone, and report
    each through ``gone(instance, silence)``."""
    silence = GONE_AFTER_PERIODS * period
    while True:
        await asyncio.sleep(max(period / 2, 0.05))
        for instance in registry.expire(time.time(), silence):
            gone(instance, silence)
