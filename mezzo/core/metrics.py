"""Metrics shared by the daemons: Mesos-style timers, system gauges, Prometheus exposition.

- `Timer`: Mesos's timer metric. `/metrics/snapshot` shows the last value under its key
  (`allocator/mesos/allocation_run_ms`) and, over a window of recent samples, `/count`, `/min`,
  `/max`, `/p50`, `/p90`, `/p95`, `/p99`, `/p999`, `/p9999`; every sample also goes into a
  Prometheus histogram (seconds) for `/metrics`.
- `DaemonMetrics`: one daemon's Prometheus registry (not the process-global one: tests run
  several masters in one process) with its timers and the HTTP request latency histogram.
- `system_metrics()`: Mesos's `system/*` keys (cpus, load averages, memory), read with psutil.
- `prometheus_text(snapshot, metrics)`: the text format of `/metrics`: every snapshot key as a
  gauge (`master/cpus_total` -> `mezzo_master_cpus_total`; per-framework and per-role keys
  become labels), followed by the histograms.

Plain data with no I/O except `system_metrics` (which reads /proc through psutil), so the
decision cores may hold timers.
"""

from __future__ import annotations

import math
import os
import re
from array import array
from collections.abc import Iterable, Iterator
from urllib.parse import unquote

import psutil
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

PREFIX = "mezzo"
WINDOW = 10_000  # samples a timer keeps for its percentiles
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999),
               ("p9999", 0.9999))
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, math.inf)


class Timer:
    """Samples in seconds; shown in milliseconds under `key` (which ends with `_ms`).

    The window is a ring of doubles (`array`), not a deque of floats: an array holds no objects
    for the collector to visit, and a full window was 10,000 float objects that every full
    collection of the master visited (at 9,000 agents each reference visited costs ~0.1 µs)."""

    def __init__(self, key: str, histogram: Histogram) -> None:
        self.key = key
        self.histogram = histogram
        self._ring = array("d", bytes(8 * WINDOW))
        self.count = 0  # samples ever observed; the next goes to `count % WINDOW`

    @property
    def samples(self) -> list[float]:
        """The window's samples, oldest first."""
        if self.count < WINDOW:
            return self._ring[:self.count].tolist()
        at = self.count % WINDOW
        return self._ring[at:].tolist() + self._ring[:at].tolist()

    def observe(self, seconds: float) -> None:
        self._ring[self.count % WINDOW] = seconds
        self.count += 1
        self.histogram.observe(seconds)

    def snapshot(self) -> dict[str, float]:
        if not self.count:
            return {}
        ordered = sorted(self._ring[:min(self.count, WINDOW)])
        ms = [s * 1000.0 for s in ordered]
        last = self._ring[(self.count - 1) % WINDOW]
        out = {self.key: last * 1000.0, f"{self.key}/count": float(self.count),
               f"{self.key}/min": ms[0], f"{self.key}/max": ms[-1]}
        for name, q in PERCENTILES:
            out[f"{self.key}/{name}"] = ms[min(len(ms) - 1, int(q * len(ms)))]
        return out


class DaemonMetrics:
    """One registry of histograms; with `http=True` (one per daemon: its HTTP shell's) also
    the HTTP request latency histogram and the count of requests being handled."""

    def __init__(self, *, http: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.timers: list[Timer] = []
        self.http_seconds: Histogram | None = None
        if http:
            self.http_seconds = Histogram(
                f"{PREFIX}_http_request_duration_seconds", "HTTP request latency per endpoint",
                ["endpoint", "method"], registry=self.registry, buckets=LATENCY_BUCKETS)
        self.http_in_flight = 0

    def timer(self, key: str, name: str, documentation: str) -> Timer:
        histogram = Histogram(f"{PREFIX}_{name}_seconds", documentation, registry=self.registry,
                              buckets=LATENCY_BUCKETS)
        timer = Timer(key, histogram)
        self.timers.append(timer)
        return timer

    def timer_snapshot(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for timer in self.timers:
            out.update(timer.snapshot())
        return out


def system_metrics() -> dict[str, float]:
    """Mesos's `system/*` keys."""
    load1, load5, load15 = os.getloadavg()
    memory = psutil.virtual_memory()
    return {
        "system/cpus_total": float(psutil.cpu_count() or 0),
        "system/load_1min": load1,
        "system/load_5min": load5,
        "system/load_15min": load15,
        "system/mem_total_bytes": float(memory.total),
        "system/mem_free_bytes": float(memory.available),
    }


# Keys whose middle parts are identities: they become labels, so that one metric name
# covers every framework or role.
_LABELLED = (
    (re.compile(r"^master/frameworks/(?P<name>[^/]*)/(?P<id>[^/]+)/(?P<rest>.+)$"), "master_framework", ("name", "id")),
    (re.compile(r"^allocator/mesos/roles/(?P<role>.+)/shares/dominant$"), "allocator_role_dominant_share", ("role",)),
    (re.compile(r"^allocator/mesos/offer_filters/roles/(?P<role>.+)/active$"), "allocator_role_offer_filters_active", ("role",)),
)
_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


def _metric_name(key: str) -> tuple[str, dict[str, str]]:
    for pattern, name, labels in _LABELLED:
        match = pattern.match(key)
        if match:
            values = {label: unquote(match.group(label)) for label in labels}
            rest = match.groupdict().get("rest")
            full = f"{PREFIX}_{name}" + (f"_{_UNSAFE.sub('_', rest)}" if rest else "")
            return full, values
    return f"{PREFIX}_{_UNSAFE.sub('_', key)}", {}


class _SnapshotCollector:
    def __init__(self, snapshot: dict[str, float]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        label_names: dict[str, tuple[str, ...]] = {}
        for key, value in sorted(self.snapshot.items()):
            if "/" in key and key.rsplit("/", 1)[1] in {"count", "min", "max", *dict(PERCENTILES)}:
                continue  # timer summaries: /metrics has the histograms instead
            name, labels = _metric_name(key)
            family = families.get(name)
            if family is None:
                label_names[name] = tuple(labels)
                family = families[name] = GaugeMetricFamily(name, f"Mesos metric {key}",
                                                            labels=list(labels))
            family.add_metric([labels[n] for n in label_names[name]], float(value))
        yield from families.values()


def prometheus_text(snapshot: dict[str, float], metrics: DaemonMetrics | Iterable[DaemonMetrics]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    body = generate_latest(registry)
    for daemon in [metrics] if isinstance(metrics, DaemonMetrics) else metrics:
        body += generate_latest(daemon.registry)
    return body
