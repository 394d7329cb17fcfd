"""An incoming W3C traceparent continues the trace of net/http server spans (bpf/traceparent.h).

Real probes on real test servers: for every installed Go (stripped builds, and the plain ones
of 1.23 and 1.24, the last release with runtime.hmap buckets and the first with swiss tables),
requests carry valid and malformed traceparent headers among few or many other headers, and
the SERVER spans must show the incoming trace id and parent exactly when the header is valid.
One BPF compilation per Go version (a plain build and its stripped twin share the layout).
No skipping: when BPF cannot load, the tests fail.
"""

from __future__ import annotations

import ctypes
import dataclasses
import http.client
import os
import re
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from gotrace.gobin.binary import GoBinary
from gotrace.kernel.plan import plan_probes
from gotrace.kernel.program import Program, compile_program
from gotrace.pipeline.decode import MonotonicClock, decode_records
from gotrace.pipeline.sampling import SamplerConfig
from gotrace.probes import span_kind
from gotrace.probes.features import traceparent_macros
from gotrace.records import F_HAS_PARENT, F_REMOTE_PARENT, SpanRecord
from gotrace.resolve.layout import Layout, resolve
from gotrace.spans import Resource
from testapps import matrix


def _cells() -> list[matrix.Cell]:
    gos = matrix.go_versions()
    cells = [matrix.Cell("httpserver", go, "stripped") for go in gos]
    cells += [matrix.Cell("httpserver", go, "plain") for go in ("1.23", "1.24") if go in gos]
    return cells


CELLS = _cells()

# BCC warns about str paths given to attach_uprobe (gotrace/kernel/program.py passes str).
pytestmark = pytest.mark.filterwarnings("ignore:not a bytes object:DeprecationWarning")


def trace_id(n: int) -> str:
    return f"{n:04x}4bf92f3577b34da6a3ce929d0e0e"  # 32 hex, different per case


def parent_id(n: int) -> str:
    return f"{n:04x}f067aa0ba902"  # 16 hex


@dataclass(frozen=True)
class Case:
    label: str
    traceparent: str | None  # None: no header at all
    valid: bool
    extra: int = 0  # other headers sent with it
    pad: int = 1  # length of each other header's value
    last: bool = False  # traceparent after the other headers (else before)


def _cases() -> list[Case]:
    cases: list[Case] = []

    def add(label: str, make: Callable[[str, str], str] | None, valid: bool, **kw) -> None:
        n = len(cases) + 1
        value = make(trace_id(n), parent_id(n)) if make else None
        cases.append(Case(label, value, valid, **kw))

    def ok(t: str, p: str) -> str:
        return f"00-{t}-{p}-01"

    add("valid", ok, True)
    add("valid-unsampled", lambda t, p: f"00-{t}-{p}-00", True)
    add("valid-12-headers", ok, True, extra=12)
    add("valid-30-headers", ok, True, extra=30)
    add("valid-after-30-headers", ok, True, extra=30, last=True)
    # 93 entries: 16 buckets (Go < 1.24) or 16 groups, the most bpf/traceparent.h walks.
    add("valid-90-headers", ok, True, extra=90, last=True)
    # Future versions: the first 55 characters parse, then the end or a '-'.
    add("future-version", lambda t, p: f"cc-{t}-{p}-01", True)
    add("future-version-more-fields", lambda t, p: f"cc-{t}-{p}-01-what-ever", True)
    # About 6 KB of headers: the server's 4 KB read buffer shows only part of them, so the
    # map is made too small and grows while it is filled. A runtime.hmap (Go < 1.24) can then
    # still be growing when the handler runs, with entries left in oldbuckets: with the
    # oldbuckets walk removed, some of these were missed (which ones depends on the map's
    # random hash seed).
    for n in range(44, 60):
        add(f"valid-growing-{n}", ok, True, extra=n, pad=90)
    # Malformed: ignored, the span starts its own trace.
    add("bad-hex", lambda t, p: f"00-{t[:5]}g{t[6:]}-{p}-01", False)
    add("uppercase-hex", lambda t, p: f"00-{t.upper()}-{p.upper()}-01", False)
    add("bad-flags-hex", lambda t, p: f"00-{t}-{p}-0x", False)
    add("too-short", lambda t, p: f"00-{t}-{p}-0", False)
    add("short-trace-id", lambda t, p: f"00-{t[1:]}-{p}0-01", False)
    add("version-00-too-long", lambda t, p: f"00-{t}-{p}-01-extra", False)
    add("future-version-no-dash", lambda t, p: f"cc-{t}-{p}-01x", False)
    add("version-ff", lambda t, p: f"ff-{t}-{p}-01", False)
    add("zero-trace-id", lambda t, p: f"00-{'0' * 32}-{p}-01", False)
    add("zero-parent-id", lambda t, p: f"00-{t}-{'0' * 16}-01", False)
    add("bad-separator", lambda t, p: f"00_{t}-{p}-01", False)
    add("empty", lambda t, p: "", False)
    add("bad-30-headers", lambda t, p: f"00-{t}-{p[:-1]}z-01", False, extra=30)
    add("absent", None, False)
    add("absent-30-headers", None, False, extra=30)
    return cases


