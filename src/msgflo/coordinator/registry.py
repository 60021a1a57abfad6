"""The registry of discovered participants: who announced what, who went silent, and a state
file so that a restarted coordinator knows the network before anyone announces again."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from msgflo.coordinator.events import Event, EventKind
from msgflo.transport.envelope import DiscoveryPayload

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


IDENTIFIERS = ("id", "role", "component")
"""Fields that name things in log lines and wiring: text without control characters."""
DESCRIPTIVE = ("label", "icon", "description")
"""Free text shown to people: control characters are escaped, never printed raw."""
PORT_TEXT = ("id", "queue", "type", "description")


class InvalidDiscovery(ValueError):
    """A discovery message whose fields have the wrong type or shape (the text names the field)."""


def normalize_discovery(data: Any) -> tuple[DiscoveryPayload | None, str]:
    """A usable definition from a discovery message, or ``None`` and why not.

    Every field is checked here, once, so nothing downstream (wiring, log lines, the state
    file) meets a queue that is an object or a role that carries a line break.  What real
    participants send is accepted: MicroFlo's extra keys, ``null`` where a string belongs,
    ports as an object instead of a list, a missing ``id`` (the role stands in) or a missing
    ``role`` (the id stands in).
    """
    if not isinstance(data, Mapping):
        return None, f"not a JSON object: {escape(str(data)[:80])!r}"
    if data.get("protocol") != "discovery" or data.get("command") != "participant":
        what = f"{escape(str(data.get('protocol'))[:40])}:{escape(str(data.get('command'))[:40])}"
        return None, f"not a discovery message ({what})"
    payload = data.get("payload")
    if not isinstance(payload, Mapping):
        return None, "discovery message without a payload object"
    try:
        checked = _definition(payload)
    except InvalidDiscovery as exc:
        return None, str(exc)
    return cast(DiscoveryPayload, checked), ""  # every field of the shape was checked above


def _definition(payload: Mapping[str, Any]) -> dict[str, Any]:
    definition = dict(payload)
    for key in IDENTIFIERS:
        definition[key] = _identifier(payload.get(key), key)
    for key in DESCRIPTIVE:
        if key in payload:
            definition[key] = _descriptive(payload.get(key), key)
    definition.setdefault("label", "")
    role = definition["role"] or definition["id"]
    if not role:
        raise InvalidDiscovery("discovery message names neither role nor id")
    definition["role"] = role
    definition["id"] = definition["id"] or role
    definition["component"] = definition["component"] or role
    for key in ("inports", "outports"):
        definition[key] = _ports(payload.get(key), key)
    return definition


def _identifier(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidDiscovery(f"{field} must be a string, not {_kind(value)}")
    if _CONTROL.search(value):
        raise InvalidDiscovery(f"{field} {escape(value[:80])!r} contains control characters")
    return value


def _descriptive(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidDiscovery(f"{field} must be a string, not {_kind(value)}")
    return escape(value)


def _ports(raw: Any, key: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        raw = [
            {"id": name, **(value if isinstance(value, Mapping) else {})}
            for name, value in raw.items()
        ]
    if not isinstance(raw, list):
        raise InvalidDiscovery(f"{key} is neither a list nor an object of ports")
    ports = []
    for index, port in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(port, Mapping):
            raise InvalidDiscovery(f"{where} must be a port object, not {_kind(port)}")
        checked = dict(port)
        for field in PORT_TEXT:
            if field in port:
                checked[field] = _identifier(port[field], f"{where}.{field}")
        if not checked.get("id"):
            raise InvalidDiscovery(f"{where} has no id")
        if not checked.get("queue"):
            checked.pop("queue", None)
        ports.append(checked)
    return ports


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    "\ufeff\ufff9-\ufffb]"
)
"""Control characters, line and paragraph separators, and the invisible formatting characters
(bidirectional overrides among them) that could make a line print as something else."""


def escape(text: str) -> str:
    """``text`` with control characters written as escapes: whatever a sender puts in it
    stays on one line of ours and reads as what it is."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


