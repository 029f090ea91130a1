"""rooms.server.tuning: what SERVER_TUNING asks for, the version check, and that nothing but
the worker's entry point installs anything."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from autobahn.twisted import websocket as twisted_websocket
from autobahn.websocket import protocol as autobahn_protocol
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import tcp

from rooms.server import tuning, ws_frames

ROOT = Path(__file__).resolve().parents[2]

# (owner, attribute) of everything a patch replaces; ws_frames replaces nothing (its
# `_installed` flag is checked through `frame_writer`)
TARGETS: list[tuple[Any, str]] = [
    (HTTPFactory, "buildProtocol"),
    (tcp.Connection, "write"),
    (tcp.Connection, "writeSequence"),
    (WebRequest, "process"),
    (WebSocketProtocol, "connectionLost"),
    (autobahn_protocol, "hltype"),
    (autobahn_protocol, "hlval"),
    (autobahn_protocol, "pformat"),
    (twisted_websocket, "hltype"),
    (twisted_websocket, "hlval"),
]


def current() -> dict[str, Any]:
    return {f"{owner.__name__}.{name}": getattr(owner, name) for owner, name in TARGETS}


def pinned_versions(name: str) -> str:
    return tuning.PINNED[name]


def versions_with(**installed: str) -> Callable[[str], str]:
    def versions(name: str) -> str:
        if installed.get(name) == "missing":
            raise metadata.PackageNotFoundError(name)
        return installed.get(name, tuning.PINNED[name])

    return versions


class Reactor:
    """What fast_http.install asks of a reactor: a timer it never runs here."""

    def callLater(self, _delay: float, _callback: Callable[[], None]) -> None:
        pass


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a test installs is undone after it (monkeypatch restores each target)."""
    for owner, name in TARGETS:
        monkeypatch.setattr(owner, name, getattr(owner, name))
    monkeypatch.setattr(tuning, "active", tuning.active)
    monkeypatch.setattr(ws_frames, "_installed", ws_frames._installed)
    yield


@pytest.mark.parametrize("setting", ["on", "ON", " all ", "true", "1"])
def test_on_asks_for_every_patch(setting: str) -> None:
    assert tuning.wanted(setting) == frozenset(tuning.PATCHES)


@pytest.mark.parametrize("setting", ["off", "Off", "none", "false", "0", ""])
def test_off_asks_for_none(setting: str) -> None:
    assert tuning.wanted(setting) == frozenset()


def test_a_list_asks_for_those_patches_only() -> None:
    assert tuning.wanted(" fast_http , ws_frames,") == {"fast_http", "ws_frames"}


def test_an_unknown_patch_name_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="fast_htp"):
        tuning.wanted("fast_htp,ws_frames")


def test_the_pinned_versions_have_no_mismatch() -> None:
    assert tuning.version_mismatches(pinned_versions) == []


def test_each_version_other_than_the_pinned_one_is_named() -> None:
    found = tuning.version_mismatches(versions_with(daphne="4.3.0", txaio="missing"))
    assert found == [
        f"daphne 4.3.0 installed, tuning written for {tuning.PINNED['daphne']}",
        f"txaio none installed, tuning written for {tuning.PINNED['txaio']}",
    ]


def test_this_environment_has_the_pinned_versions() -> None:
    """Else every worker here would run without its tuning (and say so once)."""
    assert tuning.version_mismatches() == []


def test_pinned_agrees_with_requirements_txt() -> None:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        pin = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(\S+)", line.split("#")[0].strip())
        if pin:
            pins[pin.group(1).lower().replace("_", "-")] = pin.group(2)
    assert {name: pins.get(name) for name in tuning.PINNED} == tuning.PINNED


def test_a_mismatched_version_installs_nothing_and_warns_once(
    restored: None, caplog: pytest.LogCaptureFixture
) -> None:
    before = current()
    with caplog.at_level(logging.WARNING, logger="rooms.server.tuning"):
        installed = tuning.install(
            Reactor(),
            setting="on",
            serves_without_django=lambda _path: True,
            versions=versions_with(autobahn="27.0.0"),
        )
    assert installed == tuning.active == frozenset()
    assert current() == before
    assert ws_frames._installed is False
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings == [
        f"server tuning off: autobahn 27.0.0 installed, tuning written for "
        f"{tuning.PINNED['autobahn']}"
    ]


def test_off_installs_nothing_and_says_nothing(
    restored: None, caplog: pytest.LogCaptureFixture
) -> None:
    before = current()
    with caplog.at_level(logging.DEBUG, logger="rooms.server.tuning"):
        installed = tuning.install(
            Reactor(),
            setting="off",
            serves_without_django=lambda _path: True,
            versions=versions_with(daphne="0.1"),  # not even asked: nothing to install
        )
    assert installed == tuning.active == frozenset()
    assert current() == before
    assert caplog.records == []


def test_a_list_installs_those_patches_only(restored: None) -> None:
    before = current()
    installed = tuning.install(
        Reactor(),
        setting="connection_cycles,ws_frames",
        serves_without_django=lambda _path: True,
        versions=pinned_versions,
    )
    assert installed == tuning.active == {"connection_cycles", "ws_frames"}
    changed = {name for name, value in current().items() if before[name] is not value}
    assert changed == {"WebRequest.process", "WebSocketProtocol.connectionLost"}
    assert ws_frames._installed is True


# Run in a fresh interpreter: which module each patch target comes from after importing
# the ASGI application, then after tuning.install (showing the check sees an install).
PROBE = """
import json
import identity_playground.asgi
from rooms.server import tuning, ws_frames
from tests.unit.test_tuning import Reactor, current

def origins():
    found = {name: getattr(value, "__module__", "?") for name, value in current().items()}
    found["ws_frames._installed"] = str(ws_frames._installed)
    found["tuning.active"] = ",".join(sorted(tuning.active))
    return found

after_import = origins()
tuning.install(Reactor(), setting="on", serves_without_django=lambda _path: False)
print(json.dumps({"after_import": after_import, "after_install": origins()}))
"""


def test_importing_the_asgi_application_installs_nothing() -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "identity_playground.settings",
        "SERVER_TUNING": "on",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    origins = json.loads(result.stdout.strip().splitlines()[-1])
    after_import, after_install = origins["after_import"], origins["after_install"]
    ours = {name for name, module in after_import.items() if module.startswith("rooms.")}
    assert ours == set()
    assert after_import["ws_frames._installed"] == "False"
    assert after_import["tuning.active"] == ""
    # the same probe does see an installed tuning
    assert {name for name, module in after_install.items() if module.startswith("rooms.")} == (
        set(after_install) - {"ws_frames._installed", "tuning.active"}
    )
    assert after_install["ws_frames._installed"] == "True"
