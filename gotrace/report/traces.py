"""Whole traces: the slowest ones, each as its spans in tree order with their depth."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from gotrace.spans import Span


@dataclass(frozen=True, slots=True)
class TraceView:
    trace_id: bytes
    start_ns: int  # of its earliest span
    duration_ns: int  # from the earliest start to the latest end
    rows: list[tuple[Span, int]]  # (span, depth), parents before children, 0 = a root


def slowest_traces(spans: Iterable[Span], limit: int) -> list[TraceView]:
    """The `limit` longest traces, longest first (ties: by trace id, for a stable report)."""
    by_trace: dict[bytes, list[Span]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    views = []
    for trace_id, members in by_trace.items():
        start = min(span.start_time_unix_nano for span in members)
        end = max(span.end_time_unix_nano for span in members)
        views.append((end - start, trace_id, start, members))
    views.sort(key=lambda view: (-view[0], view[1]))
    return [TraceView(trace_id, start, duration, span_tree(members))
            for duration, trace_id, start, members in views[:limit]]


def span_tree(spans: list[Span]) -> list[tuple[Span, int]]:
    """Depth-first, siblings by start time. A span whose parent is missing from the capture
    is a root; spans caught in a parent cycle (corrupt ids) are appended as roots too, so
    every span is shown exactly once."""
    ids = {span.span_id for span in spans}
    children: dict[bytes, list[Span]] = defaultdict(list)
    roots = []
    for span in sorted(spans, key=lambda s: (s.start_time_unix_nano, s.span_id)):
        if span.parent_span_id in ids and span.parent_span_id != span.span_id:
            children[span.parent_span_id].append(span)
        else:
            roots.append(span)
    rows: list[tuple[Span, int]] = []
    seen: set[int] = set()
    for root in roots + spans:
        stack = [(root, 0)]
        while stack:
            span, depth = stack.pop()
            if id(span) in seen:
                continue
            seen.add(id(span))
            rows.append((span, depth))
            stack.extend((child, depth + 1) for child in reversed(children[span.span_id]))
    return rows
