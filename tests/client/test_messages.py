"""Wire objects to messages: well-formed ones parse, malformed ones say why."""

from __future__ import annotations

import pytest

from pushwire.client import Message
from pushwire.client.messages import Publisher, history_from_json, message_from_json


def test_a_message_object_round_trips() -> None:
    wire = {"channel": "news", "id": "ab-1", "event": "x", "data": {"k": [1, None]}}

    message = message_from_json({"type": "message", **wire})

    assert message == Message("news", "ab-1", {"k": [1, None]}, "x")
    assert message.to_json() == wire


def test_null_data_is_data() -> None:
    assert message_from_json({"channel": "c", "id": "i", "data": None}).data is None


@pytest.mark.parametrize(
    "value",
    [
        [],
        {"channel": "c", "id": "i"},
        {"channel": 1, "id": "i", "data": 1},
        {"channel": "c", "id": "i", "data": 1, "event": 5},
    ],
)
def test_a_malformed_message_raises_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="message"):
        message_from_json(value)


def test_history_without_a_gap_field_has_no_gap() -> None:
    history = history_from_json({"channel": "c", "cursor": "e-0", "messages": []})

    assert history.gap is False
    assert history.messages == ()


def test_a_message_from_a_client_names_its_verified_publisher() -> None:
    value = {"channel": "c", "id": "e-1", "data": 1, "from": {"user": "alice", "info": {"n": 1}}}

    message = message_from_json(value)

    assert message.publisher == Publisher("alice", {"n": 1})
    assert message.to_json() == value


@pytest.mark.parametrize("bad", [{"user": 5}, "alice", {"user": "a", "info": [1]}])
def test_a_malformed_publisher_is_dropped_not_trusted(bad: object) -> None:
    message = message_from_json({"channel": "c", "id": "e-1", "data": 1, "from": bad})

    assert message.publisher is None
