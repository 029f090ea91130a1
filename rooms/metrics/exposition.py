"""One scrape for the whole cluster: each worker's series, labelled with its procid.

A worker answers a metrics query with `snapshot()`, plain lists the bus can carry; the
worker that was scraped merges the answers into metric families and prometheus-client
writes the exposition (text format 0.0.4, or OpenMetrics when the scraper asks for it).
`identity_playground_worker_up` names every worker the scrape expected, 0 for one that did
not answer in time, as Prometheus' own `up` does for a target it could not scrape
(https://prometheus.io/docs/concepts/jobs_instances/).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from rooms.metrics.series import PREFIX, REGISTRY

Snapshot = list[list[Any]]
"""[[name, type, help, [[sample name, labels, value], ...]], ...]: one worker's families."""

WORKER_UP = f"{PREFIX}_worker_up"


def snapshot(registry: CollectorRegistry = REGISTRY) -> Snapshot:
    """This worker's families as msgpack-friendly lists (exemplars and timestamps left out:
    no series here sets them)."""
    return [
        [
            family.name,
            family.type,
            family.documentation,
            [[s.name, s.labels, s.value] for s in family.samples],
        ]
        for family in registry.collect()
    ]


class ClusterCollector(Collector):
    """The families of every worker's snapshot, each sample labelled with its procid."""

    def __init__(self, snapshots: Mapping[str, Snapshot], expected: set[str]) -> None:
        self.snapshots = snapshots
        self.expected = expected

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for procid in sorted(self.snapshots):
            for name, kind, documentation, samples in self.snapshots[procid]:
                family = families.get(name)
                if family is None:
                    family = families[name] = Metric(name, documentation, kind)
                for sample_name, labels, value in samples:
                    family.add_sample(sample_name, {**labels, "procid": procid}, value)
        yield from families.values()
        up = Metric(WORKER_UP, "Whether the worker answered this scrape in time.", "gauge")
        for procid in sorted(self.expected | self.snapshots.keys()):
            up.add_sample(WORKER_UP, {"procid": procid}, float(procid in self.snapshots))
        yield up


def cluster_exposition(
    snapshots: Mapping[str, Snapshot], expected: set[str], accept: str = ""
) -> tuple[bytes, str]:
    """(body, content type) of the scrape: the format the Accept header asks for."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(snapshots, expected))
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
