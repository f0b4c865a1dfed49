"""Prometheus metrics of one gateway process (each worker reports its own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("wapo_requests", "HTTP requests answered", ["route", "status"],
                                registry=self.registry)
        self.errors = Counter("wapo_agent_errors", "Agent runs that failed, by kind", ["kind"],
                              registry=self.registry)
        self.run_seconds = Histogram("wapo_agent_run_seconds", "Wall time of agent runs",
                                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                              10, 30, 60), registry=self.registry)
        self.live = Gauge("wapo_sandboxes_live", "Sandboxes running now", registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
