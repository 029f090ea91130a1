"""The client examples of examples/ (quoted in the README) run unchanged against a cluster.

Each example connects as a user to a room, joins a second room, sends identity-change and
prints what it receives; a second client in the room proves the printed events are real.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys

import pytest

from rooms.runner.embedded_redis import free_port
from tests.integration.recording import Client
from tests.integration.servers import ROOT, Cluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

NODE = shutil.which("node")
EXAMPLES = {
    "client.mjs": [NODE or "node", str(ROOT / "examples" / "client.mjs")],
    "client.py": [sys.executable, str(ROOT / "examples" / "client.py")],
}
# `<event or label> <JSON>`: labels are words and hyphens, the JSON may hold spaces
PRINTED = re.compile(r'(?P<label>[a-z][a-z -]*?) (?P<payload>[\[{"\d].*|true|false|null)')


def printed(output: str) -> list[tuple[str, object]]:
    """The example's lines as (label, JSON payload): `handshake {...}`, `join ack {...}`."""
    lines = []
    for line in output.splitlines():
        match = PRINTED.fullmatch(line)
        assert match, f"unexpected line {line!r} in:\n{output}"
        lines.append((match["label"], json.loads(match["payload"])))
    return lines


async def run_example(
    name: str, *args: str, within: float = 30, **env: str
) -> tuple[int, str, str]:
    """Run one example to its end; its exit code, stdout and stderr."""
    if name.endswith(".mjs") and NODE is None:
        pytest.skip("node is not installed")
    process = await asyncio.create_subprocess_exec(
        *EXAMPLES[name], *args,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "LISTEN_SECONDS": "4", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{name} did not exit by itself within {within} s") from None
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("name", EXAMPLES)
async def test_example_joins_renames_hears_the_room_and_exits(
    name: str, shared_cluster: Cluster
) -> None:
    """The example prints its handshake, both acks and the identity-change another member
    sends once it arrives; the member gets the example's identity-change; exit code 0."""
    cluster = shared_cluster
    mary = await Client().connect(cluster.url, "2", "Maths")

    async def greet_the_newcomer() -> None:
        await mary.wait_for("socket-connected", within=20)
        await mary.sio.emit("identity-change", {"name": "Mary"})

    greeter = asyncio.create_task(greet_the_newcomer())
    try:
        code, out, err = await run_example(name, cluster.url, "1", "Maths")
        assert code == 0, (out, err)
        lines = printed(out)
        labels = [label for label, _ in lines]
        assert labels[0] == "handshake", out
        procids = {w["procid"] for w in cluster.live_workers()}
        assert dict(lines)["handshake"]["procid"] in procids  # type: ignore[index]
        assert ("join ack", {"ok": True}) in lines
        assert ("identity-change ack", {"ok": True}) in lines
        assert ("identity-change", {"name": "Mary", "id_user": "2"}) in lines, out
        await greeter
        assert await mary.wait_for("identity-change") == {"name": "User 1", "id_user": "1"}
    finally:
        greeter.cancel()
        await mary.sio.disconnect()


@pytest.mark.parametrize("name", EXAMPLES)
async def test_example_refused_prints_the_reason_and_fails(
    name: str, shared_cluster: Cluster
) -> None:
    """An unknown id_user: the example prints the server's CONNECT_ERROR message and exits 1."""
    code, out, err = await run_example(name, shared_cluster.url, "99", "Maths")
    assert code == 1, (out, err)
    assert "connect_error: Unknown id_user: 99" in err


@pytest.mark.parametrize("name", EXAMPLES)
async def test_example_without_a_server_fails_with_a_message(name: str) -> None:
    """Nothing listening on the port: the example prints a connect_error line and exits 1
    (with reconnection off it does not retry forever)."""
    code, out, err = await run_example(name, f"http://127.0.0.1:{free_port()}")
    assert code == 1, (out, err)
    assert "connect_error:" in err
