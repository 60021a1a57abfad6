"""Queue-driven autoscaling in guv's terms: its configuration format and its proportional model.

A ``*.guv.yaml`` file maps a name to settings; ``*`` holds defaults every other entry inherits.
The model asks how many workers finish the jobs now queued within the deadline: a worker
handles ``concurrency`` jobs at a time, each taking ``processing`` seconds on average, and the
time left for queued jobs is the deadline less a safety margin for slow jobs (``percentile`` of
a normal distribution with ``stddev``), less one job's own processing time, less the ``boot``
time a new worker needs and less the time the backlog has already waited.  Scaling up happens
at once; scaling down only to what the recent history of estimates allows, since starting and
stopping workers costs time.

guv counted the deadline from the moment of each poll, as if the queued jobs had just arrived;
a batch that is already waiting then gets fewer workers with every poll while its jobs' real
deadline comes closer.  :class:`Scaler` therefore remembers since when jobs have been waiting
beyond what the workers in hand hold, so the estimate rises when a backlog drains too slowly.

This module is pure: it reads text and answers numbers.  Whoever runs workers (the Kubernetes
generator through KEDA, a local scaler) polls the queue and applies the decisions.
"""

from __future__ import annotations

import math
import time
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
    "boot": 0.0,
}
"""guv's defaults; ``stddev`` defaults to half of ``processing``, per role."""

SHORTHANDS = {"min": "minimum", "max": "maximum", "p": "processing", "d": "deadline"}
SHORTHANDS |= {"w": "worker", "q": "queue"}
NUMBERS = (*DEFAULTS, "stddev")
NAMES = ("worker", "queue")
HEROKU_ONLY = frozenset({"dynosize", "app", "broker", "apikey", "statuspage", "metric"})
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
    boot: float = 0.0
    """Seconds a new worker needs before it takes jobs."""

    @property
    def target(self) -> float:
        """When a job must start so that ``percentile`` % of jobs end by the deadline."""
        return self.deadline - NormalDist().inv_cdf(self.percentile / 100) * self.stddev

    @property
    def available(self) -> float:
        """Time fresh jobs have, a new worker's boot included."""
        return self.time_left()

    def time_left(self, waited: float = 0.0, boot: float | None = None) -> float:
        """Time the queued jobs have after waiting ``waited`` seconds, for workers that take
        ``boot`` seconds to start (the configured time unless given); never less than one
        job's own processing time, so an overdue backlog asks for the most workers, not for a
        division by nothing."""
        booting = self.boot if boot is None else boot
        return max(self.processing, self.target - self.processing - booting - waited)

    @property
    def jobs_per_worker(self) -> int:
        """Queued jobs one worker gets through in the available time (at least one), the
        per-replica queue length a queue-length autoscaler such as KEDA aims for."""
        return max(1, math.floor(self.concurrency * self.available / self.processing))

    @property
    def history_size(self) -> int:
        """How many past estimates hold back scaling down."""
        return max(1, math.floor(self.history / self.pollinterval))

    def waited(self, queued: int, age: float, workers: int | None) -> float:
        """How long the job at the head of the queue has waited, as far as the scaler can know:
        the backlog's ``age``, but no more than the queue's length at the rate of ``workers``
        (Little's law: a steady stream with a standing queue does not age forever)."""
        if workers is None:
            return age
        return min(age, queued * self.processing / (max(workers, 1) * self.concurrency))

    def estimate(self, queued: int, waited: float = 0.0, boot: float | None = None) -> int:
        """Workers needed for ``queued`` jobs, within ``minimum`` and ``maximum``."""
        waiting = math.ceil(queued / self.concurrency) * self.processing
        needed = math.ceil(waiting / self.time_left(waited, boot))
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
    waited: float = 0.0
    boot: float = 0.0

    def news_after(self, previous: Decision) -> bool:
        """Whether this decision says more than ``previous`` did: a backlog that merely waits
        longer is no news, so an unchanged queue is logged once."""
        timeless = replace(self, waited=previous.waited, boot=previous.boot)
        return timeless != previous

    def __str__(self) -> str:
        change = "keep" if self.next is None else f"scale to {self.next}"
        timing = f", waited {self.waited:.1f} s" if round(self.waited, 1) else ""
        timing += f", boot {self.boot:.1f} s" if round(self.boot, 1) else ""
        return (
            f"{self.role}: {change} (queued {self.queued}, workers {self.current}{timing}, "
            f"estimate {self.estimate}, recent max {self.history_max})"
        )


def decide(
    scaling: RoleScaling,
    queued: int,
    current: int | None,
    history: Sequence[int],
    age: float = 0.0,
    boot: float | None = None,
) -> Decision:
    """Up at once; down only to the highest recent estimate, or to the estimate when it is
    above all of them (the recent past says the load is really gone), and never to a count
    that would ask for more at once: the wait counted depends on the workers
    (:meth:`RoleScaling.waited`), so fewer workers can see a longer wait, and a queue that does
    not drain (a crashing worker) would otherwise swing the count down and up forever."""
    booting = scaling.boot if boot is None else boot

    def needed(workers: int | None) -> int:
        return scaling.estimate(queued, scaling.waited(queued, age, workers), booting)

    estimate = needed(current)
    recent = max(history) if history else None
    target: int | None = None
    if current is None or estimate > current:
        target = estimate
    elif estimate < current:
        floor = estimate if recent is None or estimate >= recent else recent
        while floor < current and needed(floor) > floor:
            floor += 1
        target = floor if floor < current else None
    waited = scaling.waited(queued, age, current)
    return Decision(scaling.name, queued, current, estimate, recent, target, waited, booting)


@dataclass
class Scaler:
    """:func:`decide` with what it needs from the past kept for the caller: the window of
    estimates, since when jobs have been waiting, and how long new workers took to start.

    Jobs wait once the queue holds more than the workers in hand take at once; the first poll
    counts them from when the scaler was made (a backlog found at start is at least that old).
    :meth:`RoleScaling.waited` caps that age at what the queue's length allows.  A new
    worker's start-up is measured from a scale-up until the queue shows as many consumers; the
    larger of that and the configured ``boot`` is used.
    """

    scaling: RoleScaling
    opened: float = field(default_factory=time.monotonic)
    history: deque[int] = field(init=False)
    waiting_since: float | None = field(init=False)
    booted: float = field(init=False, default=0.0)
    """The latest measured start-up time of new workers (seconds)."""
    _booting: tuple[int, float] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.history = deque(maxlen=self.scaling.history_size)
        self.waiting_since = self.opened

    def step(
        self,
        queued: int,
        current: int | None,
        now: float | None = None,
        consumers: int | None = None,
    ) -> Decision:
        at = time.monotonic() if now is None else now
        self._measure_boot(consumers, at)
        decision = decide(
            self.scaling,
            queued,
            current,
            list(self.history),
            self._age(queued, current, at),
            max(self.scaling.boot, self.booted),
        )
        self.history.append(decision.estimate)
        if decision.next is not None and current is not None and decision.next > current:
            self._booting = (decision.next, at)
        elif decision.next is not None:
            self._booting = None
        return decision

    def _age(self, queued: int, current: int | None, now: float) -> float:
        if queued <= (current or 0) * self.scaling.concurrency:
            self.waiting_since = None
            return 0.0
        if self.waiting_since is None:
            self.waiting_since = now
        return now - self.waiting_since

    def _measure_boot(self, consumers: int | None, now: float) -> None:
        if self._booting is None or consumers is None:
            return
        wanted, since = self._booting
        if consumers >= wanted:
            self.booted = now - since
            self._booting = None


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
        boot=values["boot"],
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
        (scaling.boot >= 0, "boot must not be negative"),
    ]
    for ok, problem in checks:
        if not ok:
            raise AutoscaleError(f"{where}: {problem}")
    if scaling.target - scaling.boot <= scaling.processing:
        booting = f" after a boot of {scaling.boot:g} s" if scaling.boot else ""
        raise AutoscaleError(
            f"{where}: deadline {scaling.deadline:g} s leaves no time{booting} to process jobs "
            f"of {scaling.processing:g} s (± {scaling.stddev:g} s at the "
            f"{scaling.percentile:g}th percentile)"
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
