"""``pushwire serve --workers N``: the supervisor's mechanics with real processes, then real
pushwire workers on one port over a real Redis (skipped without one, unless
``PUSHWIRE_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pushwire.core.channels import ChannelRule
from pushwire.server.config import Config
from pushwire.server.workers import (
    INDEX_ENV,
    SETUP_ENV,
    RestartPolicy,
    Supervisor,
    setup_value,
    worker_setup,
)
from tests.conftest import API_KEY, recv_json, recv_until
from tests.server_process import ServerProcess, free_port
from tests.services import REDIS_URL, require_service
from tests.waiting import wait_until, wait_until_sync

KEY = {"X-API-Key": API_KEY}
FAST = RestartPolicy(first_delay_seconds=0.05, max_delay_seconds=0.2, stable_after_seconds=10)
# A stand-in worker: once ready for SIGTERM it says it started (a file named after its
# pid, holding its number), and on SIGTERM it says it stopped and exits 0.
WORKER = """
import os, signal, sys, time
from pathlib import Path
from typing import Any
here = Path(sys.argv[1])
def stop(*_):
    (here / f"stopped-{os.getpid()}").write_text("")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
(here / f"started-{os.getpid()}").write_text(os.environ["PUSHWIRE_WORKER_INDEX"])
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def supervisor_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="pushwire.workers")
    return caplog


def worker_command(tmp_path: Path, source: str = WORKER) -> list[str]:
    script = tmp_path / "worker.py"
    script.write_text(source)
    return [sys.executable, str(script), str(tmp_path)]


def stopped(tmp_path: Path) -> set[int]:
    return {int(path.name.split("-")[1]) for path in tmp_path.glob("stopped-*")}


def started(tmp_path: Path) -> dict[int, str]:
    """pid -> worker number, for every worker process that ever started."""
    return {
        int(path.name.split("-")[1]): path.read_text()
        for path in tmp_path.glob("started-*")
        if path.read_text()
    }


# Restart policy.


def test_restart_delay_doubles_up_to_the_cap_and_resets_after_a_stable_run() -> None:
    policy = RestartPolicy(first_delay_seconds=1, max_delay_seconds=30, stable_after_seconds=30)

    delays = [policy.next_delay(None, 0.1)]
    for _ in range(6):
        delays.append(policy.next_delay(delays[-1], 0.1))

    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert policy.next_delay(30, lived_seconds=31) == 1


# The supervisor, with stand-in workers.


async def test_a_crashing_worker_is_restarted_with_growing_delays(
    tmp_path: Path, supervisor_log: pytest.LogCaptureFixture
) -> None:
    supervisor = Supervisor(
        [sys.executable, "-c", "import sys; sys.exit(3)"], count=1, restart_policy=FAST
    )
    running = asyncio.create_task(supervisor.run(handle_signals=False))

    await wait_until(
        lambda: len(restarts(supervisor_log)) >= 4, message="four restarts", timeout_seconds=10
    )
    supervisor.stop()
    await asyncio.wait_for(running, 10)

    assert [delay for _, delay in restarts(supervisor_log)[:4]] == ["0.05", "0.1", "0.2", "0.2"]
    assert all(outcome == "exit code 3" for outcome, _ in restarts(supervisor_log))
    assert "all workers stopped" in supervisor_log.messages


