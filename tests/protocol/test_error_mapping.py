"""Exceptions written on the wire: HTTP status and body, and ``/ws`` error objects.

Every error class in :mod:`pushwire.errors` is found by looking at the module,
so a class added there is covered here without touching this file.
"""

from __future__ import annotations

import inspect
import logging

import orjson
import pytest

from pushwire import errors
from pushwire.errors import ClientError, InvalidChannelError, ServerError, UsageError
from pushwire.protocol.error_mapping import http_error, ws_error

WIRE_ERRORS = sorted(
    (
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if cls.__module__ == errors.__name__ and issubclass(cls, ClientError | ServerError)
    ),
    key=lambda cls: cls.__name__,
)


def test_the_error_classes_are_found() -> None:
    assert ClientError in WIRE_ERRORS
    assert InvalidChannelError in WIRE_ERRORS
    assert ServerError in WIRE_ERRORS


@pytest.mark.parametrize("error_class", WIRE_ERRORS, ids=lambda cls: cls.__name__)
def test_an_error_raised_on_purpose_keeps_its_status_code_and_message_over_http(
    error_class: type[ClientError | ServerError],
) -> None:
    status, body = http_error(error_class("what went wrong"), context="a test")

    assert status == error_class.http_status
    assert orjson.loads(body) == {"error": error_class.code, "message": "what went wrong"}


@pytest.mark.parametrize("error_class", WIRE_ERRORS, ids=lambda cls: cls.__name__)
def test_an_error_raised_on_purpose_keeps_its_code_and_message_over_ws(
    error_class: type[ClientError | ServerError],
) -> None:
    frame = ws_error(error_class("what went wrong"), 7, context="a test")

    assert orjson.loads(frame) == {
        "type": "error",
        "ref": 7,
        "code": error_class.code,
        "message": "what went wrong",
    }


@pytest.mark.parametrize("error_class", WIRE_ERRORS, ids=lambda cls: cls.__name__)
def test_client_errors_are_4xx_and_server_errors_5xx(
    error_class: type[ClientError | ServerError],
) -> None:
    expected = range(400, 500) if issubclass(error_class, ClientError) else range(500, 600)

    assert error_class.http_status in expected


def test_a_server_error_is_500_internal() -> None:
    status, body = http_error(ServerError("broker unreachable"), context="a test")

    assert status == 500
    assert orjson.loads(body) == {"error": "internal", "message": "broker unreachable"}


def test_an_unexpected_exception_is_a_generic_500_and_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    try:
        raise KeyError("secret-table")
    except KeyError as exc:
        status, body = http_error(exc, context="GET /api/history")

    assert status == 500
    assert orjson.loads(body) == {"error": "internal", "message": "internal server error"}
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "GET /api/history failed"
    assert record.exc_info is not None
    assert "Traceback" in caplog.text
    assert "secret-table" in caplog.text


def test_a_usage_error_reaching_a_peer_is_our_bug_and_logged_with_its_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frame = ws_error(UsageError("broker is not started"), "r1", context="Publish")

    assert orjson.loads(frame) == {
        "type": "error",
        "ref": "r1",
        "code": "internal",
        "message": "internal server error",
    }
    [record] = caplog.records
    assert record.getMessage() == "Publish failed: broker is not started"
    assert record.exc_info is not None


@pytest.mark.parametrize("ref", [1, "a-string-ref"])
def test_a_ws_error_echoes_the_ref(ref: int | str) -> None:
    frame = ws_error(InvalidChannelError("empty"), ref, context="a test")

    assert orjson.loads(frame)["ref"] == ref


def test_a_ws_error_without_a_ref_has_no_ref_field() -> None:
    frame = ws_error(InvalidChannelError("empty"), None, context="a test")

    assert orjson.loads(frame) == {"type": "error", "code": "invalid_channel", "message": "empty"}


def test_an_unexpected_exception_over_ws_says_nothing_of_itself() -> None:
    frame = ws_error(ValueError("secret-value"), 3, context="Subscribe")

    assert b"secret-value" not in frame
    assert orjson.loads(frame)["code"] == "internal"
