"""Topics <-> channels and payloads <-> data, without a broker: the rules of docs/mqtt.md."""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from pushwire.errors import InvalidChannelError
from pushwire.protocol.names import validate_channel
from pushwire.server.mqtt_mapping import (
    channel_to_topic,
    envelope_json,
    outgoing_payload,
    payload_value,
    prefix_filter,
    topic_to_channel,
)
from tests.fuzz.strategies import FUZZ

# A topic level: any text but the separator, the wildcards and NUL.
_LEVELS = st.text(
    st.characters(exclude_characters="/+#\x00", exclude_categories=["Cs"]), min_size=1
)
_TOPICS = st.lists(_LEVELS, min_size=1, max_size=6).map("/".join)
# Valid channel names, many with escapes that may or may not be the canonical ones.
_CHANNELS = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.:@/#,=+\-]{1,40}", fullmatch=True),
    st.from_regex(r"(?:[a-z:]|=[0-9A-F]{2}){1,30}", fullmatch=True),
)


@pytest.mark.parametrize(
    ("topic", "channel"),
    [
        ("devices/42/telemetry", "devices:42:telemetry"),
        ("site/a.b/x_y-z@w,v", "site:a.b:x_y-z@w,v"),
        ("devices/a:b", "devices:a=3Ab"),
        ("devices/a=b", "devices:a=3Db"),
        ("devices/café au lait", "devices:caf=C3=A9=20au=20lait"),
        ("devices/=3D", "devices:=3D3D"),
    ],
)
def test_a_topic_and_its_channel_map_onto_each_other(topic: str, channel: str) -> None:
    assert topic_to_channel(topic) == channel
    assert channel_to_topic(channel) == topic


@pytest.mark.parametrize(
    ("channel", "why"),
    [
        ("devices:a/b", "a bare / in a level"),
        ("devices:+", "a wildcard"),
        ("devices:#", "a wildcard"),
        ("devices::x", "an empty level"),
        ("devices:x:", "an empty level at the end"),
        ("devices:a=", "a bare ="),
        ("devices:=41", "an escape of a character that needs none"),
        ("devices:=3a", "lower-case hex"),
        ("devices:=2F", "an escaped /"),
        ("devices:=23", "an escaped #"),
        ("devices:=00", "an escaped NUL"),
        ("devices:=C3", "half a UTF-8 character"),
    ],
)
def test_a_channel_without_a_topic_is_refused(channel: str, why: str) -> None:
    with pytest.raises(InvalidChannelError):
        channel_to_topic(channel)


@pytest.mark.parametrize("topic", ["devices//x", "/devices", "devices/", ""])
def test_a_topic_with_an_empty_level_is_refused(topic: str) -> None:
    with pytest.raises(InvalidChannelError, match="empty level"):
        topic_to_channel(topic)


def test_a_topic_whose_channel_would_be_too_long_is_refused() -> None:
    with pytest.raises(InvalidChannelError, match="255"):
        topic_to_channel("devices/" + "é" * 50)


@settings(FUZZ, max_examples=200)
@given(_TOPICS)
def test_every_topic_has_one_valid_channel_that_maps_back(topic: str) -> None:
    try:
        channel = topic_to_channel(topic)
    except InvalidChannelError:
        return  # only for being over 255 characters

    assert validate_channel(channel) == channel
    assert channel_to_topic(channel) == topic


@settings(FUZZ, max_examples=200)
@given(_CHANNELS)
def test_no_two_channels_share_a_topic(channel: str) -> None:
    try:
        topic = channel_to_topic(channel)
    except InvalidChannelError:
        return

    assert topic_to_channel(topic) == channel


def test_a_route_prefix_becomes_a_multi_level_filter() -> None:
    assert prefix_filter("devices:") == "devices/#"
    assert prefix_filter("site:berlin:") == "site/berlin/#"
    with pytest.raises(InvalidChannelError, match="end with ':'"):
        prefix_filter("devices")


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        (b'{"celsius": 21.5}', {"celsius": 21.5}),
        (b" 42 ", 42),
        (b'"quoted"', "quoted"),
        (b"null", None),
        (b"hello", "hello"),
        (b"", ""),
        ("grüße".encode(), "grüße"),
        (b"\xff\x00\x01", {"base64": "/wAB"}),
        (b"NaN", "NaN"),  # not JSON, so text
    ],
)
def test_a_payload_is_json_else_text_else_base64(payload: bytes, value: object) -> None:
    assert payload_value(payload) == value


def test_the_envelope_carries_topic_qos_retain_and_payload() -> None:
    data = envelope_json("devices/42/state", 1, True, b'{"led":"on"}')

    assert orjson.loads(data) == {
        "topic": "devices/42/state",
        "qos": 1,
        "retain": True,
        "payload": {"led": "on"},
    }


@pytest.mark.parametrize(
    ("data", "payload"),
    [
        (b'{"led":"on"}', b'{"led":"on"}'),
        (b"[1,2]", b"[1,2]"),
        (b"42", b"42"),
        (b'"reboot"', b"reboot"),
        (b'{"base64":"AAE="}', b"\x00\x01"),
        (b'{"base64":"not base64!"}', b'{"base64":"not base64!"}'),
        (b'{"base64":"AAE=","and":1}', b'{"base64":"AAE=","and":1}'),
    ],
)
def test_data_goes_out_as_text_bytes_or_json(data: bytes, payload: bytes) -> None:
    assert outgoing_payload(data) == payload


@settings(FUZZ, max_examples=300)
@given(st.binary(max_size=64))
def test_a_payload_survives_the_trip_in_and_out(payload: bytes) -> None:
    value = payload_value(payload)

    back = outgoing_payload(orjson.dumps(value))

    try:
        orjson.loads(payload)
        was_json = True
    except orjson.JSONDecodeError:
        was_json = False
    if isinstance(value, dict) and set(value) == {"base64"}:
        assert back == base64.b64decode(value["base64"]) == payload
    elif isinstance(value, str):
        # Text comes back as it was; a JSON string (b'"hi"') as its text (b"hi").
        assert back == (value.encode() if was_json else payload)
    else:
        # JSON comes back re-encoded (whitespace and number spelling may change).
        assert orjson.loads(back) == orjson.loads(payload)
