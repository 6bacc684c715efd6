"""``pushwire serve --workers N``: N processes on one port, and the supervisor that keeps them.

Each worker is ``python -m pushwire serve`` handed the supervisor's resolved configuration
in its environment; it binds the port itself with ``SO_REUSEPORT`` and the kernel spreads
new connections over the workers. Workers share nothing but the broker, which is why more
than one needs Redis or NATS. The supervisor serves no client: it starts, restarts and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import orjson

from pushwire.errors import UsageError
from pushwire.server.auth import ApiKey
from pushwire.server.config import Config, load_config
from pushwire.server.demo import demo_secret

__all__ = [
    "INDEX_ENV",
    "LIFELINE_ENV",
    "SETUP_ENV",
    "RestartPolicy",
    "Supervisor",
    "WorkerSetup",
    "follow_supervisor",
    "run_workers",
    "setup_value",
    "worker_setup",
]

logger = logging.getLogger("pushwire.workers")

#: The worker's configuration and shared secrets, as JSON (set by :func:`run_workers`).
SETUP_ENV = "PUSHWIRE_WORKER_SETUP"
#: The worker's number, 1 to N (set by :class:`Supervisor`).
INDEX_ENV = "PUSHWIRE_WORKER_INDEX"
#: A pipe the supervisor holds open: end of file means the supervisor is gone.
LIFELINE_ENV = "PUSHWIRE_WORKER_LIFELINE"


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How long to wait before restarting a worker that exited.

    The delay doubles from ``first_delay_seconds`` up to ``max_delay_seconds``, so a worker
    that crashes at start does not spin; a worker that lived ``stable_after_seconds`` has
    shown the crash was not a loop, and its restart waits only the first delay again.
    """

    first_delay_seconds: float = 1.0
    max_delay_seconds: float = 30.0
    stable_after_seconds: float = 30.0

    def next_delay(self, previous_seconds: float | None, lived_seconds: float) -> float:
        """The wait before the next start, after waiting ``previous_seconds`` before the last
        (None: the worker had never been restarted) and its living ``lived_seconds``."""
        if previous_seconds is None or lived_seconds >= self.stable_after_seconds:
            return self.first_delay_seconds
        return min(previous_seconds * 2, self.max_delay_seconds)


