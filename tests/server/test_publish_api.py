"""The HTTP API: publish, broadcast, history, channels, health; keys and bad bodies."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from pushwire import ChannelRule, Server
from tests.conftest import API_KEY, ServerFactory, api_publish, recv_json, ws_url
from tests.waiting import wait_until

KEY = {"X-API-Key": API_KEY}


async def test_publish_returns_increasing_cursors(http: httpx.AsyncClient) -> None:
    first = await api_publish(http, "n", 1)
    second = await api_publish(http, "n", 2)

    assert first != second
    assert first.split("-")[0] == second.split("-")[0]  # same epoch


async def test_broadcast_reaches_every_channel(server: Server, http: httpx.AsyncClient) -> None:
    async with connect(ws_url(server) + "?channel=a&channel=b") as ws:
        await recv_json(ws), await recv_json(ws)
        response = await http.post(
            "/api/broadcast", json={"channels": ["a", "b"], "data": "hi"}, headers=KEY
        )
        received = {(await recv_json(ws))["channel"], (await recv_json(ws))["channel"]}

    assert response.status_code == 200
    assert [r["channel"] for r in response.json()["results"]] == ["a", "b"]
    assert received == {"a", "b"}


async def test_history_newest_and_since(http: httpx.AsyncClient) -> None:
    ids = [await api_publish(http, "h", n) for n in range(5)]

    newest = (await http.get("/api/history?channel=h&limit=2", headers=KEY)).json()
    since = (await http.get(f"/api/history?channel=h&since={ids[1]}", headers=KEY)).json()

    assert [m["data"] for m in newest["messages"]] == [3, 4]
    assert newest["cursor"] == ids[-1]
    assert [m["id"] for m in since["messages"]] == ids[2:]
    assert since["gap"] is False


async def test_history_reports_a_gap_when_trimmed(make_server: ServerFactory) -> None:
    server = await make_server(channels=(ChannelRule(history_size=2),))
    async with httpx.AsyncClient(base_url=server.url) as http:
        ids = [await api_publish(http, "t", n) for n in range(5)]
        page = (await http.get(f"/api/history?channel=t&since={ids[0]}", headers=KEY)).json()

    assert page["gap"] is True
    assert [m["data"] for m in page["messages"]] == [3, 4]


async def test_a_cursor_offset_past_64_bits_is_invalid_not_a_500(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = await make_server(history="sqlite", data_dir=str(tmp_path))
    async with httpx.AsyncClient(base_url=server.url) as http:
        epoch = (await api_publish(http, "big", 1)).split("-")[0]

        response = await http.get(
            f"/api/history?channel=big&since={epoch}-9999999999999999999", headers=KEY
        )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_cursor"


@pytest.mark.parametrize("limit", ["%C2%B2", "-1", "1001", "1.5"])  # "²" is a digit to isdigit()
async def test_a_history_limit_that_is_not_a_plain_number_is_a_400(
    http: httpx.AsyncClient, limit: str
) -> None:
    response = await http.get(f"/history?channel=h&limit={limit}")

    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


async def test_channels_lists_subscriber_counts(server: Server, http: httpx.AsyncClient) -> None:
    async with (
        connect(ws_url(server) + "?channel=busy") as one,
        connect(ws_url(server) + "?channel=busy") as two,
    ):
        await recv_json(one), await recv_json(two)
        listing = (await http.get("/api/channels", headers=KEY)).json()

    assert listing == {"channels": [{"channel": "busy", "subscribers": 2}]}


async def test_health_needs_no_key(http: httpx.AsyncClient) -> None:
    response = await http.get("/health")

    assert response.json()["status"] == "ok"


@pytest.mark.parametrize(
    ("headers", "code"), [({}, "unauthorized"), ({"X-API-Key": "wrong"}, "unauthorized")]
)
async def test_api_needs_the_right_key(
    http: httpx.AsyncClient, headers: dict[str, str], code: str
) -> None:
    for method, url in [
        ("POST", "/api/publish"),
        ("GET", "/api/history?channel=a"),
        ("GET", "/api/channels"),
        ("POST", "/api/broadcast"),
    ]:
        response = await http.request(
            method, url, json={"channel": "a", "data": 1}, headers=headers
        )
        assert response.status_code == 401, url
        assert response.json()["error"] == code


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[1]", 400, "bad_request"),
        (b'{"channel":"a"}', 400, "bad_request"),
        (b'{"channel":"","data":1}', 400, "invalid_channel"),
        (b'{"channel":"a b","data":1}', 400, "invalid_channel"),
        (b'{"channel":"a","data":1,"event":7}', 400, "bad_request"),
        (b'{"channel":"' + b"x" * 300 + b'","data":1}', 400, "invalid_channel"),
    ],
)
async def test_bad_publish_bodies_are_named(
    http: httpx.AsyncClient, body: bytes, status: int, code: str
) -> None:
    response = await http.post("/api/publish", content=body, headers=KEY)

    assert response.status_code == status
    assert response.json()["error"] == code
    assert "Traceback" not in response.text


async def test_oversize_body_is_413(make_server: ServerFactory) -> None:
    server = await make_server(max_message_bytes=1000)
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            "/api/publish", json={"channel": "a", "data": "x" * 5000}, headers=KEY
        )
        still_fine = await http.get("/health")

    assert response.status_code == 413
    assert response.json()["error"] == "message_too_large"
    assert still_fine.status_code == 200


async def test_a_body_far_over_the_limit_still_gets_its_413_not_a_reset(
    make_server: ServerFactory,
) -> None:
    """The server answers at the limit, while the client is still sending: closing with
    the rest unread would reset the connection and lose the answer."""
    server = await make_server(max_message_bytes=1000)
    body = orjson.dumps({"channel": "a", "data": "x" * (8 << 20)})
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.post("/api/publish", content=body, headers=KEY)
        still_fine = await http.get("/health")

    assert response.status_code == 413
    assert response.json()["error"] == "message_too_large"
    assert still_fine.status_code == 200


async def test_client_publish_endpoint_follows_channel_rules(make_server: ServerFactory) -> None:
    server = await make_server(channels=(ChannelRule(prefix="ro:", publish="none"),))
    async with httpx.AsyncClient(base_url=server.url) as http:
        allowed = await http.post("/publish", json={"channel": "chat", "data": 1})
        denied = await http.post("/publish", json={"channel": "ro:news", "data": 1})
        backend = await http.post(
            "/api/publish", json={"channel": "ro:news", "data": 1}, headers=KEY
        )

    assert allowed.status_code == 200
    assert allowed.json()["channel"] == "chat"
    assert denied.status_code == 403
    assert denied.json()["error"] == "permission_denied"
    assert backend.status_code == 200


async def test_unknown_paths_are_404_json(http: httpx.AsyncClient) -> None:
    response = await http.get("/nope")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_in_process_publish_reaches_websocket_subscribers(server: Server) -> None:
    async with connect(ws_url(server) + "?channel=embedded") as ws:
        await recv_json(ws)
        publication = await server.publish("embedded", {"from": "python"}, event="note")
        message = await recv_json(ws)

    assert message["id"] == publication.position.cursor
    assert message["event"] == "note"


async def test_a_batch_is_published_in_order_and_answered_item_by_item(
    server: Server, http: httpx.AsyncClient
) -> None:
    batch = [{"channel": "a", "data": n} for n in range(3)] + [
        {"channel": "b", "data": "x", "event": "named"}
    ]
    async with connect(ws_url(server) + "?channel=a&channel=b") as ws:
        await recv_json(ws), await recv_json(ws)
        response = await http.post("/api/publish", json=batch, headers=KEY)
        received = [await recv_json(ws) for _ in range(4)]

    results = response.json()["results"]
    assert response.status_code == 200
    assert [r["channel"] for r in results] == ["a", "a", "a", "b"]
    assert [m["data"] for m in received] == [0, 1, 2, "x"]
    assert [m["id"] for m in received] == [r["id"] for r in results]
    assert received[3]["event"] == "named"


@pytest.mark.parametrize(
    ("batch", "says"),
    [
        ([], "non-empty"),
        ([{"channel": "a", "data": 1}, {"channel": "bad channel", "data": 2}], "publication 1"),
        ([{"channel": "a", "data": 1}, {"channel": "a"}], "publication 1"),
        ([{"channel": "a", "data": 1}, 7], "publication 1"),
        ([{"channel": "a", "data": n} for n in range(1001)], "at most 1000"),
    ],
)
async def test_a_bad_batch_is_refused_whole(
    http: httpx.AsyncClient, batch: list[object], says: str
) -> None:
    response = await http.post("/api/publish", json=batch, headers=KEY)
    history = (await http.get("/api/history?channel=a", headers=KEY)).json()

    assert response.status_code == 400
    assert says in response.json()["message"]
    assert history["messages"] == []  # not even the good items before the bad one


async def test_a_batch_needs_the_api_key(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/publish", json=[{"channel": "a", "data": 1}])

    assert response.status_code == 401


def _post(body: bytes, path: str = "/api/publish") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), API_KEY.encode(), len(body), body)
    )


async def _pipeline(server: Server, requests: list[bytes]) -> list[tuple[int, dict[str, Any]]]:
    """Send ``requests`` in one write on one connection; their answers, as they came."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"".join(requests))
    answers = []
    try:
        for _ in requests:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
            body = await asyncio.wait_for(reader.readexactly(length), 5)
            answers.append((int(head.split()[1]), orjson.loads(body)))
    finally:
        writer.close()
    return answers


