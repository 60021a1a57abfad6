"""The limit for a Python MQTT relay: paho-mqtt and nothing else (QoS 0, no JSON decoding).

Usage: python bare_paho.py HOST PORT IN_TOPIC OUT_TOPIC
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    host, port, inbound, outbound = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    client = paho.Client(CallbackAPIVersion.VERSION2)

    def on_connect(c: paho.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        c.subscribe(inbound, 0)

    def on_subscribe(_c: paho.Client, _u: Any, _mid: Any, _rc: Any, _p: Any) -> None:
        print("ready", flush=True)

    def on_message(c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        c.publish(outbound, msg.payload, 0)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port)
    with contextlib.suppress(KeyboardInterrupt):
        client.loop_forever()


if __name__ == "__main__":
    main()
