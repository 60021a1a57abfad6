"""Repeat written as msgflo-python 0.4 code (definition dict, plain ``def process``)."""

from __future__ import annotations

import os
from typing import Any

from msgflo import Participant


class Repeat(Participant):
    def __init__(self, role: str) -> None:
        definition = {
            "component": "Repeat",
            "label": "Repeats its input",
            "inports": [{"id": "in", "queue": os.environ.get("BENCH_IN", f"{role}/in")}],
            "outports": [{"id": "out", "queue": os.environ.get("BENCH_OUT", f"{role}/out")}],
        }
        Participant.__init__(self, definition, role)

    def process(self, inport: str, msg: Any) -> None:  # type: ignore[override]
        self.send("out", msg.data)
        self.ack(msg)
