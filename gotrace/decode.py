"""Records from the kernel to spans: identity, timing and the probe's own attributes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from gotrace.probes import ALL_PROBES
from gotrace.probes.base import SpanShape
from gotrace.record_view import RecordFields, unpack_record
from gotrace.records import (
    F_DEFERRED,
    F_HAS_CONN,
    F_HAS_PARENT,
    F_REMOTE_PARENT,
    F_SAMPLED,
    RECORD_SIZE,
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

    @property
    def offset(self) -> int:
        """Wall-clock time minus CLOCK_MONOTONIC, in nanoseconds."""
        return self._offset


class FactSource(Protocol):
    """Events that are not spans (runtime, network), attributed to the spans they touched."""

    def record(self, rec: RecordFields) -> bool:
        """Take the record if it is one of this source's events."""
        ...

    def attributes(self, rec: RecordFields) -> dict[str, AttributeValue]:
        """What this source knows of a span."""
        ...


def decode_records(raw: Iterable[bytes], resource_of: Callable[[int], Resource | None],
                   clock: MonotonicClock, facts: Sequence[FactSource] = (),
                   with_query: bool = False) -> list[Span]:
    """Decode a batch in ring-buffer order: events go to their fact source, spans get every
    source's attributes. Records of unknown processes or kinds are skipped (and not many)."""
    clock.refresh()
    offset = clock.offset
    spans = []
    for data in raw:
        if len(data) < RECORD_SIZE:
            continue
        rec = unpack_record(data)
        if _taken_by(facts, rec):
            continue
        shape = SHAPES.get(rec.kind)
        resource = resource_of(rec.pid)
        if shape is None or resource is None:
            continue
        flags = rec.flags
        attributes = shape.attributes(rec, with_query)
        for source in facts:
            attributes.update(source.attributes(rec))
        spans.append(Span(
            trace_id=rec.trace_id,
            span_id=rec.span_id,
            parent_span_id=rec.parent_span_id if flags & F_HAS_PARENT else None,
            name=shape.name(rec),
            kind=shape.kind,
            start_time_unix_nano=rec.start_ns + offset,
            end_time_unix_nano=rec.end_ns + offset,
            resource=resource,
            status="ERROR" if shape.is_error(rec) else "UNSET",
            attributes=attributes,
            connection=Connection(ip_text(rec.local_addr), rec.local_port,
                                  ip_text(rec.peer_addr), rec.peer_port)
            if flags & F_HAS_CONN else None,
            stream_id=rec.stream_id,
            remote_parent=bool(flags & F_REMOTE_PARENT),
            monotonic_start_ns=rec.start_ns,
            monotonic_end_ns=rec.end_ns,
            sampling="sampled" if flags & F_SAMPLED else
            "deferred" if flags & F_DEFERRED else "link-only",
        ))
    return spans


def _taken_by(facts: Sequence[FactSource], rec: RecordFields) -> bool:
    """Whether a fact source took the record as its event (a loop: cheaper than any())."""
    for source in facts:  # noqa: SIM110
        if source.record(rec):
            return True
    return False
