"""gotrace.native's compiled functions against their pure-Python references: the same records,
bytes and text for generated ring buffers and spans. Never skipped: without the compiled module
(scripts/build_native.sh, run by every make target) these tests fail."""

from __future__ import annotations

import enum
import mmap
import os
import struct
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gotrace import native
from gotrace.export import jsonl, otlp_wire
from gotrace.export.jsonl import lines_in_python, span_line
from gotrace.export.otlp_wire import TraceRequestEncoder
from gotrace.kernel import ringbuf
from gotrace.kernel.ringbuf import UNLIMITED, take_in_python
from gotrace.native import _fastpath  # an ImportError (a failed module) when not built
from gotrace.spans import NO_SHARED_ATTRIBUTES, Resource, SharedAttributes, Span

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_the_compiled_module_is_loaded_and_used() -> None:
    assert native.LOADED
    assert ringbuf._take is _fastpath.ring_take
    assert otlp_wire._encode is _fastpath.otlp_encode
    assert jsonl._lines is _fastpath.jsonl_lines


# --- ring buffer ---------------------------------------------------------------------------

BUSY, DISCARD = 1 << 31, 1 << 30
PAGE = 4096


class Ring(NamedTuple):
    data: bytearray  # the producer's page, then the data area twice over
    consumer: int
    mask: int
    expected: list[bytes]  # what a reader takes
    expected_consumer: int  # and where it leaves the consumer's position


