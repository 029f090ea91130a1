"""Turns the step outputs of bench/run.sh into bench/results/*.json and latest.md.

Each figure is the median over the rounds of that step's figure (p50 of round 1, p50 of
round 2, ...); the raw per-round values are kept next to it. Ratios are us / reference
from the same run. Stdlib only.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

SIZES = ("10", "100", "1000")

# (ratio name, lower is better?, limit) -- the targets of the issue "Benchmarks side by side
# with socket.io"; a ratio is us / reference.
RATIO_TARGETS: list[tuple[str, str, float]] = [
    ("roster_p50_10", "<=", 0.75),
    ("roster_p50_100", "<=", 0.75),
    ("roster_p50_1000", "<=", 0.35),
    ("fanout_p99_1000", "<=", 1.0),
    ("connects_per_s", ">=", 1.5),
    ("rss_per_socket", "<=", 1.0),
]
FLOOR_LIMIT = 2.0


def median(values: list[float]) -> float | None:
    clean = [v for v in values if v is not None]
    return round(statistics.median(clean), 2) if clean else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def read_json(path: Path) -> Any:
    """One JSON object, or JSON lines (connect-rate.js) as {"bench": ..., "rows": [...]}."""
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        return None
    return {"bench": "connect-rate", "rows": rows} if rows else None


def load_steps(work: Path) -> list[dict[str, Any]]:
    rows = []
    with open(work / "steps.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            path = work / "steps" / row["file"]
            data = read_json(path)
            rows.append({**row, "rc": int(row["rc"]), "data": data})
    return rows


def by_step(rows: list[dict[str, Any]], target: str, step: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["target"] == target and r["step"] == step and r["data"]]


def roster_figures(rows: list[dict[str, Any]], target: str, step: str) -> dict[str, Any] | None:
    runs = by_step(rows, target, step)
    if not runs:
        return None
    per_round = [
        {
            "round": int(r["round"]),
            "p50": r["data"]["p50_ms"],
            "p90": r["data"]["p90_ms"],
            "p99": r["data"]["p99_ms"],
            "max": r["data"]["max_ms"],
            "requests": r["data"]["get"]["completed"],
            "non_200": r["data"]["get"]["completed"]
            - r["data"]["get"]["status_counts"].get("200", 0),
            "wrong_count": r["data"]["get"]["wrong_count"],
            "partial": r["data"]["get"]["partial_answers"],
            "server_cpu_ms_per_request": r["data"]["get"]["server_cpu_ms_per_request"],
            "connect_rate_per_s": r["data"]["connect"]["rate_per_s"],
            "connect_failed": r["data"]["connect"]["failed"],
            "load1": [float(r["load1_start"]), float(r["load1_end"])],
        }
        for r in runs
    ]
    return {
        "p50_ms": median([x["p50"] for x in per_round]),
        "p90_ms": median([x["p90"] for x in per_round]),
        "p99_ms": median([x["p99"] for x in per_round]),
        "server_cpu_ms_per_request": median([x["server_cpu_ms_per_request"] for x in per_round]),
        "rounds": per_round,
    }


def fanout_figures(rows: list[dict[str, Any]], target: str, step: str) -> dict[str, Any] | None:
    runs = by_step(rows, target, step)
    if not runs:
        return None
    per_round = []
    for r in runs:
        d = r["data"]["delivery"]
        per_round.append(
            {
                "round": int(r["round"]),
                "receivers": r["data"]["sockets"] - 1,
                "messages": r["data"]["messages"],
                "interval_ms": r["data"]["interval_ms"],
                "p50": d["per_recipient_latency_ms"].get("p50"),
                "p99": d["per_recipient_latency_ms"].get("p99"),
                "all_have_it_p50": d["completion_latency_ms"].get("p50"),
                "all_have_it_p99": d["completion_latency_ms"].get("p99"),
                "all_have_it_max": d["completion_latency_ms"].get("max"),
                "lost": d["lost"],
                "duplicates": d["duplicates"],
                "wrong_id_user_stamp": d["wrong_id_user_stamp"],
                "sender_self_echo": d["sender_self_echo"],
                "server_cpu_ms": d["server_cpu_ms"],
                "harness_cpu_ms": d.get("client_cpu_ms"),
                "connect_rate_per_s": r["data"]["connect"]["rate_per_s"],
                "connect_failed": r["data"]["connect"]["failed"],
                "load1": [float(r["load1_start"]), float(r["load1_end"])],
            }
        )
    return {
        "p50_ms": median([x["p50"] for x in per_round]),
        "p99_ms": median([x["p99"] for x in per_round]),
        "all_have_it_p50_ms": median([x["all_have_it_p50"] for x in per_round]),
        "all_have_it_p99_ms": median([x["all_have_it_p99"] for x in per_round]),
        # one Node process decodes every delivery: its CPU per message against "all have it"
        "harness_cpu_ms_per_message": median(
            [x["harness_cpu_ms"] / x["messages"] for x in per_round if x["harness_cpu_ms"]]
        ),
        "server_cpu_ms_per_message": median(
            [x["server_cpu_ms"] / x["messages"] for x in per_round if x["server_cpu_ms"]]
        ),
        "rounds": per_round,
    }


def capacity_figures(rows: list[dict[str, Any]], target: str) -> dict[str, Any]:
    """Connect rates of every 1000-socket room opened in the run; RSS from memory-1000."""
    rates: list[dict[str, Any]] = []
    distinct: list[float] = []

    def sample(step: str, s: dict[str, Any]) -> None:
        rates.append(
            {
                "step": step,
                "rate": s["rate_per_s"],
                "harness_cpu_ms": s.get("client_cpu_ms"),
                "elapsed_ms": s.get("elapsed_ms"),
                "connected": s.get("connected"),
            }
        )

    for r in rows:
        if r["target"] != target or not r["data"]:
            continue
        d = r["data"]
        if r["step"] == "memory-1000":
            for key in ("connect_first", "connect_second"):
                sample(f"{r['step']}/{key}", d[key])
        elif r["step"] in ("roster-1000", "roster-1000-hydrate", "fanout-1000"):
            sample(f"r{r['round']}/{r['step']}", d["connect"])
        elif r["step"] == "connect-rate":
            for x in d["rows"]:
                if x["mode"] == "one-room":
                    sample(f"r{r['round']}/connect-rate", x)
                else:
                    distinct.append(x["rate_per_s"])
    # The harness is one Node process decoding every announcement (M(M-1)/2 frames per room):
    # its own CPU per connect bounds the rate any server could show it.
    timed = [x for x in rates if x["harness_cpu_ms"] and x["elapsed_ms"] and x["connected"]]
    out: dict[str, Any] = {
        "connects_per_s": median([x["rate"] for x in rates]),
        "connect_samples": rates,
        "connects_per_s_distinct_rooms": median(distinct),
        "harness_cpu_ms_per_connect": median([x["harness_cpu_ms"] / x["connected"] for x in timed]),
        "harness_busy": median([x["harness_cpu_ms"] / x["elapsed_ms"] for x in timed]),
    }
    mem = by_step(rows, target, "memory-1000")
    if mem:
        d = mem[0]["data"]
        rss = d["rss"]
        sockets = d["connect_first"]["connected"] + d["connect_second"]["connected"]
        out.update(
            rss_kb_per_socket=round((rss["after_second_kb"] - rss["idle_workers_kb"]) / sockets, 1)
            if sockets
            else None,
            rss_kb_per_socket_first_1000=d["kb_per_socket_first"],
            rss_kb_per_socket_second_1000=d["kb_per_socket_marginal"],
            rss_workers_kb=rss,
        )
    return out


def error_figures(rows: list[dict[str, Any]], target: str, log_total: str) -> dict[str, Any]:
    mine = [r for r in rows if r["target"] == target]
    wrong = failed = partial = connect_failed = lost = dup = stamp = echo = 0
    for r in mine:
        d = r["data"]
        if not d:
            continue
        if d.get("bench") == "roomusers":
            wrong += d["get"]["wrong_count"]
            failed += d["get"]["completed"] - d["get"]["status_counts"].get("200", 0)
            partial += d["get"]["partial_answers"]
            connect_failed += d["connect"]["failed"]
        elif d.get("bench") == "fanout":
            x = d["delivery"]
            lost, dup = lost + x["lost"], dup + x["duplicates"]
            stamp, echo = stamp + x["wrong_id_user_stamp"], echo + x["sender_self_echo"]
            connect_failed += d["connect"]["failed"]
        elif d.get("bench") == "memory":
            connect_failed += d["connect_first"]["failed"] + d["connect_second"]["failed"]
    errors, _, warnings = log_total.partition(",")
    return {
        "wrong_rosters": wrong,
        "failed_requests": failed,
        "partial_rosters": partial,
        "connect_failures": connect_failed,
        "fanout_lost": lost,
        "fanout_duplicates": dup,
        "fanout_wrong_id_user": stamp,
        "fanout_self_echo": echo,
        "steps_failed": [f"r{r['round']}/{r['step']}" for r in mine if r["rc"] != 0],
        "cluster_log_errors": int(errors or 0),
        "cluster_log_warnings": int(warnings or 0),
        "cluster_log_by_step": {
            f"r{r['round']}/{r['step']}": [int(r["log_errors"]), int(r["log_warnings"])]
            for r in mine
            if int(r["log_errors"]) or int(r["log_warnings"])
        },
    }


def target_figures(rows: list[dict[str, Any]], target: str, log_total: str) -> dict[str, Any]:
    out: dict[str, Any] = {"roster": {}, "roster_hydrate": {}, "fanout": {}}
    for size in SIZES:
        out["roster"][size] = roster_figures(rows, target, f"roster-{size}")
        out["roster_hydrate"][size] = roster_figures(rows, target, f"roster-{size}-hydrate")
    if target == "ref":
        out["roster_seed"] = {
            s: roster_figures(rows, target, f"roster-{s}-seed") for s in SIZES[:2]
        }
    for size in ("100", "1000"):
        out["fanout"][size] = fanout_figures(rows, target, f"fanout-{size}")
    http = by_step(rows, target, "http-floor")
    out["http_floor"] = {
        "p50_ms": median([r["data"]["p50_ms"] for r in http]),
        "p99_ms": median([r["data"]["p99_ms"] for r in http]),
        "what": "GET /socket.io/?transport=polling (refused at once with 400), fresh TCP each",
    }
    out["capacity"] = capacity_figures(rows, target)
    out["errors"] = error_figures(rows, target, log_total)
    return out


def floor_figures(rows: list[dict[str, Any]], target: str = "floor") -> dict[str, Any]:
    runs = [r for r in rows if r["target"] == target and r["data"]]
    out: dict[str, Any] = {}
    for size in ("0", *SIZES):
        vals = [r["data"]["sizes"][size] for r in runs if size in r["data"]["sizes"]]
        out[size] = {
            "p50_ms": median([v["p50"] for v in vals]),
            "p99_ms": median([v["p99"] for v in vals]),
            "rounds": vals,
        }
    return out


def get(d: dict[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def versions(ref_dir: Path, redis_version: str) -> dict[str, Any]:
    def py(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    def npm(name: str) -> str | None:
        try:
            return str(
                json.loads((ref_dir / "node_modules" / name / "package.json").read_text())[
                    "version"
                ]
            )
        except (OSError, ValueError, KeyError):
            return None

    node = shutil.which("node")
    return {
        "python": platform.python_version(),
        "django": py("django"),
        "channels": py("channels"),
        "channels-redis": py("channels-redis"),
        "daphne": py("daphne"),
        "twisted": py("twisted"),
        "redis-py": py("redis"),
        "hiredis": py("hiredis"),
        "orjson": py("orjson"),
        "node": subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        if node
        else None,
        "socket.io": npm("socket.io"),
        "@socket.io/redis-adapter": npm("@socket.io/redis-adapter"),
        "socket.io-client": npm("socket.io-client"),
        "redis-server": redis_version or None,
    }


def machine(load_before: str, load_after: str) -> dict[str, Any]:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_gb": round(mem_kb / 2**20, 1) if mem_kb else None,
        "loadavg_before": [float(x) for x in load_before.split()],
        "loadavg_after": [float(x) for x in load_after.split()],
        "kernel": platform.release(),
        "note": "shared machine: the load generator, both clusters and Redis share its cores",
    }


def build(args: argparse.Namespace) -> dict[str, Any]:
    rows = load_steps(Path(args.work))
    totals = dict(item.split("=", 1) for item in args.log_totals)
    us = target_figures(rows, "us", totals.get("us", "0,0"))
    ref = target_figures(rows, "ref", totals.get("ref", "0,0"))
    us["errors"]["dropped_layer_writes"] = args.us_dropped_writes
    floor = floor_figures(rows)
    floor_hiredis = floor_figures(rows, "floor-hiredis")
    pick = {
        "roster_p50_10": ("roster", "10", "p50_ms"),
        "roster_p50_100": ("roster", "100", "p50_ms"),
        "roster_p50_1000": ("roster", "1000", "p50_ms"),
        "fanout_p99_1000": ("fanout", "1000", "p99_ms"),
        "connects_per_s": ("capacity", "connects_per_s"),
        "rss_per_socket": ("capacity", "rss_kb_per_socket"),
    }
    ratios = {name: ratio(get(us, *path), get(ref, *path)) for name, path in pick.items()}
    floor_ratio = {s: ratio(get(us, "roster", s, "p50_ms"), get(floor, s, "p50_ms")) for s in SIZES}
    # context, not a target: the roster's HTTP part alone (a refused GET through the same
    # server, fresh TCP connection) taken out, what is left over the raw pub/sub floor
    http_p50 = get(us, "http_floor", "p50_ms")
    floor_ratio_http_adjusted = {
        s: ratio(get(us, "roster", s, "p50_ms") - http_p50, get(floor, s, "p50_ms"))
        if get(us, "roster", s, "p50_ms") is not None and http_p50 is not None
        else None
        for s in SIZES
    }
    # the same over the lean client's floor: how far the cluster part is from the nearer bound
    hiredis_ratio_http_adjusted = {
        s: ratio(get(us, "roster", s, "p50_ms") - http_p50, get(floor_hiredis, s, "p50_ms"))
        if get(us, "roster", s, "p50_ms") is not None and http_p50 is not None
        else None
        for s in SIZES
    }
    # context for connects_per_s: the ratio a server costing nothing would reach, were the
    # harness's own CPU per connect (as measured on our cluster) all that limited it
    harness_ms = get(us, "capacity", "harness_cpu_ms_per_connect")
    ref_connects = get(ref, "capacity", "connects_per_s")
    connects_ratio_ceiling = ratio(1000 / harness_ms, ref_connects) if harness_ms else None
    targets = []
    for name, op, limit in RATIO_TARGETS:
        value = ratios[name]
        met = value is not None and (value <= limit if op == "<=" else value >= limit)
        targets.append(
            {"name": f"{name} (us/ref)", "want": f"{op} {limit}", "value": value, "met": met}
        )
    for s in SIZES:
        value = floor_ratio[s]
        targets.append(
            {
                "name": f"roster p50 at {s} / pub-sub floor",
                "want": f"<= {FLOOR_LIMIT}",
                "value": value,
                "met": value is not None and value <= FLOOR_LIMIT,
            }
        )
    e = us["errors"]
    targets.append(
        {"name": "wrong rosters (ours)", "want": "0", "value": e["wrong_rosters"],
         "met": e["wrong_rosters"] == 0}
    )  # fmt: skip
    bad = e["failed_requests"] + e["connect_failures"]
    targets.append(
        {"name": "failed requests + connects (ours)", "want": "0", "value": bad, "met": bad == 0}
    )
    rounds = sorted({int(r["round"]) for r in rows})
    return {
        "date": args.stamp,
        "elapsed_s": args.elapsed_s,
        "rounds": len(rounds),
        "workers": args.workers,
        "our_settings": args.our_settings,
        "ratios": ratios,
        "floor_ratio": floor_ratio,
        "floor_ratio_http_adjusted": floor_ratio_http_adjusted,
        "hiredis_floor_ratio_http_adjusted": hiredis_ratio_http_adjusted,
        "connects_ratio_harness_ceiling": connects_ratio_ceiling,
        "targets": targets,
        "targets_met": sum(t["met"] for t in targets),
        "targets_total": len(targets),
        "us": us,
        "reference": ref,
        "floor": floor,
        "floor_hiredis": floor_hiredis,
        "machine": machine(args.load_before, args.load_after),
        "versions": versions(Path(args.ref_dir), args.redis_version),
        "method": {
            "harness": "shared/anchors/node-reference/bench (roomusers.js, fanout.js, memory.js, "
            "settle.js, common.js) plus bench/http-floor.js and bench/floor.py",
            "order": "each step on both clusters back to back (A B), order flipped every round",
            "figure": "median over rounds of each round's figure",
            "roster": "200 sequential GET /<room>/users, new TCP connection each; seed: 50",
            "fanout": "one sender; 100 receivers: 60 messages 60 ms apart; 1000 receivers: "
            "30 messages 200 ms apart; 'all have it' = time until the last receiver got it",
            "connects_per_s": "median rate over every 1000-socket room opened in the run "
            "(200 handshakes in flight, each join announced to the room)",
            "rss_per_socket": "workers' RSS growth over 2000 sockets (two rooms of 1000) / 2000, "
            "on clusters warmed only by the 10-socket steps",
            "floor": "bench/floor.py: PUBLISH to 4 subscriber processes, 4 replies of size/4 "
            "entries, redis.asyncio + orjson, 300 rounds",
            "floor_hiredis": "the same through plain asyncio connections parsed by hiredis "
            "(bench/floor.py --client hiredis): context, not a target",
        },
        "work_dir": args.work,
    }


def fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{x:.0f}"
    return str(x)


def markdown(r: dict[str, Any]) -> str:
    us, ref, floor = r["us"], r["reference"], r["floor"]
    m = r["machine"]
    lines = [
        f"Run {r['date']} ({r['rounds']} rounds, {r['elapsed_s']} s; {m['nproc']} cores "
        f"{m['cpu_model']}, load average {m['loadavg_before'][0]:.1f} before, "
        f"{m['loadavg_after'][0]:.1f} after; ours with {r['our_settings'] or '?'}). "
        "Milliseconds unless stated; median over rounds.",
        "",
        "| figure | ours | reference | us/ref |",
        "|---|---:|---:|---:|",
    ]

    def row(label: str, a: Any, b: Any, with_ratio: bool = True) -> None:
        rr = ratio(a, b) if with_ratio and isinstance(a, int | float) else None
        lines.append(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(rr)} |")

    for size in SIZES:
        for p in ("p50", "p90", "p99"):
            row(
                f"roster {size} sockets {p}",
                get(us, "roster", size, f"{p}_ms"),
                get(ref, "roster", size, f"{p}_ms"),
            )
    for size in SIZES:
        for p in ("p50", "p99"):
            row(
                f"roster {size} ?hydrate=1 {p}",
                get(us, "roster_hydrate", size, f"{p}_ms"),
                get(ref, "roster_hydrate", size, f"{p}_ms"),
            )
    for size in SIZES[:2]:
        for p in ("p50", "p99"):
            row(
                f"roster {size} reference ?algo=seed {p}",
                None,
                get(ref, "roster_seed", size, f"{p}_ms"),
                False,
            )
    for size in ("100", "1000"):
        for label, key in (
            ("per-recipient p50", "p50_ms"),
            ("per-recipient p99", "p99_ms"),
            ("all have it p50", "all_have_it_p50_ms"),
            ("all have it p99", "all_have_it_p99_ms"),
        ):
            row(
                f"fan-out {size} receivers {label}",
                get(us, "fanout", size, key),
                get(ref, "fanout", size, key),
            )
    for label, key in (
        ("harness CPU ms per message (one Node process)", "harness_cpu_ms_per_message"),
        ("cluster CPU ms per message", "server_cpu_ms_per_message"),
    ):
        row(
            f"fan-out 1000 receivers {label}",
            get(us, "fanout", "1000", key),
            get(ref, "fanout", "1000", key),
        )
    for label, key, with_ratio in (
        ("connects/s (1000 into one room)", "connects_per_s", True),
        ("connects/s (1000 sockets, a room each)", "connects_per_s_distinct_rooms", True),
        (
            "harness CPU ms per connect into one room (one Node process)",
            "harness_cpu_ms_per_connect",
            True,
        ),
        (
            "harness CPU / elapsed while connecting (1.0 = harness-bound)",
            "harness_busy",
            False,
        ),
        ("RSS KB/socket (2000 sockets)", "rss_kb_per_socket", True),
        ("RSS KB/socket, first 1000", "rss_kb_per_socket_first_1000", True),
        ("RSS KB/socket, second 1000", "rss_kb_per_socket_second_1000", True),
    ):
        row(label, get(us, "capacity", key), get(ref, "capacity", key), with_ratio)
    row(
        "HTTP floor p50 (refused GET, no Redis)",
        get(us, "http_floor", "p50_ms"),
        get(ref, "http_floor", "p50_ms"),
    )
    for size in SIZES:
        lines.append(
            f"| pub/sub floor {size} p50 / p99 (bench/floor.py) | "
            f"{fmt(get(floor, size, 'p50_ms'))} / {fmt(get(floor, size, 'p99_ms'))} | | |"
        )
    lean = r.get("floor_hiredis") or {}
    for size in SIZES:
        lines.append(
            f"| pub/sub floor {size} over hiredis p50 / p99 (floor.py --client hiredis) | "
            f"{fmt(get(lean, size, 'p50_ms'))} / {fmt(get(lean, size, 'p99_ms'))} | | |"
        )
    ue, re_ = us["errors"], ref["errors"]
    for label, key in (
        ("wrong rosters", "wrong_rosters"),
        ("failed requests (non-200)", "failed_requests"),
        ("partial rosters", "partial_rosters"),
        ("failed connects", "connect_failures"),
    ):
        row(label, ue[key], re_[key], False)
    for label, k1, k2 in (
        ("fan-out lost / duplicated", "fanout_lost", "fanout_duplicates"),
        ("cluster log errors / warnings", "cluster_log_errors", "cluster_log_warnings"),
    ):
        lines.append(f"| {label} | {ue[k1]} / {ue[k2]} | {re_[k1]} / {re_[k2]} | |")
    lines.append(
        "| our bus writes given up (lost events, from the log) | "
        f"{ue.get('dropped_layer_writes', '-')} | | |"
    )
    lines += ["", "| target | want | this run | |", "|---|---|---:|---|"]
    for t in r["targets"]:
        lines.append(
            f"| {t['name']} | {t['want']} | {fmt(t['value'])} | {'met' if t['met'] else 'MISSED'} |"
        )
    lines += ["", f"{r['targets_met']} of {r['targets_total']} targets met."]
    adj = r["floor_ratio_http_adjusted"]
    lines += [
        "",
        "Context: (roster p50 - our HTTP floor p50) / pub-sub floor p50 = "
        + ", ".join(f"{fmt(adj[s])} at {s}" for s in SIZES)
        + " (the HTTP request itself, through daphne on a fresh TCP connection, is not in "
        "the pub/sub floor); over the hiredis floor, "
        + ", ".join(
            f"{fmt(r.get('hiredis_floor_ratio_http_adjusted', {}).get(s))} at {s}" for s in SIZES
        )
        + ".",
        "",
        "Connects/s: the harness decodes every announcement in one Node process; at its own "
        "CPU per connect (measured on our cluster) a server costing nothing would reach "
        f"{fmt(r.get('connects_ratio_harness_ceiling'))}x the reference's rate in this run.",
    ]
    v = r["versions"]
    lines += [
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--stamp", required=True)
    p.add_argument("--ref-dir", required=True)
    p.add_argument("--load-before", required=True)
    p.add_argument("--load-after", required=True)
    p.add_argument("--elapsed-s", type=int, required=True)
    p.add_argument("--log-totals", nargs="*", default=[])
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--redis-version", default="")
    p.add_argument("--us-dropped-writes", type=int, default=0)
    p.add_argument("--our-settings", default="")
    args = p.parse_args(argv)
    result = build(args)
    results = Path(args.results)
    text = json.dumps(result, indent=2) + "\n"
    (results / f"{args.stamp}.json").write_text(text)
    (results / "latest.json").write_text(text)
    table = markdown(result)
    (results / "latest.md").write_text(table)
    print(table)
    print(
        f"results: {results / (args.stamp + '.json')} (and latest.json, latest.md)", file=sys.stderr
    )
    # app errors (wrong rosters, lost events) are results, not a failed run; a step that
    # produced no output at all means the bench itself broke
    rows = load_steps(Path(args.work))
    broken = [f"r{r['round']}/{r['target']}/{r['step']}" for r in rows if r["data"] is None]
    if broken:
        print(f"steps without output: {', '.join(broken)}", file=sys.stderr)
    return 2 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
