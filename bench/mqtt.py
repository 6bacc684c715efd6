"""MQTT into pushwire: how many MQTT messages/s the bridge carries into a busy channel.

``python -m bench mqtt``: a Mosquitto of the bench's own (on the load generator's core), a
``pushwire serve --memory`` bridged to it (on the server's core) with one inbound route at
QoS 1, and ``--subscribers`` WebSocket subscribers of the load generator on the channel. A
paho client publishes the bench's 100-byte messages at QoS 1 on the channel's topic, back to
back, never more than a window ahead of the slowest subscriber, for ``--duration`` seconds;
every subscriber must receive every message. messages/s = messages / (last delivery - first
publish). Each message crosses Mosquitto -> bridge (PUBACK after it is in history) -> fan-out.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.affinity import loadgen_cpus, pin_self
from bench.loadgen import LoadGen
from bench.procstat import cpu_seconds, rss_bytes
from bench.progress import Progress
from bench.scenarios import POLL_INTERVAL_S, window_for
from bench.targets import HOST, ServerProcess, Target, free_port
from bench.wire import make_message, make_sync

__all__ = ["run_mqtt"]

CHANNEL = "mqtt:bench"
TOPIC = "mqtt/bench"
#: QoS 1 messages paho keeps in flight (sent, no PUBACK yet) to Mosquitto.
INFLIGHT = 200
SYNC_TIMEOUT_S = 30.0
DRAIN_STALL_S = 10.0


@dataclass(frozen=True)
class _BridgedPushwire(Target):
    """The pushwire target, bridged to the bench's Mosquitto."""

    mqtt_port: int = 0

    def env(self) -> dict[str, str]:
        env = Target.env(self)
        env.update(
            PUSHWIRE_DEMO="false",
            PUSHWIRE_LOG_LEVEL="warning",
            PUSHWIRE_MQTT_URL=f"mqtt://{HOST}:{self.mqtt_port}",
            PUSHWIRE_MQTT_CLIENT_ID=f"bench-{os.getpid()}",
            PUSHWIRE_MQTT_ROUTES=orjson.dumps([{"prefix": "mqtt:", "direction": "in"}]).decode(),
        )
        return env


class _Mosquitto:
    """Mosquitto on a free port, no persistence, pinned beside the load generator."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        config = directory / "mosquitto.conf"
        # max_inflight 0: as many unacknowledged messages to the bridge as it takes.
        config.write_text(
            f"listener {self.port} {HOST}\nallow_anonymous true\nmax_queued_messages 0\n"
            "max_inflight_messages 0\n"
        )
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        cpus = loadgen_cpus()
        self.process = subprocess.Popen(
            [binary, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=(lambda: pin_self(cpus)) if cpus else None,
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class _Publisher:
    """A paho client on its own thread: QoS 1, counting PUBACKs."""

    def __init__(self, port: int) -> None:
        self.acked = 0
        self.sent = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.max_inflight_messages_set(INFLIGHT)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = lambda *args: self._connected.set()
        self.client.on_publish = self._on_publish
        self.client.connect(HOST, port)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("the bench's MQTT publisher did not connect")

    def publish(self, payload: bytes) -> None:
        self.client.publish(TOPIC, payload, qos=1)
        self.sent += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_publish(self, *args: object) -> None:
        with self._lock:
            self.acked += 1


async def _measure(
    server: ServerProcess, lg: LoadGen, pub: _Publisher, spec: dict[str, Any], pr: Progress
) -> dict[str, Any]:
    subscribers = spec["subscribers"]
    pr.update(f"connecting {subscribers:,} subscribers", force=True)
    connected = await lg.connect("ws", HOST, server.port, f"/ws?channel={CHANNEL}", subscribers)
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    probe = 0
    while (await lg.stats()).synced < connected.ready and time.monotonic() < deadline:
        pub.publish(make_sync(probe))
        probe += 1
        await asyncio.sleep(0.25)
    await asyncio.sleep(0.3)
    synced = (await lg.stats()).synced
    await lg.reset()

    window = window_for(20_000 / max(synced, 1))
    cpu0, t0_ns = cpu_seconds(server.pid), time.time_ns()
    t_end = time.monotonic() + spec["duration"]
    seq = total = slowest = 0
    next_poll = 0.0
    while seq < spec["max_messages"] and time.monotonic() < t_end:
        now = time.monotonic()
        if now >= next_poll:
            total, _, slowest = await lg.total()
            next_poll = now + POLL_INTERVAL_S
            rate = total / max((time.time_ns() - t0_ns) / 1e9, 1e-9)
            window = window_for(rate / max(synced, 1))
            pr.update(f"sent {seq:,}  delivered {total:,}  {rate / max(synced, 1):,.0f} msg/s")
        room = window - (seq - slowest)
        if room <= 0:
            await asyncio.sleep(0.001)
            continue
        for _ in range(min(room, 64, spec["max_messages"] - seq)):
            pub.publish(make_message(seq))
            seq += 1
        await asyncio.sleep(0)
    expected = seq * synced
    last_change, previous = time.monotonic(), -1
    while total < expected and time.monotonic() - last_change < DRAIN_STALL_S:
        total, last_rx, _ = await lg.total()
        if total != previous:
            previous, last_change = total, time.monotonic()
        pr.update(f"drain {total:,}/{expected:,}")
        await asyncio.sleep(POLL_INTERVAL_S)
    _, last_rx, _ = await lg.total()
    cpu = cpu_seconds(server.pid) - cpu0
    seconds = max((last_rx - t0_ns) / 1e9, 1e-9)
    return {
        "subscribers": synced,
        "messages": seq,
        "expected": expected,
        "delivered": total,
        "lost": expected - total,
        "seconds": round(seconds, 3),
        "mqtt_messages_per_s": round(seq / seconds),
        "deliveries_per_s": round(total / seconds),
        "server_cpu_s": round(cpu, 3),
        "server_cpu_ms_per_message": round(cpu / seq * 1e3, 4) if seq else None,
        "server_rss_mb": round(rss_bytes(server.pid) / 2**20, 1),
    }


def run_mqtt(
    *, subscribers: int = 1000, duration: float = 8.0, max_messages: int = 200_000, workers: int = 2
) -> dict[str, Any]:
    """Run the scenario once; returns its figures and whatever went wrong."""
    spec = {"subscribers": subscribers, "duration": duration, "max_messages": max_messages}
    progress = Progress(f"[mqtt x{subscribers}]")
    result: dict[str, Any] = {"scenario": "mqtt", **spec, "errors": []}
    with tempfile.TemporaryDirectory() as directory:
        mosquitto = _Mosquitto(Path(directory))
        try:
            target = _BridgedPushwire("pushwire", ("ws",), (), "", "", mqtt_port=mosquitto.port)
            with ServerProcess(target, Path("bench/.logs")) as server:
                pin_self(loadgen_cpus())
                pub = _Publisher(mosquitto.port)
                try:
                    metrics = asyncio.run(_with_loadgen(server, pub, spec, workers, progress))
                finally:
                    pub.close()
                result.update(metrics)
        finally:
            mosquitto.stop()
    progress.done()
    if result.get("lost"):
        result["errors"].append(f"lost {result['lost']:,} deliveries")
    return result


async def _with_loadgen(
    server: ServerProcess, pub: _Publisher, spec: dict[str, Any], workers: int, pr: Progress
) -> dict[str, Any]:
    async with LoadGen(workers) as lg:
        try:
            return await _measure(server, lg, pub, spec, pr)
        finally:
            await lg.close_all()
