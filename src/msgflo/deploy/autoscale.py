"""Queue-driven autoscaling in guv's terms: its configuration format and its proportional model.

A ``*.guv.yaml`` file maps a name to settings; ``*`` holds defaults every other entry inherits.
The model asks how many workers finish the jobs now queued within the deadline: a worker
handles ``concurrency`` jobs at a time, each taking ``processing`` seconds on average, and the
time left for queued jobs is the deadline less a safety margin for slow jobs (``percentile`` of
a normal distribution with ``stddev``) and less one job's own processing time.  Scaling up
happens at once; scaling down only to what the recent history of estimates allows, since
starting and stopping workers costs time.

This module is pure: it reads text and answers numbers.  Whoever runs workers (the Kubernetes
generator through KEDA, a local scaler) polls the queue and applies the decisions.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import yaml

from msgflo.deploy.roles import DeployError, Role

DEFAULTS_KEY = "*"

DEFAULTS: dict[str, float] = {
    "minimum": 1,
    "maximum": 5,
    "deadline": 60.0,
    "processing": 10.0,
    "concurrency": 1,
    "percentile": 99.0,
    "history": 120.0,
    "pollinterval": 30.0,
}
"""guv's defaults; ``stddev`` defaults to half of ``processing``, per role."""

SHORTHANDS = {"min": "minimum", "max": "maximum", "p": "processing", "d": "deadline"}
SHORTHANDS |= {"w": "worker", "q": "queue"}
NUMBERS = (*DEFAULTS, "stddev")
NAMES = ("worker", "queue")
HEROKU_ONLY = frozenset({"boot", "dynosize", "app", "broker", "apikey", "statuspage", "metric"})
"""guv settings for Heroku dynos and status pages: accepted so guv files load, otherwise unused."""


class AutoscaleError(DeployError):
    """A bad autoscale file; the message names the file, the entry and the setting."""


@dataclass(frozen=True)
class RoleScaling:
    """The settings of one entry, defaults applied.  ``worker`` is the graph role that scales
    (the entry's name unless given), ``queue`` its inqueue (``None`` until known)."""

    name: str
    worker: str
    queue: str | None
    minimum: int
    maximum: int
    deadline: float
    processing: float
    stddev: float
    concurrency: int
    percentile: float
    history: float
    pollinterval: float

    @property
    def target(self) -> float:
        """When a job must start so that ``percentile`` % of jobs end by the deadline."""
        return self.deadline - NormalDist().inv_cdf(self.percentile / 100) * self.stddev

    @property
    def available(self) -> float:
        """Time the queued jobs have: no job finishes faster than its own processing time."""
        return max(self.processing, self.target - self.processing)

    @property
    def jobs_per_worker(self) -> int:
        """Queued jobs one worker gets through in the available time (at least one), the
        per-replica queue length a queue-length autoscaler such as KEDA aims for."""
        return max(1, math.floor(self.concurrency * self.available / self.processing))

    @property
    def history_size(self) -> int:
        """How many past estimates hold back scaling down."""
        return max(1, math.floor(self.history / self.pollinterval))

    def estimate(self, queued: int) -> int:
        """Workers needed for ``queued`` jobs, within ``minimum`` and ``maximum``."""
        waiting = math.ceil(queued / self.concurrency) * self.processing
        needed = math.ceil(waiting / self.available)
        return min(max(needed, self.minimum), self.maximum)


@dataclass(frozen=True)
class Decision:
    """One step of the scaler, with the inputs it was made from (for the log)."""

    role: str
    queued: int
    current: int | None
    estimate: int
    history_max: int | None
    next: int | None
    """The new worker count, or ``None`` to leave it as it is."""

    def __str__(self) -> str:
        change = "keep" if self.next is None else f"scale to {self.next}"
        return (
            f"{self.role}: {change} (queued {self.queued}, workers {self.current}, "
            f"estimate {self.estimate}, recent max {self.history_max})"
        )


def decide(
    scaling: RoleScaling, queued: int, current: int | None, history: Sequence[int]
) -> Decision:
    """Up at once; down only to the highest recent estimate, or to the estimate when it is
    above all of them (the recent past says the load is really gone)."""
    estimate = scaling.estimate(queued)
    recent = max(history) if history else None
    target: int | None = None
    if current is None or estimate > current:
        target = estimate
    elif estimate < current:
        floor = estimate if recent is None or estimate >= recent else recent
        target = floor if floor < current else None
    return Decision(scaling.name, queued, current, estimate, recent, target)


