"""Human-readable output: each trace in a batch as an indented tree, one line per span."""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import TextIO

from gotrace.facts.slowdown import slowdown
from gotrace.spans import Span

# Groups of (label, attribute key): the first key of a group the span has is shown.
_KEY_ATTRIBUTES: tuple[tuple[tuple[str, str], ...], ...] = (
    (("http_status", "http.response.status_code"),),
    (("grpc_status", "rpc.grpc.status_code"),),
    (("path", "url.path"), ("url", "url.full")),
)
_INDENT = "  "


class ConsoleExporter:
    """Writes span trees to a text stream (stdout by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = sys.stdout if stream is None else stream

    def export(self, spans: Sequence[Span]) -> bool:
        try:
            self._stream.write(format_batch(spans))
            self._stream.flush()
        except (OSError, ValueError):  # closed pipe or closed stream: undelivered, not a crash
            return False
        return True

    def shutdown(self) -> None:
        """Nothing to release: the stream belongs to the caller."""

    def __str__(self) -> str:
        return "console"


def format_batch(spans: Sequence[Span]) -> str:
    """All traces in the batch, earliest first, each as a header line and its span tree.

    A span whose parent is not in the batch (it ended in an earlier batch, or in another
    process) is shown as a root, so nothing in the batch is left out.
    """
    by_trace: dict[bytes, list[Span]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    traces = sorted(by_trace.items(), key=lambda item: min(s.start_time_unix_nano
                                                            for s in item[1]))
    lines: list[str] = []
    for trace_id, members in traces:
        lines.append(f"trace {trace_id.hex()}")
        lines.extend(_tree_lines(members))
    return "".join(line + "\n" for line in lines)


def _tree_lines(spans: list[Span]) -> list[str]:
    ids = {span.span_id for span in spans}
    children: dict[bytes, list[Span]] = defaultdict(list)
    roots: list[Span] = []
    for span in sorted(spans, key=lambda s: s.start_time_unix_nano):
        if span.parent_span_id is not None and span.parent_span_id in ids \
                and span.parent_span_id != span.span_id:
            children[span.parent_span_id].append(span)
        else:
            roots.append(span)
    lines: list[str] = []
    shown: set[int] = set()
    # Spans left over after walking from the roots sit on a parent cycle (corrupt ids); they
    # are still printed, each as a root of its own.
    for root in roots + spans:
        if id(root) in shown:
            continue
        stack: list[tuple[Span, int, str | None]] = [(root, 1, None)]
        while stack:
            span, depth, parent_service = stack.pop()
            if id(span) in shown:
                continue
            shown.add(id(span))
            service = _service(span)
            lines.append(_INDENT * depth + span_line(span, service != parent_service))
            stack.extend((child, depth + 1, service)
                         for child in reversed(children.get(span.span_id, [])))
    return lines


def _service(span: Span) -> str:
    return str(span.resource.attributes.get("service.name", "unknown_service"))


def span_line(span: Span, with_service: bool = True) -> str:
    """One span: kind, name, duration, status, key attributes, [service]."""
    parts = [f"{span.kind:<8}", span.name, f"{span.duration_ns / 1e6:.3f} ms", _status(span)]
    parts.extend(_key_attributes(span))
    note = slowdown(span)
    if note:
        parts.append(f"<{note}>")
    if with_service:
        parts.append(f"[{_service(span)}]")
    return "  ".join(parts)


def _status(span: Span) -> str:
    if span.status == "ERROR" and span.status_message:
        return f"ERROR({span.status_message})"
    return span.status


def _key_attributes(span: Span) -> list[str]:
    attrs = span.attributes
    shown: list[str] = []
    for group in _KEY_ATTRIBUTES:
        for label, key in group:
            if key in attrs:
                shown.append(f"{label}={attrs[key]}")
                break
    for role in ("server", "client"):
        address = attrs.get(f"{role}.address")
        if address is not None:
            port = attrs.get(f"{role}.port")
            shown.append(f"{role}={address}" + (f":{port}" if port is not None else ""))
    if "go.goroutine.id" in attrs:
        shown.append(f"goroutine={attrs['go.goroutine.id']}")
    return shown
