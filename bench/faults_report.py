"""Summary of one bench/faults.sh run: verify.js and faults.js on both clusters."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def load(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def measured(values: list[Any]) -> list[Any]:
    """The figures a tool measured, sorted; it writes null for one it could not (faults.js:
    a kill after which /workers never listed every worker again within its wait)."""
    return sorted(v for v in values if v is not None)


def missing(figures: dict[str, list[Any]]) -> dict[str, int]:
    """How many trials lack each figure, for those that some lack."""
    counts = {name: sum(v is None for v in values) for name, values in figures.items()}
    return {name: count for name, count in counts.items() if count}


def kill_figures(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Rosters sent at once right after each SIGKILL: how many came back partial or slow."""
    gets = [g for t in trials for g in t["gets"]]
    answered = [g["ms"] for g in gets if g["status"] == 200 and g.get("ms") is not None]
    per_trial = {
        "replacement_ms": [t.get("replacement_child_ms") for t in trials],
        "all_listed_again_ms": [t.get("all_workers_listed_ms") for t in trials],
    }
    return {
        "trials": len(trials),
        "rosters": len(gets),
        "answered_200": len(answered),
        "partial": sum(t["summary"]["partial"] for t in trials),
        "over_500_ms": sum(ms > 500 for ms in answered),
        "max_ms": max(answered, default=None),
        **{name: measured(values) for name, values in per_trial.items()},
        "missing": missing(per_trial),
    }


def stop_figures(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Rosters while one worker is SIGSTOPped (it looks alive): each costs the deadline."""
    summaries = [t[k] for t in trials for k in ("summary_parallel", "summary_sequential")]
    per_trial = {
        "max_ms": [s.get("max_ms_answered") for s in summaries],
        "complete_after_sigcont_ms": [t.get("complete_again_after_sigcont_ms") for t in trials],
    }
    return {
        "trials": len(trials),
        "rosters": sum(s["total"] for s in summaries),
        "answered_200": sum(s["answered_200"] for s in summaries),
        "partial": sum(s["partial"] for s in summaries),
        "max_ms": max(measured(per_trial["max_ms"]), default=None),
        "complete_after_sigcont_ms": measured(per_trial["complete_after_sigcont_ms"]),
        "missing": missing(per_trial),
    }


def target(work: Path, name: str) -> dict[str, Any]:
    verify, faults = load(work / f"{name}-verify.json"), load(work / f"{name}-faults.json")
    out: dict[str, Any] = {"verify": None, "kill": None, "stop": None}
    if verify is not None:
        failed = [c["name"] for c in verify["checks"] if not c["ok"]]
        out["verify"] = {"passed": verify["passed"], "failed": verify["failed"], "failures": failed}
    if faults is not None:
        out["kill"] = kill_figures(faults["kill"])
        out["stop"] = stop_figures(faults.get("stop", []))
    return out


def gaps(label: str, side: dict[str, Any]) -> list[str]:
    """What this side's report lacks, each in a sentence."""
    lines = [
        f"{label}: {tool} wrote no readable result"
        for tool, key in (("verify.js", "verify"), ("faults.js", "kill"))
        if side[key] is None
    ]
    for key, trials in (("kill", "SIGKILL"), ("stop", "SIGSTOP")):
        figures = side[key] or {}
        absent = [
            f"{name} in {count} of {figures['trials']} {trials} trials"
            for name, count in figures.get("missing", {}).items()
        ]
        if absent:
            lines.append(f"{label}: missing figures: " + "; ".join(absent))
    return lines


def table(result: dict[str, Any]) -> str:
    us, ref = result["us"], result["reference"]

    def cell(side: dict[str, Any], *path: str) -> str:
        value: Any = side
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, list):
            return f"{min(value)}-{max(value)}" if value else "-"
        return "-" if value is None else str(value)

    rows = [
        ("verify.js checks passed / failed", ("verify", "passed"), ("verify", "failed")),
        ("SIGKILL: rosters at once after it", ("kill", "rosters"), None),
        ("SIGKILL: answered 200", ("kill", "answered_200"), None),
        ("SIGKILL: partial answers", ("kill", "partial"), None),
        ("SIGKILL: answers slower than 500 ms", ("kill", "over_500_ms"), None),
        ("SIGKILL: slowest answer (ms)", ("kill", "max_ms"), None),
        ("SIGKILL: replacement process (ms)", ("kill", "replacement_ms"), None),
        ("SIGKILL: /workers lists every worker again (ms)", ("kill", "all_listed_again_ms"), None),
        ("SIGSTOP: rosters / answered 200", ("stop", "rosters"), ("stop", "answered_200")),
        ("SIGSTOP: slowest answer (ms)", ("stop", "max_ms"), None),
    ]
    lines = ["| figure | ours | reference |", "|---|---:|---:|"]
    for label, first, second in rows:
        values = []
        for side in (us, ref):
            text = cell(side, *first)
            values.append(f"{text} / {cell(side, *second)}" if second else text)
        lines.append(f"| {label} | {values[0]} | {values[1]} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--work", required=True)
    p.add_argument("--stamp", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    work = Path(args.work)
    result = {"date": args.stamp, "us": target(work, "us"), "reference": target(work, "ref")}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"Run {args.stamp} (bench/faults.sh)\n")
    print(table(result))
    notes = gaps("ours", result["us"]) + gaps("reference", result["reference"])
    failures = (result["us"]["verify"] or {}).get("failures")
    if failures:
        notes.append("ours failed: " + "; ".join(failures))
    if notes:
        print("\n" + "\n".join(notes))
    print(f"\nresults: {args.out}", file=sys.stderr)
    return 0 if result["us"]["verify"] and result["us"]["kill"] and not failures else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
