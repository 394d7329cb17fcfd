"""Records from the kernel to spans: identity, timing and the probe's own attributes."""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import operator
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from gotrace import native
from gotrace.addresses import unix_address
from gotrace.probes import SHAPES
from gotrace.probes.base import SpanShape
from gotrace.record_view import FIELDS, FieldLayout, RecordFields, unpack_record
from gotrace.records import (
    F_CALLER_UNTRACED,
    F_DEFERRED,
    F_HAS_CONN,
    F_HAS_PARENT,
    F_REMOTE_PARENT,
    F_ROUTE_TREE,
    F_SAMPLED,
    F_SHED,
    F_UNIX,
    RECORD_SIZE,
    SpanRecord,
    ip_text,
)
from gotrace.spans import (
    AttributeValue,
    Connection,
    Resource,
    Sampling,
    SharedAttributes,
    Span,
    StatusCode,
)

_CONNECTED = F_HAS_CONN | F_UNIX  # the record names its connection (TCP or Unix)
# The kernel's sampling decision, by the record's three sampling flags (the kernel never sets
# F_DEFERRED with F_SHED).
_SAMPLING_FLAGS = F_SAMPLED | F_DEFERRED | F_SHED
_SAMPLING: dict[int, Sampling] = {0: "link-only", F_SAMPLED: "sampled", F_DEFERRED: "deferred",
                                  F_SAMPLED | F_DEFERRED: "sampled", F_SHED: "shed",
                                  F_SHED | F_SAMPLED: "rescued", F_SHED | F_DEFERRED: "deferred",
                                  F_SHED | F_SAMPLED | F_DEFERRED: "rescued"}


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

    # The newest time (CLOCK_MONOTONIC ns) of the events this source knows: a span that
    # started after it gets nothing from attributes(), which then is not called. None: ask
    # of every span (facts the span's own record holds).
    latest_event_ns: int | None

    def record(self, rec: RecordFields) -> bool:
        """Take the record if it is one of this source's events (never offered spans)."""
        ...

    def usual(self, rec: RecordFields) -> dict[str, AttributeValue]:
        """What this source says of a span when nothing happened to it (no pause, no
        retransmit): read from the endpoint's fields alone, so shared by its spans."""
        ...

    def attributes(self, rec: RecordFields) -> dict[str, AttributeValue] | None:
        """What this source knows of a span; None when that is the usual (most spans)."""
        ...


class _Endpoint(NamedTuple):
    """What the spans of one endpoint share: worked out from the first, reused for the rest.

    Most spans have only the fact sources' usual values (no GC pause, no retransmit), which
    then are shared too; a span with something to report has them all as its own.

    The compiled loop reads these fields by position (ENDPOINT_* in gotrace/native/decode.c)."""

    name: str
    status: StatusCode
    shared: SharedAttributes  # the endpoint's attributes
    shared_usual: SharedAttributes  # ... and the fact sources' usual ones
    usual: dict[str, AttributeValue]  # the fact sources' usual attributes
    local_address: str
    peer_address: str


ByteRanges = tuple[tuple[int, int], ...]  # (start, end) offsets in a record


def _endpoint_ranges(request_fields: frozenset[str]) -> ByteRanges:
    """The record's bytes outside request_fields (adjacent fields as one range): equal for
    two records exactly when their endpoint fields are."""
    names = {name for name, _ in SpanRecord._fields_}
    assert request_fields <= names, f"not SpanRecord fields: {request_fields - names}"
    ranges: list[list[int]] = []
    for name, ctype in SpanRecord._fields_:
        if name in request_fields:
            continue
        start = getattr(SpanRecord, name).offset
        end = start + ctypes.sizeof(ctype)
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = end
        else:
            ranges.append([start, end])
    return tuple((start, end) for start, end in ranges)


ENDPOINT_RANGES = {kind: _endpoint_ranges(shape.request_fields) for kind, shape in SHAPES.items()}
# The endpoint cache's key of a record: its ENDPOINT_RANGES bytes (one bytes for one range,
# else a tuple of them).
ENDPOINT_KEYS = {kind: operator.itemgetter(*(slice(start, end) for start, end in ranges))
                 for kind, ranges in ENDPOINT_RANGES.items()}
MAX_ENDPOINTS = 4096  # distinct endpoints remembered; then forgotten all at once
# By the kinds of fact source decoding with them (their usual attributes differ), then key.
_endpoints_by_sources: dict[tuple[type, ...], dict[object, _Endpoint]] = {}


def _endpoint(endpoints: dict[object, _Endpoint], shape: SpanShape, rec: RecordFields,
              key: object, facts: Sequence[FactSource]) -> _Endpoint:
    if len(endpoints) >= MAX_ENDPOINTS:
        endpoints.clear()
    attributes = shape.endpoint_attributes(rec)
    usual: dict[str, AttributeValue] = {}
    for source in facts:
        usual.update(source.usual(rec))
    endpoint = endpoints[key] = _Endpoint(
        name=shape.name(rec),
        status="ERROR" if shape.is_error(rec) else "UNSET",
        shared=SharedAttributes(attributes),
        shared_usual=SharedAttributes({**attributes, **usual}),
        usual=usual,
        local_address=_address(rec.local_addr, rec.flags),
        peer_address=_address(rec.peer_addr, rec.flags),
    )
    return endpoint


def _address(addr: bytes, flags: int) -> str:
    """One end of a span's connection: an IP address, or a Unix socket's 'unix:<sock>'."""
    return unix_address(addr) if flags & F_UNIX else ip_text(addr)


HeldRecords = Callable[[bytes, int], list[bytes]]  # (trace id, count) -> records


