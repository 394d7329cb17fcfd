"""A trace as text: its span tree, each span with a bar on the trace's time scale.

The terminal's version of the report's waterfalls (charts.waterfall), for the demo:

    trace 4bf92f3577b34da6a3ce929d0e0e4736  312 ms
      httpgrpc SERVER GET /say          312 ms |████████████████████████████████| 502 ERROR
        httpgrpc CLIENT demo.Echo/Say   311 ms | ███████████████████████████████| grpc 14 ERROR
"""

from __future__ import annotations

from urllib.parse import urlsplit

from gotrace.facts.slowdown import slowdown
from gotrace.report.markup import format_duration, truncate
from gotrace.report.spaninfo import is_error, service_of
from gotrace.report.traces import TraceView
from gotrace.spans import Span

LABEL_WIDTH = 52
BAR_WIDTH = 40
_INDENT = "  "
_BAR = "█"


def trace_lines(trace: TraceView, *, label_width: int = LABEL_WIDTH,
                bar_width: int = BAR_WIDTH) -> list[str]:
    """A header naming the trace and its duration, then one line per span in tree order."""
    lines = [f"trace {trace.trace_id.hex()}  {format_duration(trace.duration_ns)}"]
    scale = bar_width / max(trace.duration_ns, 1)
    for span, depth in trace.rows:
        label = truncate(f"{_INDENT * (depth + 1)}{service_of(span)} {span.kind} "
                         f"{operation(span)}", label_width)
        start = min(bar_width - 1, int((span.start_time_unix_nano - trace.start_ns) * scale))
        length = min(bar_width - start, max(1, round(span.duration_ns * scale)))
        bar = (" " * start + _BAR * length).ljust(bar_width)
        lines.append(f"{label:<{label_width}} {format_duration(span.duration_ns):>8} "
                     f"|{bar}| {outcome(span)}".rstrip())
    return lines


def operation(span: Span) -> str:
    """The span's name; an HTTP span named by its method alone (no route pattern is known)
    gets the path it went to."""
    attrs = span.attributes
    if span.name != attrs.get("http.request.method"):
        return span.name
    path = attrs.get("url.path") or urlsplit(str(attrs.get("url.full", ""))).path
    return f"{span.name} {path}" if path else span.name


def outcome(span: Span) -> str:
    """The span's status code (HTTP, or gRPC as "grpc N"), and ERROR when it failed."""
    attrs = span.attributes
    parts = []
    if "http.response.status_code" in attrs:
        parts.append(str(attrs["http.response.status_code"]))
    elif "rpc.grpc.status_code" in attrs:
        parts.append(f"grpc {attrs['rpc.grpc.status_code']}")
    if is_error(span):
        parts.append("ERROR")
    note = slowdown(span)
    if note:
        parts.append(f"<{note}>")
    return " ".join(parts)
