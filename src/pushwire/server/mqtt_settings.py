"""The MQTT bridge's configuration: the broker's URL, the client's identity, the routes.

Validated when the configuration is loaded, so that a malformed URL or route stops
``pushwire serve`` at start (UsageError, exit status 2). Needs no MQTT library:
the bridge itself (``server.mqtt_bridge``) is imported only when this is configured.
"""

from __future__ import annotations

import dataclasses
import itertools
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from pushwire.brokers.registry import redacted_url
from pushwire.core.finite import non_finite_field
from pushwire.errors import InvalidChannelError, UsageError
from pushwire.protocol.names import validate_channel
from pushwire.server.mqtt_mapping import prefix_filter

__all__ = ["DIRECTIONS", "MqttEndpoint", "MqttRoute", "MqttSettings", "mqtt_settings"]

#: Which way a route carries messages: MQTT -> pushwire, pushwire -> MQTT, or both.
DIRECTIONS = ("in", "out", "both")
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_GROUP_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class MqttRoute:
    """Channels under ``prefix`` are the topics of its filter (``devices:`` <-> ``devices/#``)."""

    prefix: str
    direction: str = "both"
    qos: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not self.prefix:
            raise UsageError('an [[mqtt.routes]] entry needs a prefix, like prefix = "devices:"')
        try:
            validate_channel(self.prefix)
            prefix_filter(self.prefix)
        except InvalidChannelError as exc:
            raise UsageError(f"mqtt route prefix {self.prefix!r}: {exc}") from None
        if self.direction not in DIRECTIONS:
            raise UsageError(
                f'mqtt route {self.prefix!r}: direction must be "in", "out" or "both", '
                f"not {self.direction!r}"
            )
        if self.qos not in (0, 1) or isinstance(self.qos, bool):
            raise UsageError(
                f"mqtt route {self.prefix!r}: qos must be 0 or 1, not {self.qos!r} (pushwire "
                "stores what it receives at least once; QoS 2 would promise more)"
            )

    @property
    def inbound(self) -> bool:
        """MQTT messages on the filter's topics are published on the channels."""
        return self.direction != "out"

    @property
    def outbound(self) -> bool:
        """Publications on the channels are published on the topics."""
        return self.direction != "in"

    @property
    def topic_filter(self) -> str:
        return prefix_filter(self.prefix)


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """Where the broker is and how to log in, from the URL and the settings together."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """The ``[mqtt]`` table of the configuration. See docs/configuration.md."""

    url: str  # mqtt://[user[:password]@]host[:port] or mqtts://... (TLS)
    client_id: str = ""  # empty: pushwire-HOSTNAME-PORT (fixed, so the session persists)
    username: str = ""  # when the URL has none
    password: str = field(default="", repr=False)  # when the URL has none
    ca_file: str = ""  # PEM file of the CAs that sign an mqtts:// broker (empty: the system's)
    group: str = "pushwire"  # shared subscription group, and the mark that stops echoes
    session_expiry_seconds: int = 86400  # the broker keeps our session (and queue) this long
    keepalive_seconds: int = 30
    reconnect_min_delay_seconds: float = 0.5
    reconnect_max_delay_seconds: float = 30.0
    publish_timeout_seconds: float = 10.0  # a PUBACK must come within this
    routes: tuple[MqttRoute, ...] = ()

    def __post_init__(self) -> None:
        unbounded = non_finite_field(self)
        if unbounded is not None:
            value = getattr(self, unbounded)
            raise UsageError(f"mqtt {unbounded} must be a finite number, not {value}")
        self.endpoint()  # raises for a malformed URL
        if not self.routes:
            raise UsageError(
                "mqtt url is set but there are no [[mqtt.routes]]: nothing would be bridged"
            )
        prefixes = sorted(route.prefix for route in self.routes)
        for shorter, longer in itertools.pairwise(prefixes):
            if longer.startswith(shorter):
                raise UsageError(
                    f"mqtt routes {shorter!r} and {longer!r} overlap: one topic would be "
                    "subscribed twice; give each channel one route"
                )
        if not self.group or not all(c in _GROUP_CHARACTERS for c in self.group):
            raise UsageError("mqtt group must be letters, digits, - and _ (and not empty)")
        if self.client_id and not (
            len(self.client_id) <= 128 and all(33 <= ord(c) < 127 for c in self.client_id)
        ):
            raise UsageError("mqtt client_id must be at most 128 printable ASCII characters")
        if self.session_expiry_seconds < 0 or self.session_expiry_seconds > 0xFFFFFFFF:
            raise UsageError("mqtt session_expiry_seconds must be from 0 to 4294967295")
        if not 1 <= self.keepalive_seconds <= 65535:
            raise UsageError("mqtt keepalive_seconds must be from 1 to 65535")
        if not 0 < self.reconnect_min_delay_seconds <= self.reconnect_max_delay_seconds:
            raise UsageError(
                "mqtt needs 0 < reconnect_min_delay_seconds <= reconnect_max_delay_seconds"
            )
        if self.publish_timeout_seconds <= 0:
            raise UsageError("mqtt publish_timeout_seconds must be positive")

    def endpoint(self) -> MqttEndpoint:
        """The broker's address and login.

        Raises:
            UsageError: the URL is malformed, or gives a login that the settings give too.
        """
        try:
            parts = urlsplit(self.url)
        except ValueError as exc:  # an unclosed [ of an IPv6 address
            raise UsageError(f"mqtt url {redacted_url(self.url)!r}: {exc}") from None
        if parts.scheme not in _DEFAULT_PORTS:
            shown = redacted_url(self.url)
            raise UsageError(f"mqtt url must start mqtt:// or mqtts:// (TLS), not {shown!r}")
        try:
            port = parts.port if parts.port is not None else _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise UsageError(f"mqtt url {redacted_url(self.url)!r} has a bad port")
        if not parts.hostname:
            raise UsageError(f"mqtt url {redacted_url(self.url)!r} names no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise UsageError(
                f"mqtt url {redacted_url(self.url)!r}: nothing may follow host:port "
                "(routes are [[mqtt.routes]] tables)"
            )
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        if username is not None and (self.username or self.password):
            raise UsageError("give the mqtt login in the url or as username/password, not both")
        if username is None and self.username:
            username, password = self.username, self.password or None
        elif username is None and self.password:
            raise UsageError("mqtt password is set but no username")
        return MqttEndpoint(parts.hostname, port, parts.scheme == "mqtts", username, password)

    def client_id_for(self, port: int) -> str:
        """The configured client id, or one fixed for this host and pushwire port.

        Fixed, so that a restarted node finds its session (and what was queued for
        it) again; different per node, so that two nodes do not take each other's.
        """
        return self.client_id or f"pushwire-{socket.gethostname()}-{port}"

    def for_worker(self, index: int, port: int) -> MqttSettings:
        """These settings for worker ``index`` of ``pushwire serve --workers N``.

        The workers share a host and a port, so each gets its own client id (and
        session): ``...-w1``, ``...-w2``. They take messages in as one shared
        subscription, as the nodes of any cluster do.
        """
        return dataclasses.replace(self, client_id=f"{self.client_id_for(port)}-w{index}")

    @property
    def display_url(self) -> str:
        """The URL fit for a log: without its password."""
        return redacted_url(self.url)


def mqtt_settings(table: Mapping[str, Any]) -> MqttSettings:
    """:class:`MqttSettings` from the ``[mqtt]`` table (TOML, or JSON from the environment).

    Raises:
        UsageError: naming the key that is unknown, missing or of the wrong type.
    """
    kinds = {f.name: f.type for f in dataclasses.fields(MqttSettings)}
    unknown = sorted(set(table) - set(kinds))
    if unknown:
        raise UsageError(f"unknown [mqtt] option(s): {', '.join(unknown)}")
    if not table.get("url"):
        raise UsageError('[mqtt] needs a url, like url = "mqtt://127.0.0.1:1883"')
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name == "routes":
            values[name] = _routes(value)
        elif not _is_of(value, kinds[name]):
            raise UsageError(f"mqtt {name} must be of type {kinds[name]}, not {value!r}")
        else:
            values[name] = float(value) if kinds[name] == "float" else value
    return MqttSettings(**values)


def _routes(value: Any) -> tuple[MqttRoute, ...]:
    if not isinstance(value, list | tuple):
        raise UsageError("mqtt routes must be a list of tables ([[mqtt.routes]])")
    kinds = {f.name: f.type for f in dataclasses.fields(MqttRoute)}
    routes = []
    for entry in value:
        if isinstance(entry, MqttRoute):
            routes.append(entry)
            continue
        if not isinstance(entry, Mapping):
            raise UsageError(f"each mqtt route must be a table, not {entry!r}")
        unknown = sorted(set(entry) - set(kinds))
        if unknown:
            raise UsageError(f"unknown [[mqtt.routes]] key(s): {', '.join(unknown)}")
        if "prefix" not in entry:
            raise UsageError('an [[mqtt.routes]] entry needs a prefix, like prefix = "devices:"')
        for name, item in entry.items():
            if not _is_of(item, kinds[name]):
                raise UsageError(f"mqtt route {name} must be of type {kinds[name]}, not {item!r}")
        routes.append(MqttRoute(**entry))
    return tuple(routes)


def _is_of(value: Any, kind: Any) -> bool:
    """Whether ``value`` from a file or JSON fits a field of type ``kind`` (a bool is no int)."""
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)
