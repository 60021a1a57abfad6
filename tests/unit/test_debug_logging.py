"""``DEBUG=msgflo*`` (the original's switch) and ``MSGFLO_LOGLEVEL`` turn on debug logging."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from msgflo.logs import debug_selected

LOG_SOMETHING = """
import logging
from msgflo.logs import setup_logging
setup_logging()
logging.getLogger("msgflo.coordinator").debug("ours")
logging.getLogger("aiormq.connection").debug("theirs")
"""


def log_lines(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "MSGFLO_LOGLEVEL")}
    done = subprocess.run(
        [sys.executable, "-c", LOG_SOMETHING],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr.splitlines()


@pytest.mark.parametrize(
    "spec", ["msgflo*", "msgflo:*", "*", "msgflo", "msgflo:coordinator", "express:*,msgflo:*"]
)
def test_patterns_that_select_msgflo(spec: str) -> None:
    assert debug_selected(spec)


@pytest.mark.parametrize("spec", [None, "", "express:*", "msgfloo*", "*,-msgflo*", "msgflo*,-*"])
def test_patterns_that_do_not(spec: str | None) -> None:
    assert not debug_selected(spec)


def test_debug_env_turns_on_our_debug_lines_only() -> None:
    assert log_lines(DEBUG="msgflo*") == ["DEBUG msgflo.coordinator: ours"]


def test_loglevel_debug_turns_on_every_debug_line() -> None:
    assert log_lines(MSGFLO_LOGLEVEL="debug") == [
        "DEBUG msgflo.coordinator: ours",
        "DEBUG aiormq.connection: theirs",
    ]


def test_quiet_by_default() -> None:
    assert log_lines() == []
    assert log_lines(DEBUG="express:*") == []
