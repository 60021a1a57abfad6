"""The MQTT binder's forwarding table: where each topic's messages are copied to.

Sending each reachable topic one copy straight away (instead of letting copies come back and
hop on) is what makes chains work and cycles terminate; a copy the binder published to a topic
it also observes comes back, and is recognised here so that it is not forwarded again.
"""

from __future__ import annotations

from collections import Counter

from msgflo.transport.base import Binding


def _forwards(binding: Binding) -> list[tuple[str, str]]:
    """The topic pairs a binding forwards: its edge, and its dead letters."""
    pairs = [(binding.src, binding.tgt)] if binding.src else []
    if binding.deadletter and binding.tgt:
        pairs.append((f"dead-{binding.tgt}", binding.deadletter))
    return pairs


class Forwarding:
    """Bindings as topic pairs, the topics reachable from each source, and the copies on their
    way back."""

    def __init__(self) -> None:
        self._made: list[Binding] = []
        self._pairs: dict[tuple[str, str], Binding] = {}
        self._targets: dict[str, tuple[str, ...]] = {}
        self._echoes: dict[str, Counter[bytes]] = {}

    @property
    def bindings(self) -> list[Binding]:
        return list(self._made)

    def add(self, binding: Binding) -> list[str]:
        """Forward ``binding``; the source topics whose subscriptions may have to change."""
        if binding in self._made:
            return []
        self._made.append(binding)
        pairs = _forwards(binding)
        for pair in pairs:
            self._pairs[pair] = binding
        self._targets.clear()
        return [src for src, _ in pairs]

    def remove(self, binding: Binding) -> list[str]:
        """Stop forwarding ``binding``; the source topics whose subscriptions may have to
        change."""
        if binding not in self._made:
            return []
        self._made.remove(binding)
        pairs = _forwards(binding)
        for pair in pairs:
            self._pairs.pop(pair, None)
        self._targets.clear()
        return [src for src, _ in pairs]

    def forwards_from(self, topic: str) -> bool:
        return any(s == topic for s, _ in self._pairs)

    def reachable(self, src: str) -> tuple[str, ...]:
        """Every topic a message on ``src`` is copied to, nearest first."""
        targets = self._targets.get(src)
        if targets is None:
            seen = {src}
            order: list[str] = []
            pending = [src]
            while pending:
                topic = pending.pop(0)
                for s, t in self._pairs:
                    if s == topic and t not in seen:
                        seen.add(t)
                        order.append(t)
                        pending.append(t)
            targets = self._targets[src] = tuple(order)
        return targets

    def expect_echo(self, topic: str, body: bytes) -> None:
        """A copy of ``body`` was published to ``topic``, which the binder also observes."""
        self._echoes.setdefault(topic, Counter())[body] += 1

    def is_echo(self, topic: str, body: bytes) -> bool:
        """Whether ``body`` on ``topic`` is a copy this binder published (counted once)."""
        echoes = self._echoes.get(topic)
        if not echoes or not echoes[body]:
            return False
        echoes[body] -= 1
        if not echoes[body]:
            del echoes[body]
        return True

    def forget_echoes(self) -> None:
        """Copies published on a lost session may never come back."""
        self._echoes.clear()