CASES = _cases()
VALID = [c for c in CASES if c.valid]
INVALID = [c for c in CASES if not c.valid]


def send(host: str, port: int, case: Case) -> None:
    headers = {f"X-Extra-{i:03d}": "v" * case.pad for i in range(case.extra)}
    if case.traceparent is not None:
        # Lower case on the wire: net/http canonicalizes the key to "Traceparent".
        tp = {"traceparent": case.traceparent}
        headers = headers | tp if case.last else tp | headers
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/hello?" + urllib.parse.urlencode({"name": case.label}),
                     headers=headers)
        assert conn.getresponse().read().startswith(b"hello ")
    finally:
        conn.close()


@dataclass
class Compiled:
    """A program and the records its ring buffer delivered (opened once per program)."""

    prog: Program
    raw: list[bytes] = field(default_factory=list)


@dataclass
class Run:
    layout: Layout
    plan_macros: dict[str, int]
    by_label: dict[str, SpanRecord]  # server spans of /hello?name=<label>
    records: list[SpanRecord]
    raw: list[bytes]
    proxy_tp: str


@pytest.fixture(scope="module")
def programs():
    """Compiled programs by plan key: one per Go version."""
    if os.geteuid() != 0:
        pytest.fail("these tests attach uprobes: run them as root")
    cache: dict[str, Compiled] = {}
    yield cache
    for compiled in cache.values():
        compiled.prog.close()


ALWAYS_ON = SamplerConfig("always_on")


def _query_name(rec: SpanRecord) -> str | None:
    query = urllib.parse.parse_qs(rec.query.decode("utf-8", "replace"))
    return query.get("name", [None])[0]


