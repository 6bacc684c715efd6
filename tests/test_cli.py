"""``pushwire serve``, ``publish`` and ``token`` as real processes: start, stop, restart."""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import orjson
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import API_KEY
from tests.server_process import ServerProcess, free_port

Launch = Callable[..., ServerProcess]
KEY = {"X-API-Key": API_KEY}


def test_start_and_stop_log_one_line_each_with_the_address(server_process: Launch) -> None:
    process = server_process()

    code, stderr = process.stop(signal.SIGTERM)

    assert code == 0
    assert f"pushwire listening on http://127.0.0.1:{process.port}" in stderr
    assert f"pushwire stopped (http://127.0.0.1:{process.port})" in stderr
    assert "Traceback" not in stderr


def test_without_a_key_one_is_generated_printed_and_enforced(server_process: Launch) -> None:
    process = server_process("--memory", api_key=None)

    wrong = httpx.post(process.url + "/api/publish", json={"channel": "a", "data": 1}, headers=KEY)
    _, stderr = process.stop()

    line = next(line for line in stderr.splitlines() if "generated one" in line)
    generated = line.rsplit(" ", 1)[1]
    assert len(generated) >= 24
    assert wrong.status_code == 401


async def test_sigterm_closes_websockets_with_1001_and_ends_streams(
    server_process: Launch,
) -> None:
    process = server_process("--memory")
    async with (
        connect(f"ws://127.0.0.1:{process.port}/ws?channel=a") as ws,
        httpx.AsyncClient(base_url=process.url, timeout=10) as http,
        aconnect_sse(http, "GET", "/sse?channel=a") as source,
    ):
        await ws.recv()
        assert process.process is not None
        process.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        # The event stream ends instead of hanging.
        events = [event async for event in source.aiter_sse()]
    assert process.process is not None
    code = process.process.wait(timeout=10)
    process.stop()

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
    farewells = [event for event in events if event.data]
    assert [event.event for event in farewells] == ["pushwire.disconnect"]
    assert orjson.loads(farewells[0].data) == {
        "code": 1001,
        "reason": "server shutting down",
        "reconnect": True,
    }
    assert code == 0


async def test_history_survives_a_restart_and_recovery_spans_it(
    server_process: Launch, tmp_path: Path
) -> None:
    process = server_process("--data-dir", str(tmp_path / "d"))
    async with httpx.AsyncClient(base_url=process.url) as http:
        first = await http.post("/api/publish", json={"channel": "log", "data": 1}, headers=KEY)
        cursor = first.json()["id"]
        await http.post("/api/publish", json={"channel": "log", "data": 2}, headers=KEY)
    process.stop(signal.SIGKILL)  # no goodbye: what was committed must survive a crash

    process.start()
    async with httpx.AsyncClient(base_url=process.url) as http:
        third = await http.post("/api/publish", json={"channel": "log", "data": 3}, headers=KEY)
        answer = (await http.get(f"/poll?channel=log&cursor={cursor}&timeout=0")).json()

    assert [m["data"] for m in answer["messages"]] == [2, 3]
    assert "gaps" not in answer
    assert third.json()["id"].split("-")[0] == cursor.split("-")[0]  # same epoch


async def test_memory_history_restart_is_reported_as_a_gap(server_process: Launch) -> None:
    process = server_process("--memory")
    async with httpx.AsyncClient(base_url=process.url) as http:
        cursor = (
            await http.post("/api/publish", json={"channel": "m", "data": 1}, headers=KEY)
        ).json()["id"]
    process.stop()

    process.start()
    async with httpx.AsyncClient(base_url=process.url) as http:
        await http.post("/api/publish", json={"channel": "m", "data": 2}, headers=KEY)
        answer = (await http.get(f"/poll?channel=m&cursor={cursor}&timeout=0")).json()

    assert answer["gaps"] == ["m"]


def test_config_file_and_environment(tmp_path: Path, server_process: Launch) -> None:
    config = tmp_path / "pushwire.toml"
    config.write_text(
        'history = "memory"\nmax_message_bytes = 2048\n'
        '[[channels]]\nprefix = "ro:"\npublish = "none"\n'
    )
    process = server_process("--config", str(config))

    denied = httpx.post(process.url + "/publish", json={"channel": "ro:x", "data": 1})
    too_big = httpx.post(process.url + "/publish", json={"channel": "ok", "data": "x" * 4000})
    process.stop()

    assert denied.status_code == 403
    assert too_big.status_code == 413


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
@pytest.mark.parametrize(("interval", "trims"), [("0.2", True), ("0", False)])
def test_serve_trims_freed_memory_on_its_interval(
    tmp_path: Path, server_process: Launch, interval: str, trims: bool
) -> None:
    config = tmp_path / "pushwire.toml"
    config.write_text(f'history = "memory"\nmemory_trim_interval_seconds = {interval}\n')
    process = server_process("--config", str(config), "--log-level", "debug")

    time.sleep(1.0)
    code, stderr = process.stop(signal.SIGTERM)

    assert code == 0
    lines = [line for line in stderr.splitlines() if "malloc_trim returned" in line]
    assert (len(lines) >= 2) if trims else not lines, stderr[-2000:]