class Supervisor:
    """Keeps ``count`` copies of ``command`` running until :meth:`stop` (or SIGTERM/SIGINT).

    Each copy gets :data:`INDEX_ENV` (its number) and :data:`LIFELINE_ENV` (the read end of
    a pipe whose write end only the supervisor holds) besides ``env``. A copy that exits is
    started again after the :class:`RestartPolicy`'s delay. On stop every running copy gets
    SIGTERM and ``stop_timeout_seconds`` to exit; then SIGKILL.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        count: int,
        env: Mapping[str, str] | None = None,
        restart_policy: RestartPolicy = RestartPolicy(),
        stop_timeout_seconds: float = 10.0,
    ) -> None:
        if count < 1:
            raise UsageError("a supervisor needs at least one worker")
        self.command = list(command)
        self.count = count
        self.env = dict(os.environ if env is None else env)
        self.restart_policy = restart_policy
        self.stop_timeout_seconds = stop_timeout_seconds
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()

    def pids(self) -> dict[int, int]:
        """Worker number -> pid, for the workers running now."""
        return {
            index: process.pid
            for index, process in self._processes.items()
            if process.returncode is None
        }

    def stop(self) -> None:
        """Ask every worker to stop; :meth:`run` returns once they have."""
        if not self._stopping.is_set():
            logger.info("stopping %d worker(s)", len(self.pids()))
        self._stopping.set()

    async def run(self, *, handle_signals: bool = True) -> None:
        """Run the workers until stopped; with ``handle_signals``, SIGTERM and SIGINT stop."""
        loop = asyncio.get_running_loop()
        lifeline, held = os.pipe()
        signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.stop)
        try:
            async with asyncio.TaskGroup() as group:
                for index in range(1, self.count + 1):
                    group.create_task(self._keep_running(index, lifeline))
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            os.close(lifeline)
            os.close(held)
        logger.info("all workers stopped")

    async def _keep_running(self, index: int, lifeline: int) -> None:
        delay: float | None = None
        env = {**self.env, INDEX_ENV: str(index), LIFELINE_ENV: str(lifeline)}
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                process = await asyncio.create_subprocess_exec(
                    *self.command, env=env, pass_fds=(lifeline,)
                )
            except OSError as exc:
                outcome = f"could not start ({exc})"
            else:
                self._processes[index] = process
                logger.info("worker %d started (pid %d)", index, process.pid)
                code = await self._wait_or_stop(index, process)
                del self._processes[index]
                outcome = f"(pid {process.pid}) exited with {_status(code)}"
            if self._stopping.is_set():
                return
            lived = time.monotonic() - started
            delay = self.restart_policy.next_delay(delay, lived)
            logger.warning(
                "worker %d %s after %.1f s; restarting it in %g s", index, outcome, lived, delay
            )
            # A stop during the back-off ends it at once.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _wait_or_stop(self, index: int, process: asyncio.subprocess.Process) -> int:
        """The worker's exit status: when it exits by itself, or once stopped if asked to."""
        exited = asyncio.ensure_future(process.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if exited.done():
            return exited.result()
        # Forward the stop: the worker closes its clients with 1001 so they reconnect.
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(exited, self.stop_timeout_seconds)
        except TimeoutError:
            logger.warning(
                "worker %d (pid %d) did not stop within %g s: killing it",
                index,
                process.pid,
                self.stop_timeout_seconds,
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            code = await process.wait()
        logger.info("worker %d (pid %d) stopped with %s", index, process.pid, _status(code))
        return code


def _status(code: int) -> str:
    """``exit code 3`` or ``signal SIGKILL``, as a log says it."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"exit code {code}"


# The pushwire side: what the supervisor hands its workers, and how a worker reads it.


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """What a worker process is given by its supervisor (see :func:`worker_setup`)."""

    index: int
    #: The supervisor's configuration, resolved once: every worker serves the same one,
    #: with the same port (even if 0 was asked for) and the same API key.
    config: Config
    #: The demo chat's token secret, so a login on one worker is valid on every other.
    demo_secret: str | None
    #: The pipe to watch (:func:`follow_supervisor`); None when not started by a supervisor.
    lifeline_fd: int | None


def run_workers(config: Config, *, stop_timeout_seconds: float = 10.0) -> int:
    """``pushwire serve`` with ``workers > 1``: supervise the workers until SIGTERM or SIGINT.

    What each process would otherwise make up for itself is decided here once and given
    to all: the port (when 0), the API key (printed once when generated) and the demo's
    secret. Returns the exit status (0 once every worker has stopped).

    Raises:
        UsageError: if the port is taken (a worker could never listen on it).
    """
    port = _checked_port(config.host, config.port)
    api_key = ApiKey(config.api_key)
    if api_key.generated:
        print(
            f"pushwire: no API key configured; generated one: {api_key.value}",
            file=sys.stderr,
        )
    secret = None
    if config.demo:
        # Made before any worker starts: workers making it at once would race on the file.
        secret = demo_secret(config.data_dir, persistent=config.history != "memory")
    setup = setup_value(config.replace(port=port, api_key=api_key.value), demo_secret=secret)
    supervisor = Supervisor(
        [sys.executable, "-m", "pushwire", "serve"],
        count=config.workers,
        env={**os.environ, SETUP_ENV: setup},
        stop_timeout_seconds=stop_timeout_seconds,
    )
    logger.info("pushwire supervising %d workers on %s:%d", config.workers, config.host, port)
    asyncio.run(supervisor.run())
    return 0


def setup_value(config: Config, *, demo_secret: str | None) -> str:
    """What :data:`SETUP_ENV` holds for workers of ``config``: JSON, read by :func:`worker_setup`.

    Secrets travel in the environment, never in the command line that ``ps`` shows.
    """
    return orjson.dumps({"config": dataclasses.asdict(config), "demo_secret": demo_secret}).decode()


def worker_setup(environ: Mapping[str, str] = os.environ) -> WorkerSetup | None:
    """What the supervisor gave this process, or None if it is no worker.

    The configuration is taken from the supervisor alone: the worker's own file,
    variables and flags are not read again, so all workers serve one configuration.
    """
    raw = environ.get(SETUP_ENV)
    if raw is None:
        return None
    try:
        setup = orjson.loads(raw)
        lifeline = environ.get(LIFELINE_ENV)
        return WorkerSetup(
            index=int(environ.get(INDEX_ENV, "1")),
            config=load_config(environ={}, overrides=setup["config"]),
            demo_secret=setup["demo_secret"],
            lifeline_fd=None if lifeline is None else int(lifeline),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{SETUP_ENV} is not what a pushwire supervisor sets: {exc}") from None


def follow_supervisor(fd: int, on_gone: Callable[[], None]) -> None:
    """Call ``on_gone`` when the supervisor has exited, however it died (even SIGKILL).

    Only the supervisor holds the pipe's write end, so the read end ``fd`` reaches end of
    file when it exits: a worker left alone must not hold the port with nobody to stop it.
    Call from inside the running event loop.
    """
    loop = asyncio.get_running_loop()

    def readable() -> None:
        loop.remove_reader(fd)
        on_gone()

    loop.add_reader(fd, readable)


def _checked_port(host: str, port: int) -> int:
    """``port`` (or, for 0, a free one) once it is known that nothing listens there.

    Binding without ``SO_REUSEPORT`` fails if any process listens on the port, even
    another set of workers that would otherwise silently share it with ours.
    """
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, protocol, _, address in addresses:
            with socket.socket(family, kind, protocol) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind((address[0], port, *address[2:]))
                port = int(probe.getsockname()[1])
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc}") from None
    return port
