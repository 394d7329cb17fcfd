"""Records from the kernel to spans: identity, timing and the probe's own attributes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from gotrace.probes import ALL_PROBES
from gotrace.probes.base import SpanShape
from gotrace.records import (
    F_HAS_CONN,
    F_HAS_PARENT,
    F_REMOTE_PARENT,
    RECORD_SIZE,
    SpanRecord,
    ip_text,
)
from gotrace.spans import AttributeValue, Connection, Resource, Span

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


class FactSource(Protocol):
    """Events that are not spans (runtime, network), attributed to the spans they touched."""

    def record(self, rec: SpanRecord) -> bool:
        """Take the record if it is one of this source's events."""
        ...

    def attributes(self, rec: SpanRecord) -> dict[str, AttributeValue]:
        """What this source knows of a span."""
        ...


def decode_records(raw: Iterable[bytes], resource_of: Callable[[int], Resource | None],
                   clock: MonotonicClock, facts: Sequence[FactSource] = (),
                   with_query: bool = False) -> list[Span]:
    """Decode a batch in ring-buffer order: events go to their fact source, spans get every
    source's attributes. Records of unknown processes or kinds are skipped (and not many)."""
    clock.refresh()
    spans = []
    for data in raw:
        if len(data) < RECORD_SIZE:
            continue
        rec = SpanRecord.from_buffer_copy(data)
        if any(source.record(rec) for source in facts):
            continue
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
            attributes=_attributes(shape, rec, facts, with_query),
            connection=Connection(ip_text(rec.local_addr), rec.local_port,
                                  ip_text(rec.peer_addr), rec.peer_port)
            if rec.flags & F_HAS_CONN else None,
            stream_id=rec.stream_id,
            remote_parent=bool(rec.flags & F_REMOTE_PARENT),
            monotonic_start_ns=rec.start_ns,
            monotonic_end_ns=rec.end_ns,
        ))
    return spans


def _attributes(shape: SpanShape, rec: SpanRecord, facts: Sequence[FactSource],
                with_query: bool) -> dict[str, AttributeValue]:
    attrs = shape.attributes(rec, with_query)
    for source in facts:
        attrs.update(source.attributes(rec))
    return attrs
