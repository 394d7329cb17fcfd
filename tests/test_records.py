"""The span record is defined in C (bpf/record.h, its sizes and constants from
gotrace/records.py); its ctypes mirror must match it."""

from __future__ import annotations

import ctypes
import random
import subprocess

from gotrace import records
from gotrace.facts.network import NetworkFacts
from gotrace.facts.runtime import RuntimeFacts
from gotrace.facts.scheduler import SchedWait
from gotrace.kernel.c_source import BPF_DIR
from gotrace.kernel.plan import kernel_boundary_macros
from gotrace.pipeline.decode import MonotonicClock, decode_records
from gotrace.probes import CLIENT_KINDS, SHAPES
from gotrace.record_view import unpack_record
from gotrace.spans import Resource


def c_layout(tmp_path) -> dict[str, int]:
    """Offsets of every field and the size, as gcc lays the C struct out."""
    fields = [name for name, *_ in records.SpanRecord._fields_]
    prints = "\n".join(
        f'    printf("{n} %zu\\n", offsetof(struct span_record, {n}));' for n in fields)
    source = tmp_path / "layout.c"
    source.write_text(f"""
#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>
#include "record.h"
int main(void) {{
{prints}
    printf("sizeof %zu\\n", sizeof(struct span_record));
    return 0;
}}
""")
    exe = tmp_path / "layout"
    macros = [f"-D{k}={v}" for k, v in kernel_boundary_macros().items()]
    subprocess.run(["gcc", f"-I{BPF_DIR}", *macros, "-o", str(exe), str(source)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {name: int(value) for name, value in (line.split() for line in out.splitlines())}


def test_ctypes_mirror_matches_the_c_struct(tmp_path):
    layout = c_layout(tmp_path)
    assert layout.pop("sizeof") == ctypes.sizeof(records.SpanRecord) == records.RECORD_SIZE
    for name, offset in layout.items():
        assert getattr(records.SpanRecord, name).offset == offset, name


def _ctypes_value(value: object) -> object:
    """A ctypes field value as the fast reader gives it: arrays as their bytes."""
    if isinstance(value, ctypes.Array):
        return bytes(value)
    return value


def test_fast_reader_agrees_with_the_ctypes_mirror():
    rng = random.Random(6)
    for _ in range(50):
        data = bytes(rng.getrandbits(8) for _ in range(records.RECORD_SIZE))
        data = data.replace(b"\0", b"\1")[:200] + data[200:]  # char fields with and without NUL
        rec = records.SpanRecord.from_buffer_copy(data)
        fields = unpack_record(data + b"tail")  # longer records: the head is the record
        for name, ctype in records.SpanRecord._fields_:
            if name.startswith("_"):
                continue
            value = getattr(fields, name)
            if getattr(ctype, "_type_", None) is ctypes.c_char:  # whole, read by text()
                assert len(value) == ctypes.sizeof(ctype), name
                assert records.text(value) == records.text(getattr(rec, name)), name
            else:
                assert value == _ctypes_value(getattr(rec, name)), name


def test_ip_text_writes_addresses_as_people_do():
    mapped = bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 5])
    assert records.ip_text(mapped) == records.ip_text(mapped) == "10.0.0.5"
    assert records.ip_text((ctypes.c_uint8 * 16)(*mapped)) == "10.0.0.5"
    assert records.ip_text(bytes(15) + b"\x01") == "::1"


def _random_record(rng: random.Random, kind: int) -> bytearray:
    data = bytearray(rng.getrandbits(8) for _ in range(records.RECORD_SIZE))
    rec = records.SpanRecord.from_buffer(data)
    rec.kind = kind
    rec.flags = records.F_HAS_CONN | rng.choice((0, records.F_HAS_QUERY)) | \
        rng.choice((0, records.F_TRANSPORT_ERROR))
    rec.status = rng.choice((0, 5, 200, 404, 503))
    rec.request_body_size = rng.choice((-1, 0, 12))
    rec.response_body_size = rng.choice((-1, 0, 34))
    return data


