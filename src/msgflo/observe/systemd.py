"""systemd's notify protocol: a few datagrams on ``$NOTIFY_SOCKET``, no library needed.

Under ``Type=notify`` systemd waits for ``READY=1``; with ``WatchdogSec=`` it sets
``$WATCHDOG_USEC`` and restarts (or fails) the service when ``WATCHDOG=1`` stops arriving;
``STATUS=...`` is what ``systemctl status`` shows.  Outside systemd nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path
        self.watchdog: float | None = None
        """Seconds within which systemd expects ``WATCHDOG=1``, when it watches this process."""
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog = int(usec) / 1_000_000

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> None:
        """One datagram of ``KEY=value`` lines; a missing socket is logged, never fatal."""
        if not self.address:
            return
        message = "\n".join(field.replace("\n", " ") for field in fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            log.warning("cannot notify systemd at %r: %s", self.address, exc)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def alive(self, status: str) -> None:
        """``WATCHDOG=1`` when watched, with the current status."""
        self.send(*(["WATCHDOG=1"] if self.watchdog else []), f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")
