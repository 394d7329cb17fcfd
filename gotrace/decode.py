"""Records from the kernel to spans: identity, timing and the probe's own attributes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from gotrace.probes import ALL_PROBES
from gotrace.probes.base import SpanShape
from gotrace.records import F_HAS_PARENT, RECORD_SIZE, SpanRecord
from gotrace.spans import Resource, Span

SHAPES: dict[int, SpanShape] = {k: s for p in ALL_PROBES for k, s in p.record_kinds.items()}


class MonotonicClock:
    """Turns the kernel's CLOCK_MONOTONIC stamps into wall-clock time.

    The offset is re-measured at most once a second so that clock adjustments are followed.
    """

    def __init__(self) -> None:
        self._offset = 0
        self._measured = 0.0
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._measured >= 1.0:
            self._offset = time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            self._measured = now

    def wall(self, monotonic_ns: int) -> int:
        return monotonic_ns + self._offset


def decode_records(raw: Iterable[bytes], resource_of: Callable[[int], Resource | None],
                   clock: MonotonicClock, with_query: bool = False) -> list[Span]:
    """Decode a batch; records of unknown processes or kinds are skipped (and not many)."""
    clock.refresh()
    spans = []
    for data in raw:
        if len(data) < RECORD_SIZE:
            continue
        rec = SpanRecord.from_buffer_copy(data)
        shape = SHAPES.get(rec.kind)
        resource = resource_of(rec.pid)
        if shape is None or resource is None:
            continue
        spans.append(Span(
            trace_id=bytes(rec.trace_id),
            span_id=bytes(rec.span_id),
            parent_span_id=bytes(rec.parent_span_id) if rec.flags & F_HAS_PARENT else None,
            name=shape.name(rec),
            kind=shape.kind,
            start_time_unix_nano=clock.wall(rec.start_ns),
            end_time_unix_nano=clock.wall(rec.end_ns),
            resource=resource,
            status="ERROR" if shape.is_error(rec) else "UNSET",
            attributes=shape.attributes(rec, with_query),
        ))
    return spans