def decode_records(raw: list[bytes], resource_of: Callable[[int], Resource | None],
                   clock: MonotonicClock, facts: Sequence[FactSource] = (),
                   with_query: bool = False, held: HeldRecords | None = None) -> list[Span]:
    """Decode a batch in ring-buffer order: events go to their fact source, spans get every
    source's attributes. Records of unknown processes or kinds are skipped (and not many).
    resource_of is asked once per process and batch.

    held: the records the kernel held for a kept shed trace's root (bpf/shedding.h), decoded
    after it."""
    clock.refresh()
    endpoints = _endpoints_by_sources.setdefault(tuple(map(type, facts)), {})
    return _decode(raw, resource_of, clock.offset, facts, with_query, held, endpoints)


_UNASKED = object()  # a process whose resource this batch has not asked for yet


def decode_in_python(raw: list[bytes], resource_of: Callable[[int], Resource | None],
                     offset: int, facts: Sequence[FactSource], with_query: bool,
                     held: HeldRecords | None,
                     endpoints: dict[object, _Endpoint]) -> list[Span]:
    """decode_records' loop, with the clock's offset and the endpoint cache of these fact
    sources: the reference for gotrace.native's decode_records."""
    resources: dict[int, Resource | None] = {}
    spans = []
    for data in raw:
        if len(data) < RECORD_SIZE:
            continue
        rec = unpack_record(data)
        kind = rec.kind
        shape = SHAPES.get(kind)
        if shape is None:
            _offer(facts, rec)
            continue
        pid = rec.pid
        resource = resources.get(pid, _UNASKED)
        if resource is _UNASKED:
            resource = resources[pid] = resource_of(pid)
        if resource is None:
            continue
        key = ENDPOINT_KEYS[kind](data)
        if rec.flags & F_ROUTE_TREE:
            key = (key, shape.name(rec))
        endpoint = endpoints.get(key) or _endpoint(endpoints, shape, rec, key, facts)
        own = shape.request_attributes(rec, with_query)
        shared = endpoint.shared_usual
        start_ns, end_ns = rec.start_ns, rec.end_ns
        unusual = False
        for source in facts:
            latest = source.latest_event_ns
            if latest is not None and latest < start_ns:
                continue
            found = source.attributes(rec)
            if found is not None:
                if not unusual:
                    unusual = True
                    shared = endpoint.shared
                    own.update(endpoint.usual)
                own.update(found)
        flags = rec.flags
        if flags & F_SHED and rec.parked and held is not None:
            raw.extend(held(rec.trace_id, rec.parked))  # a list grows under its for loop
        # Positional (in Span's field order): a third of the cost of keywords, per span.
        spans.append(Span(
            rec.trace_id,
            rec.span_id,
            rec.parent_span_id if flags & F_HAS_PARENT else None,
            endpoint.name,
            shape.kind,
            start_ns + offset,  # start_time_unix_nano
            end_ns + offset,  # end_time_unix_nano
            resource,
            endpoint.status,
            "",  # status_message
            own,  # own_attributes
            shared,  # shared_attributes
            Connection(endpoint.local_address, rec.local_port, endpoint.peer_address,
                       rec.peer_port) if flags & _CONNECTED else None,
            rec.stream_id,
            bool(flags & F_REMOTE_PARENT),  # remote_parent
            start_ns,  # monotonic_start_ns
            end_ns,  # monotonic_end_ns
            _SAMPLING[flags & _SAMPLING_FLAGS],
            shape.metric,
            kind,
            rec.tcp_identity,
            bool(flags & F_CALLER_UNTRACED),  # caller_untraced
        ))
    return spans


def _offer(facts: Sequence[FactSource], rec: RecordFields) -> None:
    """An event to the fact source it is for (a loop: cheaper than any())."""
    for source in facts:
        if source.record(rec):
            return


class _NativeTables(NamedTuple):
    """What the compiled loop reads besides decode_in_python's arguments: this module's own
    tables and functions, so that the two loops share them (gotrace/native/decode.c parses
    this tuple by position, once)."""

    record_size: int
    fields: tuple[FieldLayout, ...]  # the compiled loop's record views have RecordFields' fields
    shapes: tuple[tuple[int, SpanShape, ByteRanges], ...]  # (kind, shape, ENDPOINT_RANGES)
    sampling: dict[int, Sampling]
    sampling_flags: int
    has_parent: int
    remote_parent: int
    connected: int
    shed: int
    named_per_request: int  # F_ROUTE_TREE: the endpoint's key has the span's name too
    caller_untraced: int
    span: type
    span_fields: tuple[str, ...]  # in Span's order: the compiled loop stores them in its slots
    connection: type
    new_endpoint: Callable[..., _Endpoint]
    offer: Callable[[Sequence[FactSource], RecordFields], None]


_NATIVE_TABLES = _NativeTables(
    RECORD_SIZE, tuple(FIELDS),
    tuple((kind, shape, ENDPOINT_RANGES[kind]) for kind, shape in SHAPES.items()),
    _SAMPLING, _SAMPLING_FLAGS, F_HAS_PARENT, F_REMOTE_PARENT, _CONNECTED, F_SHED, F_ROUTE_TREE,
    F_CALLER_UNTRACED,
    Span, tuple(field.name for field in dataclasses.fields(Span)), Connection, _endpoint,
    _offer)


def _compiled_or_reference() -> Callable[..., list[Span]]:
    """gotrace.native's decode_records with this module's tables, or decode_in_python."""
    decode = native.compiled("decode_records", decode_in_python)
    return decode if decode is decode_in_python else functools.partial(decode, _NATIVE_TABLES)


_decode = _compiled_or_reference()
