"""Three test hosts on one machine: network namespaces on a bridge, and what they run.

Host A runs Redis, hosts B and C each run `runcluster --workers 2` on port 8000; the test
process, in the root namespace, reaches every host through an address on the bridge:

    root 10.77.K.1 --- bridge iphb<pid>x<K> ---+--- veth --- A 10.77.K.11  redis-server
                                               +--- veth --- B 10.77.K.12  runcluster (host-b)
                                               +--- veth --- C 10.77.K.13  runcluster (host-c)

K is picked so no address of the machine is already in 10.77.K.0/24 (the search starts at
a place given by the pid, so two runs starting together rarely race for the same K), so
several sets of hosts (this run's, or another run's) can exist at once. Every name carries
this process's pid and a counter N of this run's sets (namespaces `iph-<pid>-<N><letter>`,
links `iphb<pid>x<N>` / `iphv<pid>x<N><letter>`), so leftovers of a run that died can be
told from a live run's and removed.

The hosts share the filesystem (one SQLite file for all) and the pid namespace; the UTS
namespace is not split by `ip netns exec`, so each cluster runs under `unshare --uts` with
its own hostname, which /workers reports as `host`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.integration.servers import http, wait_until

ROOT = Path(__file__).resolve().parents[2]
NETNS_PREFIX = "iph-"
_LINK_NAME = re.compile(r"^iph[bv](\d+)x")
_NETNS_NAME = re.compile(r"^iph-(\d+)-")
_worlds = itertools.count()

CLUSTER_PORT = 8000
REDIS_PORT = 6379
# Liveness settings of the clusters (see the partition test): a worker refreshes its key
# every JANITOR_INTERVAL and is dead to the others once the key is older than WORKER_TTL.
JANITOR_INTERVAL = 0.5
WORKER_TTL = 3.0
GATHER_DEADLINE = 1.0


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def unavailable_reason() -> str | None:
    """Why this machine cannot host the test hosts, or None when it can."""
    if os.geteuid() != 0:
        return "not root (network namespaces need CAP_NET_ADMIN)"
    for tool in ("ip", "unshare", "hostname", "redis-server"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH"
    probe = f"{NETNS_PREFIX}{os.getpid()}-probe"
    try:
        created = ip("netns", "add", probe, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns add` cannot run: {exc}"
    if created.returncode != 0:
        return f"`ip netns add` failed: {created.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def netns_pids(name: str) -> list[int]:
    result = ip("netns", "pids", name, check=False)
    return [int(pid) for pid in result.stdout.split()]


def kill_netns_processes(name: str, timeout: float = 5) -> None:
    """SIGKILL every process of a namespace at once, as a power loss would.

    All are stopped (SIGSTOP) before any is killed: a worker must not see its parent die
    first, which sends it SIGTERM (PR_SET_PDEATHSIG) and lets it leave the cluster cleanly.
    Repeated until none is left.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = netns_pids(name)
        if not pids:
            return
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        time.sleep(0.05)


def _our_netns(owner: int | None) -> list[str]:
    """Namespaces of this harness: of `owner`'s run, or of runs whose process is gone."""
    listed = ip("netns", "list", check=False).stdout.split("\n")
    names = [line.split()[0] for line in listed if line.startswith(NETNS_PREFIX)]
    chosen = []
    for name in names:
        if _owned(_NETNS_NAME, name, owner):
            chosen.append(name)
    return chosen


def _our_links(owner: int | None) -> list[str]:
    chosen = []
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        fields = line.split(":")
        if len(fields) < 2:
            continue
        name = fields[1].strip().split("@")[0]
        if _owned(_LINK_NAME, name, owner):
            chosen.append(name)
    return chosen


def _owned(pattern: re.Pattern[str], name: str, owner: int | None) -> bool:
    """A name of ours made by `owner`'s run, or (owner None) by a run no longer alive."""
    match = pattern.match(name)
    if match is None:
        return False
    pid = int(match.group(1))
    return pid == owner or (owner is None and not _pid_alive(pid))


def cleanup(owner: int | None = None) -> list[str]:
    """Remove the namespaces and links of `owner`'s run, or (None) of every dead run.

    Best effort, never raises; returns what it removed. Links of a live run other than
    `owner` are never touched.
    """
    removed = []
    for name in _our_netns(owner):
        kill_netns_processes(name)
        if ip("netns", "del", name, check=False).returncode == 0:
            removed.append(name)
    for link in _our_links(owner):
        if ip("link", "del", link, check=False).returncode == 0:
            removed.append(link)
    return removed


