"""Parsing /ws commands: no event loop, no sockets."""

from __future__ import annotations

import pytest

from pushwire.errors import ClientError
from pushwire.protocol.messages import Ping, Publish, Subscribe, Unsubscribe, parse_command


def test_commands_parse_into_dataclasses() -> None:
    assert parse_command('{"type":"ping"}') == Ping()
    assert parse_command('{"type":"subscribe","channel":"a","cursor":"x-1","ref":1}') == Subscribe(
        "a", "x-1", 1
    )
    assert parse_command('{"type":"unsubscribe","channel":"a","ref":"r"}') == Unsubscribe("a", "r")
    assert parse_command('{"type":"publish","channel":"a","data":{"k": [1, 2]}}') == Publish(
        "a", b'{"k":[1,2]}', None
    )


@pytest.mark.parametrize(
    ("frame", "code", "ref"),
    [
        ("{", "invalid_json", None),
        ('"text"', "bad_request", None),
        ('{"ref":5}', "bad_request", 5),
        ('{"type":"fly","ref":5}', "unknown_type", 5),
        ('{"type":"subscribe","ref":5}', "invalid_channel", 5),
        ('{"type":"subscribe","channel":"' + "a" * 256 + '"}', "invalid_channel", None),
        ('{"type":"publish","channel":"a","data":1,"event":""}', "bad_request", None),
        ('{"type":"ping","ref":true}', "bad_request", None),
        ('{"type":"publish","channel":"a","data":1,"event":"pushwire.gap"}', "bad_request", None),
    ],
)
def test_bad_commands_name_the_problem_and_keep_the_ref(frame: str, code: str, ref: object) -> None:
    with pytest.raises(ClientError) as caught:
        parse_command(frame)

    assert caught.value.code == code
    assert caught.value.ref == ref
