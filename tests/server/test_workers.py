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
from pathlib import Path

import pytest

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
from tests.server_process import free_port
from tests.waiting import wait_until, wait_until_sync

FAST = RestartPolicy(first_delay_seconds=0.05, max_delay_seconds=0.2, stable_after_seconds=10)
# A stand-in worker: once ready for SIGTERM it says it started (a file named after its
# pid, holding its number), and on SIGTERM it says it stopped and exits 0.
WORKER = """
import os, signal, sys, time
from pathlib import Path
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
