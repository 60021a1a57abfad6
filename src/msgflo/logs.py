"""Where msgflo's commands log, and how much: ``MSGFLO_LOGLEVEL`` and the original's ``DEBUG``
switch.  A module of its own so that every command can set up logging without importing the
participant machinery."""

from __future__ import annotations

import logging
import os
import re
import sys

QUIET_LIBRARIES = ("aiormq", "aio_pika", "aiomqtt", "paho", "amqtt", "transitions")


DEBUG_NAMESPACES = (
    "msgflo:coordinator",
    "msgflo:runtime",
    "msgflo:fbp",
    "msgflo:library",
    "msgflo:setup",
    "msgflo:amqp",
    "msgflo:mqtt",
    "msgflo:routing",
    "msgflo:participant",
)
"""The original's debug namespaces: ``DEBUG`` patterns are matched against these names."""


def debug_selected(spec: str | None) -> bool:
    """Whether ``DEBUG`` (the ``debug`` module's switch, which the original documents as
    ``DEBUG=msgflo*``) selects any msgflo namespace: comma- or space-separated patterns where
    ``*`` matches anything and a leading ``-`` excludes."""
    includes: list[re.Pattern[str]] = []
    excludes: list[re.Pattern[str]] = []
    for pattern in re.split(r"[\s,]+", spec or ""):
        if pattern:
            target = excludes if pattern.startswith("-") else includes
            target.append(re.compile(re.escape(pattern.lstrip("-")).replace(r"\*", ".*")))

    def selected(namespace: str) -> bool:
        def matches(patterns: list[re.Pattern[str]]) -> bool:
            return any(p.fullmatch(namespace) for p in patterns)

        return matches(includes) and not matches(excludes)

    return any(selected(namespace) for namespace in ("msgflo", *DEBUG_NAMESPACES))


def setup_logging() -> None:
    """Log to stderr at ``MSGFLO_LOGLEVEL`` (default warning); ``DEBUG=msgflo*`` turns on debug
    lines of msgflo's own loggers (not of the broker libraries, which stay at that level)."""
    level_name = (
        os.environ.get("MSGFLO_LOGLEVEL") or os.environ.get("MSGFLO_PYTHON_LOGLEVEL") or "warning"
    )
    level = logging.getLevelNamesMapping().get(level_name.upper(), logging.WARNING)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if debug_selected(os.environ.get("DEBUG")):
        logging.getLogger("msgflo").setLevel(logging.DEBUG)
    if level > logging.DEBUG:
        # Broker client libraries log what our own one-line errors already say, as tracebacks.
        for noisy in QUIET_LIBRARIES:
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
