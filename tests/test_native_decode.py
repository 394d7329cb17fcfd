"""gotrace.native's decode_records against its Python reference (decode_in_python): equal spans
and the same calls to the probes' fact sources, for generated batches of span records of every
kind, events and records to skip. Never skipped: without the compiled module these fail."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gotrace import records
from gotrace.facts.network import NetworkFacts
from gotrace.facts.runtime import RuntimeFacts
from gotrace.facts.scheduler import SchedWait
from gotrace.facts.unix_sockets import UnixSockets
from gotrace.native import _fastpath  # an ImportError (a failed module) when not built
from gotrace.pipeline import decode
from gotrace.probes import CLIENT_KINDS, SERVER_KINDS, SHAPES
from gotrace.probes.base import REQUEST_FIELDS
from gotrace.record_view import FIELDS
from gotrace.spans import Resource, Span

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_OFFSETS = {f.name: f for f in FIELDS}
# Processes: two traced, one not (resource_of says None). Beyond any pid_max, so that the
# Unix socket source finds no /proc table to read.
KNOWN_PIDS = (0xFFFF_FF01, 0xFFFF_FF02)
UNKNOWN_PID = 0xFFFF_FF03
EVENT_KINDS = tuple(records.EVENT_KINDS.values())
UNKNOWN_KIND = 63  # a span kind no probe declares
FLAGS = st.integers(0, max(records.SPAN_FLAGS.values()) * 2 - 1)  # every combination
TIMES = st.integers(0, 20_000)  # close together: events and spans overlap
PORTS = st.sampled_from([0, 40_000])  # few: events and spans on one connection


def _set(data: bytearray, name: str, value: int) -> None:
    layout = _OFFSETS[name]
    struct.pack_into("=" + layout.code, data, layout.offset, value)


@st.composite
def record(draw: st.DrawFn, endpoint: bytes, parked: bool) -> bytes:
    """A record of an endpoint drawn below, with its own request fields and times."""
    data = bytearray(endpoint)
    start = draw(TIMES)
    _set(data, "start_ns", start)
    _set(data, "end_ns", start + draw(st.integers(0, 5_000)))
    for name in ("trace_id", "span_id", "parent_span_id", "tcp_identity"):
        size = _OFFSETS[name].size
        data[_OFFSETS[name].offset:_OFFSETS[name].offset + size] = draw(
            st.binary(min_size=size, max_size=size))
    for name in ("goid", "stream_id", "peer_port", "local_port"):
        _set(data, name, draw(PORTS))
    for name in ("request_body_size", "response_body_size"):
        _set(data, name, draw(st.sampled_from([-1, 0, 12])))
    _set(data, "parked", draw(st.integers(1, 3)) if parked else 0)
    return bytes(data)


@st.composite
def endpoints(draw: st.DrawFn) -> bytes:
    """The fields an endpoint's records share: random bytes (text fields too, the probes read
    them up to a NUL), a kind and a process."""
    data = bytearray(draw(st.binary(min_size=records.RECORD_SIZE,
                                    max_size=records.RECORD_SIZE)))
    _set(data, "kind", draw(st.sampled_from(sorted(SHAPES))))
    _set(data, "pid", draw(st.sampled_from([*KNOWN_PIDS, UNKNOWN_PID])))
    _set(data, "flags", draw(FLAGS))
    _set(data, "status", draw(st.sampled_from([0, 5, 200, 404, 503])))
    return bytes(data)


@st.composite
def events(draw: st.DrawFn, shared: list[bytes]) -> bytes:
    """A runtime or TCP event (on the connection of an endpoint's records, now and then), or
    a record of a kind that nobody takes."""
    data = bytearray(draw(st.sampled_from(shared)))
    _set(data, "kind", draw(st.sampled_from([*EVENT_KINDS, UNKNOWN_KIND])))
    _set(data, "pid", draw(st.sampled_from(KNOWN_PIDS)))
    start = draw(TIMES)
    _set(data, "start_ns", start)
    _set(data, "end_ns", start + draw(st.integers(0, 3_000)))
    for name in ("local_port", "peer_port"):
        _set(data, name, draw(PORTS))
    if draw(st.booleans()):  # the other end's view of the connection
        local, peer = _OFFSETS["local_addr"].offset, _OFFSETS["peer_addr"].offset
        data[local:local + 16], data[peer:peer + 16] = data[peer:peer + 16], data[local:local + 16]
    return bytes(data)


class Batch(NamedTuple):
    raw: list[bytes]
    held: dict[bytes, list[bytes]]  # by trace id: the records the kernel held for it


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    """Records of a few endpoints with events between them, now and then one too short; the
    shed roots' held records among them too (HAS_PARENT and SHED flags as drawn)."""
    shared = draw(st.lists(endpoints(), min_size=1, max_size=5))
    raw: list[bytes] = []
    held: dict[bytes, list[bytes]] = {}
    for _ in range(draw(st.integers(0, 25))):
        choice = draw(st.sampled_from(["span", "span", "span", "event", "short"]))
        if choice == "event":
            raw.append(draw(events(shared)))
        elif choice == "short":
            raw.append(draw(st.sampled_from(shared))[:draw(st.integers(0, 100))])
        else:
            rec = draw(record(draw(st.sampled_from(shared)), parked=draw(st.booleans())))
            raw.append(rec)
            trace_id = rec[_OFFSETS["trace_id"].offset:_OFFSETS["trace_id"].offset + 16]
            held[trace_id] = [draw(record(draw(st.sampled_from(shared)), parked=False))
                              for _ in range(draw(st.integers(0, 2)))]
    return Batch(raw, held)


def field_values(rec: Any) -> tuple:
    """A record as code reads it, by attribute (the compiled loop's record views have
    RecordFields' attributes, not its tuple)."""
    return tuple(getattr(rec, f.name) for f in FIELDS)


class Recording:
    """A fact source that notes every call made to it (with the record's fields) before
    passing it on; asked about every span when told to (its latest_event_ns None)."""

    def __init__(self, source: Any, calls: list[tuple], ask_always: bool) -> None:
        self._source = source
        self._calls = calls
        self._ask_always = ask_always

    @property
    def latest_event_ns(self) -> int | None:
        return None if self._ask_always else self._source.latest_event_ns

    def record(self, rec: Any) -> bool:
        self._calls.append(("record", field_values(rec)))
        return self._source.record(rec)  # type: ignore[no-any-return]

    def usual(self, rec: Any) -> dict:
        self._calls.append(("usual", field_values(rec)))
        return self._source.usual(rec)  # type: ignore[no-any-return]

    def attributes(self, rec: Any) -> dict | None:
        self._calls.append(("attributes", field_values(rec)))
        return self._source.attributes(rec)  # type: ignore[no-any-return]


@dataclass
class Run:
    """One decoding of a batch, and what it touched."""

    spans: list[Span]
    raw: list[bytes]  # as the decoding left it: with the held records
    sources: tuple  # the fact sources themselves
    calls: list[tuple] = field(default_factory=list)
    asked: list[list[int]] = field(default_factory=list)  # by call: what resource_of was asked
    taken: list[tuple[bytes, int]] = field(default_factory=list)  # held(trace id, count)
    endpoints: dict = field(default_factory=dict)


RESOURCES = {pid: Resource({"service.name": f"s{pid}", "process.pid": pid})
             for pid in KNOWN_PIDS}


def run(decode_batch: Any, batch: Batch, offset: int, with_query: bool, batches: int,
        ask_always: bool = False) -> Run:
    """Decodes the batch with fresh fact sources, split into that many calls that share the
    endpoint cache."""
    sources = (RuntimeFacts(), NetworkFacts(CLIENT_KINDS), SchedWait(on=True),
               UnixSockets(SERVER_KINDS))
    result = Run([], [], sources)
    facts = tuple(Recording(source, result.calls, ask_always) for source in sources)

    def resource_of(pid: int) -> Resource | None:
        result.asked[-1].append(pid)
        return RESOURCES.get(pid)

    def held(trace_id: bytes, count: int) -> list[bytes]:
        result.taken.append((trace_id, count))
        return list(batch.held.get(trace_id, []))

    size = -(-len(batch.raw) // batches) or 1
    for start in range(0, len(batch.raw), size):
        raw = batch.raw[start:start + size]
        result.asked.append([])
        result.spans += decode_batch(raw, resource_of, offset, facts, with_query, held,
                                     result.endpoints)
        result.raw += raw
    return result


def assert_same_spans(in_c: list[Span], in_python: list[Span]) -> None:
    """Field by field; attribute dicts in the same order; shared attributes shared alike."""
    assert len(in_c) == len(in_python)
    shared_c: dict[int, int] = {}
    shared_python: dict[int, int] = {}
    for c, python in zip(in_c, in_python, strict=True):
        for f in fields(Span):
            a, b = getattr(c, f.name), getattr(python, f.name)
            if f.name == "shared_attributes":
                assert list(a.items.items()) == list(b.items.items())
                # The n-th distinct object in one list is the n-th in the other.
                assert shared_c.setdefault(id(a), len(shared_c)) \
                    == shared_python.setdefault(id(b), len(shared_python))
            elif f.name == "own_attributes":
                assert list(a.items()) == list(b.items())
            elif f.name == "resource":
                assert a is b
            else:
                assert a == b, f.name
                assert type(a) is type(b), f.name
        assert len(c.tcp_identity) == 16  # the record's bytes, passed through


@SETTINGS
@given(batches(), st.integers(-(1 << 62), 1 << 62), st.booleans(), st.integers(1, 3))
def test_decode_records_matches_python(batch: Batch, offset: int, with_query: bool,
                                       splits: int) -> None:
    in_python = run(decode.decode_in_python, batch, offset, with_query, splits)
    in_c = run(decode._decode, batch, offset, with_query, splits)
    assert_same_spans(in_c.spans, in_python.spans)
    assert in_c.calls == in_python.calls  # the same records, in the same order
    assert in_c.asked == in_python.asked
    assert all(len(set(pids)) == len(pids) for pids in in_c.asked)  # once a process
    assert in_c.taken == in_python.taken
    assert in_c.raw == in_python.raw
    assert list(in_c.endpoints) == list(in_python.endpoints)
    for c, python in zip(in_c.sources, in_python.sources, strict=True):
        assert vars(c) == vars(python)


@SETTINGS
@given(batches())
def test_fact_sources_are_not_asked_about_spans_after_their_latest_event_only(
        batch: Batch) -> None:
    """Asking every source about every span changes nothing."""
    asked_when_needed = run(decode.decode_in_python, batch, 0, False, 1)
    asked_always = run(decode.decode_in_python, batch, 0, False, 1, ask_always=True)
    assert_same_spans(asked_when_needed.spans, asked_always.spans)


def test_decode_records_uses_the_compiled_loop() -> None:
    assert decode._decode.func is _fastpath.decode_records  # type: ignore[attr-defined]
    assert decode._decode.args == (decode._NATIVE_TABLES,)  # type: ignore[attr-defined]


def test_request_fields_are_not_part_of_any_endpoint_key() -> None:
    """Two requests of one endpoint that differ in every field the kernel fills per request
    (ids, times, sizes, stream, sched waits, the TCP identity) have the same endpoint key, so
    that their attributes are worked out once, not per span."""
    per_request = {"start_ns", "end_ns", "trace_id", "span_id", "parent_span_id", "goid",
                   "request_body_size", "response_body_size", "stream_id", "sched_ns",
                   "tcp_identity"}
    assert per_request <= REQUEST_FIELDS
    for kind, key_of in decode.ENDPOINT_KEYS.items():
        one, other = bytearray(records.RECORD_SIZE), bytearray(records.RECORD_SIZE)
        for layout in FIELDS:
            if layout.name in per_request:
                other[layout.offset:layout.offset + layout.size] = b"\x5a" * layout.size
        assert key_of(bytes(one)) == key_of(bytes(other)), SHAPES[kind]
