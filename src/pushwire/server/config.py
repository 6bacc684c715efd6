"""Configuration: defaults, then a TOML file, then ``PUSHWIRE_*`` variables, then flags.

Every option is a field of :class:`Config`; its environment variable is its name
in capitals after ``PUSHWIRE_`` (``max_message_bytes`` -> ``PUSHWIRE_MAX_MESSAGE_BYTES``).
Channel rules are a list, so they come from the file (``[[channels]]`` tables) or
from ``PUSHWIRE_CHANNELS`` as JSON. The MQTT bridge is the ``[mqtt]`` table; each of
its keys has its variable too (``url`` -> ``PUSHWIRE_MQTT_URL``; routes as JSON).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson

from pushwire.brokers.registry import broker_scheme
from pushwire.core.channels import ChannelRule
from pushwire.core.finite import non_finite_field
from pushwire.errors import UsageError
from pushwire.server.mqtt_settings import MqttSettings, mqtt_settings

__all__ = ["TOKEN_ALGORITHMS", "Config", "load_config"]

#: Signature algorithms a connection token may use; the configuration picks one.
TOKEN_ALGORITHMS = ("HS256", "RS256", "ES256")


@dataclass(frozen=True, slots=True)
class Config:
    """Everything ``pushwire serve`` can be told. See docs/configuration.md."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: str = "./pushwire-data"
    history: str = "sqlite"  # "sqlite" (under data_dir) or "memory"
    # "memory" (one process, the history above) or redis://HOST:PORT/DB or nats://HOST:PORT
    broker: str = "memory"
    broker_prefix: str = "pushwire"  # keys, subjects and streams at the broker begin so
    presence_ttl_seconds: float = 30.0  # a crashed node's members are gone within this
    workers: int = 1  # processes sharing the port (SO_REUSEPORT); more than 1 needs a broker
    api_key: str = ""  # empty: generate one at start and print it
    metrics_token: str = ""  # set: every /metrics scrape needs it (or the API key), loopback too
    token_secret: str = ""  # HS256 shared with the backend that mints tokens
    token_public_key: str = ""  # path of a PEM public key (RS256/ES256)
    token_algorithm: str = ""  # empty: HS256 for a secret, else from the key's type
    allow_anonymous: bool = True  # connections without a token
    token_refresh_timeout_seconds: float = 10.0  # after expiry, to send a new token
    max_token_bytes: int = 8192
    echo: bool = False  # serve /echo for WebSocket conformance tests
    demo: bool = True  # serve the demo chat at / and its logins at /demo/*
    max_message_bytes: int = 64 * 1024
    max_buffer_bytes: int = 1024 * 1024
    max_channels_per_connection: int = 256
    max_channel_length: int = 255  # longest channel name a client may use (at most 255)
    history_meta_ttl_seconds: float = 3 * 86400.0  # forget a stream idle this long
    max_connections: int = 0  # open connections at once; 0: the open-files limit less 100
    max_connections_per_ip: int = 0  # 0: no limit (behind a proxy every client is one IP)
    request_head_timeout_seconds: float = 10.0  # a request must arrive whole within this
    keep_alive_timeout_seconds: float = 60.0  # an idle keep-alive HTTP connection is closed
    memory_trim_interval_seconds: float = 60.0  # `pushwire serve`: malloc_trim(0) (glibc); 0: off
    max_connections_per_user: int = 100  # WebSockets and SSE streams at once; 0: no limit
    max_publishes_per_second: float = 100.0  # per /ws connection; 0: no limit
    presence_poll_grace_seconds: float = 10.0  # a polling user stays a member between polls
    ws_ping_interval_seconds: float = 25.0
    ws_ping_timeout_seconds: float = 10.0
    close_timeout_seconds: float = 5.0
    sse_ping_interval_seconds: float = 15.0
    sse_retry_ms: int = 2000
    poll_max_timeout_seconds: float = 60.0
    # Browser origins allowed besides this server's own ("*": any); see server/origins.py.
    allowed_origins: tuple[str, ...] = ()
    log_level: str = "info"
    log_format: str = "text"  # "text" for people, "json" (one object per line) for collectors
    channels: tuple[ChannelRule, ...] = field(default_factory=tuple)
    mqtt: MqttSettings | None = None  # the MQTT bridge ([mqtt]); None: no bridge

    def __post_init__(self) -> None:
        unbounded = non_finite_field(self)
        if unbounded is not None:
            value = getattr(self, unbounded)
            raise UsageError(f"{unbounded} must be a finite number, not {value}")
        if self.log_format not in ("text", "json"):
            raise UsageError(f"log_format must be 'text' or 'json', not {self.log_format!r}")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL"):
            raise UsageError(
                f"log_level must be debug, info, warning or error, not {self.log_level!r}"
            )
        if self.history not in ("sqlite", "memory"):
            raise UsageError(f"history must be 'sqlite' or 'memory', not {self.history!r}")
        broker_scheme(self.broker)
        if not self.broker_prefix or not all(c.isalnum() or c in "-_" for c in self.broker_prefix):
            raise UsageError("broker_prefix must be letters, digits, - and _ (and not empty)")
        if self.presence_ttl_seconds <= 0:
            raise UsageError("presence_ttl_seconds must be positive")
        if self.workers < 1:
            raise UsageError("workers must be at least 1")
        if self.workers > 1 and self.broker == "memory":
            raise UsageError(
                f"workers = {self.workers} needs a broker shared by the processes "
                "(--broker redis://... or nats://...): with the embedded broker each "
                "worker would be a separate server with its own history"
            )
        if not 0 <= self.port < 65536:
            raise UsageError(f"port must be 0-65535 (0: any free port), not {self.port}")
        if not 1 <= self.max_channel_length <= 255:
            raise UsageError("max_channel_length must be from 1 to 255")
        if self.max_message_bytes < 125:
            raise UsageError("max_message_bytes must be at least 125")
        for name in (
            "ws_ping_interval_seconds",
            "ws_ping_timeout_seconds",
            "sse_retry_ms",
            "token_refresh_timeout_seconds",
            "memory_trim_interval_seconds",
        ):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must not be negative")
        self._check_tokens()

    def _check_tokens(self) -> None:
        """What can be said about token options without reading the key file.

        The key itself is read, and checked against the algorithm, when the
        verifier is built (``pushwire.server.tokens.verifier_from_config``).
        """
        if self.token_secret and self.token_public_key:
            raise UsageError("set token_secret or token_public_key, not both")
        algorithm = self.token_algorithm
        if algorithm.lower() == "none":
            raise UsageError("token_algorithm 'none' would accept unsigned tokens; never allowed")
        if algorithm and algorithm not in TOKEN_ALGORITHMS:
            raise UsageError(
                f"token_algorithm must be one of {', '.join(TOKEN_ALGORITHMS)}, not {algorithm!r}"
            )
        if algorithm and not (self.token_secret or self.token_public_key):
            raise UsageError(
                f"token_algorithm {algorithm} is set but there is no token_secret or "
                "token_public_key to verify with"
            )
        if self.token_secret and algorithm not in ("", "HS256"):
            raise UsageError(
                f"token_algorithm {algorithm} needs token_public_key; token_secret is for HS256"
            )
        if self.token_public_key and algorithm == "HS256":
            raise UsageError("token_algorithm HS256 needs token_secret, not token_public_key")
        if not self.allow_anonymous and not (self.token_secret or self.token_public_key):
            raise UsageError(
                "allow_anonymous is false but no token_secret or token_public_key is set: "
                "nobody could connect"
            )
        if self.max_token_bytes < 1:
            raise UsageError("max_token_bytes must be positive")

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build a :class:`Config` from a TOML file, the environment and explicit overrides.

    Raises:
        UsageError: naming the file, variable or option that is wrong.
    """
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as file:
                values.update(tomllib.load(file))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read config file {path}: {exc}") from None
    known = {f.name: f for f in fields(Config)}
    for name in known:
        raw = environ.get(f"PUSHWIRE_{name.upper()}")
        if raw is not None and name != "mqtt":
            values[name] = _from_env(name, raw)
    mqtt_table = _mqtt_table(values.get("mqtt"), environ, (overrides or {}).get("mqtt"))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None and k != "mqtt"})
    if mqtt_table:
        values["mqtt"] = mqtt_table
    if "cors_origins" in values or "PUSHWIRE_CORS_ORIGINS" in environ:
        raise UsageError(
            "cors_origins was replaced by allowed_origins (same-origin requests and"
            ' non-browser clients are always allowed; ["*"] allows every origin)'
        )
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(f"unknown configuration option(s): {', '.join(unknown)}")
    return Config(
        **{name: _coerce(name, value, known[name].type) for name, value in values.items()}
    )


def _mqtt_table(
    from_file: Any, environ: Mapping[str, str], override: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ``[mqtt]`` table with ``PUSHWIRE_MQTT_*`` and the flags' values over it."""
    if from_file is not None and not isinstance(from_file, Mapping):
        raise UsageError("mqtt must be a table ([mqtt] with url = ... and [[mqtt.routes]])")
    table = dict(from_file or {})
    for key in (f.name for f in fields(MqttSettings)):
        raw = environ.get(f"PUSHWIRE_MQTT_{key.upper()}")
        if raw is None:
            continue
        if key == "routes":
            try:
                table[key] = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise UsageError(f"PUSHWIRE_MQTT_ROUTES is not valid JSON: {exc}") from None
        elif key in _MQTT_NUMBERS:
            try:
                table[key] = _MQTT_NUMBERS[key](raw)
            except ValueError:
                raise UsageError(f"PUSHWIRE_MQTT_{key.upper()} is not a number: {raw!r}") from None
        else:
            table[key] = raw
    table.update({k: v for k, v in (override or {}).items() if v is not None})
    return table