def _free_subnet() -> int:
    """A K with no address of this machine in 10.77.K.0/24."""
    used = set()
    for line in ip("-4", "-o", "addr", "show", check=False).stdout.splitlines():
        for word in line.split():
            if "/" in word and word[0].isdigit():
                with contextlib.suppress(ValueError):
                    used.add(ipaddress.ip_interface(word).network)
    start = os.getpid() % 250
    for k in [*range(start, 255), *range(0, start)]:
        net = ipaddress.ip_network(f"10.77.{k}.0/24")
        if not any(net.overlaps(u) for u in used):
            return k
    raise RuntimeError("no free 10.77.K.0/24 subnet")


class Host:
    """One network namespace with a veth into the bridge."""

    def __init__(self, network: Network, letter: str, address: str) -> None:
        self.letter = letter
        self.hostname = f"host-{letter}"
        self.address = address
        self.netns = f"{NETNS_PREFIX}{os.getpid()}-{network.index}{letter}"
        self.veth = f"iphv{os.getpid()}x{network.index}{letter}"  # root side, max 15 chars
        ip("netns", "add", self.netns)
        ip("-n", self.netns, "link", "set", "lo", "up")
        ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        ip("link", "set", self.veth, "master", network.bridge)
        ip("link", "set", self.veth, "up")
        ip("-n", self.netns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", self.netns, "link", "set", "eth0", "up")

    def argv(self, *command: str, hostname: bool = False) -> list[str]:
        """A command line that runs `command` inside this host (with its own hostname)."""
        prefix = ["ip", "netns", "exec", self.netns]
        if hostname:
            script = 'hostname "$0" && exec "$@"'
            prefix += ["unshare", "--uts", "sh", "-c", script, self.hostname]
        return [*prefix, *command]

    def set_link(self, up: bool) -> None:
        """Unplug (or plug back) this host's cable: no packet in or out, no connection closed."""
        ip("link", "set", self.veth, "up" if up else "down")

    def kill_all(self) -> None:
        kill_netns_processes(self.netns)


class Network:
    """A bridge in the root namespace (which gets .1 on it) and hosts a, b, c on it."""

    def __init__(self, letters: str = "abc") -> None:
        self.index = next(_worlds)
        self.subnet = _free_subnet()
        self.bridge = f"iphb{os.getpid()}x{self.index}"
        self.root_address = f"10.77.{self.subnet}.1"
        self.hosts: dict[str, Host] = {}
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.root_address}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            for number, letter in enumerate(letters, start=11):
                address = f"10.77.{self.subnet}.{number}"
                self.hosts[letter] = Host(self, letter, address)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """Kill everything running in the hosts, delete them and the bridge. Never raises.

        Processes go first, servers' clients before the servers (C, B, then A), so closing
        connections still reach their peers. A namespace can outlive `ip netns del` while
        the kernel still holds a socket of it (e.g. an orphan in FIN_WAIT), so the veths are
        deleted explicitly: nothing of this run stays visible in the root namespace.
        """
        for host in reversed(self.hosts.values()):
            with contextlib.suppress(Exception):
                host.kill_all()
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                ip("link", "del", host.veth, check=False)
                ip("netns", "del", host.netns, check=False)
        with contextlib.suppress(Exception):
            ip("link", "del", self.bridge, check=False)


def answers_ping(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.3) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_command(address: str, port: int, *args: str) -> Any:
    import redis

    client = redis.Redis(host=address, port=port, socket_timeout=2, socket_connect_timeout=2)
    try:
        return client.execute_command(*args)
    finally:
        client.close()


class HostRedis:
    """redis-server inside a host, bound to the host's address."""

    def __init__(self, host: Host, port: int, workdir: Path) -> None:
        self.host = host
        self.port = port
        self.url = f"redis://{host.address}:{port}/0"
        self.log_path = workdir / f"redis-{host.letter}-{port}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                host.argv("redis-server", "--bind", host.address, "--port", str(port),
                          "--save", "", "--appendonly", "no", "--protected-mode", "no",
                          "--daemonize", "no", "--dir", str(workdir)),
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait(self, timeout: float = 10) -> None:
        wait_until(lambda: answers_ping(self.host.address, self.port), timeout, self.url)

    def command(self, *args: str) -> Any:
        return redis_command(self.host.address, self.port, *args)


