"""Upper-cases text: the smallest useful participant."""

from __future__ import annotations

import msgflo


class Upper(msgflo.Participant):
    """Upper-cases text"""

    component = "Upper"
    inports = {"in": "string"}
    outports = {"out": "string"}

    async def process(self, port: str, msg: msgflo.Message) -> None:
        await self.send("out", str(msg.data).upper())


if __name__ == "__main__":
    msgflo.run(Upper)
