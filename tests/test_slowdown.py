"""The runtime and network facts flagged on spans where they explain the duration."""

from __future__ import annotations

from gotrace.export.console import span_line
from gotrace.facts.slowdown import slowdown
from gotrace.spans import Resource, Span


def span(duration_ns: int, **attributes) -> Span:
    return Span(trace_id=b"\1" * 16, span_id=b"\2" * 8, parent_span_id=None, name="GET /x",
                kind="SERVER", start_time_unix_nano=1_000, end_time_unix_nano=1_000 + duration_ns,
                resource=Resource({"service.name": "s"}), own_attributes=attributes)


def test_flags_what_explains_most_of_the_span():
    assert slowdown(span(10_000_000, **{"go.gc.pause_ns": 6_000_000})) == "GC pause 60%"
    assert slowdown(span(10_000_000, **{"go.gc.pause_ns": 4_000_000})) == ""
    assert slowdown(span(10_000_000, **{"network.tcp.connect_ns": 9_000_000})) == \
        "TCP connect 90%"
    assert slowdown(span(300_000_000, **{"network.tcp.retransmits": 2,
                                         "go.gc.pause_ns": 0})) == "2 TCP retransmits"
    assert slowdown(span(10_000_000)) == ""
    assert slowdown(span(10_000_000, **{"go.sched.runnable_ns": 7_000_000,
                                        "go.sched.blocked.lock_ns": 1_000_000})) == \
        "waiting for CPU 70%"
    assert slowdown(span(10_000_000, **{"go.sched.blocked.lock_ns": 8_000_000})) == \
        "blocked on lock 80%"


def test_console_line_shows_it():
    assert "<1 TCP retransmit>" in span_line(span(1_000, **{"network.tcp.retransmits": 1}))
