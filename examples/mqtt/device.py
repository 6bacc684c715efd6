"""A simulated thermostat on MQTT: publishes telemetry, obeys commands, keeps its state retained.

    python examples/mqtt/device.py --id 42

Topics (pushwire's channel in brackets, by the bridge's mapping):

- ``devices/42/telemetry`` [``devices:42:telemetry``]: ``{"celsius", "humidity", "led", "at"}``
  every ``--interval`` seconds, QoS 1.
- ``devices/42/state`` [``devices:42:state``]: ``{"led", "interval", "at"}``, retained,
  after every change: a page that opens later starts from it.
- ``devices/42/commands`` [``devices:42:commands``]: ``{"led": "on" | "off" | "toggle"}``
  or ``{"interval": seconds}``, QoS 1, what the browser sends.

The session is persistent (clean start off, a fixed client id), so commands sent while
the device was offline are delivered when it is back. Needs ``pip install paho-mqtt``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class Thermostat:
    """The device's state and its MQTT client (paho's network thread calls back here)."""

    def __init__(self, device_id: str, interval: float) -> None:
        self.topic = f"devices/{device_id}"
        self.led = "off"
        self.interval = interval
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"device-{device_id}", protocol=paho.MQTTv5
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def run(self, host: str, port: int) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600  # commands wait for us up to an hour
        self.client.connect(host, port, clean_start=False, properties=properties)
        self.client.loop_start()
        try:
            while not self.stop.wait(self.interval):
                self.client.publish(f"{self.topic}/telemetry", json.dumps(self._reading()), qos=1)
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    def _reading(self) -> dict[str, Any]:
        minutes = (time.monotonic() - self.started) / 60
        celsius = 21 + 1.5 * math.sin(minutes * 2 * math.pi / 3) + random.uniform(-0.2, 0.2)
        # A lit LED warms the case a little: the chart shows a command taking effect.
        celsius += 0.8 if self.led == "on" else 0.0
        return {
            "celsius": round(celsius, 2),
            "humidity": round(40 + random.uniform(-2, 2), 1),
            "led": self.led,
            "at": _now(),
        }

    def _publish_state(self) -> None:
        state = {"led": self.led, "interval": self.interval, "at": _now()}
        self.client.publish(f"{self.topic}/state", json.dumps(state), qos=1, retain=True)

    def _on_connect(self, client: paho.Client, userdata: object, flags: Any, *rest: Any) -> None:
        print(f"connected (session present: {flags.session_present})", flush=True)
        client.subscribe(f"{self.topic}/commands", qos=1)
        self._publish_state()

    def _on_message(self, client: paho.Client, userdata: object, message: Any) -> None:
        try:
            command = json.loads(message.payload)
        except ValueError:
            print(f"ignored a command that is not JSON: {message.payload[:80]!r}", flush=True)
            return
        if not isinstance(command, dict):
            return
        if command.get("led") in ("on", "off", "toggle"):
            wanted = command["led"]
            self.led = ("off" if self.led == "on" else "on") if wanted == "toggle" else wanted
        interval = command.get("interval")
        if isinstance(interval, int | float) and 0.1 <= interval <= 60:
            self.interval = float(interval)
        print(f"command {command}: led {self.led}, every {self.interval} s", flush=True)
        self._publish_state()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--id", default="42", help="device id: the second topic level")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    args = parser.parse_args()
    device = Thermostat(args.id, args.interval)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: device.stop.set())
    device.run(args.host, args.port)


if __name__ == "__main__":
    main()
