"""Duration histograms per (metric, label set), with a cap on the number of label sets.

A traced service decides what ends up in labels (routes, peer host names, gRPC method
names sent by clients), so the number of series must not grow without bound. Once the cap
is reached, observations with a new label set go to one overflow series per metric, labelled
only `otel_metric_overflow="true"` as the OpenTelemetry SDKs do: totals stay right, and
the overflow counter says how many spans lost their labels.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gotrace.metrics.red import DurationMetric, Labels

log = logging.getLogger(__name__)

DEFAULT_MAX_SERIES = 2000
OVERFLOW_LABELS: Labels = (("otel_metric_overflow", "true"),)


@dataclass(slots=True)
class Histogram:
    """Counts per bucket (not cumulative; the last bucket is +Inf), sum and count."""

    buckets: list[int]
    sum: float = 0.0
    count: int = 0

    def copy(self) -> Histogram:
        return Histogram(list(self.buckets), self.sum, self.count)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    series: dict[DurationMetric, list[tuple[Labels, Histogram]]]
    overflowed: int  # observations that went to an overflow series


class DurationHistograms:
    """Thread-safe: one thread records batches while others take snapshots (scrapes)."""

    def __init__(self, bounds: Sequence[float], max_series: int = DEFAULT_MAX_SERIES) -> None:
        self.bounds = tuple(bounds)
        self.max_series = max_series
        self._lock = threading.Lock()
        self._series: dict[tuple[DurationMetric, Labels], Histogram] = {}
        self._labelled = 0  # series other than the overflow ones: what the cap counts
        self._overflowed = 0

    def record(self, observations: Iterable[tuple[DurationMetric, Labels, float]]) -> None:
        """Add (metric, labels, value) observations; a bucket holds values up to and
        including its upper bound, as Prometheus' `le` says."""
        with self._lock:
            for metric, labels, value in observations:
                histogram = self._series.get((metric, labels)) or self._new(metric, labels)
                histogram.buckets[bisect_left(self.bounds, value)] += 1
                histogram.sum += value
                histogram.count += 1

    def _new(self, metric: DurationMetric, labels: Labels) -> Histogram:
        """The histogram for a label set not seen yet: its own, or the overflow one."""
        if self._labelled < self.max_series:
            self._labelled += 1
        else:
            if not self._overflowed:
                log.warning("metrics: %d series reached; spans with new label sets are "
                            "counted without labels (otel_metric_overflow)", self.max_series)
            self._overflowed += 1
            labels = OVERFLOW_LABELS
            if (metric, labels) in self._series:
                return self._series[metric, labels]
        histogram = self._series[metric, labels] = Histogram([0] * (len(self.bounds) + 1))
        return histogram

    def snapshot(self) -> HistogramSnapshot:
        """A consistent copy, series sorted by labels within each metric."""
        with self._lock:
            copies = [(metric, labels, h.copy()) for (metric, labels), h in self._series.items()]
            overflowed = self._overflowed
        series: dict[DurationMetric, list[tuple[Labels, Histogram]]] = {}
        for metric, labels, histogram in sorted(copies, key=lambda c: (c[0].name, c[1])):
            series.setdefault(metric, []).append((labels, histogram))
        return HistogramSnapshot(series, overflowed)
