"""The wire codes in errors.py: valid close codes, and the same tables as the docs.

Codes and classes are found by looking at the module, and docs/protocol.md is
read as Markdown, so neither can gain an entry the other lacks.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from pushwire import errors
from pushwire.errors import ClientError, Disconnect, ServerError

PROTOCOL_DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"

DISCONNECTS: dict[str, Disconnect] = {
    name: value for name, value in vars(errors).items() if isinstance(value, Disconnect)
}
# Every close code pushwire sends: the Disconnect reasons, invalid_utf8()'s, and the one
# the websockets library sends for us.
CLOSE_CODES: dict[str, int] = {
    **{name: reason.code for name, reason in DISCONNECTS.items()},
    "invalid_utf8": errors.invalid_utf8("detail").code,
    "CLOSE_MESSAGE_TOO_BIG": errors.CLOSE_MESSAGE_TOO_BIG,
}


def _code_owners() -> dict[str, type[ClientError | ServerError]]:
    """Each wire code, and the class that introduces it (its subclasses may change the status)."""
    owners: dict[str, type[ClientError | ServerError]] = {}
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if cls.__module__ == errors.__name__ and issubclass(cls, ClientError | ServerError):
            owner = owners.get(cls.code)
            if owner is None or issubclass(owner, cls):
                owners[cls.code] = cls
    return owners


def _table_rows(heading: str) -> list[list[str]]:
    """The cells of the table rows in the docs' section ``heading`` (header rows left out)."""
    section: list[str] = []
    inside = False
    for line in PROTOCOL_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            inside = line.lstrip("#").strip() == heading
        elif inside and line.startswith("| "):
            section.append(line)
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section]
    return [row for row in rows if row[0].startswith("`") or row[0].isdigit()]


def test_the_disconnect_reasons_are_found() -> None:
    assert {"GOING_AWAY", "INTERNAL_ERROR", "PING_TIMEOUT", "SLOW_CONSUMER"} <= set(DISCONNECTS)


@pytest.mark.parametrize(("name", "code"), sorted(CLOSE_CODES.items()))
def test_close_codes_are_ones_rfc_6455_lets_a_server_send(name: str, code: int) -> None:
    # §7.4.1: 1004 is reserved; 1005 and 1006 must never be sent in a close frame.
    # §7.4.2: 4000-4999 are for private use.
    sendable = set(range(1000, 1012)) - {1004, 1005, 1006} | set(range(4000, 5000))

    assert code in sendable, name


def test_every_close_reason_has_a_code_of_its_own() -> None:
    codes = list(CLOSE_CODES.values())

    assert len(set(codes)) == len(codes), CLOSE_CODES


def test_every_close_reason_has_a_reason_text() -> None:
    empty = [name for name, reason in DISCONNECTS.items() if not reason.reason]

    assert empty == []


def test_the_docs_errors_table_lists_every_code_with_its_http_status() -> None:
    documented = {row[0].strip("`"): int(row[1]) for row in _table_rows("Errors")}

    in_code = {code: cls.http_status for code, cls in _code_owners().items()}

    assert documented == in_code


def test_the_docs_close_codes_table_lists_every_close_code() -> None:
    documented = {int(row[0]) for row in _table_rows("Keep-alive and closing")}

    missing = sorted(set(CLOSE_CODES.values()) - documented)

    assert missing == [], f"close codes sent but not in {PROTOCOL_DOC.name}"


@pytest.mark.parametrize("name", sorted(DISCONNECTS))
def test_a_reconnect_is_advised_only_for_codes_the_docs_say_to_reconnect_after(name: str) -> None:
    advice = {int(row[0]): row[-1] for row in _table_rows("Keep-alive and closing")}
    reason = DISCONNECTS[name]

    says_reconnect = advice[reason.code].startswith("yes")

    assert says_reconnect == reason.reconnect, advice[reason.code]
