"""The ``/ws`` protocol of one connection, without an event loop or a socket.

Messages go in; the test plays the driver: it takes each action, reports an
outcome, and reads the replies the session would send.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from pushwire.errors import PermissionDeniedError
from pushwire.protocol.messages import Publish, Subscribe, Unsubscribe
from pushwire.protocol.session import Action, ClientSession


def _replies(session: ClientSession) -> list[Any]:
    return [orjson.loads(data) for data in session.data_to_send()]


def _subscribed(session: ClientSession, channel: str, ref: int) -> ClientSession:
    """``session`` after a subscribe to ``channel`` ran, its reply already taken."""
    session.receive_message(f'{{"type":"subscribe","channel":"{channel}","ref":{ref}}}')
    action = session.next_action()
    assert isinstance(action, Subscribe)
    session.subscribed(action, "e-0", None)
    session.data_to_send()
    return session


def test_a_ping_is_answered_at_once_when_nothing_runs() -> None:
    session = ClientSession(max_channels=10)

    session.receive_message('{"type":"ping","ref":4}')

    assert _replies(session) == [{"type": "pong", "ref": 4}]
    assert session.next_action() is None
    assert not session.is_busy


def test_a_ping_waits_behind_a_running_action_and_replies_stay_in_order() -> None:
    session = ClientSession(max_channels=10)
    session.receive_message('{"type":"subscribe","channel":"news","ref":1}')
    action = session.next_action()
    assert isinstance(action, Subscribe)

    session.receive_message('{"type":"ping","ref":2}')
    while_running = _replies(session)
    session.subscribed(action, "e-3", None)
    after = session.next_action()

    assert while_running == []
    assert after is None
    assert _replies(session) == [
        {"type": "subscribed", "ref": 1, "channel": "news", "cursor": "e-3"},
        {"type": "pong", "ref": 2},
    ]


def test_a_subscribe_is_handed_out_and_replied_to_once_reported() -> None:
    session = ClientSession(max_channels=10)

    session.receive_message(b'{"type":"subscribe","channel":"news","ref":"s1"}')
    action = session.next_action()
    before = _replies(session)
    assert isinstance(action, Subscribe)
    session.subscribed(action, "e-7", None)

    assert action == Subscribe("news", None, "s1")
    assert before == []
    assert _replies(session) == [
        {"type": "subscribed", "ref": "s1", "channel": "news", "cursor": "e-7"}
    ]
    assert session.subscriptions == {"news"}


@pytest.mark.parametrize("recovered", [True, False])
def test_a_subscribe_with_a_cursor_says_whether_it_recovered(recovered: bool) -> None:
    session = ClientSession(max_channels=10)
    session.receive_message('{"type":"subscribe","channel":"news","cursor":"e-2","ref":1}')
    action = session.next_action()
    assert isinstance(action, Subscribe)

    session.subscribed(action, "e-5", recovered)

    assert action.cursor == "e-2"
    assert _replies(session) == [
        {"type": "subscribed", "ref": 1, "channel": "news", "cursor": "e-5", "recovered": recovered}
    ]


def test_channels_from_the_url_are_subscribed_without_a_ref() -> None:
    session = ClientSession(max_channels=10)

    session.subscribe_from_url(["alerts", "news"])
    first = session.next_action()
    assert isinstance(first, Subscribe)
    session.subscribed(first, "a-0", None)
    second = session.next_action()
    assert isinstance(second, Subscribe)
    session.subscribed(second, "n-0", None)

    assert _replies(session) == [
        {"type": "subscribed", "channel": "alerts", "cursor": "a-0"},
        {"type": "subscribed", "channel": "news", "cursor": "n-0"},
    ]


def test_subscribing_twice_to_a_channel_is_refused_with_the_ref() -> None:
    session = _subscribed(ClientSession(max_channels=10), "news", ref=1)

    session.receive_message('{"type":"subscribe","channel":"news","ref":2}')
    action = session.next_action()

    assert action is None
    assert _replies(session) == [
        {
            "type": "error",
            "ref": 2,
            "code": "already_subscribed",
            "message": "already subscribed to 'news'",
        }
    ]


def test_a_subscribe_past_the_channel_limit_is_refused_with_the_ref() -> None:
    session = _subscribed(ClientSession(max_channels=1), "news", ref=1)

    session.receive_message('{"type":"subscribe","channel":"sport","ref":2}')
    action = session.next_action()

    assert action is None
    assert _replies(session) == [
        {
            "type": "error",
            "ref": 2,
            "code": "limit_exceeded",
            "message": "at most 1 channels per connection",
        }
    ]
    assert session.subscriptions == {"news"}


def test_unsubscribing_from_a_channel_never_subscribed_is_answered_without_an_action() -> None:
    session = ClientSession(max_channels=10)

    session.receive_message('{"type":"unsubscribe","channel":"news","ref":3}')
    action = session.next_action()

    assert action is None
    assert _replies(session) == [{"type": "unsubscribed", "ref": 3, "channel": "news"}]


def test_unsubscribing_from_a_subscribed_channel_is_an_action() -> None:
    session = _subscribed(ClientSession(max_channels=10), "news", ref=1)

    session.receive_message('{"type":"unsubscribe","channel":"news","ref":3}')
    action = session.next_action()
    assert isinstance(action, Unsubscribe)
    session.unsubscribed(action)

    assert _replies(session) == [{"type": "unsubscribed", "ref": 3, "channel": "news"}]
    assert session.subscriptions == set()


def test_a_publish_is_replied_to_with_the_publications_id() -> None:
    session = ClientSession(max_channels=10)

    session.receive_message('{"type":"publish","channel":"news","data":{"n":1},"ref":5}')
    action = session.next_action()
    assert isinstance(action, Publish)
    session.published(action, "e-9")

    assert action == Publish("news", b'{"n":1}', None, 5)
    assert _replies(session) == [{"type": "published", "ref": 5, "channel": "news", "id": "e-9"}]


def test_an_action_failing_with_a_client_error_replies_with_its_code() -> None:
    session = ClientSession(max_channels=10)
    session.receive_message('{"type":"publish","channel":"news","data":1,"ref":6}')
    action = session.next_action()
    assert action is not None

    session.failed(action, PermissionDeniedError("clients may not publish to 'news'"))

    assert _replies(session) == [
        {
            "type": "error",
            "ref": 6,
            "code": "permission_denied",
            "message": "clients may not publish to 'news'",
        }
    ]
    assert not session.is_busy


def test_an_unexpected_failure_is_logged_and_replied_to_without_its_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = ClientSession(max_channels=10)
    session.receive_message('{"type":"publish","channel":"news","data":1,"ref":7}')
    action = session.next_action()
    assert action is not None

    session.failed(action, RuntimeError("password=hunter2"))

    assert _replies(session) == [
        {"type": "error", "ref": 7, "code": "internal", "message": "internal server error"}
    ]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "Publish failed"
    assert record.exc_info is not None
    assert "hunter2" in caplog.text  # in the log, never on the wire


def test_only_one_action_is_out_at_a_time() -> None:
    session = ClientSession(max_channels=10)
    session.receive_message('{"type":"subscribe","channel":"a","ref":1}')
    session.receive_message('{"type":"subscribe","channel":"b","ref":2}')

    first = session.next_action()
    again = session.next_action()
    assert isinstance(first, Subscribe)
    session.subscribed(first, "a-0", None)
    second = session.next_action()

    assert again is first
    assert isinstance(second, Subscribe)
    assert second.channel == "b"


def test_reporting_an_action_other_than_the_one_handed_out_is_an_error() -> None:
    session = ClientSession(max_channels=10)
    session.receive_message('{"type":"subscribe","channel":"a","ref":1}')
    handed_out = session.next_action()

    with pytest.raises(RuntimeError, match="not the action handed out"):
        session.subscribed(Subscribe("a", None, 1), "a-0", None)  # equal, not the same

    assert session.next_action() is handed_out
    assert session.subscriptions == set()


def test_reporting_when_no_action_is_out_is_an_error() -> None:
    session = ClientSession(max_channels=10)

    with pytest.raises(RuntimeError, match="not the action handed out"):
        session.published(Publish("a", b"1", None), "a-1")


def test_malformed_json_is_answered_with_invalid_json() -> None:
    session = ClientSession(max_channels=10)

    session.receive_message("{not json")

    [reply] = _replies(session)
    assert reply["type"] == "error"
    assert reply["code"] == "invalid_json"
    assert reply["message"].startswith("frame is not valid JSON")
    assert "ref" not in reply
    assert session.next_action() is None


def test_an_invalid_command_is_answered_with_its_ref() -> None:
    session = ClientSession(max_channels=10)

    session.receive_message('{"type":"fly","ref":8}')

    assert _replies(session) == [
        {"type": "error", "ref": 8, "code": "unknown_type", "message": "unknown type 'fly'"}
    ]


def test_close_drops_waiting_commands_and_unsent_replies() -> None:
    session = ClientSession(max_channels=10)
    session.receive_message('{"type":"ping","ref":1}')
    session.receive_message('{"type":"subscribe","channel":"a","ref":2}')
    running = session.next_action()
    assert running is not None
    session.receive_message('{"type":"subscribe","channel":"b","ref":3}')
    session.receive_message('{"type":"ping","ref":4}')

    session.close()
    session.abandoned(running)

    assert session.next_action() is None
    assert session.data_to_send() == []
    assert not session.is_busy


class _NoPublishTo:
    """Permissions that refuse publishing to one channel."""

    def __init__(self, channel: str) -> None:
        self.channel = channel

    def check_subscribe(self, channel: str) -> None:
        pass

    def check_publish(self, channel: str) -> None:
        if channel == self.channel:
            raise PermissionDeniedError(f"no publishing to {channel}")


def _publish(channel: str, ref: int) -> str:
    return f'{{"type":"publish","channel":"{channel}","data":{ref},"ref":{ref}}}'


def test_publishes_in_a_row_are_handed_out_together_and_replied_to_in_order() -> None:
    session = ClientSession(max_channels=10)
    for ref in (1, 2, 3):
        session.receive_message(_publish("news", ref))

    actions = [session.next_action() for _ in range(4)]
    first, second, third, none_left = actions
    assert isinstance(first, Publish)
    assert isinstance(second, Publish)
    assert isinstance(third, Publish)
    session.published(third, "e-3")
    session.published(second, "e-2")
    before_the_first = _replies(session)
    session.published(first, "e-1")

    assert [a.ref for a in (first, second, third)] == [1, 2, 3]
    assert none_left is None
    assert before_the_first == []
    assert [reply["ref"] for reply in _replies(session)] == [1, 2, 3]
    assert not session.is_busy


def test_anything_after_publishes_waits_until_they_are_reported() -> None:
    session = ClientSession(max_channels=10, permissions=_NoPublishTo("closed"))
    session.receive_message(_publish("news", 1))
    session.receive_message('{"type":"ping","ref":2}')
    session.receive_message(_publish("closed", 3))  # refused, in its turn
    session.receive_message(_publish("news", 4))
    first = session.next_action()
    assert isinstance(first, Publish)

    held = session.next_action()
    session.failed(first, PermissionDeniedError("refused while running"))
    fourth = session.next_action()
    assert isinstance(fourth, Publish)
    session.published(fourth, "e-4")

    assert held is None
    assert [(reply["type"], reply["ref"]) for reply in _replies(session)] == [
        ("error", 1),
        ("pong", 2),
        ("error", 3),
        ("published", 4),
    ]


def test_a_refused_publish_holds_back_the_publishes_after_it() -> None:
    session = ClientSession(max_channels=10, permissions=_NoPublishTo("closed"))
    for channel, ref in (("news", 1), ("closed", 2), ("news", 3)):
        session.receive_message(_publish(channel, ref))
    first = session.next_action()
    assert isinstance(first, Publish)

    held = session.next_action()
    session.published(first, "e-1")
    third = session.next_action()
    assert isinstance(third, Publish)
    session.published(third, "e-3")

    assert held is None
    assert [(reply["type"], reply["ref"]) for reply in _replies(session)] == [
        ("published", 1),
        ("error", 2),
        ("published", 3),
    ]


def test_at_most_max_publishing_publishes_are_out_at_once() -> None:
    from pushwire.protocol.session import MAX_PUBLISHING

    session = ClientSession(max_channels=10)
    for ref in range(MAX_PUBLISHING + 1):
        session.receive_message(_publish("news", ref))

    out: list[Action] = []
    while (action := session.next_action()) is not None and len(out) <= MAX_PUBLISHING:
        out.append(action)
    assert isinstance(out[0], Publish)
    session.published(out[0], "e-0")
    one_more = session.next_action()

    assert len(out) == MAX_PUBLISHING
    assert isinstance(one_more, Publish)


def test_reporting_a_publish_twice_is_a_bug_of_the_driver() -> None:
    session = ClientSession(max_channels=10)
    session.receive_message(_publish("news", 1))
    session.receive_message(_publish("news", 2))
    first = session.next_action()
    assert isinstance(first, Publish)
    assert session.next_action() is not None
    session.published(first, "e-1")

    with pytest.raises(RuntimeError, match="not the action handed out"):
        session.published(first, "e-1")


def test_publishes_out_when_the_connection_closes_may_still_report() -> None:
    session = ClientSession(max_channels=10)
    session.receive_message(_publish("news", 1))
    session.receive_message(_publish("news", 2))
    first, second = session.next_action(), session.next_action()
    assert isinstance(first, Publish)
    assert isinstance(second, Publish)

    session.close()
    session.published(second, "e-2")
    session.abandoned(first)

    assert not session.is_busy