def _with_new_request_fields(rng: random.Random, data: bytearray,
                             request_fields: frozenset[str]) -> bytes:
    changed = bytearray(data)
    for name, ctype in records.SpanRecord._fields_:
        if name in request_fields:
            offset = getattr(records.SpanRecord, name).offset
            changed[offset:offset + ctypes.sizeof(ctype)] = bytes(
                rng.getrandbits(8) for _ in range(ctypes.sizeof(ctype)))
    return bytes(changed)


def test_endpoint_parts_read_no_request_field():
    """What decode shares between the spans of an endpoint must not depend on what differs
    between its requests, and the two attribute sets must not overlap."""
    rng = random.Random(8)
    for kind, shape in SHAPES.items():
        for _ in range(40):
            data = _random_record(rng, kind)
            other = _with_new_request_fields(rng, data, shape.request_fields)
            rec, twin = unpack_record(bytes(data)), unpack_record(other)
            assert twin.span_id != rec.span_id
            assert shape.name(twin) == shape.name(rec), kind
            assert shape.is_error(twin) == shape.is_error(rec), kind
            assert shape.endpoint_attributes(twin) == shape.endpoint_attributes(rec), kind
            for with_query in (False, True):
                own = shape.request_attributes(rec, with_query)
                assert not own.keys() & shape.endpoint_attributes(rec).keys(), kind


def test_spans_of_one_endpoint_share_its_attributes():
    rng = random.Random(9)
    resource = Resource({"service.name": "s"})
    for kind, shape in SHAPES.items():
        data = _random_record(rng, kind)
        raw = [bytes(data), _with_new_request_fields(rng, data, shape.request_fields)]
        first, second = decode_records(raw, lambda _pid: resource, MonotonicClock())
        assert first.shared_attributes is second.shared_attributes
        assert first.shared_attributes.items  # every shape has some
        rec = unpack_record(raw[1])
        assert second.attributes == {**shape.endpoint_attributes(rec),
                                     **shape.request_attributes(rec, False)}
        assert second.name == first.name and second.span_id != first.span_id


def _stw_pause(pid: int, start_ns: int, end_ns: int) -> bytes:
    event = records.SpanRecord()
    event.kind, event.pid = records.EVENT_KIND_STW_PAUSE, pid
    event.start_ns, event.end_ns = start_ns, end_ns
    return bytes(event)


def test_the_usual_facts_are_shared_and_a_span_with_news_has_them_all_as_its_own():
    """A span that no pause, cycle or retransmit touched shares the fact sources' usual
    attributes with its endpoint; one that a pause touched has every fact as its own, and
    neither has a key twice (the OTLP encoding writes shared and own attributes alike)."""
    rng = random.Random(10)
    resource = Resource({"service.name": "s"})
    for kind, shape in SHAPES.items():
        data = _random_record(rng, kind)
        quiet = unpack_record(bytes(data))
        paused = bytearray(_with_new_request_fields(rng, data, shape.request_fields))
        records.SpanRecord.from_buffer(paused).start_ns = 5_000
        records.SpanRecord.from_buffer(paused).end_ns = 9_000
        facts = (RuntimeFacts(), NetworkFacts(CLIENT_KINDS), SchedWait(on=True))
        first, second = decode_records(
            [bytes(data), _stw_pause(quiet.pid, 6_000, 7_000), bytes(paused)],
            lambda _pid: resource, MonotonicClock(), facts)
        assert first.shared_attributes.items["go.gc.pause_ns"] == 0, kind
        assert "go.gc.pause_ns" not in first.own_attributes, kind
        assert second.own_attributes["go.gc.pause_ns"] == 1_000, kind
        assert second.own_attributes["go.gc.cycles"] == 0, kind
        assert "go.gc.pause_ns" not in second.shared_attributes.items, kind
        for span in (first, second):
            assert {"go.gc.pause_ns", "go.gc.cycles", "network.tcp.retransmits"} <= \
                span.attributes.keys(), kind
        for span in (first, second):
            assert not span.own_attributes.keys() & span.shared_attributes.items.keys(), kind