@pytest.mark.parametrize("history", ["sqlite", "memory"])
async def test_pipelined_publications_are_answered_in_order_a_bad_one_alone_refused(
    make_server: ServerFactory, tmp_path: Path, history: str
) -> None:
    server = await make_server(history=history, data_dir=str(tmp_path))
    requests = [_post(b'{"channel": "%s", "data": %d}' % (b"ab"[n % 2 : n % 2 + 1], n))
                for n in range(40)]  # fmt: skip
    requests[7] = _post(b'{"channel": "a", "data": ')  # not JSON: refused, the rest go on
    requests[20] = _post(b'{"channel": "a", "data": 20}', path="/api/nothing")
    requests.append(b"GET /api/history?channel=a HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n"
                    % API_KEY.encode())  # fmt: skip

    answers = await _pipeline(server, requests)

    statuses = [status for status, _ in answers]
    assert statuses == [{7: 400, 20: 404}.get(n, 200) for n in range(40)] + [200]
    assert answers[7][1]["error"] == "invalid_json"
    published = [body for n, (_, body) in enumerate(answers[:40]) if n not in (7, 20)]
    assert [body["channel"] for body in published] == [
        "ab"[n % 2] for n in range(40) if n not in (7, 20)
    ]
    # The read came after the publications: it sees every one of them, in order.
    history_a = answers[40][1]
    expected_a = [n for n in range(0, 40, 2) if n != 20]
    assert [m["data"] for m in history_a["messages"]] == expected_a
    assert [m["id"] for m in history_a["messages"]] == [
        body["id"] for body in published if body["channel"] == "a"
    ]


async def test_pipelined_publications_of_a_client_that_left_are_kept_and_raise_nothing(
    make_server: ServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(history="sqlite", data_dir=str(tmp_path))
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"".join(_post(b'{"channel": "left", "data": %d}' % n) for n in range(40)))
    writer.transport.abort()  # gone before any answer: the commits find it closed

    async with httpx.AsyncClient(base_url=server.url) as http:

        async def all_stored() -> bool:
            page = await http.get("/api/history?channel=left", headers=KEY)
            return len(page.json()["messages"]) == 40

        await wait_until(all_stored, message="the 40 publications in history")
        page = (await http.get("/api/history?channel=left", headers=KEY)).json()

    assert [m["data"] for m in page["messages"]] == list(range(40))
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []
