"""Retries before dead-lettering, and poison messages that kill the process.

An inport's ``retry`` field, ``{"attempts": 3, "backoff": 0.5}``, gives a message that makes
``process`` raise ``attempts`` tries in all, the n-th retry ``backoff * 2**(n-1)`` seconds after
the failure, before it is dead-lettered.  The consumer goes on meanwhile: on RabbitMQ the message
waits in a delay queue of the broker, elsewhere in a timer of the participant.

A message that kills the process (a segfault, ``os._exit``, the OOM killer) never reaches an
exception handler, so RabbitMQ redelivers it to the next instance, which dies too.  RabbitMQ's
classic queues flag a redelivery but do not count them (only quorum queues do, and msgflo-nodejs
declares classic queues), so a participant counts redeliveries itself: in a small SQLite file
(:class:`DeliveryLog`), keyed by queue and body, written before ``process`` runs; a message
delivered more than ``deliveries`` times (default 5, the field ``retry.deliveries``) is
dead-lettered with reason ``poison`` without being processed.  Only redelivered messages touch
the file, so the ordinary path costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msgflo.errors import MsgfloError

DEFAULT_DELIVERIES = 5
MAX_BACKOFF = 3600.0


class PolicyError(MsgfloError):
    """A ``retry`` field that makes no sense; names the role and port."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 1
    backoff: float = 1.0
    deliveries: int = DEFAULT_DELIVERIES

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after try ``failed_attempt`` failed."""
        return float(min(self.backoff * 2 ** (failed_attempt - 1), MAX_BACKOFF))


def policy_of(role: str, port: Mapping[str, Any]) -> RetryPolicy:
    raw = port.get("retry")
    if raw is None:
        return RetryPolicy()
    where = f"{role}: inport {port.get('id')!r}: retry"
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where} must be a mapping like {{'attempts': 3, 'backoff': 0.5}}")
    unknown = set(raw) - {"attempts", "backoff", "deliveries"}
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    attempts, backoff = raw.get("attempts", 1), raw.get("backoff", 1.0)
    deliveries = raw.get("deliveries", DEFAULT_DELIVERIES)
    for name, value in (("attempts", attempts), ("deliveries", deliveries)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PolicyError(f"{where}: {name} must be a whole number ≥ 1, not {value!r}")
    if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0:
        raise PolicyError(f"{where}: backoff must be seconds ≥ 0, not {backoff!r}")
    return RetryPolicy(attempts, float(backoff), deliveries)


def state_dir() -> Path:
    """``MSGFLO_STATE_DIR``, else ``$XDG_STATE_HOME/msgflo``, else ``~/.local/state/msgflo``."""
    explicit = os.environ.get("MSGFLO_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "msgflo"


class DeliveryLog:
    """How often each redelivered message was handed to this host's participants."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=10)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS deliveries (key TEXT PRIMARY KEY, count INTEGER)"
        )

    @staticmethod
    def key(queue: str, body: bytes) -> str:
        return hashlib.sha256(queue.encode() + b"\0" + body).hexdigest()

    def delivered(self, key: str) -> int:
        """Count one more delivery of a redelivered message; its total, the first one included
        (which was not counted: it was not known to be a redelivery then)."""
        self._db.execute(
            "INSERT INTO deliveries VALUES (?, 2) ON CONFLICT(key) DO UPDATE SET count = count + 1",
            (key,),
        )
        row = self._db.execute("SELECT count FROM deliveries WHERE key = ?", (key,)).fetchone()
        return int(row[0])

    def settled(self, key: str) -> None:
        self._db.execute("DELETE FROM deliveries WHERE key = ?", (key,))

    def close(self) -> None:
        self._db.close()


class Retries:
    """A participant's retry policies and its count of redeliveries (opened on first use)."""

    def __init__(self, role: str, inports: list[dict[str, Any]]) -> None:
        self.role = role
        self.policies = {port["id"]: policy_of(role, port) for port in inports}
        self._log: DeliveryLog | None = None
        self.tracked: dict[int, str] = {}
        """Redelivered messages in hand (by ``id``) and their keys in the log."""

    def policy(self, port: str) -> RetryPolicy:
        return self.policies.get(port) or RetryPolicy()

    def poisoned(self, port: str, queue: str, body: bytes, token: int) -> int | None:
        """Count a redelivery; the number of deliveries when it is one too many."""
        if self._log is None:
            self._log = DeliveryLog(state_dir() / "deliveries.sqlite3")
        key = DeliveryLog.key(queue, body)
        count = self._log.delivered(key)
        self.tracked[token] = key
        return count if count > self.policy(port).deliveries else None

    def settled(self, token: int) -> None:
        key = self.tracked.pop(token, None)
        if key is not None and self._log is not None:
            self._log.settled(key)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