@st.composite
def rings(draw: st.DrawFn) -> Ring:
    """A ring buffer as the kernel lays it out, records wrapping around its end from a
    consumer position anywhere (the positions only grow; the offset is position & mask)."""
    size = 1 << draw(st.integers(4, 10))
    consumer = draw(st.integers(0, 1 << 40)) & ~7
    area = bytearray(size)
    position, expected, expected_consumer, blocked = consumer, [], consumer, False
    for _ in range(draw(st.integers(0, 40))):
        payload = draw(st.binary(max_size=size // 2))
        padded = (len(payload) + 8 + 7) & ~7
        if position + padded - consumer > size:
            break
        state = draw(st.sampled_from(["committed", "committed", "discarded", "busy"]))
        header = len(payload) | {"committed": 0, "discarded": DISCARD, "busy": BUSY}[state]
        record = struct.pack("<I", header) + bytes(4) + payload
        for i, byte in enumerate(record):
            area[(position + i) & (size - 1)] = byte
        position += padded
        blocked = blocked or state == "busy"
        if not blocked:
            if state == "committed":
                expected.append(payload)
            expected_consumer = position
    data = bytearray(PAGE) + area + area
    struct.pack_into("<Q", data, 0, position)
    return Ring(data, consumer, size - 1, expected, expected_consumer)


def consumer_page(position: int) -> bytearray:
    page = bytearray(PAGE)
    struct.pack_into("<Q", page, 0, position)
    return page


@SETTINGS
@given(rings())
def test_ring_take_matches_python(ring: Ring) -> None:
    in_python, in_c = consumer_page(ring.consumer), consumer_page(ring.consumer)
    assert take_in_python(in_python, ring.data, PAGE, ring.mask, 0, UNLIMITED) == ring.expected
    assert _fastpath.ring_take(in_c, ring.data, PAGE, ring.mask, 0, UNLIMITED) == ring.expected
    assert in_c == in_python
    assert struct.unpack_from("<Q", in_c)[0] == ring.expected_consumer


@settings(max_examples=20, deadline=None)
@given(rings())
def test_ring_take_reads_shared_mappings_as_the_kernels(ring: Ring) -> None:
    """A read-only shared mapping for the data and a writable one for the consumer's page."""
    fd = os.memfd_create("ring")
    try:
        os.write(fd, consumer_page(ring.consumer) + ring.data)
        consumer = mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        data = mmap.mmap(fd, len(ring.data), mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE)
        try:
            assert ringbuf._take(consumer, data, PAGE, ring.mask, 0, UNLIMITED) == ring.expected
            assert os.pread(fd, 8, 0) == struct.pack("<Q", ring.expected_consumer)
        finally:
            consumer.close()
            data.close()
    finally:
        os.close(fd)


@SETTINGS
@given(rings(), st.integers(min_value=0, max_value=96))
def test_ring_take_gives_short_records_their_trailing_zeros(ring: Ring, min_size: int) -> None:
    """The probes send span records without their trailing zeros (bpf/span.h sent_size)."""
    expected = [record.ljust(min_size, b"\0") for record in ring.expected]
    in_python, in_c = consumer_page(ring.consumer), consumer_page(ring.consumer)
    assert take_in_python(in_python, ring.data, PAGE, ring.mask, min_size, UNLIMITED) == expected
    assert _fastpath.ring_take(in_c, ring.data, PAGE, ring.mask, min_size, UNLIMITED) == expected
    assert in_c == in_python


@SETTINGS
@given(rings(), st.integers(min_value=0, max_value=4))
def test_ring_take_stops_at_its_limit_and_the_next_take_goes_on(ring: Ring, limit: int) -> None:
    """gotrace takes no more records than its export queues have room for; the rest wait in
    the ring buffer (gotrace/pipeline/session.py poll_once)."""
    in_python, in_c = consumer_page(ring.consumer), consumer_page(ring.consumer)
    first = take_in_python(in_python, ring.data, PAGE, ring.mask, 0, limit)
    assert _fastpath.ring_take(in_c, ring.data, PAGE, ring.mask, 0, limit) == first
    assert in_c == in_python
    assert first == ring.expected[:limit]
    rest = _fastpath.ring_take(in_c, ring.data, PAGE, ring.mask, 0, UNLIMITED)
    assert first + rest == ring.expected


def test_ring_take_refuses_positions_outside_the_buffers() -> None:
    with pytest.raises(ValueError):
        _fastpath.ring_take(bytearray(4), bytearray(PAGE + 32), PAGE, 15, 0, UNLIMITED)
    data = bytearray(PAGE)  # a producer ahead of the consumer, and no data area
    struct.pack_into("<Q", data, 0, 64)
    with pytest.raises(ValueError):
        _fastpath.ring_take(bytearray(PAGE), data, PAGE, 15, 0, UNLIMITED)


# --- spans ---------------------------------------------------------------------------------


class Method(str):
    """A str subclass: json and the OTLP encoder take it, the compiled code leaves it to them."""


class Code(enum.IntEnum):
    NOT_FOUND = 404


SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
TEXT = st.text(st.one_of(st.characters(), SURROGATES), max_size=20)
KEYS = st.one_of(st.sampled_from(["http.route", "server.port", "k", "é", "\U0001F600"]), TEXT)
VALUES = st.one_of(
    TEXT,
    st.integers(),  # beyond int64 too: OTLP leaves those out
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.integers(0, 1 << 21),
    st.floats(),  # NaN and the infinities too
    st.booleans(),
    st.sampled_from([Method("GET"), Code.NOT_FOUND, None]),
)
ATTRIBUTES = st.dictionaries(KEYS, VALUES, max_size=8)


@st.composite
def span_batches(draw: st.DrawFn) -> list[Span]:
    """Spans of a few processes and endpoints, interleaved."""
    resources = draw(st.lists(ATTRIBUTES.map(Resource), min_size=1, max_size=4))
    shared = [NO_SHARED_ATTRIBUTES,
              *draw(st.lists(ATTRIBUTES.map(SharedAttributes), min_size=1, max_size=4))]
    spans = []
    for _ in range(draw(st.integers(0, 30))):
        start = draw(st.integers(0, (1 << 64) - 1))
        ids = st.binary(min_size=8, max_size=8)
        spans.append(Span(
            trace_id=draw(st.binary(min_size=16, max_size=16)),
            span_id=draw(st.one_of(ids, ids.map(bytearray))),  # bytearray: left to Python
            parent_span_id=draw(st.none() | ids),
            name=draw(TEXT),
            kind=draw(st.sampled_from(["SERVER", "CLIENT", "INTERNAL"])),
            start_time_unix_nano=start,
            end_time_unix_nano=draw(st.integers(start, (1 << 64) - 1)),
            resource=draw(st.sampled_from(resources)),
            status=draw(st.sampled_from(["UNSET", "OK", "ERROR"])),
            status_message=draw(TEXT),
            own_attributes=draw(ATTRIBUTES),  # now and then a shared key too
            shared_attributes=draw(st.sampled_from(shared)),
        ))
    return spans


@SETTINGS
@given(span_batches())
def test_otlp_encode_matches_python(spans: list[Span]) -> None:
    in_python, in_c = (TraceRequestEncoder("gotrace", "1.2.3") for _ in range(2))
    for _ in range(2):  # encoded afresh, then from what the encoders kept
        assert in_c.encode(spans) == in_python.encode_in_python(spans)


@SETTINGS
@given(span_batches())
def test_jsonl_lines_match_python(spans: list[Span]) -> None:
    for _ in range(2):  # the shared attributes written afresh, then as kept
        assert jsonl._lines(spans, span_line) == lines_in_python(spans, span_line)


def test_long_and_wide_values_match_python() -> None:
    resource = Resource({"service.name": "x" * 70_000, "process.pid": 1})
    own = {"big": 1 << 200, "neg": -(1 << 63), "min": -(1 << 70), "float": 1e300,
           "tiny": 5e-324, "nan": float("nan"), "inf": float("-inf"), "astral": "\U0010FFFF" * 9,
           "controls": "".join(map(chr, range(0x20))) + '"\\\x7f'}
    spans = [Span(bytes(16), bytes(8), None, "n" * 300, "CLIENT", 1, 2, resource,
                  own_attributes=own) for _ in range(3)]
    assert TraceRequestEncoder("s", "v").encode(spans) \
        == TraceRequestEncoder("s", "v").encode_in_python(spans)
    assert jsonl._lines(spans, span_line) == lines_in_python(spans, span_line)