def restarts(log: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    pattern = re.compile(r"worker 1 \(pid \d+\) exited with (.+) after .* restarting it in (\S+) s")
    return [(match[1], match[2]) for m in log.messages if (match := pattern.search(m))]


async def test_stop_sends_sigterm_to_every_worker_and_waits_for_them(
    tmp_path: Path, supervisor_log: pytest.LogCaptureFixture
) -> None:
    supervisor = Supervisor(worker_command(tmp_path), count=3, restart_policy=FAST)
    running = asyncio.create_task(supervisor.run(handle_signals=False))
    await wait_until(lambda: len(started(tmp_path)) == 3, message="three workers")

    supervisor.stop()
    await asyncio.wait_for(running, 10)

    assert sorted(started(tmp_path).values()) == ["1", "2", "3"]
    assert stopped(tmp_path) == set(started(tmp_path))
    stops = [m for m in supervisor_log.messages if "stopped with exit code 0" in m]
    assert len(stops) == 3
    assert not [m for m in supervisor_log.messages if "restarting" in m]


async def test_a_worker_that_ignores_sigterm_is_killed_after_the_timeout(
    tmp_path: Path, supervisor_log: pytest.LogCaptureFixture
) -> None:
    stubborn = WORKER.replace(
        "signal.signal(signal.SIGTERM, stop)", "signal.signal(signal.SIGTERM, signal.SIG_IGN)"
    )
    supervisor = Supervisor(worker_command(tmp_path, stubborn), count=1, stop_timeout_seconds=0.3)
    running = asyncio.create_task(supervisor.run(handle_signals=False))
    await wait_until(lambda: started(tmp_path), message="the worker")

    supervisor.stop()
    await asyncio.wait_for(running, 10)

    assert any("did not stop within 0.3 s: killing it" in m for m in supervisor_log.messages)
    assert any("stopped with signal SIGKILL" in m for m in supervisor_log.messages)


async def test_a_killed_worker_is_replaced_and_the_others_keep_running(
    tmp_path: Path, supervisor_log: pytest.LogCaptureFixture
) -> None:
    supervisor = Supervisor(worker_command(tmp_path), count=2, restart_policy=FAST)
    running = asyncio.create_task(supervisor.run(handle_signals=False))
    await wait_until(lambda: len(supervisor.pids()) == 2, message="two workers")
    before = supervisor.pids()

    os.kill(before[1], signal.SIGKILL)
    await wait_until(
        lambda: supervisor.pids().get(1) not in (None, before[1]), message="a new worker 1"
    )
    after = supervisor.pids()
    supervisor.stop()
    await asyncio.wait_for(running, 10)

    assert after[2] == before[2]
    assert any(
        f"worker 1 (pid {before[1]}) exited with signal SIGKILL" in m
        for m in supervisor_log.messages
    )
    assert f"worker 1 started (pid {after[1]})" in supervisor_log.messages


def test_workers_end_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    # The stand-in watches the lifeline as follow_supervisor does: end of file, it exits.
    orphan = WORKER.replace(
        "while True:\n    time.sleep(0.05)",
        "os.read(int(os.environ['PUSHWIRE_WORKER_LIFELINE']), 1)\nstop()",
    )
    command = worker_command(tmp_path, orphan)
    program = (
        "import asyncio, sys; from pushwire.server.workers import Supervisor; "
        f"asyncio.run(Supervisor({command!r}, count=2).run())"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", program])
    try:
        wait_until_files(tmp_path, "started-*", 2)

        supervisor.kill()
        supervisor.wait(10)

        wait_until_files(tmp_path, "stopped-*", 2)
    finally:
        supervisor.kill()
        supervisor.wait(10)


def wait_until_files(directory: Path, pattern: str, count: int) -> None:
    wait_until_sync(
        lambda: len(list(directory.glob(pattern))) == count,
        timeout_seconds=10,
        message=f"{count} files {pattern}",
    )


# What a worker is handed.


def test_a_worker_reads_back_exactly_the_configuration_it_was_given() -> None:
    config = Config(
        port=8123,
        api_key="k",
        broker="redis://127.0.0.1:6379/0",
        workers=3,
        allowed_origins=("https://a.example",),
        presence_ttl_seconds=12.5,
        channels=(ChannelRule(prefix="chat:", history_size=5, presence=True),),
    )
    environ = {SETUP_ENV: setup_value(config, demo_secret="s" * 40), INDEX_ENV: "2"}

    setup = worker_setup(environ)

    assert setup is not None
    assert setup.config == config
    assert setup.demo_secret == "s" * 40
    assert setup.index == 2
    assert worker_setup({}) is None


# The command line, no broker needed.


def test_more_than_one_worker_with_the_embedded_broker_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHWIRE_")}

    by_flag = run_serve(["--workers", "2", "--port", str(free_port())], env, tmp_path)
    by_env = run_serve(["--port", str(free_port())], {**env, "PUSHWIRE_WORKERS": "4"}, tmp_path)

    for result in (by_flag, by_env):
        assert result.returncode == 2
        assert "needs a broker shared by the processes" in result.stderr
        assert "--broker redis://" in result.stderr
        assert "Traceback" not in result.stderr


def test_workers_refuse_a_port_that_is_taken(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHWIRE_")}
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        # The port is checked before any broker is reached: this one is never contacted.
        result = run_serve(
            ["--workers", "2", "--broker", "redis://127.0.0.1:9/0", "--port", str(port)],
            env,
            tmp_path,
        )

    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def run_serve(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pushwire", "serve", "--memory", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


# Real workers on one port, sharing a real Redis.

Launch = Callable[..., ServerProcess]


@pytest.fixture
def cluster(tmp_path: Path, redis_prefix: Callable[[], str]) -> Iterator[Launch]:
    """``pushwire serve --workers N --broker REDIS``; each test its own key prefix."""
    require_service("Redis", 6379)
    started: list[ServerProcess] = []

    def launch(
        workers: int = 2, *args: str, api_key: str | None = API_KEY, any_port: bool = False
    ) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHWIRE_")}
        env.update(PUSHWIRE_BROKER_PREFIX=redis_prefix(), PUSHWIRE_DATA_DIR=str(tmp_path / "d"))
        if api_key is not None:
            env["PUSHWIRE_API_KEY"] = api_key
        flags = ["--workers", str(workers), "--broker", REDIS_URL, *(args or ["--no-demo"])]
        if any_port:
            flags += ["--port", "0"]  # after ServerProcess's own --port: this one counts
        process = ServerProcess(flags, env, tmp_path / f"cluster-{len(started)}.log")
        started.append(process)
        process.spawn()
        if any_port:
            process.port = chosen_port(process)
            process.url = f"http://127.0.0.1:{process.port}"
        process.wait_ready()
        wait_until_sync(
            lambda: len(workers_of(process)) == workers and answering(process) == workers,
            timeout_seconds=15,
            message=lambda: f"{workers} workers answering; the log:\n{process.log()}",
        )
        return process

    yield launch
    for process in started:
        process.kill()


def chosen_port(process: ServerProcess) -> int:
    """The port the supervisor says it chose for its workers."""
    pattern = re.compile(r"supervising \d+ workers on 127\.0\.0\.1:(\d+)")
    said = wait_until_sync(
        lambda: pattern.search(process.log()),
        timeout_seconds=10,
        message=lambda: f"the supervisor to name its port; the log:\n{process.log()}",
    )
    assert said is not None
    return int(said[1])


def workers_of(process: ServerProcess) -> set[int]:
    """The pids of the supervisor's living children (zombies excluded), from /proc."""
    assert process.process is not None
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if fields[0] != "Z" and int(fields[1]) == process.process.pid:
            children.add(int(stat.parent.name))
    return children


def answering(process: ServerProcess) -> int:
    """How many of the workers have answered ``GET /health`` (one new connection each try)."""
    pids = workers_of(process)
    seen = set()
    for _ in range(40):
        seen.add(httpx.get(process.url + "/health", timeout=5).json()["pid"])
        if seen >= pids:
            break
    return len(seen & pids)


def alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A client that opens a new connection for every request, so any worker may answer."""
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=5, limits=no_reuse, headers=KEY) as client:
        yield client


async def subscribers(process: ServerProcess, channel: str, count: int) -> list[ClientConnection]:
    sockets = []
    for _ in range(count):
        ws = await connect(f"ws://127.0.0.1:{process.port}/ws?channel={channel}")
        assert (await recv_json(ws))["type"] == "subscribed"
        sockets.append(ws)
    return sockets


async def publish(http: httpx.AsyncClient, process: ServerProcess, channel: str, data: Any) -> str:
    response = await http.post(
        process.url + "/api/publish", json={"channel": channel, "data": data}
    )
    assert response.status_code == 200, response.text
    cursor = response.json()["id"]
    assert isinstance(cursor, str)
    return cursor


async def publish_retrying_once(
    http: httpx.AsyncClient, process: ServerProcess, channel: str, data: Any
) -> str:
    """``publish`` while a worker is being replaced: a new connection was reset once in
    about 25 runs around a worker's death or start (cause not found yet; see the issue
    note). A second attempt lands on a live worker; a second failure fails the test."""
    try:
        return await publish(http, process, channel, data)
    except httpx.TransportError:
        await asyncio.sleep(0.2)
        return await publish(http, process, channel, data)


async def test_connections_to_the_one_port_land_on_every_worker_and_form_one_cluster(
    cluster: Launch, http: httpx.AsyncClient
) -> None:
    process = cluster(workers=2)
    pids = workers_of(process)
    sockets = await subscribers(process, "spread", 20)
    per_worker: dict[int, int] = {}

    async def all_counted() -> bool:
        health = (await http.get(process.url + "/health")).json()
        per_worker[health["pid"]] = health["connections"] - 1  # less the asking one
        return per_worker.keys() == pids and sum(per_worker.values()) == 20

    try:
        await wait_until(all_counted, message=lambda: f"20 connections on {pids}: {per_worker}")
        listing = (await http.get(process.url + "/api/channels")).json()
        cursor = await publish(http, process, "spread", {"n": 1})
        received = [await recv_until(ws, "message") for ws in sockets]
    finally:
        for ws in sockets:
            await ws.close()

    assert all(count > 0 for count in per_worker.values())  # both workers hold subscribers
    assert listing == {"channels": [{"channel": "spread", "subscribers": 20}]}
    assert {m["id"] for m in received} == {cursor}


def test_port_0_is_chosen_once_by_the_supervisor_for_every_worker(cluster: Launch) -> None:
    process = cluster(workers=2, any_port=True)

    code, log = process.stop()

    assert log.count(f"listening on http://127.0.0.1:{process.port} ") == 2
    assert code == 0


def test_a_generated_api_key_is_printed_once_and_valid_on_every_worker(cluster: Launch) -> None:
    process = cluster(workers=2, api_key=None)
    lines = [line for line in process.log().splitlines() if "generated one" in line]
    key = lines[0].rsplit(" ", 1)[1]

    # Each request on a new connection: that all sixteen reach one worker has odds of
    # 1 in 32,768.
    answers = [
        httpx.post(
            process.url + "/api/publish",
            json={"channel": "k", "data": n},
            headers={"X-API-Key": key},
            timeout=5,
        ).status_code
        for n in range(16)
    ]

    assert len(lines) == 1
    assert answers == [200] * 16


async def test_a_demo_login_on_one_worker_is_valid_on_every_other(
    cluster: Launch, http: httpx.AsyncClient
) -> None:
    # --memory: a single process would make a fresh demo secret, so each worker its own.
    process = cluster(2, "--memory")
    login = await http.post(process.url + "/demo/login", json={"name": "Ann", "avatar": "cat"})
    token = login.json()["token"]

    # Sixteen new connections: that all reach the worker that signed has odds of 1 in 32,768.
    replies = []
    for _ in range(16):
        url = f"ws://127.0.0.1:{process.port}/ws?channel=demo:lobby&token={token}"
        async with connect(url) as ws:
            replies.append((await recv_json(ws))["type"])

    assert login.status_code == 200
    assert replies == ["subscribed"] * 16


async def test_a_killed_worker_is_restarted_and_its_clients_recover_through_the_port(
    cluster: Launch, http: httpx.AsyncClient
) -> None:
    process = cluster(workers=2)
    victim = min(workers_of(process))
    sockets = await subscribers(process, "crash", 12)
    first = await publish(http, process, "crash", 1)
    for ws in sockets:
        assert (await recv_until(ws, "message"))["id"] == first

    os.kill(victim, signal.SIGKILL)
    await wait_until(lambda: victim not in workers_of(process), message="the worker to die")
    # The survivor answers and takes publications while the victim's successor starts.
    missed = [await publish_retrying_once(http, process, "crash", n) for n in (2, 3)]
    statuses = []

    async def replaced() -> bool:
        statuses.append((await http.get(process.url + "/health")).status_code)
        return len(workers_of(process)) == 2

    await wait_until(replaced, timeout_seconds=10, message="a new worker")
    kept, recoveries = 0, []
    for ws in sockets:
        try:
            live = [(await recv_until(ws, "message", 5))["id"] for _ in missed]
        except ConnectionClosed:
            # Cut by the crash: reconnect through the port, wherever it lands, from its cursor.
            recoveries.append(await resubscribe(process, "crash", first, len(missed)))
        else:
            kept += 1
            assert live == missed
        finally:
            await ws.close()

    assert kept > 0
    assert recoveries
    assert recoveries == [(True, missed)] * len(recoveries)
    assert set(statuses) == {200}
    log = process.log()
    assert re.search(rf"worker \d \(pid {victim}\) exited with signal SIGKILL", log)
    assert len(re.findall(r"worker \d started \(pid \d+\)", log)) == 3


async def resubscribe(
    process: ServerProcess, channel: str, cursor: str, count: int
) -> tuple[bool, list[str]]:
    """Subscribe again from ``cursor``: whether it recovered, and the next ``count`` ids."""
    async with connect(f"ws://127.0.0.1:{process.port}/ws") as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "channel": channel, "cursor": cursor}))
        subscribed = await recv_json(ws)
        return subscribed["recovered"], [(await recv_json(ws))["id"] for _ in range(count)]


async def test_sigterm_to_the_supervisor_closes_every_client_with_1001_and_exits_0(
    cluster: Launch,
) -> None:
    process = cluster(workers=2)
    pids = workers_of(process)
    sockets = await subscribers(process, "bye", 8)

    code, *closes = await asyncio.gather(process.terminate(), *(closed_code(ws) for ws in sockets))

    assert code == 0
    assert closes == [1001] * 8
    log = process.log()
    for pid in pids:
        assert f"(pid {pid}) stopped with exit code 0" in log
    assert "all workers stopped" in log
    assert "Traceback" not in log
    assert not any(alive(pid) for pid in pids)


async def test_workers_stop_by_themselves_when_the_supervisor_is_killed(cluster: Launch) -> None:
    process = cluster(workers=2)
    pids = workers_of(process)
    sockets = await subscribers(process, "orphan", 4)

    assert process.process is not None
    process.process.kill()
    closes = [await closed_code(ws) for ws in sockets]

    assert closes == [1001] * 4
    await wait_until(
        lambda: not any(alive(pid) for pid in pids),
        timeout_seconds=10,
        message="the orphaned workers to exit",
    )


async def closed_code(ws: ClientConnection) -> int:
    """The close code the server sent, after whatever frames came before it."""
    with pytest.raises(ConnectionClosed) as closed:
        await read_until_closed(ws)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code


async def read_until_closed(ws: ClientConnection) -> None:
    while True:
        await asyncio.wait_for(ws.recv(), 15)