@pytest.fixture(scope="module", params=CELLS, ids=str)
def run(request, programs) -> Run:
    cell: matrix.Cell = request.param
    path = str(matrix.build(cell))
    with GoBinary(path) as gb:
        layout = resolve(gb)
    # always_on: every valid traceparent continues, its sampled flag aside (which the
    # parent-based samplers follow: tests/test_sampling.py).
    plan = plan_probes(layout, ALWAYS_ON.kernel_macros())
    assert plan.macros.get("HAS_TRACEPARENT") == 1, plan.refused
    compiled = programs.get(plan.key)
    if compiled is None:
        compiled = programs[plan.key] = Compiled(compile_program(plan))
        compiled.prog.open_ring_buffer(compiled.raw.extend)
    prog, raw = compiled.prog, compiled.raw
    raw.clear()
    proc = subprocess.Popen([path, "-addr", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), line
        addr = line.split()[1]
        host, port = addr.rsplit(":", 1)
        prog.attach(path, layout, proc.pid)
        try:
            for case in CASES:
                send(host, int(port), case)
            # A handler making an outgoing call: the client span joins the incoming trace.
            proxy_tp = f"00-{trace_id(999)}-{parent_id(999)}-01"
            target = f"http://{addr}/hello?name=proxied"
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request("GET", "/proxy?" + urllib.parse.urlencode({"url": target}),
                         headers={"traceparent": proxy_tp})
            conn.getresponse().read()
            conn.close()
            want = len(CASES) + 3  # the cases, /proxy, its client span, /hello?name=proxied
            deadline = time.monotonic() + 10
            while len(raw) < want and time.monotonic() < deadline:
                prog.poll(100)
            prog.poll(100)
        finally:
            prog.detach(path, proc.pid)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    records = [SpanRecord.from_buffer_copy(r[:ctypes.sizeof(SpanRecord)]) for r in raw]
    by_label = {}
    for rec in records:
        name = _query_name(rec)
        if rec.kind == span_kind("HTTP_SERVER") and rec.pid == proc.pid and name:
            by_label[name] = rec
    return Run(layout, dict(plan.macros), by_label, records, list(raw), proxy_tp)


def test_map_layout_macros(run: Run):
    """The sizes bpf/traceparent.h scans with, derived from the resolved layout."""
    m = run.plan_macros
    if m["GOMAP_SWISS"]:
        # ctrl word + 8 slots of (string 16, []string 24)
        assert (m["GOMAP_CHUNK_SIZE"], m["GOMAP_KEYS_OFF"], m["GOMAP_KEY_STRIDE"],
                m["GOMAP_ELEMS_OFF"], m["GOMAP_ELEM_STRIDE"]) == (328, 8, 40, 24, 40)
    else:
        # tophash[8], 8 strings, 8 []string, overflow pointer
        assert (m["GOMAP_CHUNK_SIZE"], m["GOMAP_KEYS_OFF"], m["GOMAP_KEY_STRIDE"],
                m["GOMAP_ELEMS_OFF"], m["GOMAP_ELEM_STRIDE"],
                m["GOMAP_OVERFLOW_OFF"]) == (336, 8, 16, 136, 24, 328)
    minor = int(re.match(r"go1\.(\d+)", run.layout.go_version)[1])
    assert m["GOMAP_SWISS"] == (minor >= 24)


def test_map_offsets_also_from_offsets_db(run: Run):
    """Without type metadata or DWARF, symbols/offsets.json gives the same map layout."""
    with GoBinary(run.layout.path) as gb:
        from_db = resolve(gb, field_sources=("offsets-db",))
    map_fields = [n for n in from_db.fields if "hmap" in n or "runtime/maps" in n]
    assert map_fields and all(from_db.fields[n].source == "offsets-db" for n in map_fields)
    assert traceparent_macros(from_db) == traceparent_macros(run.layout)


def test_valid_traceparent_is_continued(run: Run):
    missing = [c.label for c in VALID if c.label not in run.by_label]
    assert not missing, f"no server span for {missing}"
    wrong = []
    for case in VALID:
        rec = run.by_label[case.label]
        fields = case.traceparent.split("-")
        got = (bytes(rec.trace_id).hex(), bytes(rec.parent_span_id).hex(),
               rec.flags & (F_HAS_PARENT | F_REMOTE_PARENT))
        if got != (fields[1], fields[2], F_HAS_PARENT | F_REMOTE_PARENT):
            wrong.append((case.label, got))
    assert not wrong


def test_malformed_or_absent_traceparent_starts_a_new_trace(run: Run):
    missing = [c.label for c in INVALID if c.label not in run.by_label]
    assert not missing, f"no server span for {missing}"
    wrong = []
    for case in INVALID:
        rec = run.by_label[case.label]
        trace = bytes(rec.trace_id).hex()
        if (rec.flags & (F_HAS_PARENT | F_REMOTE_PARENT) or trace == "0" * 32
                or (case.traceparent and trace in case.traceparent)):
            wrong.append((case.label, trace, rec.flags))
    assert not wrong
    fresh = {bytes(run.by_label[c.label].trace_id) for c in INVALID}
    assert len(fresh) == len(INVALID), "new traces must not share ids"


def test_decoded_spans_carry_the_remote_parent(run: Run):
    resource = Resource({"service.name": "test"})
    spans = decode_records(run.raw, lambda pid: resource, MonotonicClock())
    by_id = {s.span_id: s for s in spans}
    for case in (CASES[0], INVALID[-1]):
        rec = run.by_label[case.label]
        span = by_id[bytes(rec.span_id)]
        assert span.kind == "SERVER"
        if case.valid:
            assert span.trace_id.hex() == case.traceparent.split("-")[1]
            assert span.parent_span_id.hex() == case.traceparent.split("-")[2]
        else:
            assert span.parent_span_id is None


def test_outgoing_call_joins_the_incoming_trace(run: Run):
    _, trace, parent, _ = run.proxy_tp.split("-")
    servers = [r for r in run.records if r.kind == span_kind("HTTP_SERVER")
               and r.path.decode() == "/proxy"]
    assert len(servers) == 1
    server = servers[0]
    assert bytes(server.trace_id).hex() == trace
    assert bytes(server.parent_span_id).hex() == parent
    clients = [r for r in run.records if r.kind == span_kind("HTTP_CLIENT")]
    assert len(clients) == 1
    client = clients[0]
    assert bytes(client.trace_id).hex() == trace
    assert bytes(client.parent_span_id) == bytes(server.span_id)
    assert client.flags & F_HAS_PARENT and not client.flags & F_REMOTE_PARENT


def test_swiss_map_experiment_off_is_refused():
    """Go 1.24-1.25 built with GOEXPERIMENT=noswissmap keep the old map under a swiss
    version: the plan must not read their maps with the swiss layout."""
    cell = matrix.Cell("httpserver", matrix.go_versions()[-1], "stripped")
    with GoBinary(matrix.build(cell)) as gb:
        layout = resolve(gb)
    changed = dataclasses.replace(layout, settings={**layout.settings,
                                                    "GOEXPERIMENT": "noswissmap"})
    plan = plan_probes(changed, ALWAYS_ON.kernel_macros())
    assert "HAS_TRACEPARENT" not in plan.macros
    assert "nethttp_server.traceparent" in plan.refused
    assert any(p.library == "nethttp_server" for p in plan.probes)