class HostCluster:
    """`runcluster --workers N --host 0.0.0.0 --port 8000` inside a host."""

    def __init__(self, host: Host, workers: int, env: dict[str, str], workdir: Path) -> None:
        self.host = host
        self.workers = workers
        self.url = f"http://{host.address}:{CLUSTER_PORT}"
        self.log_path = workdir / f"cluster-{host.hostname}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                host.argv(sys.executable, "manage.py", "runcluster", "--workers", str(workers),
                          "--host", "0.0.0.0", "--port", str(CLUSTER_PORT), hostname=True),
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def live_workers(self, timeout: float = 3) -> list[dict[str, Any]]:
        try:
            status, _, body = http(f"{self.url}/workers", timeout=timeout)
        except (OSError, ValueError):
            return []
        return body if status == 200 and isinstance(body, list) else []

    def wait_for_workers(self, count: int, timeout: float) -> list[dict[str, Any]]:
        def listed() -> list[dict[str, Any]] | None:
            if self.process.poll() is not None:
                raise RuntimeError(f"runcluster on {self.host.hostname} exited:\n{self.logs()}")
            workers = self.live_workers()
            return workers if len(workers) == count else None

        try:
            return wait_until(listed, timeout, f"{count} workers on {self.url}/workers", 0.2)
        except TimeoutError as exc:
            log = f"---- {self.host.hostname} log ----\n{self.logs()}"
            raise TimeoutError(f"{exc}\n{log}") from None

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def kill(self) -> None:
        """SIGKILL runcluster and its workers at once: the host's machine lost power."""
        self.host.kill_all()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)

    def logs(self, tail: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""


class Hosts:
    """Hosts A (Redis), B and C (2 workers each), started and waited for; close() undoes it."""

    def __init__(
        self,
        workdir: Path,
        redis_ports: tuple[int, ...] = (REDIS_PORT,),
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.extra_env = extra_env or {}
        self.prefix = f"mh{uuid.uuid4().hex[:8]}"
        self.network = Network()
        self.a, self.b_host, self.c_host = (self.network.hosts[x] for x in "abc")
        self.redis: list[HostRedis] = []
        self.clusters: dict[str, HostCluster] = {}
        try:
            self._start(redis_ports)
        except BaseException:
            self.close()
            raise

    @property
    def b(self) -> HostCluster:
        return self.clusters["b"]

    @property
    def c(self) -> HostCluster:
        return self.clusters["c"]

    @property
    def redis_url(self) -> str:
        return ",".join(r.url for r in self.redis)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.setdefault("DEBUG", "on")  # development settings, as tests/integration's clusters
        addresses = [h.address for h in self.network.hosts.values()]
        env.update(
            DATABASE_URL=f"sqlite:///{self.workdir / 'db.sqlite3'}",
            REDIS_URL=self.redis_url,
            CHANNEL_PREFIX=self.prefix,
            CLUSTER_GATHER_DEADLINE=str(GATHER_DEADLINE),
            CLUSTER_JANITOR_INTERVAL=str(JANITOR_INTERVAL),
            CLUSTER_WORKER_TTL=str(WORKER_TTL),
            ALLOWED_HOSTS=",".join([*addresses, "localhost", "127.0.0.1"]),
            DJANGO_SETTINGS_MODULE="identity_playground.settings",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def _start(self, redis_ports: tuple[int, ...]) -> None:
        self.redis = [HostRedis(self.a, port, self.workdir) for port in redis_ports]
        env = self.env()
        reset = subprocess.run(
            [sys.executable, "manage.py", "reset_db"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if reset.returncode != 0:
            raise RuntimeError(f"reset_db failed:\n{reset.stdout}\n{reset.stderr}")
        for server in self.redis:
            server.wait()
        for letter in "bc":
            host = self.network.hosts[letter]
            self.clusters[letter] = HostCluster(host, 2, env, self.workdir)
        for cluster in self.clusters.values():
            cluster.wait_for_workers(4, timeout=40)

    def workers_by_host(self, cluster: HostCluster | None = None) -> dict[str, set[str]]:
        """{hostname: procids} as /workers on `cluster` (default B) lists them."""
        listed: dict[str, set[str]] = {}
        for worker in (cluster or self.b).live_workers():
            listed.setdefault(worker["host"], set()).add(worker["procid"])
        return listed

    def directory(self) -> dict[str, dict[str, Any]]:
        """The worker directory as stored in (the first) Redis: {procid: entry}."""
        raw = self.redis[0].command("HGETALL", f"{self.prefix}:workers")
        return {key.decode(): json.loads(value) for key, value in raw.items()}

    def logs(self) -> str:
        parts = [f"---- {name} log ----\n{c.logs()}" for name, c in self.clusters.items()]
        return "\n".join(parts)

    def close(self) -> None:
        self.network.close()
        for process in [*(c.process for c in self.clusters.values()),
                        *(r.process for r in self.redis)]:  # fmt: skip
            with contextlib.suppress(Exception):
                process.wait(5)