@dataclass
class Scaler:
    """:func:`decide` with the window of past estimates kept for the caller."""

    scaling: RoleScaling
    history: deque[int] = field(init=False)

    def __post_init__(self) -> None:
        self.history = deque(maxlen=self.scaling.history_size)

    def step(self, queued: int, current: int | None) -> Decision:
        decision = decide(self.scaling, queued, current, list(self.history))
        self.history.append(decision.estimate)
        return decision


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AutoscaleError(f"{where}: must be a number, not {value!r}")
    return float(value)


def _settings(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise AutoscaleError(f"{where}: must be a mapping of settings")
    settings: dict[str, Any] = {}
    for key, value in raw.items():
        name = SHORTHANDS.get(str(key), str(key))
        if name in HEROKU_ONLY:
            continue
        if name in NAMES:
            if not isinstance(value, str) or not value:
                raise AutoscaleError(f"{where}.{key}: must be a name, not {value!r}")
            settings[name] = value
        elif name in NUMBERS:
            settings[name] = _number(value, f"{where}.{key}")
        else:
            raise AutoscaleError(f"{where}: unknown setting {key!r}")
    return settings


def _entry(name: str, settings: Mapping[str, Any], where: str) -> RoleScaling:
    values = {**DEFAULTS, **settings}
    processing = values["processing"]
    scaling = RoleScaling(
        name=name,
        worker=settings.get("worker", name),
        queue=settings.get("queue"),
        minimum=int(values["minimum"]),
        maximum=int(values["maximum"]),
        deadline=values["deadline"],
        processing=processing,
        stddev=values.get("stddev", processing * 0.5),
        concurrency=int(values["concurrency"]),
        percentile=values["percentile"],
        history=values["history"],
        pollinterval=values["pollinterval"],
    )
    checks = [
        (scaling.minimum >= 0, f"min {scaling.minimum} is negative"),
        (scaling.maximum >= 1, f"max {scaling.maximum} is below 1"),
        (scaling.minimum <= scaling.maximum, f"min {scaling.minimum} > max {scaling.maximum}"),
        (scaling.processing > 0, "processing must be above 0 seconds"),
        (scaling.stddev >= 0, "stddev must not be negative"),
        (scaling.concurrency >= 1, "concurrency must be at least 1"),
        (0 < scaling.percentile < 100, "percentile must be between 0 and 100"),
        (scaling.pollinterval > 0, "pollinterval must be above 0 seconds"),
        (scaling.history >= 0, "history must not be negative"),
    ]
    for ok, problem in checks:
        if not ok:
            raise AutoscaleError(f"{where}: {problem}")
    if scaling.target <= scaling.processing:
        raise AutoscaleError(
            f"{where}: deadline {scaling.deadline:g} s leaves no time to process jobs of "
            f"{scaling.processing:g} s (± {scaling.stddev:g} s at the {scaling.percentile:g}th "
            "percentile)"
        )
    return scaling


def parse_config(text: str, source: str = "autoscale config") -> dict[str, RoleScaling]:
    """Entries by name (``*`` left out, its settings merged into every other entry)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise AutoscaleError(f"{source}{at}: not valid YAML: {problem}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise AutoscaleError(f"{source}: must be a mapping of role to settings")
    defaults = _settings(raw.get(DEFAULTS_KEY), f"{source}: '{DEFAULTS_KEY}'")
    defaults.pop("worker", None)
    defaults.pop("queue", None)
    entries = {}
    for name, settings in raw.items():
        if name == DEFAULTS_KEY:
            continue
        where = f"{source}: {name}"
        entries[str(name)] = _entry(str(name), {**defaults, **_settings(settings, where)}, where)
    return entries


def load_config(path: Path) -> dict[str, RoleScaling]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AutoscaleError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise AutoscaleError(f"{path}: not a UTF-8 text file") from exc
    return parse_config(text, str(path))


def for_roles(
    entries: Mapping[str, RoleScaling], roles: Iterable[Role], source: str = "autoscale config"
) -> list[RoleScaling]:
    """Entries tied to the roles that run: each worker must be one of them, and each gets the
    queue its graph feeds unless the entry names one."""
    by_name = {role.name: role for role in roles}
    bound = []
    for entry in entries.values():
        role = by_name.get(entry.worker)
        if role is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise AutoscaleError(
                f"{source}: {entry.name}: no role {entry.worker!r} in the graph (roles: {known})"
            )
        if entry.queue is None:
            if not role.inqueues:
                raise AutoscaleError(
                    f"{source}: {entry.name}: role {role.name!r} has no inqueue fed by the graph; "
                    "name it with 'queue'"
                )
            if len(role.inqueues) > 1:
                raise AutoscaleError(
                    f"{source}: {entry.name}: role {role.name!r} has several inqueues "
                    f"({', '.join(role.inqueues)}); choose one with 'queue'"
                )
            entry = replace(entry, queue=role.inqueues[0])
        bound.append(entry)
    return bound
