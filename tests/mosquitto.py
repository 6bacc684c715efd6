"""Mosquitto for the MQTT bridge's tests, and simulated devices that talk to it.

The shared Mosquitto on 1883 (started by ``.ci/run``) is used with topics no other
test uses, and is never stopped. :class:`OwnMosquitto` is a test's own, on a free
port with its own configuration and persistence directory: stoppable, restartable,
optionally with passwords. :class:`Device` is a plain paho-mqtt client (not what
the bridge is built on, aiomqtt), run on paho's own thread.
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
import secrets
import shutil
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.server_process import free_port
from tests.services import require_service
from tests.waiting import wait_until, wait_until_sync

__all__ = ["SHARED_PORT", "Device", "OwnMosquitto", "Received", "require_mosquitto", "unique"]

SHARED_PORT = 1883
# Debian installs them in /usr/sbin and /usr/bin; a PATH without /usr/sbin still finds them.
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def require_mosquitto() -> None:
    """Skip (or, in CI, fail) unless the shared Mosquitto listens on 1883."""
    require_service("mosquitto", SHARED_PORT)


def unique(stem: str = "t") -> str:
    """A name (topic level, client id part) no other test or run uses."""
    return f"{stem}{secrets.token_hex(5)}"


class OwnMosquitto:
    """A mosquitto of a test's own: its port, config, persistence and (optional) logins."""

    def __init__(
        self, directory: Path, *, logins: dict[str, str] | None = None, tls: bool = False
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"{'mqtts' if tls else 'mqtt'}://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {directory}/",
            # Running as root, mosquitto would switch to its own user and could not
            # write its database here; as anyone else this is a no-op.
            f"user {getpass.getuser()}",
        ]
        if logins:
            passwords = directory / "passwords"
            for number, (user, password) in enumerate(logins.items()):
                create = ["-c"] if number == 0 else []
                subprocess.run(
                    [MOSQUITTO_PASSWD, *create, "-b", str(passwords), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            #: The CA that signed the broker's certificate (for 127.0.0.1): the client's ca_file.
            self.ca_file = directory / "ca.pem"
            certificate, key = _certificates(directory, self.ca_file)
            lines += [f"certfile {certificate}", f"keyfile {key}"]
        self.config = directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> OwnMosquitto:
        with (self.directory / "mosquitto.log").open("ab") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_until_sync(self._listening, timeout_seconds=5, message="mosquitto to listen")
        return self

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its sessions and queues to disk, then exits."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)  # a paused broker cannot act on SIGTERM
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered (no PUBACK)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return (self.directory / "mosquitto.log").read_text(errors="replace")

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    user_properties: tuple[tuple[str, str], ...]


class Device:
    """A simulated device: an MQTT 5 client that publishes and records what it receives.

    With ``persistent``, its session (clean start off, a fixed id) outlives its
    connection, and publishes made while the broker is away wait in paho's queue.
    """

    def __init__(
        self,
        port: int = SHARED_PORT,
        *,
        client_id: str | None = None,
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.client_id = client_id or unique("device-")
        self.port = port
        self.persistent = persistent
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        # Typed int, but paho only compares and sleeps: fractions keep the tests quick.
        self.client.reconnect_delay_set(0.05, 0.5)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def connect(self) -> Device:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 300 if self.persistent else 0
        self.client.connect_async(
            "127.0.0.1", self.port, clean_start=not self.persistent, properties=properties
        )
        self.client.loop_start()
        if not self._connected.wait(5):
            raise TimeoutError(f"device {self.client_id} did not connect")
        return self

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *args: done.set()
        self.client.subscribe(topic_filter, options=SubscribeOptions(qos=qos))
        if not done.wait(5):
            raise TimeoutError(f"no SUBACK for {topic_filter}")

    def publish(
        self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False
    ) -> paho.MQTTMessageInfo:
        """Publish; with QoS 1 and no connection, paho keeps it to send on reconnect."""
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    async def publish_confirmed(
        self, topic: str, payload: bytes | str, *, retain: bool = False
    ) -> None:
        """Publish with QoS 1 and wait (without blocking the loop) for the broker's PUBACK."""
        info = self.publish(topic, payload, retain=retain)
        await wait_until(info.is_published, timeout_seconds=5, message=f"PUBACK for {topic}")

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    async def wait_for(self, count: int, timeout_seconds: float = 10) -> list[Received]:
        """What the device received, once it is at least ``count`` messages."""
        await wait_until(
            lambda: len(self.messages()) >= count,
            timeout_seconds=timeout_seconds,
            message=lambda: f"{count} messages at {self.client_id}, have {self.messages()}",
        )
        return self.messages()

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: object, *args: object) -> None:
        self._connected.set()

    def _on_disconnect(self, client: paho.Client, userdata: object, *args: object) -> None:
        self._connected.clear()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        user_properties = getattr(message.properties, "UserProperty", None) or []
        with self._lock:
            self.received.append(
                Received(
                    message.topic,
                    bytes(message.payload),
                    message.qos,
                    bool(message.retain),
                    tuple(user_properties),
                )
            )


def _certificates(directory: Path, ca_file: Path) -> tuple[Path, Path]:
    """A throwaway CA (written to ``ca_file``) and a certificate it signs for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("pushwire test CA"))
        .issuer_name(name("pushwire test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certificate_file, key_file = directory / "broker.pem", directory / "broker.key"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_file, key_file
