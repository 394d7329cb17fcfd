"""gotrace's own counters as Prometheus counter families, read when Prometheus scrapes.

Each source wraps a callable that returns the current numbers, so this module knows their
shape but not the objects that keep them (the tracer, the export pipeline).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from gotrace.export import PipelineStats
from gotrace.metrics.exposition import CounterFamily

CounterSource = Callable[[], Sequence[CounterFamily]]


def kernel_counters(read: Callable[[], tuple[Mapping[str, int], Mapping[str, int]]]
                    ) -> CounterSource:
    """From read() -> (uprobe hits per probe, spans lost in the kernel per reason)."""
    def families() -> Sequence[CounterFamily]:
        hits, lost = read()
        return (
            CounterFamily("gotrace_probe_hits_total", "Uprobe hits, per BPF probe program.",
                          [((("probe", probe),), n) for probe, n in sorted(hits.items())]),
            CounterFamily("gotrace_kernel_spans_lost_total",
                          "Spans lost in the kernel before reaching gotrace, per reason.",
                          [((("reason", reason),), n) for reason, n in sorted(lost.items())]),
        )
    return families


def shed_counters(read: Callable[[], tuple[int, int]]) -> CounterSource:
    """From read() -> spans the overload policy shed (in the kernel, in gotrace)."""
    def families() -> Sequence[CounterFamily]:
        kernel, here = read()
        return (CounterFamily("gotrace_spans_shed_total",
                              "Spans the overload policy shed (decided, not lost), by where.",
                              [((("where", "kernel"),), kernel), ((("where", "gotrace"),), here)]),)
    return families


def route_counters(read: Callable[[], Mapping[str, int]]) -> CounterSource:
    """From read() -> per service, the spans --infer-routes gave its overflow route (past
    the service's cap of inferred routes, or a 404 to a path no route matches)."""
    def families() -> Sequence[CounterFamily]:
        return (CounterFamily("gotrace_inferred_routes_overflow_total",
                              "HTTP server spans given the overflow route of --infer-routes "
                              "(past their service's cap of inferred routes, or a 404 that "
                              "matched no inferred route), per service.",
                              [((("service_name", service),), n)
                               for service, n in sorted(read().items())]),)
    return families


def pipeline_counters(read: Callable[[], PipelineStats]) -> CounterSource:
    """From read() -> the export pipeline's statistics (per exporter)."""
    def families() -> Sequence[CounterFamily]:
        lanes = read().exporters
        return (
            CounterFamily("gotrace_spans_exported_total", "Spans delivered, per exporter.",
                          [((("exporter", name),), lane.exported)
                           for name, lane in lanes.items()]),
            CounterFamily("gotrace_spans_dropped_total",
                          "Spans an exporter could not deliver, per exporter and reason.",
                          [((("exporter", name), ("reason", reason)), n)
                           for name, lane in lanes.items()
                           for reason, n in lane.dropped.items()]),
        )
    return families


class CrossHostCounts(NamedTuple):
    """Cross-host linking's numbers (gotrace/pipeline/cross_host.py, link_store.py)."""

    linked: int  # server spans linked to a caller on another host
    unlinked: Mapping[str, int]  # ... exported unlinked, per reason
    published: int  # client spans written to the link store
    publish_dropped: Mapping[str, int]  # ... dropped, per reason
    round_trips: int
    outages: int


def cross_host_counters(read: Callable[[], CrossHostCounts]) -> CounterSource:
    """From read() -> cross-host linking's numbers."""
    def families() -> Sequence[CounterFamily]:
        counts = read()
        return (
            CounterFamily("gotrace_cross_host_server_spans_total",
                          "Server spans called from another host: linked to their caller "
                          "through the link store, or exported unlinked, per reason.",
                          [((("result", "linked"),), counts.linked),
                           *(((("result", "unlinked"), ("reason", reason)), n)
                             for reason, n in counts.unlinked.items())]),
            CounterFamily("gotrace_link_store_publications_total",
                          "Client spans to other hosts written to the link store, or dropped "
                          "per reason.",
                          [((("result", "written"),), counts.published),
                           *(((("result", "dropped"), ("reason", reason)), n)
                             for reason, n in counts.publish_dropped.items())]),
            CounterFamily("gotrace_link_store_round_trips_total",
                          "Round trips to the link store.", [((), counts.round_trips)]),
            CounterFamily("gotrace_link_store_outages_total",
                          "Times the link store was found unreachable or unanswering.",
                          [((), counts.outages)]),
        )
    return families
