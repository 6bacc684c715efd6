"""Fuzzing the ``/ws`` commands: ``parse_command`` and ``ClientSession.receive_message``.

Arbitrary text and bytes, and JSON objects whose every field has a random type, a
random size and random characters. Parsing either gives a command or raises a
ClientError; the session never raises, answers only with JSON (an error with a known
code, or a reply), and stays usable. Derandomized (see tests.fuzz.strategies).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from pushwire.errors import ClientError
from pushwire.protocol.messages import (
    Ping,
    PresenceQuery,
    Publish,
    Refresh,
    Subscribe,
    Unsubscribe,
    parse_command,
)
from pushwire.protocol.session import ClientSession
from tests.fuzz.strategies import CODES, FUZZ, channel_names, cursors, json_values, refs, texts

_TYPES = ["subscribe", "unsubscribe", "publish", "ping", "refresh", "presence"]
_REPLY_TYPES = {"pong", "error", "subscribed", "unsubscribed", "published", "refreshed"}

# Raw JSON that strategies over Python values cannot build: huge numbers, deep nesting,
# duplicate keys, lone surrogates, a BOM.
_RAW = st.sampled_from(
    [
        b'{"type":"ping","ref":' + b"9" * 400 + b"}",
        b'{"type":"ping","ref":1e999}',
        b'{"type":"ping","ref":-0}',
        b"[" * 2000 + b"]" * 2000,
        b'{"type":"ping","type":"subscribe","channel":"a"}',
        b'{"type":"subscribe","channel":"\\ud800"}',
        b'\xef\xbb\xbf{"type":"ping"}',
        b'{"type":"ping"}\x00',
        b'{"type":"publish","channel":"a","data":NaN}',
        b'{"type":"ping","ref":"\xff"}',
    ]
)


@st.composite
def commands(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object shaped like a command, each field of any type (or missing)."""
    frame: dict[str, Any] = {}
    if draw(st.booleans()):
        frame["type"] = draw(st.one_of(st.sampled_from(_TYPES), json_values))
    for name, values in [
        ("channel", st.one_of(channel_names, json_values)),
        ("cursor", st.one_of(cursors, json_values)),
        ("ref", refs),
        ("data", json_values),
        ("event", st.one_of(texts, json_values)),
        ("token", st.one_of(texts, json_values)),
    ]:
        if draw(st.booleans()):
            frame[name] = draw(values)
    return frame


_frames = st.one_of(
    commands().map(orjson.dumps),
    commands().map(lambda frame: orjson.dumps(frame).decode()),
    st.binary(max_size=200),
    texts,
    json_values.map(orjson.dumps),
    _RAW,
)


@settings(FUZZ, max_examples=300)
@given(_frames)
def test_parse_command_returns_a_command_or_raises_a_client_error(frame: str | bytes) -> None:
    refusal: ClientError | None = None
    try:
        command = parse_command(frame)
    except ClientError as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.code in CODES
        assert refusal.ref is None or isinstance(refusal.ref, str | int)
        return

    assert isinstance(command, Subscribe | Unsubscribe | Publish | Ping | Refresh | PresenceQuery)
    if isinstance(command, Publish):
        orjson.loads(command.data)  # re-encoded payloads are JSON


@settings(FUZZ, max_examples=150)
@given(st.lists(_frames, min_size=1, max_size=5))
def test_the_session_answers_any_frames_with_json_and_stays_usable(
    frames: list[str | bytes],
) -> None:
    session = ClientSession(max_channels=4, max_publishes_per_second=100)

    for frame in frames:
        session.receive_message(frame)
        _run_actions(session)
    session.receive_message('{"type":"ping","ref":"last"}')
    _run_actions(session)

    replies = [orjson.loads(payload) for payload in session.data_to_send()]
    assert all(isinstance(reply, dict) and reply["type"] in _REPLY_TYPES for reply in replies)
    assert all(reply["code"] in CODES for reply in replies if reply["type"] == "error")
    assert replies[-1] == {"type": "pong", "ref": "last"}
    assert session.disconnect is None


def _run_actions(session: ClientSession) -> None:
    """Play the driver: every action succeeds, as the node would let it."""
    while (action := session.next_action()) is not None:
        if isinstance(action, Subscribe):
            session.subscribed(action, "00000000-0", None if action.cursor is None else False)
        elif isinstance(action, Unsubscribe):
            session.unsubscribed(action)
        elif isinstance(action, Publish):
            session.published(action, "00000000-1")
        elif isinstance(action, Refresh):
            session.refreshed(action)
        elif isinstance(action, PresenceQuery):
            session.presence_answered(action, [])
        else:
            pytest.fail(f"unexpected action {action!r}")
