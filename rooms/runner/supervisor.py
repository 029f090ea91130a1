"""N daphne workers sharing one listening socket, kept alive by their parent.

The parent binds the port once (with a large backlog: daphne's own listen() uses 50,
which makes bursts of connects wait for SYN retries) and each worker serves it through
`daphne --fd`, on uvloop's event loop (rooms/worker_main.py). Workers are direct children;
their output is merged with a prefix; a worker that dies is restarted with backoff, and one
that exits to be recycled (RECYCLE_EXIT_CODE, rooms.runner.recycling) at once;
SIGTERM/SIGINT stops them all within the stop grace (10 s, RUNCLUSTER_STOP_GRACE_S). A
worker still running after that grace is sent STACKS_SIGNAL first, so the log shows where it
was waiting (rooms.runner.worker_main), and then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

LISTEN_BACKLOG = 1024
STOP_GRACE_SECONDS = 10.0
# A worker that ran this long before it exited had been healthy: it is restarted at once.
STABLE_RUN_SECONDS = 10.0
# The signal on which a worker writes every thread's Python stack to its output (faulthandler).
STACKS_SIGNAL = signal.SIGUSR1
# How long a late worker's stack dump has to reach the log before SIGKILL.
STACKS_WAIT_SECONDS = 1.0
# A worker that stopped to be replaced by a fresh process (EX_TEMPFAIL, sysexits.h).
RECYCLE_EXIT_CODE = 75
RESTARTS_VARIABLE = "WORKER_RESTARTS"  # how often the worker's slot was restarted before it
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ClusterConfig:
    workers: int
    host: str
    port: int
    websocket_max_message_size: int
    proxy_headers: bool = False
    access_log: bool = False
    application: str = "identity_playground.asgi:application"


class PortInUse(Exception):
    """Another process listens on the port (EADDRINUSE from bind)."""


def listening_socket(host: str, port: int) -> socket.socket:
    """The shared listening socket; PortInUse when another process holds the port.

    SO_REUSEADDR lets a restarted cluster bind while old connections sit in TIME_WAIT; it
    does not let two processes listen on one port (that would take SO_REUSEPORT), so a
    running server still makes bind fail with EADDRINUSE.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} on {host} is already in use") from exc
        raise
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


def worker_command(config: ClusterConfig, fd: int) -> list[str]:
    """The daphne command line of one worker serving the inherited socket `fd`."""
    command = [
        sys.executable, "-m", "rooms.runner.worker_main",
        "--fd", str(fd),
        "--websocket-max-message-size", str(config.websocket_max_message_size),
        "--application-close-timeout", "5",
    ]  # fmt: skip
    if config.proxy_headers:
        command.append("--proxy-headers")
    if not config.access_log:
        # daphne logs every request and WebSocket event to stdout at verbosity 1; relayed
        # through the parent that costs CPU on the hot paths (see bench/), and even written
        # to /dev/null each line cost 3% of a worker's CPU on plain requests. At verbosity 0
        # there is no access log; our LOGGING still sets every other level.
        command += ["--verbosity", "0"]
    return [*command, config.application]


def restart_delay(recent_failures: int) -> float:
    """No wait for a worker that had been running (as Node's cluster does); backoff for one
    that keeps dying within the stable run (10 s) of its start: 0.1 s, 0.2 s, ... capped at 5 s."""
    if recent_failures == 0:
        return 0.0
    return float(min(0.1 * 2 ** (recent_failures - 1), 5.0))


