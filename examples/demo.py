"""Run the demo network (examples/demo/demo.fbp) with the real ``msgflo`` command.

No broker needed: ``msgflo`` starts an embedded MQTT broker and hands it to the participants.
Ctrl-C stops everything.  ``--broker URL`` runs the same network on RabbitMQ or Mosquitto;
``--duration SECONDS`` stops it by itself (for a quick check).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent / "demo"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", help="broker URL (default: an embedded MQTT broker)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k not in ("MSGFLO_BROKER", "CLOUDAMQP_URL")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    command = [
        str(bin_dir / "msgflo"),
        "--graph",
        "demo.fbp",
        "--wait-timeout",
        "20",
        "--port",
        "0",
    ]
    if args.broker:
        command += ["--broker", args.broker]
    print(f"$ cd {DEMO.relative_to(Path.cwd()) if DEMO.is_relative_to(Path.cwd()) else DEMO}")
    print(f"$ {' '.join(['msgflo', *command[1:]])}    (Ctrl-C stops)", flush=True)
    with subprocess.Popen(command, cwd=DEMO, env=env) as msgflo:
        try:
            msgflo.wait(timeout=args.duration)
        except subprocess.TimeoutExpired:
            msgflo.send_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass  # the terminal sent SIGINT to msgflo too; it stops its participants
        return msgflo.wait()


if __name__ == "__main__":
    sys.exit(main())
