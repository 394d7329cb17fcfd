"""Everything the page shows, computed from the spans once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gotrace.errors import GotraceError
from gotrace.report.dependencies import Edge, Node, dependency_graph
from gotrace.report.spaninfo import service_of
from gotrace.report.stats import RouteStats, bucket_edges, route_stats
from gotrace.report.traces import TraceView, slowest_traces
from gotrace.spans import Span

DEFAULT_SLOWEST = 10


@dataclass(frozen=True, slots=True)
class Report:
    source: str  # where the spans came from, as the page names it
    span_count: int
    trace_count: int
    services: list[str]
    start_ns: int
    end_ns: int
    bucket_edges: list[int]  # shared by every histogram, so their bars line up
    routes: list[RouteStats]
    nodes: list[Node]
    edges: list[Edge]
    slowest: list[TraceView]


def analyze(spans: Sequence[Span], source: str, slowest: int = DEFAULT_SLOWEST) -> Report:
    if not spans:
        raise GotraceError(f"{source}: no spans to report on")
    edges = bucket_edges(span.duration_ns for span in spans)
    nodes, calls = dependency_graph(spans)
    return Report(
        source=source,
        span_count=len(spans),
        trace_count=len({span.trace_id for span in spans}),
        services=sorted({service_of(span) for span in spans}),
        start_ns=min(span.start_time_unix_nano for span in spans),
        end_ns=max(span.end_time_unix_nano for span in spans),
        bucket_edges=edges,
        routes=route_stats(spans, edges),
        nodes=nodes,
        edges=calls,
        slowest=slowest_traces(spans, slowest),
    )
