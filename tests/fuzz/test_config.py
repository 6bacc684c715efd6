"""Fuzzing the configuration: ``load_config`` with arbitrary ``PUSHWIRE_*`` values.

Every option, set to any string (numbers, booleans, JSON, nonsense): the result is a
Config or a UsageError naming what is wrong, never another exception. Derandomized.
"""

from __future__ import annotations

import dataclasses

import orjson
from hypothesis import given, settings, strategies as st

from pushwire import Config
from pushwire.errors import UsageError
from pushwire.server.config import load_config
from pushwire.server.mqtt_settings import MqttSettings
from tests.fuzz.strategies import FUZZ, json_values, texts

_OPTIONS = [field.name for field in dataclasses.fields(Config)]
_RULES = st.lists(
    st.dictionaries(
        st.sampled_from(
            ["prefix", "history_size", "history_ttl_seconds", "subscribe", "presence", "x"]
        ),
        st.one_of(json_values, st.sampled_from(["anyone", "token", "none", "chat:"])),
        max_size=4,
    ),
    max_size=3,
).map(lambda rules: orjson.dumps(rules).decode())
_VALUES = st.one_of(
    texts,
    st.integers().map(str),
    st.floats().map(str),
    st.sampled_from(["true", "off", "1e999", "nan", "-inf", "0x10", "1_000", "٣", "", " "]),
    json_values.map(lambda value: orjson.dumps(value).decode()),
    _RULES,
    st.just("9" * 5000),  # past int()'s 4300 digits
)


@settings(FUZZ, max_examples=300)
@given(st.dictionaries(st.sampled_from(_OPTIONS), _VALUES, min_size=1, max_size=4))
def test_any_environment_gives_a_config_or_a_usage_error(values: dict[str, str]) -> None:
    _check({f"PUSHWIRE_{name.upper()}": value for name, value in values.items()})


@settings(FUZZ, max_examples=200)
@given(_RULES)
def test_any_channel_rules_give_a_config_or_a_usage_error(rules: str) -> None:
    _check({"PUSHWIRE_CHANNELS": rules})


def _check(environ: dict[str, str]) -> None:
    refusal: UsageError | None = None
    try:
        config = load_config(environ=environ)
    except UsageError as exc:
        refusal = exc
    if refusal is not None:
        assert str(refusal)
        return

    assert isinstance(config, Config)
    for rule in config.channels:  # the server reads rules at every request, not at start
        assert isinstance(rule.prefix, str)
        assert type(rule.history_size) is int
        assert isinstance(rule.history_ttl_seconds, int | float)
        assert type(rule.presence) is bool
        assert type(rule.join_leave) is bool


_MQTT_VARIABLES = [
    f"PUSHWIRE_MQTT_{field.name.upper()}" for field in dataclasses.fields(MqttSettings)
]
_MQTT_ROUTES = st.lists(
    st.dictionaries(
        st.sampled_from(["prefix", "direction", "qos", "x"]),
        st.one_of(json_values, st.sampled_from(["devices:", "in", "both", "a/b:", "x::", "=41:"])),
        max_size=4,
    ),
    max_size=3,
).map(lambda routes: orjson.dumps(routes).decode())
_MQTT_VALUES = st.one_of(
    _VALUES,
    _MQTT_ROUTES,
    st.sampled_from(
        ["mqtt://127.0.0.1", "mqtts://u:p@h:8883", "mqtt://[::1", "mqtt://h:0", "mqtt://%zz@h"]
    ),
)


@settings(FUZZ, max_examples=300)
@given(st.dictionaries(st.sampled_from(_MQTT_VARIABLES), _MQTT_VALUES, min_size=1, max_size=5))
def test_any_mqtt_settings_give_a_config_or_a_usage_error(environ: dict[str, str]) -> None:
    # Over a table that works, so that each bad value is what is judged.
    _check(
        {"PUSHWIRE_MQTT_URL": "mqtt://b", "PUSHWIRE_MQTT_ROUTES": '[{"prefix": "d:"}]', **environ}
    )
