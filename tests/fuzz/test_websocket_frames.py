"""Fuzzing WebSocket frames against a running server, over raw upgraded sockets.

After a real handshake, random frames: any opcode (reserved ones too), fin and rsv
bits, masked or not, lengths that lie, truncated frames, invalid UTF-8 in text,
fragments interleaved with control frames and valid commands, oversized messages.
The server answers with well-formed frames and closes, if it closes, with 1000, the
client's own code, 1002, 1007, 1009 or a 4xxx code; the witness subscriber is
unharmed and nothing is logged at ERROR. Derandomized (see tests.fuzz.strategies).
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from hypothesis import given, settings, strategies as st
from websockets.asyncio.client import ClientConnection
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side, State

from pushwire import Server
from tests.fuzz.conftest import ErrorRecords, check_witness
from tests.fuzz.strategies import CODES, FUZZ, json_values

_UPGRADE = (
    b"GET /ws?channel=fuzz HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
_SERVER_CLOSE_CODES = {1000, 1002, 1007, 1009}
_REPLY_TYPES = {"pong", "error", "subscribed", "unsubscribed", "published", "message", "presence"}


def _frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length: int | None = None,
) -> bytes:
    """One frame byte for byte (RFC 6455 §5.2), with nothing checked: ``length`` may lie."""
    declared = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask else 0
    if declared < 126:
        head += bytes([mask_bit | declared])
    elif declared < 65536:
        head += bytes([mask_bit | 126]) + declared.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + declared.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = b"\x37\xfa\x21\x3d"  # fixed: the same bytes every run, for hypothesis
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def _command(value: object) -> bytes:
    return _frame(Opcode.TEXT, orjson.dumps(value))


_commands = st.one_of(
    st.builds(lambda ref: {"type": "ping", "ref": ref}, st.integers(0, 99)),
    st.just({"type": "subscribe", "channel": "fuzz:a"}),
    st.builds(lambda data: {"type": "publish", "channel": "fuzz", "data": data}, json_values),
    st.just({"type": "presence", "channel": "fuzz"}),
).map(_command)
_random_frames = st.builds(
    _frame,
    st.integers(0, 15),
    st.binary(max_size=200),
    fin=st.booleans(),
    rsv=st.integers(0, 7),
    mask=st.booleans(),
    length=st.one_of(st.none(), st.integers(0, 300), st.just(2**63)),
)
_close_frames = st.builds(
    lambda code, reason: _frame(Opcode.CLOSE, code.to_bytes(2, "big") + reason),
    st.sampled_from([1000, 1001, 1005, 1006, 1015, 999, 2999, 3000, 4000, 4999, 5000, 65535]),
    st.one_of(st.binary(max_size=10), st.just(b"\xff\xfe"), st.just(b"x" * 124)),
)


@st.composite
def fragmented(draw: st.DrawFn) -> bytes:
    """A command or invalid UTF-8 in fragments, with control frames (and maybe data) between."""
    payload = draw(
        st.one_of(
            _commands.map(lambda frame: b'{"type":"ping","ref":"frag"}'),
            st.just(b'{"type":"ping","data":"\xc3"}'),  # a character cut across fragments
            st.just(b'{"type":"ping","data":"\xed\xa0\x80"}'),  # a surrogate: not UTF-8
            st.binary(max_size=50),
        )
    )
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    first = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY]))
    out = b""
    for index, piece in enumerate(pieces):
        out += _frame(first if index == 0 else Opcode.CONT, piece, fin=index == len(pieces) - 1)
        out += draw(
            st.sampled_from(
                [
                    b"",
                    _frame(Opcode.PING, b"p"),
                    _frame(Opcode.PONG, b""),
                    _command({"type": "ping"}),
                ]
            )
        )
    return out


_pieces = st.one_of(
    _commands,
    _random_frames,
    _close_frames,
    fragmented(),
    st.just(_frame(Opcode.TEXT, b"\xff\xfe not UTF-8")),
    st.just(_frame(Opcode.TEXT, b"x" * 5000)),  # over max_message_bytes (4096)
    st.just(_frame(Opcode.PING, b"x" * 126)),  # a control frame over 125 bytes
    st.binary(min_size=1, max_size=20),  # not a frame at all
)


async def _session(server: Server, data: bytes, *, wait_for: bytes = b"") -> bytes:
    """Upgrade, send ``data`` and a final ping, then a close; read until the server closes.

    With ``wait_for``, the close waits until those bytes came back (replies to commands
    still queued behind others are dropped by a close, as they should be).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    deadline = time.monotonic() + 5
    received = b""
    try:
        writer.write(_UPGRADE)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 ")
        writer.write(data + _command({"type": "ping", "ref": "end"}))
        while wait_for not in received:
            chunk = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
            if not chunk:
                break
            received += chunk
        writer.write(_frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))
        writer.write_eof()
        while chunk := await asyncio.wait_for(reader.read(65536), deadline - time.monotonic()):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server neither answered nor closed: {data[:200]!r}")
    finally:
        writer.close()
    return received


def _check_frames(received: bytes, sent: bytes) -> None:
    """What the server sent is well-formed frames: JSON replies, then perhaps a fair close."""
    client = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
    client.receive_data(received)
    client.receive_eof()
    # An EOF without a close frame is fair after the client's EOF cut a frame short.
    problem = client.parser_exc
    assert problem is None or isinstance(problem, EOFError), f"server frames: {problem!r}"
    for frame in client.events_received():
        assert isinstance(frame, Frame)
        if frame.opcode is Opcode.TEXT:
            reply = orjson.loads(frame.data)
            assert reply["type"] in _REPLY_TYPES
            assert reply["type"] != "error" or reply["code"] in CODES
            assert reply.get("code") != "internal", reply
        elif frame.opcode is Opcode.CLOSE:
            code = Close.parse(frame.data).code if frame.data else 1005
            echoed = code.to_bytes(2, "big") in sent  # a close the client began: its own code
            assert code in _SERVER_CLOSE_CODES or 4000 <= code < 5000 or echoed, code


@settings(FUZZ, max_examples=200, report_multiple_bugs=False)
@given(st.lists(_pieces, min_size=1, max_size=6).map(b"".join))
async def test_any_frames_get_frames_or_a_fair_close_and_harm_no_one(
    fuzz_server: Server,
    witness: ClientConnection,
    error_records: ErrorRecords,
    data: bytes,
) -> None:
    error_records.records.clear()  # one example's records only: each example shrinks alone

    received = await _session(fuzz_server, data)

    _check_frames(received, data)
    await check_witness(fuzz_server, witness)
    error_records.check()


@settings(FUZZ, max_examples=50)
@given(st.lists(st.one_of(_commands, fragmented().filter(lambda f: b"frag" in f)), max_size=5))
async def test_valid_traffic_with_interleaved_control_frames_is_answered_to_the_end(
    fuzz_server: Server, error_records: ErrorRecords, frames: list[bytes]
) -> None:
    error_records.records.clear()

    received = await _session(fuzz_server, b"".join(frames), wait_for=b'"ref":"end"')

    client = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
    client.receive_data(received)
    texts = [
        orjson.loads(frame.data)
        for frame in client.events_received()
        if isinstance(frame, Frame) and frame.opcode is Opcode.TEXT
    ]
    assert {"type": "pong", "ref": "end"} in texts
    error_records.check()