def test_bad_configuration_is_a_clear_message_not_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("max_message_bytes = 'lots'\n")
    env = {**os.environ, "PUSHWIRE_PORT": str(free_port())}

    result = subprocess.run(
        [sys.executable, "-m", "pushwire", "serve", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    unknown = subprocess.run(
        [sys.executable, "-m", "pushwire", "serve", "--memory"],
        env={**env, "PUSHWIRE_HISTORY": "sqlite", "PUSHWIRE_PING": "x", "PUSHWIRE_PORT": "99999"},
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert "max_message_bytes" in result.stderr
    assert "Traceback" not in result.stderr
    assert unknown.returncode == 2
    assert "port" in unknown.stderr


def test_port_in_use_is_a_clear_message(server_process: Launch) -> None:
    busy = server_process("--memory")

    result = subprocess.run(
        [sys.executable, "-m", "pushwire", "serve", "--memory", "--port", str(busy.port)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PUSHWIRE_API_KEY": "x"},
    )

    assert result.returncode == 2
    assert "cannot listen" in result.stderr
    assert "Traceback" not in result.stderr


def test_publish_command(server_process: Launch) -> None:
    process = server_process("--memory")
    env = {**os.environ, "PUSHWIRE_API_KEY": API_KEY, "PUSHWIRE_URL": process.url}

    ok = subprocess.run(
        [sys.executable, "-m", "pushwire", "publish", "news", '{"t": 1}', "--event", "e"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    bad_json = subprocess.run(
        [sys.executable, "-m", "pushwire", "publish", "news", "{nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    history = httpx.get(process.url + "/api/history?channel=news", headers=KEY).json()

    assert ok.returncode == 0
    assert orjson.loads(ok.stdout)["channel"] == "news"
    assert bad_json.returncode == 2
    assert "not valid JSON" in bad_json.stderr
    assert history["messages"][0]["data"] == {"t": 1}
    assert history["messages"][0]["event"] == "e"


TOKEN_SECRET = "a-test-secret-of-at-least-32-bytes!"


def _token_command(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """``pushwire token ...`` in an environment with no PUSHWIRE_* but ``environ``."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("PUSHWIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "pushwire", "token", *args],
        env={**clean, **environ},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_token_command_prints_a_token_any_jwt_library_accepts() -> None:
    result = _token_command(
        "ann",
        "--info",
        '{"name": "Ann"}',
        "--channel",
        "user:ann",
        "--channel",
        "chat:ops",
        "--ttl",
        "15m",
        PUSHWIRE_TOKEN_SECRET=TOKEN_SECRET,
    )

    claims = jwt.decode(result.stdout.strip(), TOKEN_SECRET, algorithms=["HS256"])
    assert result.returncode == 0
    assert claims["sub"] == "ann"
    assert claims["info"] == {"name": "Ann"}
    assert claims["channels"] == ["chat:ops", "user:ann"]
    assert claims["exp"] - claims["iat"] == 15 * 60


@pytest.mark.parametrize(
    ("ttl", "seconds"), [(None, 3600), ("90", 90), ("90s", 90), ("1h", 3600), ("7d", 7 * 86400)]
)
def test_token_command_reads_the_lifetime(ttl: str | None, seconds: int) -> None:
    result = _token_command(
        "ann", *(["--ttl", ttl] if ttl else []), PUSHWIRE_TOKEN_SECRET=TOKEN_SECRET
    )

    claims = jwt.decode(result.stdout.strip(), TOKEN_SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == seconds


def test_token_command_takes_the_secret_from_the_config_file_or_the_flag(tmp_path: Path) -> None:
    config = tmp_path / "pushwire.toml"
    config.write_text(f'token_secret = "{TOKEN_SECRET}"\n')

    from_file = _token_command("ann", "--config", str(config))
    from_flag = _token_command("bob", "--secret", TOKEN_SECRET)

    assert jwt.decode(from_file.stdout.strip(), TOKEN_SECRET, algorithms=["HS256"])["sub"] == "ann"
    assert jwt.decode(from_flag.stdout.strip(), TOKEN_SECRET, algorithms=["HS256"])["sub"] == "bob"


@pytest.mark.parametrize(
    ("args", "environ", "message"),
    [
        (["ann"], {}, "no token_secret configured"),
        (["ann", "--info", "{nope"], {"PUSHWIRE_TOKEN_SECRET": TOKEN_SECRET}, "not valid JSON"),
        (["ann", "--info", "[1]"], {"PUSHWIRE_TOKEN_SECRET": TOKEN_SECRET}, "JSON object"),
        (["ann", "--ttl", "1y"], {"PUSHWIRE_TOKEN_SECRET": TOKEN_SECRET}, "--ttl"),
        (["ann", "--ttl", "0"], {"PUSHWIRE_TOKEN_SECRET": TOKEN_SECRET}, "--ttl"),
        (["user:ann"], {"PUSHWIRE_TOKEN_SECRET": TOKEN_SECRET}, "user id has characters"),
        (["ann", "--channel", "a b"], {"PUSHWIRE_TOKEN_SECRET": TOKEN_SECRET}, "channel"),
    ],
    ids=[
        "no-secret",
        "bad-json",
        "info-not-object",
        "bad-ttl",
        "zero-ttl",
        "bad-user",
        "bad-channel",
    ],
)
def test_token_command_refuses_bad_input_with_a_message(
    args: list[str], environ: dict[str, str], message: str
) -> None:
    result = _token_command(*args, **environ)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