_MQTT_NUMBERS: dict[str, type[int] | type[float]] = {
    f.name: int if f.type == "int" else float
    for f in fields(MqttSettings)
    if f.type in ("int", "float")
}


def _from_env(name: str, raw: str) -> Any:
    if name in ("channels", "allowed_origins") and raw.lstrip().startswith("["):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"PUSHWIRE_{name.upper()} is not valid JSON: {exc}") from None
    if name == "allowed_origins":
        return [origin.strip() for origin in raw.split(",") if origin.strip()]
    return raw


def _channel_rule(fields: Any) -> ChannelRule:
    if isinstance(fields, Mapping) and "allow_client_publish" in fields:
        allowed = fields["allow_client_publish"]
        raise UsageError(
            "allow_client_publish was replaced by publish: write "
            + ('publish = "anyone"' if allowed else 'publish = "none"')
            + f" in the rule for prefix {fields.get('prefix', '')!r}"
        )
    if isinstance(fields, Mapping):
        # JSON and TOML give any type; the rules are read at every request, not at start.
        kinds = {f.name: f.type for f in dataclasses.fields(ChannelRule)}
        for name, value in fields.items():
            if name in kinds and not _is_of(value, kinds[name]):
                raise UsageError(
                    f"channel rule {name} must be of type {kinds[name]}, not {value!r}"
                )
    return ChannelRule(**fields)


def _is_of(value: Any, kind: Any) -> bool:
    """Whether ``value`` from a file or JSON fits a field of type ``kind`` (a bool is no int)."""
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, {"str": str, "bool": bool}.get(kind, object))


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """Turn file and environment values into the field's type, or say what is wrong."""
    if name == "mqtt":
        return value if isinstance(value, MqttSettings) else mqtt_settings(value)
    try:
        if name == "channels":
            return tuple(_channel_rule(rule) for rule in value)
        if name == "allowed_origins":
            if isinstance(value, str):
                value = [origin.strip() for origin in value.split(",") if origin.strip()]
            return tuple(str(origin) for origin in value)
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(f"not a boolean: {value!r}")
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad value for {name}: {exc}") from None
