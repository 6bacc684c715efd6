"""Server error codes become the matching exceptions, keeping the code."""

from __future__ import annotations

from pushwire.client.errors import error_from_code, error_from_response
from pushwire.errors import (
    ClientError,
    InvalidCursorError,
    NotFoundError,
    ServerError,
    UnauthorizedError,
)


def test_a_known_code_becomes_its_exception_class() -> None:
    error = error_from_code("invalid_cursor", "not a pushwire cursor")

    assert isinstance(error, InvalidCursorError)
    assert error.code == "invalid_cursor"
    assert "not a pushwire cursor" in str(error)


def test_an_unknown_code_is_kept_on_a_generic_error() -> None:
    client_side = error_from_code("brand_new", "from a newer server", 400)
    server_side = error_from_code("brand_new", "from a newer server", 503)

    assert type(client_side) is ClientError
    assert client_side.code == "brand_new"
    assert type(server_side) is ServerError
    assert server_side.http_status == 503


def test_an_http_error_body_gives_code_and_status() -> None:
    error = error_from_response(401, b'{"error": "unauthorized", "message": "wrong API key"}')

    assert isinstance(error, UnauthorizedError)
    assert (error.code, error.http_status) == ("unauthorized", 401)


def test_a_foreign_error_page_is_classified_by_status() -> None:
    assert isinstance(error_from_response(404, b"<html>Not Found</html>"), NotFoundError)
    gateway = error_from_response(502, b"Bad Gateway")
    assert isinstance(gateway, ServerError)
    assert gateway.http_status == 502
    assert "Bad Gateway" in str(gateway)
