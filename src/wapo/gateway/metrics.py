"""Prometheus metrics of the gateway: of one process, or summed over the workers of ``--workers N``.

With several workers the first process gives every process one directory (prometheus_client's
multiprocess mode: each writes its values to memory-mapped files there) and ``/metrics``, whichever
worker answers, reads them all. Per-CID series have a bounded label set: the first
``top_cids`` CIDs a process sees get their own label, the others count as ``other``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..host.speculation import speculation

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def _use_multiprocess_values() -> bool:
    """True when this process shares its metrics (the env variable is set). prometheus_client picks
    its value class when imported; the first process imported it before it knew about workers."""
    if not os.environ.get(MULTIPROC_ENV):
        return False
    from prometheus_client import values
    if values.ValueClass is values.MutexValue:
        values.ValueClass = values.MultiProcessValue()
    return True


class Metrics:
    def __init__(self, top_cids: int = 20) -> None:
        self.shared = _use_multiprocess_values()
        self.registry = CollectorRegistry()
        self.requests = Counter("wapo_requests", "HTTP requests answered", ["route", "status"],
                                registry=self.registry)
        self.errors = Counter("wapo_agent_errors", "Agent runs that failed, by kind", ["kind"],
                              registry=self.registry)
        self.run_seconds = Histogram("wapo_agent_run_seconds", "Wall time of agent runs",
                                     buckets=BUCKETS, registry=self.registry)
        self.live = Gauge("wapo_sandboxes_live", "Sandboxes running now", registry=self.registry,
                          multiprocess_mode="livesum")
        self.cid_requests = Counter("wapo_agent_requests", "Agent runs by CID (the first CIDs seen; the rest "
                                    "as 'other') and answer status", ["cid", "status"], registry=self.registry)
        self.cid_seconds = Histogram("wapo_agent_request_seconds", "Wall time of agent requests by CID (the "
                                     "first CIDs seen; the rest as 'other')", ["cid"], buckets=BUCKETS,
                                     registry=self.registry)
        # first steps run on the event loop on trust (host/speculation.py), by how they ended; a
        # gauge per process set as runs end ("livesum": the sum over workers)
        self.speculative = Gauge("wapo_speculative_steps", "First steps run on the event loop on trust, "
                                 "since start: ran (to their end) or stopped (run again on a guest thread)",
                                 ["outcome"], registry=self.registry, multiprocess_mode="livesum")
        self._speculative_ran = self.speculative.labels("ran")
        self._speculative_stopped = self.speculative.labels("stopped")
        self.top_cids = top_cids
        self._labelled: set[str] = set()
        # labelled children, looked up once (``labels()`` builds a key and takes a lock each time)
        self._request_counters: dict[tuple[str, str], Any] = {}
        self._cid_counters: dict[tuple[str, int], Any] = {}
        self._cid_histograms: dict[str, Any] = {}

    def count_request(self, route: str, status: int | str) -> None:
        """One answered HTTP request of ``route`` (its canonical path) with ``status``."""
        key = (route, str(status))
        child = self._request_counters.get(key)
        if child is None:
            child = self._request_counters[key] = self.requests.labels(*key)
        child.inc()

    def cid_label(self, cid: str) -> str:
        """``cid`` itself while fewer than ``top_cids`` CIDs have a label, else ``other``."""
        if cid in self._labelled:
            return cid
        if len(self._labelled) < self.top_cids:
            self._labelled.add(cid)
            return cid
        return OTHER

    def observe_run(self, cid: str, status: int, seconds: float) -> None:
        """One answered request (or scheduled run) of an agent."""
        label = self.cid_label(cid)
        counter = self._cid_counters.get((label, status))
        if counter is None:
            counter = self._cid_counters[(label, status)] = self.cid_requests.labels(label, str(status))
        counter.inc()
        histogram = self._cid_histograms.get(label)
        if histogram is None:
            histogram = self._cid_histograms[label] = self.cid_seconds.labels(label)
        histogram.observe(seconds)
        policy = speculation()
        self._speculative_ran.set(policy.ran)
        self._speculative_stopped.set(policy.ended)

    def render(self) -> tuple[bytes, str]:
        if self.shared:
            from prometheus_client import multiprocess
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def prepare_shared_metrics(data_dir: Path) -> Path:
    """A fresh directory for this gateway's processes to share their metrics in (under
    ``data_dir/metrics``; the folders of gateways no longer running are removed), set in the
    environment that the workers inherit."""
    root = Path(data_dir) / "metrics"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for old in root.glob("serve-*"):
        pid = old.name.removeprefix("serve-")
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    here = root / f"serve-{os.getpid()}"
    shutil.rmtree(here, ignore_errors=True)
    here.mkdir(mode=0o700)
    os.environ[MULTIPROC_ENV] = str(here)
    return here


def worker_gone(pid: int) -> None:
    """Drop the live gauges of a worker that ended (its counters stay in the sums)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
