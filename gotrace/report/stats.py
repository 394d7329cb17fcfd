"""Latency statistics: percentiles, error rates per route, log-scale histogram buckets."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gotrace.report.spaninfo import Route, is_error, route_of, service_of
from gotrace.spans import Span

KIND_ORDER = {"SERVER": 0, "CLIENT": 1, "INTERNAL": 2}
_STEPS = (1, 2, 5)  # histogram bucket edges: 1, 2, 5, 10, 20, 50, ... nanoseconds


def percentile(ordered: Sequence[int], p: int) -> int:
    """Nearest-rank percentile of an ascending, non-empty sequence.

    Nearest rank always answers a latency that was observed, which is what a reader of
    "P99 = 12 ms" expects; interpolating between two requests would invent one.
    """
    rank = max(1, -(-p * len(ordered) // 100))  # ceil in integers: no 0.95 * 100 = 95.0000001
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int
    errors: int
    p50_ns: int
    p95_ns: int
    p99_ns: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.count


def summarize(spans: Iterable[Span]) -> LatencySummary:
    """Count, errors and percentiles of the durations of a non-empty group of spans."""
    group = list(spans)
    durations = sorted(span.duration_ns for span in group)
    return LatencySummary(
        count=len(group),
        errors=sum(is_error(span) for span in group),
        p50_ns=percentile(durations, 50),
        p95_ns=percentile(durations, 95),
        p99_ns=percentile(durations, 99),
    )


@dataclass(frozen=True, slots=True)
class RouteStats:
    service: str
    kind: str
    route: Route
    summary: LatencySummary
    histogram: list[int]  # span counts per bucket of the report's bucket edges


def route_stats(spans: Iterable[Span], edges: Sequence[int]) -> list[RouteStats]:
    """One row per (service, kind, route): by service, SERVER before CLIENT, then route."""
    groups: dict[tuple[str, str, Route], list[Span]] = defaultdict(list)
    for span in spans:
        groups[(service_of(span), span.kind, route_of(span))].append(span)
    rows = [RouteStats(service, kind, route, summarize(group),
                       bucket_counts((s.duration_ns for s in group), edges))
            for (service, kind, route), group in groups.items()]
    return sorted(rows, key=lambda r: (r.service, KIND_ORDER[r.kind], r.route))


def bucket_edges(durations: Iterable[int]) -> list[int]:
    """Edges 1-2-5 per decade, from the largest edge at or below the shortest duration to the
    first edge above the longest: bucket i holds durations in [edges[i], edges[i + 1])."""
    values = list(durations)
    low = max(1, min(values))
    high = max(low, max(values))  # at least one bucket, even when every duration is 0
    decade = _decade(low)
    edges = [max(decade * step for step in _STEPS if decade * step <= low)]
    while edges[-1] <= high:
        edges.append(_next_edge(edges[-1]))
    return edges


def _decade(value: int) -> int:
    return 10 ** (len(str(value)) - 1)


def _next_edge(edge: int) -> int:
    decade = _decade(edge)
    larger = [step for step in _STEPS if step > edge // decade]
    return decade * larger[0] if larger else decade * 10


def bucket_counts(durations: Iterable[int], edges: Sequence[int]) -> list[int]:
    """How many durations fall in each bucket of edges made by bucket_edges from (at least)
    these durations; a zero duration counts in the first bucket."""
    counts = [0] * (len(edges) - 1)
    for duration in durations:
        counts[max(bisect.bisect_right(edges, duration) - 1, 0)] += 1
    return counts
