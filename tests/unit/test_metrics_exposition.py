"""One scrape from several workers' snapshots: prometheus-client's parser reads it back."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from rooms.metrics.exposition import cluster_exposition, snapshot


def worker_snapshot(sockets: int, connects: int) -> list[list[object]]:
    registry = CollectorRegistry()
    Gauge("identity_playground_sockets", "Sockets.", registry=registry).set(sockets)
    Counter("identity_playground_connects", "Connects.", registry=registry).inc(connects)
    gather = Histogram("g_seconds", "Gathers.", ["kind"], buckets=(0.1, 1.0), registry=registry)
    gather.labels("roster").observe(0.05)
    return snapshot(registry)


def parsed(body: bytes) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(body.decode())
    }


def test_every_sample_is_labelled_with_its_worker_and_a_silent_worker_is_down() -> None:
    snapshots = {"w0-1-aa": worker_snapshot(3, 5), "w1-2-bb": worker_snapshot(4, 6)}
    body, content_type = cluster_exposition(snapshots, {"w0-1-aa", "w1-2-bb", "w2-3-cc"})
    assert content_type.startswith("text/plain; version=0.0.4")
    families = parsed(body)
    assert families["identity_playground_sockets"] == [
        ("identity_playground_sockets", {"procid": "w0-1-aa"}, 3.0),
        ("identity_playground_sockets", {"procid": "w1-2-bb"}, 4.0),
    ]
    connects = families["identity_playground_connects"]
    assert {(s[0], s[1]["procid"], s[2]) for s in connects} == {
        ("identity_playground_connects_total", "w0-1-aa", 5.0),
        ("identity_playground_connects_total", "w1-2-bb", 6.0),
    }
    buckets = [s for s in families["g_seconds"] if s[0] == "g_seconds_bucket"]
    assert {"kind": "roster", "le": "0.1", "procid": "w0-1-aa"} in [s[1] for s in buckets]
    assert families["identity_playground_worker_up"] == [
        ("identity_playground_worker_up", {"procid": p}, up)
        for p, up in (("w0-1-aa", 1.0), ("w1-2-bb", 1.0), ("w2-3-cc", 0.0))
    ]


def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    body, content_type = cluster_exposition(
        {"w0": worker_snapshot(1, 1)}, {"w0"}, "application/openmetrics-text; version=1.0.0"
    )
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
