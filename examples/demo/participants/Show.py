"""Prints what reaches it; the coordinator shows the lines prefixed with this node's role."""

from __future__ import annotations

import msgflo


class Show(msgflo.Participant):
    """Prints text and word counts"""

    component = "Show"
    inports = {"text": "string", "count": "number"}
    outports = {"out": "any"}

    async def process(self, port: str, msg: msgflo.Message) -> None:
        print(f"{port:>5}: {msg.data}", flush=True)
        await self.send("out", {port: msg.data})


if __name__ == "__main__":
    msgflo.run(Show)
