"""``pushwire subscribe`` and ``pushwire publish``, run as real commands."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import orjson

from pushwire.client import AsyncApiClient

from .conftest import API_KEY, ServerLauncher

PUSHWIRE = [sys.executable, "-m", "pushwire"]


def command_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHWIRE_")}
    env.update(variables)
    return env


async def read_line(stream: asyncio.StreamReader, timeout_seconds: float = 10.0) -> str:
    line = await asyncio.wait_for(stream.readline(), timeout_seconds)
    assert line, "the command closed its output"
    return line.decode().rstrip("\n")


async def test_subscribe_prints_json_lines_until_sigterm(launch_server: ServerLauncher) -> None:
    server = launch_server()
    command = await asyncio.create_subprocess_exec(
        *PUSHWIRE,
        "subscribe",
        "cli:a",
        "cli:b",
        "--url",
        server.url,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=command_env(),
    )
    assert command.stdout is not None
    assert command.stderr is not None
    try:
        status: list[str] = []
        for _ in range(20):
            status.append(await read_line(command.stderr))
            if {"pushwire: subscribed to cli:a", "pushwire: subscribed to cli:b"} <= set(status):
                break
        async with AsyncApiClient(server.url, API_KEY) as api:
            first = await api.publish("cli:a", {"text": "héllo"}, event="greeting")
            second = await api.publish("cli:b", [1, 2])
        lines = [await read_line(command.stdout) for _ in range(2)]

        command.send_signal(signal.SIGTERM)
        _, rest_of_stderr = await asyncio.wait_for(command.communicate(), 10)
    finally:
        if command.returncode is None:
            command.kill()
            await command.communicate()

    assert command.returncode == 0
    assert sorted((orjson.loads(line) for line in lines), key=lambda m: m["channel"]) == [
        {"channel": "cli:a", "id": first.id, "event": "greeting", "data": {"text": "héllo"}},
        {"channel": "cli:b", "id": second.id, "data": [1, 2]},
    ]
    assert any("over websocket" in line for line in status)
    assert b"Traceback" not in rest_of_stderr


async def test_subscribe_exits_with_an_error_for_an_invalid_channel(
    launch_server: ServerLauncher,
) -> None:
    server = launch_server()
    command = await asyncio.create_subprocess_exec(
        *PUSHWIRE,
        "subscribe",
        "bad channel",
        "--url",
        server.url,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=command_env(),
    )
    try:
        stdout, stderr = await asyncio.wait_for(command.communicate(), 10)
    finally:
        if command.returncode is None:
            command.kill()
            await command.communicate()

    assert command.returncode == 1
    assert stdout == b""
    assert b"invalid_channel" in stderr


def test_publish_prints_the_answer(launch_server: ServerLauncher) -> None:
    server = launch_server()

    done = subprocess.run(
        [*PUSHWIRE, "publish", "news", '{"n": 1}', "--url", server.url, "--event", "e"],
        env=command_env(PUSHWIRE_API_KEY=API_KEY),
        capture_output=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    answer = orjson.loads(done.stdout)
    assert answer["channel"] == "news"
    assert isinstance(answer["id"], str)


def test_publish_with_a_wrong_key_reports_the_code(launch_server: ServerLauncher) -> None:
    server = launch_server()

    done = subprocess.run(
        [*PUSHWIRE, "publish", "news", "1", "--url", server.url, "--api-key", "nope"],
        env=command_env(),
        capture_output=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 1
    assert b"unauthorized" in done.stderr
    assert done.stdout == b""


def test_publish_without_any_key_is_a_usage_error() -> None:
    done = subprocess.run(
        [*PUSHWIRE, "publish", "news", "1", "--url", "http://127.0.0.1:1"],
        env=command_env(),
        capture_output=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 2
    assert b"PUSHWIRE_API_KEY" in done.stderr


async def test_subscribe_with_a_token_reads_a_channel_only_users_may(
    launch_server: ServerLauncher,
) -> None:
    secret = "a-test-secret-of-at-least-32-bytes!"
    rules = '[{"prefix": "staff:", "subscribe": "authenticated"}]'
    server = launch_server(env={"PUSHWIRE_TOKEN_SECRET": secret, "PUSHWIRE_CHANNELS": rules})
    minting = await asyncio.create_subprocess_exec(
        *PUSHWIRE, "token", "ann", "--ttl", "5m",
        stdout=subprocess.PIPE, env=command_env(PUSHWIRE_TOKEN_SECRET=secret),
    )  # fmt: skip
    minted, _ = await asyncio.wait_for(minting.communicate(), 30)
    token = minted.decode().strip()

    async def subscribe(*extra: str, **env: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *PUSHWIRE, "subscribe", "staff:news", "--url", server.url, *extra,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=command_env(**env),
        )  # fmt: skip

    anonymous = await subscribe()
    _, refused = await asyncio.wait_for(anonymous.communicate(), 10)
    by_flag: tuple[list[str], dict[str, str]] = (["--token", token], {})
    by_variable: tuple[list[str], dict[str, str]] = ([], {"PUSHWIRE_TOKEN": token})
    for flags, env in (by_flag, by_variable):
        command = await subscribe(*flags, **env)
        assert command.stdout is not None
        assert command.stderr is not None
        try:
            while "subscribed to staff:news" not in await read_line(command.stderr):
                pass
            async with AsyncApiClient(server.url, API_KEY) as api:
                sent = await api.publish("staff:news", {"n": 1})
            line = orjson.loads(await read_line(command.stdout))
            command.send_signal(signal.SIGTERM)
            await asyncio.wait_for(command.communicate(), 10)
        finally:
            if command.returncode is None:
                command.kill()
                await command.communicate()
        assert line == {"channel": "staff:news", "id": sent.id, "data": {"n": 1}}
        assert command.returncode == 0

    assert anonymous.returncode == 1
    assert b"cannot subscribe to staff:news" in refused
