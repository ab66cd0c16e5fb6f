"""The iterative framework's core: logistic regression over partitioned data, Spark style.

Owns the dataset (generated deterministically per partition as CSV text, which stands in for
reading an input block from a distributed file system), its parsing, the gradient step (numpy
if installed, else pure Python), the message format between scheduler and executors, and the
coordinator that drives iterations (`IterationDriver`: no I/O, the shell passes `now`).

Why later iterations are faster: the first one loads (generates + parses) each partition; the
executor keeps the parsed partition in memory, so later iterations only compute the gradient,
which is the point the Mesos paper makes with Spark (§6.4: 127 s first iteration, 6 s after).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

try:  # numpy is optional: used when installed, never required
    import numpy as np
except ImportError:  # pragma: no cover - exercised when numpy is absent
    np = None  # type: ignore[assignment]


# --------------------------------------------------------------------------- data


def true_weights(dims: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-2.0, 2.0) for _ in range(dims)]


def generate_partition_text(seed: int, partition: int, points: int, dims: int) -> str:
    """`points` CSV lines `label,x1,...,xd` with labels drawn from a logistic model."""
    w = true_weights(dims, seed)
    rng = random.Random(seed * 1_000_003 + partition)
    lines = []
    for _ in range(points):
        x = [rng.gauss(0.0, 1.0) for _ in range(dims)]
        z = sum(wi * xi for wi, xi in zip(w, x, strict=True))
        label = 1 if rng.random() < 1.0 / (1.0 + math.exp(-z)) else 0
        lines.append(f"{label}," + ",".join(f"{v:.6f}" for v in x))
    return "\n".join(lines)


@dataclass
class Partition:
    """A parsed partition: labels (0/1) and feature rows (numpy arrays or lists)."""

    labels: Any
    features: Any
    count: int


def parse_partition(text: str) -> Partition:
    rows = [line.split(",") for line in text.splitlines() if line]
    labels = [float(r[0]) for r in rows]
    features = [[float(v) for v in r[1:]] for r in rows]
    if np is not None:
        return Partition(np.asarray(labels), np.asarray(features), len(rows))
    return Partition(labels, features, len(rows))


def gradient(part: Partition, weights: list[float]) -> tuple[list[float], float]:
    """Sum over the partition of the log-loss gradient, and the summed log-loss."""
    if np is not None:
        w = np.asarray(weights)
        z = part.features @ w
        p = 1.0 / (1.0 + np.exp(-z))
        grad = part.features.T @ (p - part.labels)
        eps = 1e-12
        loss = -float(
            np.sum(part.labels * np.log(p + eps) + (1 - part.labels) * np.log(1 - p + eps))
        )
        return [float(g) for g in grad], loss
    dims = len(weights)
    grad = [0.0] * dims
    loss = 0.0
    for y, x in zip(part.labels, part.features, strict=True):
        z = 0.0
        for wi, xi in zip(weights, x, strict=True):
            z += wi * xi
        p = 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0
        err = p - y
        for i in range(dims):
            grad[i] += err * x[i]
        loss -= math.log(p + 1e-12) if y else math.log(1.0 - p + 1e-12)
    return grad, loss


# --------------------------------------------------------------------------- messages


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def decode(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict) or "type" not in value:
        raise ValueError("not an iterative framework message")
    return value


@dataclass(frozen=True)
class PartitionSpec:
    """What an executor needs to load its partition (sent as the holder task's data)."""

    seed: int
    partition: int
    points: int
    dims: int

    def to_bytes(self) -> bytes:
        return encode({"type": "partition", **self.__dict__})

    @classmethod
    def from_bytes(cls, data: bytes) -> PartitionSpec:
        m = decode(data)
        return cls(int(m["seed"]), int(m["partition"]), int(m["points"]), int(m["dims"]))


# --------------------------------------------------------------------------- coordinator


@dataclass
class IterationRecord:
    iteration: int
    started_at: float
    finished_at: float | None = None
    loss: float | None = None
    load_seconds: float = 0.0  # max over partitions of time spent loading this iteration

    @property
    def seconds(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


@dataclass
class IterationDriver:
    """Gradient descent over `partitions` remote partitions, one round of messages each."""

    partitions: int
    iterations: int
    dims: int
    learning_rate: float = 2.0
    cache: bool = True
    weights: list[float] = field(default_factory=list)
    records: list[IterationRecord] = field(default_factory=list)
    _replies: dict[int, tuple[list[float], int, float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.weights:
            self.weights = [0.0] * self.dims

    @property
    def current(self) -> IterationRecord | None:
        if self.records and self.records[-1].finished_at is None:
            return self.records[-1]
        return None

    @property
    def done(self) -> bool:
        return len(self.records) >= self.iterations and self.current is None

    def start(self, now: float) -> dict[str, Any]:
        """Begin the next iteration; returns the message to send to every partition."""
        assert self.current is None and not self.done
        self.records.append(IterationRecord(iteration=len(self.records) + 1, started_at=now))
        self._replies = {}
        return self.request()

    def request(self) -> dict[str, Any]:
        """The current iteration's request (also used to resend to a slow partition)."""
        rec = self.current
        assert rec is not None
        return {
            "type": "iterate",
            "iteration": rec.iteration,
            "weights": self.weights,
            "cache": self.cache,
        }

    def missing(self) -> list[int]:
        return [p for p in range(self.partitions) if p not in self._replies]

    def reply(self, message: dict[str, Any], now: float) -> bool:
        """A partition's gradient. True when it completed the iteration (weights updated)."""
        rec = self.current
        if rec is None or message.get("iteration") != rec.iteration:
            return False  # a late duplicate of an earlier round
        part = int(message["partition"])
        self._replies[part] = (
            [float(g) for g in message["gradient"]],
            int(message["count"]),
            float(message["loss"]),
            float(message.get("load_seconds", 0.0)),
        )
        if len(self._replies) < self.partitions:
            return False
        total = sum(count for _, count, _, _ in self._replies.values())
        grad = [0.0] * self.dims
        for g, _, _, _ in self._replies.values():
            for i, v in enumerate(g):
                grad[i] += v
        step = self.learning_rate / max(total, 1)
        self.weights = [w - step * g for w, g in zip(self.weights, grad, strict=True)]
        rec.loss = sum(loss for _, _, loss, _ in self._replies.values()) / max(total, 1)
        rec.load_seconds = max(load for _, _, _, load in self._replies.values())
        rec.finished_at = now
        return True

    def speedup(self) -> float | None:
        """First iteration time over the mean of the later ones."""
        times = [r.seconds for r in self.records if r.seconds is not None]
        if len(times) < 2:
            return None
        later = sum(times[1:]) / len(times[1:])
        return times[0] / later if later > 0 else None