def _die_with_parent() -> None:
    """Workers get SIGTERM if the supervisor itself is killed, instead of lingering."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(
        self,
        config: ClusterConfig,
        env: dict[str, str],
        listener: socket.socket | None = None,
        stop_grace: float = STOP_GRACE_SECONDS,
        stable_run: float = STABLE_RUN_SECONDS,
    ) -> None:
        """`listener`: the socket of listening_socket(config.host, config.port), bound by
        the caller so it can report a port in use before starting anything else.
        `stop_grace`: how long workers get to exit after SIGTERM; `stable_run`: how long a
        worker must have run for its exit to restart it without backoff."""
        self.config = config
        self.env = env
        self.stop_grace = stop_grace
        self.stable_run = stable_run
        self.listener = listener or listening_socket(config.host, config.port)
        self.port = int(self.listener.getsockname()[1])
        self.processes: dict[int, asyncio.subprocess.Process] = {}  # slot -> worker
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        logger.info(
            "cluster of %d workers on http://%s:%d",
            self.config.workers,
            self.config.host,
            self.port,
        )
        slots = [asyncio.create_task(self._keep_alive(slot)) for slot in range(self.config.workers)]
        await self._stopping.wait()
        await self._stop_all()
        for task in slots:
            task.cancel()
        await asyncio.gather(*slots, return_exceptions=True)
        self.listener.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

    async def _keep_alive(self, slot: int) -> None:
        failures = restarts = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            process = await self._spawn(slot, restarts)
            code = await process.wait()
            if self._stopping.is_set():
                return
            if code == RECYCLE_EXIT_CODE:
                logger.info("worker w%d (pid %d) recycled; its successor starts", slot, process.pid)
                failures = 0
                continue
            restarts += 1
            failures = failures + 1 if time.monotonic() - started < self.stable_run else 0
            delay = restart_delay(failures)
            logger.warning("worker w%d exited with %s; restarting in %.1f s", slot, code, delay)
            await asyncio.sleep(delay)

    async def _spawn(self, slot: int, restarts: int) -> asyncio.subprocess.Process:
        """A worker for `slot`, told how often the slot was restarted (GET /metrics shows it)."""
        fd = self.listener.fileno()
        process = await asyncio.create_subprocess_exec(
            *worker_command(self.config, fd),
            pass_fds=(fd,),
            env={**self.env, "WORKER_SLOT": str(slot), RESTARTS_VARIABLE: str(restarts)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        self.processes[slot] = process
        asyncio.create_task(self._relay_output(slot, process))
        logger.info("worker w%d started (pid %d)", slot, process.pid)
        return process

    @staticmethod
    async def _relay_output(slot: int, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        prefix = f"[w{slot} {process.pid}] ".encode()
        async for line in process.stdout:
            sys.stdout.buffer.write(prefix + line)
            sys.stdout.flush()

    async def _stop_all(self) -> None:
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        waits = [asyncio.create_task(p.wait()) for p in running]
        if waits:
            _done, late = await asyncio.wait(waits, timeout=self.stop_grace)
            stuck = [p for p in running if p.returncode is None]
            if stuck:
                await self._kill_with_stacks(stuck)
            await asyncio.gather(*late, return_exceptions=True)
        logger.info("all workers stopped")

    async def _kill_with_stacks(self, stuck: list[asyncio.subprocess.Process]) -> None:
        """SIGKILL workers that outlived the grace, after asking each for its stacks: a stop
        that hangs is a bug, and the dump says which call it hung in."""
        for process in stuck:
            logger.warning(
                "worker pid %d still running %.0f s after SIGTERM: its stacks follow, then SIGKILL",
                process.pid,
                self.stop_grace,
            )
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(STACKS_SIGNAL)
        await asyncio.sleep(STACKS_WAIT_SECONDS)
        for process in stuck:
            with contextlib.suppress(ProcessLookupError):
                process.kill()


def default_workers() -> int:
    return int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)


def stop_grace_from_environ() -> float:
    """RUNCLUSTER_STOP_GRACE_S: runcluster's own option, read before Django's settings."""
    return float(os.environ.get("RUNCLUSTER_STOP_GRACE_S") or STOP_GRACE_SECONDS)


def stable_run_from_environ() -> float:
    """RUNCLUSTER_STABLE_RUN_S: runcluster's own option, read before Django's settings."""
    return float(os.environ.get("RUNCLUSTER_STABLE_RUN_S") or STABLE_RUN_SECONDS)
