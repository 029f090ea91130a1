"""One line of the figures bench/ab.sh compares, from one harness step's output file."""

from __future__ import annotations

import json
import sys
from typing import Any


def summary(text: str) -> str:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith('{"mode"')]
    if lines:  # connect-rate.js: one JSON object per line, one per mode
        return "; ".join(
            f"{d['mode']} {d['rate_per_s']}/s cpu {d['server_cpu_ms']} ms" for d in lines
        )
    data: dict[str, Any] = json.loads(text)
    if data.get("bench") == "roomusers":
        get = data["get"]
        latency = get["latency_ms"]
        return (
            f"p50 {latency['p50']} p99 {latency['p99']} ms, cpu/request "
            f"{get['server_cpu_ms_per_request']} ms, wrong {get['wrong_count']}"
        )
    return (
        f"per-recipient p50 {data['p50_ms']} p99 {data['p99_ms']} ms, all have it p50 "
        f"{data['completion_p50_ms']} ms, cpu {data['delivery'].get('server_cpu_ms')} ms"
    )


if __name__ == "__main__":
    try:
        with open(sys.argv[1]) as out:
            print(summary(out.read()))
    except (OSError, ValueError, KeyError) as exc:
        print(f"no result ({type(exc).__name__}: {exc})")