def sender_of(data: Any) -> str:
    """Who sent a discovery message, as far as it says, for a warning about it."""
    payload = data.get("payload") if isinstance(data, Mapping) else None
    if isinstance(payload, Mapping):
        for key in ("id", "role", "component"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return escape(value[:120])
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


def winner_event(registry: Registry, role: str) -> Event | None:
    """One line when a role's live instances announce different queues: which one the wiring
    follows, and why."""
    others = registry.disagreeing(role)
    winner = registry.winner(role)
    if not others or winner is None:
        return None
    since = time.strftime("%H:%M:%S", time.localtime(winner.first_seen))
    ids = ", ".join(i.id for i in others)
    return Event(
        EventKind.WARNING,
        role,
        f"{role}: {ids} announce other queues than {winner.id}; wiring follows {winner.id}, "
        f"the live instance announcing longest (since {since}), until it goes silent",
        {"winner": winner.id, "others": [i.id for i in others]},
    )


_WIRING_KEYS = ("component", "inports", "outports")


def _rank(instance: Instance) -> tuple[bool, bool, float]:
    age = -instance.last_seen if instance.gone else instance.first_seen
    return (instance.gone, not instance.session, age)


def _queues(definition: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (kind, str(port.get("id")), str(port.get("queue")))
        for kind in ("inports", "outports")
        for port in definition.get(kind) or []
    }


class Registry:
    """Participants by instance id; several instances may share a role."""

    def __init__(self) -> None:
        self.instances: dict[str, Instance] = {}

    def observe(self, payload: DiscoveryPayload, now: float) -> tuple[Instance, Change]:
        # kept as the wire's dict: extra keys (MicroFlo's, a user's) travel with it
        definition = cast(dict[str, Any], payload)
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

    def exited(self, role: str, since: float) -> list[Instance]:
        """A process of ``role`` that this coordinator started (at ``since``) has exited: the
        instances it announced are gone at once, not after a silence.  Another participant of
        the role that first announced while that process ran is marked gone too, and is back
        at its next announcement."""
        gone = [i for i in self.of_role(role) if i.session and i.first_seen >= since]
        for instance in gone:
            instance.gone = True
        return gone

    def retired(self, role: str) -> list[Instance]:
        """This coordinator is stopping the processes of ``role``: what they announced is gone
        now, before they exit.  A participant of the role that keeps running elsewhere is
        back at its next announcement."""
        gone = [i for i in self.of_role(role) if i.session]
        for instance in gone:
            instance.gone = True
        return gone

    def forget(self, needed: Callable[[str], bool]) -> list[Instance]:
        """Drop the gone instances nothing needs: all of a role with a live instance or with no
        node in the graph (``needed(role)`` is false), and all but the most recently seen of
        the others, whose definition keeps the bindings of a participant that is away."""
        keep: dict[str, Instance] = {}
        live = {i.role for i in self.instances.values() if not i.gone}
        for instance in self.instances.values():
            if not instance.gone or not needed(instance.role) or instance.role in live:
                continue
            current = keep.get(instance.role)
            if current is None or instance.last_seen > current.last_seen:
                keep[instance.role] = instance
        forgotten = [i for i in self.instances.values() if i.gone and keep.get(i.role) is not i]
        for instance in forgotten:
            del self.instances[instance.id]
        return forgotten

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

    def winner(self, role: str) -> Instance | None:
        """The instance whose queues the wiring of ``role`` follows: the live one announcing
        longest (this session before one only remembered from the state file), else the most
        recently seen gone one.  A newcomer, forged or stale, never takes an edge from a
        participant that keeps announcing; it wins only once that one is gone."""
        ranked = sorted(self.of_role(role, live=False), key=_rank)
        return ranked[0] if ranked else None

    def disagreeing(self, role: str) -> list[Instance]:
        """Live instances of ``role`` whose queues differ from the winner's."""
        winner = self.winner(role)
        if winner is None:
            return []
        wanted = _queues(winner.definition)
        return [i for i in self.of_role(role) if _queues(i.definition) != wanted]

    def definitions(self) -> dict[str, dict[str, Any]]:
        """The winner's definition per role (see :meth:`winner`), gone instances included: a
        participant that is away keeps its bindings, so what is sent to it waits in its queue."""
        best: dict[str, Instance] = {}
        for instance in self.instances.values():
            current = best.get(instance.role)
            if current is None or _rank(instance) < _rank(current):
                best[instance.role] = instance
        return {role: instance.definition for role, instance in best.items()}

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
    registry: Registry, period: float, expired: Callable[[list[Instance], float], None]
) -> None:
    """Mark participants silent for :data:`GONE_AFTER_PERIODS` periods as gone, and report
    them through ``expired(instances, silence)``."""
    silence = GONE_AFTER_PERIODS * period
    while True:
        await asyncio.sleep(max(period / 2, 0.05))
        gone = registry.expire(time.time(), silence)
        if gone:
            expired(gone, silence)
