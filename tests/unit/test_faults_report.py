"""bench/faults_report.py: a figure a tool could not measure is reported missing, with the
trials it is missing from, never a crash."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def report_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("faults_report", ROOT / "bench/faults_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kill_trial(replacement: float | None, listed: float | None) -> dict[str, object]:
    return {
        "replacement_child_ms": replacement,
        "all_workers_listed_ms": listed,
        "summary": {"partial": 0},
        "gets": [{"status": 200, "ms": 12.5}, {"status": 200, "ms": 40.0}],
    }


def stop_trial(slowest: float | None, sigcont: float | None) -> dict[str, object]:
    summary = {"total": 4, "answered_200": 4, "partial": 4, "max_ms_answered": slowest}
    return {
        "summary_parallel": summary,
        "summary_sequential": summary,
        "complete_again_after_sigcont_ms": sigcont,
    }


def test_missing_figures_are_named_not_compared(tmp_path: Path, capsys: object) -> None:
    """Kill trials where /workers never listed every worker again (null in faults.js's
    output), a stop trial without a slowest answer: the others' figures are reported and
    the missing ones said so; our verify.js failures are listed."""
    faults = {
        "kill": [kill_trial(7.1, None), kill_trial(None, None), kill_trial(9.9, 480.0)],
        "stop": [stop_trial(None, None), stop_trial(1010.1, 3.6)],
    }
    verify = {"passed": 25, "failed": 1, "checks": [{"name": "pid check", "ok": False}]}
    for side in ("us", "ref"):
        (tmp_path / f"{side}-faults.json").write_text(json.dumps(faults))
        (tmp_path / f"{side}-verify.json").write_text(json.dumps(verify))
    out = tmp_path / "out.json"
    report = report_module()
    code = report.main(["--work", str(tmp_path), "--stamp", "S", "--out", str(out)])
    printed = capsys.readouterr().out  # type: ignore[attr-defined]
    result = json.loads(out.read_text())
    kill = result["us"]["kill"]
    assert kill["replacement_ms"] == [7.1, 9.9] and kill["all_listed_again_ms"] == [480.0]
    assert kill["missing"] == {"replacement_ms": 1, "all_listed_again_ms": 2}
    assert result["us"]["stop"]["max_ms"] == 1010.1
    assert result["us"]["stop"]["missing"] == {"max_ms": 2, "complete_after_sigcont_ms": 1}
    assert "| SIGKILL: replacement process (ms) | 7.1-9.9 | 7.1-9.9 |" in printed
    assert "ours: missing figures: replacement_ms in 1 of 3 SIGKILL trials" in printed
    assert "ours failed: pid check" in printed
    assert code == 1  # a verify.js failure on ours


def test_a_tool_that_wrote_nothing_is_said_so(tmp_path: Path, capsys: object) -> None:
    out = tmp_path / "out.json"
    code = report_module().main(["--work", str(tmp_path), "--stamp", "S", "--out", str(out)])
    printed = capsys.readouterr().out  # type: ignore[attr-defined]
    assert code == 1
    assert "ours: verify.js wrote no readable result" in printed
    assert "ours: faults.js wrote no readable result" in printed
