"""Span export: OTLP (gRPC and HTTP) into a real receiver, JSON lines, console trees, and the
pipeline's batching, retries, bounded queue and drop accounting.

Waits below are liveness bounds (generous, so a hang fails instead of blocking the run), never
performance assertions.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib.metadata import version
from itertools import count
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otlp_receiver import OtlpReceiver, flatten, plain_attributes

from gotrace.errors import GotraceError
from gotrace.export import (
    ConsoleExporter,
    ExportPipeline,
    JsonlExporter,
    PipelineStats,
    otlp,
    otlp_config,
)
from gotrace.export.otlp import OtlpExporter
from gotrace.export.otlp_config import DEFAULT_BATCH_DELAY_S
from gotrace.export.otlp_wire import TraceRequestEncoder
from gotrace.spans import Resource, SharedAttributes, Span

LIVENESS_S = 15.0

FRONTEND = Resource({"service.name": "frontend", "process.pid": 4242,
                     "process.executable.name": "frontend", "telemetry.sdk.name": "gotrace"})
BACKEND = Resource({"service.name": "backend", "process.pid": 4343})
T1 = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
T2 = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
START = 1_700_000_000_000_000_000


def sample_spans() -> list[Span]:
    """One cross-service trace four spans deep, plus a span whose parent is elsewhere."""
    root = Span(T1, bytes.fromhex("00f067aa0ba902b7"), None, "GET /users/{id}", "SERVER",
                START, START + 25_000_000, FRONTEND, "OK", "",
                {"url.path": "/users/7", "client.port": 51234, "go.goroutine.id": 17},
                SharedAttributes({"http.request.method": "GET", "http.response.status_code": 200,
                                  "client.address": "10.0.0.5"}))
    call = Span(T1, bytes.fromhex("b7ad6b7169203331"), root.span_id, "GET", "CLIENT",
                START + 1_000_000, START + 21_500_000, FRONTEND, "UNSET", "",
                {"url.full": "http://backend:8080/db", "server.address": "backend",
                 "server.port": 8080, "http.response.status_code": 200, "go.goroutine.id": 18})
    served = Span(T1, bytes.fromhex("53995c3f42cd8ad8"), call.span_id, "users.Users/Get",
                  "SERVER", START + 2_000_000, START + 20_000_000, BACKEND, "ERROR",
                  "user not found",
                  {"rpc.system": "grpc", "rpc.grpc.status_code": 5, "go.goroutine.id": 9,
                   "ratio": 0.25, "cached": False})
    query = Span(T1, bytes.fromhex("e457b5a2e4d86bd1"), served.span_id, "db.query",
                 "INTERNAL", START + 3_000_000, START + 4_250_000, BACKEND)
    orphan = Span(T2, bytes.fromhex("5fb397be34d26b51"), bytes.fromhex("1111111111111111"),
                  "POST /orders", "SERVER", START + 30_000_000, START + 31_000_000, FRONTEND,
                  own_attributes={"url.path": "/orders", "http.response.status_code": 201})
    return [root, call, served, query, orphan]


_ids = count(1)


def numbered_spans(n: int, name: str) -> list[Span]:
    """n distinct single-span traces."""
    spans = []
    for _ in range(n):
        i = next(_ids)
        spans.append(Span(i.to_bytes(16, "big"), i.to_bytes(8, "big"), None, name, "SERVER",
                          START + i, START + i + 1000, FRONTEND))
    return spans


def expected_otlp(span: Span) -> dict[str, Any]:
    """What the receiver must see for a span (OTLP keeps a status message only on ERROR)."""
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() if span.parent_span_id else None,
        "name": span.name,
        "kind": span.kind,
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "status": span.status,
        "status_message": span.status_message if span.status == "ERROR" else "",
        "attributes": span.attributes,
        "resource": span.resource.attributes,
        "scope_name": "gotrace",
        "scope_version": version("gotrace"),
    }


def by_span_id(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: r["span_id"])


def wait_until(predicate: Callable[[], bool], timeout: float = LIVENESS_S) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def assert_accounted(stats: PipelineStats) -> None:
    """Nothing is lost silently: every span is exported, dropped, or still queued."""
    for name, lane in stats.exporters.items():
        assert lane.exported + lane.dropped_total + lane.queue_depth == stats.submitted, name


@pytest.fixture
def receiver():
    with OtlpReceiver() as r:
        yield r


# --- test exporters ---------------------------------------------------------------------


class Recording:
    """Delivers everything; remembers each batch."""

    def __init__(self) -> None:
        self.batches: list[list[Span]] = []
        self.shut_down = False

    @property
    def spans(self) -> list[Span]:
        return [s for b in self.batches for s in b]

    def export(self, spans: Sequence[Span]) -> bool:
        self.batches.append(list(spans))
        return True

    def shutdown(self) -> None:
        self.shut_down = True


class Scripted:
    """Each call blocks until the test releases it with a result (True, False or an
    exception to raise); calls are announced through `entered`."""

    def __init__(self) -> None:
        self._results: list[bool | Exception] = []
        self._cond = threading.Condition()
        self.calls = 0
        self.delivered: list[Span] = []

    def release(self, *results: bool | Exception) -> None:
        with self._cond:
            self._results.extend(results)
            self._cond.notify_all()

    def wait_calls(self, n: int) -> bool:
        return wait_until(lambda: self.calls >= n)

    def export(self, spans: Sequence[Span]) -> bool:
        with self._cond:
            self.calls += 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._results, LIVENESS_S)
            result = self._results.pop(0) if self._results else False
        if isinstance(result, Exception):
            raise result
        if result:
            self.delivered.extend(spans)
        return result

    def shutdown(self) -> None:
        self.release(*[False] * 100)


class Failing:
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[Span]) -> bool:
        self.calls += 1
        return False

    def shutdown(self) -> None:
        pass


FAST = {"max_delay_s": 0.01, "min_backoff_s": 0.001, "max_backoff_s": 0.01}


# --- OTLP into a real receiver ------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_otlp_delivers_spans_exactly(receiver: OtlpReceiver, protocol: str) -> None:
    # Configured the way a user would: only through the standard environment variables,
    # with a base endpoint (http/protobuf must append /v1/traces to it).
    base = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base
    config = otlp_config(timeout_s=2.0, environ={
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": base,
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=team%20a, Authorization=Bearer%20t0k",
    })
    spans = sample_spans()
    pipeline = ExportPipeline({"otlp": OtlpExporter(config)})
    pipeline.submit(spans)
    assert pipeline.flush(LIVENESS_S)
    received = receiver.wait_for(len(spans))
    pipeline.shutdown()

    assert by_span_id(received) == by_span_id([expected_otlp(s) for s in spans])
    assert all(h["x-tenant"] == "team a" and h["authorization"] == "Bearer t0k"
               for h in receiver.headers)
    stats = pipeline.stats()
    assert stats.exported == {"otlp": len(spans)}
    assert stats.dropped_total == 0
    assert_accounted(stats)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_otlp_sends_a_too_large_batch_in_parts(receiver: OtlpReceiver, protocol: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # A batch whose request would exceed the limit arrives whole, in several requests under it.
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
    exporter = OtlpExporter(otlp_config(endpoint, protocol, timeout_s=2.0, environ={}))
    spans = [replace(s, span_id=(i).to_bytes(8, "big"))
             for i, s in enumerate(sample_spans() * 8, start=1)]
    whole = len(TraceRequestEncoder("gotrace", "test").encode(spans))
    monkeypatch.setattr(otlp, "MAX_REQUEST_BYTES", whole // 5)
    assert exporter.export(spans)
    received = receiver.wait_for(len(spans))
    exporter.shutdown()

    assert sorted(s["span_id"] for s in received) == sorted(s.span_id.hex() for s in spans)
    assert len(receiver.headers) >= 5


def test_otlp_explicit_settings_win_over_environment(receiver: OtlpReceiver) -> None:
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces",
           "OTEL_EXPORTER_OTLP_HEADERS": "x-a=env,x-b=env"}
    config = otlp_config(receiver.grpc_endpoint, "grpc", {"X-B": "arg"}, 2.0, env)
    exporter = OtlpExporter(config)
    spans = sample_spans()[:2]
    assert exporter.export(spans)
    exporter.shutdown()
    assert by_span_id(receiver.wait_for(2)) == by_span_id([expected_otlp(s) for s in spans])
    assert receiver.headers[0]["x-a"] == "env"
    assert receiver.headers[0]["x-b"] == "arg"


def test_otlp_failure_raises_with_the_reason(receiver: OtlpReceiver) -> None:
    receiver.stop()
    exporter = OtlpExporter(otlp_config(receiver.grpc_endpoint, "grpc", timeout_s=0.5,
                                        environ={}))
    with pytest.raises(GotraceError, match=f"OTLP export to {receiver.grpc_endpoint} failed"):
        exporter.export(sample_spans())
    exporter.shutdown()


def decoded(payload: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(payload)


def test_otlp_bytes_decode_to_the_spans_grouped_by_process() -> None:
    spans = sample_spans()
    request = decoded(TraceRequestEncoder("gotrace", version("gotrace")).encode(spans))
    assert by_span_id(flatten(request)) == by_span_id([expected_otlp(s) for s in spans])
    # One ResourceSpans per process, in the order of their first spans, attributes sorted.
    assert [dict(plain_attributes(rs.resource.attributes)) for rs in request.resource_spans] \
        == [FRONTEND.attributes, BACKEND.attributes]
    assert [kv.key for kv in request.resource_spans[0].resource.attributes] \
        == sorted(FRONTEND.attributes)
    pb_spans = [span for rs in request.resource_spans for scope in rs.scope_spans
                for span in scope.spans]
    assert all(span.flags == 0x100 for span in pb_spans)  # the parent is not remote
    assert all(span.HasField("status") for span in pb_spans)


def test_otlp_bytes_carry_every_attribute_value() -> None:
    values = {"zero": 0, "small": 127, "two-byte": 128, "port": 65535, "negative": -5,
              "min": -(1 << 63), "max": (1 << 63) - 1, "ratio": 0.25, "yes": True,
              "no": False, "empty": "", "unicode": "é✓", "long": "x" * 200,
              "longer": "y" * 20_000}
    span = Span(T1, b"\x01" * 8, None, "n" * 300, "CLIENT", START, START + 1, FRONTEND,
                own_attributes={**values, "too big": 1 << 64})
    encoder = TraceRequestEncoder("gotrace", "1.2.3")
    for _ in range(2):  # encoded afresh, then from what the encoder remembered
        (received,) = flatten(decoded(encoder.encode([span])))
        assert received["attributes"] == values  # protobuf cannot hold 2**64: left out
        assert received["name"] == span.name
        assert (received["scope_name"], received["scope_version"]) == ("gotrace", "1.2.3")


def test_otlp_resources_with_equal_attributes_encode_alike() -> None:
    twin = Resource(dict(reversed(list(FRONTEND.attributes.items()))))
    encoder = TraceRequestEncoder("gotrace", "1")
    one = Span(T1, b"\x01" * 8, None, "x", "INTERNAL", 1, 2, FRONTEND)
    other = Span(T1, b"\x01" * 8, None, "x", "INTERNAL", 1, 2, twin)
    assert encoder.encode([one]) == encoder.encode([other])


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_otlp_outage_drops_with_counts_and_recovers(receiver: OtlpReceiver,
                                                    protocol: str) -> None:
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
    console_out = io.StringIO()
    capacity = 200
    pipeline = ExportPipeline(
        {"otlp": OtlpExporter(otlp_config(endpoint, protocol, timeout_s=0.5, environ={})),
         "console": ConsoleExporter(console_out)},
        capacity=capacity, max_batch_size=20, max_delay_s=0.02, max_attempts=1000,
        min_backoff_s=0.01, max_backoff_s=0.1)
    pipeline.submit(numbered_spans(3, "before"))
    assert pipeline.flush(LIVENESS_S)
    assert len(receiver.wait_for(3)) == 3

    receiver.stop()
    depths: list[int] = []

    def tracer() -> None:  # the ring-buffer reader: submit returns at once, OTLP down or not
        for _ in range(60):
            pipeline.submit(numbered_spans(50, "during"))
            depths.append(pipeline.stats().queue_depth["otlp"])
            # Paced by the console (not by OTLP) so that it never has to drop: its output
            # below then shows it kept delivering every span during the outage.
            wait_until(lambda: pipeline.stats().queue_depth["console"] == 0)

    thread = threading.Thread(target=tracer)
    thread.start()
    thread.join(LIVENESS_S)
    assert not thread.is_alive(), "submit blocked while the endpoint was down"

    total = 3 + 60 * 50
    during = pipeline.stats()
    assert max(depths) <= capacity
    assert during.exporters["otlp"].failing
    assert during.exporters["otlp"].dropped["queue_full"] > 0
    assert during.exporters["otlp"].queue_depth <= capacity
    assert_accounted(during)
    # The console is not held back by the OTLP outage.
    console = during.exporters["console"]
    assert console.exported == during.submitted == total
    assert console.dropped_total == 0
    assert console_out.getvalue().count("SERVER    during") == 60 * 50

    grpc_endpoint, http_endpoint = receiver.grpc_endpoint, receiver.http_endpoint
    receiver.start()
    assert (receiver.grpc_endpoint, receiver.http_endpoint) == (grpc_endpoint, http_endpoint)
    assert pipeline.flush(LIVENESS_S)  # the backlog goes out once the endpoint is back
    after = numbered_spans(5, "after")
    pipeline.submit(after)
    assert pipeline.flush(LIVENESS_S)
    pipeline.shutdown()

    final = pipeline.stats()
    otlp = final.exporters["otlp"]
    assert not otlp.failing
    assert otlp.queue_depth == 0
    assert otlp.exported + otlp.dropped_total == final.submitted
    received = receiver.spans
    assert len({r["span_id"] for r in received}) == len(received) == otlp.exported
    assert otlp.exported > 3 + len(after)  # some of the backlog was delivered too
    arrived_after = by_span_id([r for r in received if r["name"] == "after"])
    assert arrived_after == by_span_id([expected_otlp(s) for s in after])


# --- OTLP configuration -------------------------------------------------------------------


def test_config_defaults() -> None:
    assert otlp_config(environ={}).protocol == "http/protobuf"
    assert otlp_config(environ={}).endpoint == "http://localhost:4318/v1/traces"
    grpc = otlp_config(protocol="grpc", environ={})
    assert grpc.endpoint == "http://localhost:4317"
    assert grpc.insecure
    assert grpc.headers == {}


@pytest.mark.parametrize(("env", "protocol", "endpoint"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "http/protobuf",
     "http://c:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c/otlp/"}, "http/protobuf",
     "https://c/otlp/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "grpc", "http://c:4317"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom",
      "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318"}, "http/protobuf",
     "http://c:4318/custom"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
      "OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4317"}, "grpc", "https://c:4317"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
      "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": " HTTP/protobuf "}, "http/protobuf", "http://localhost:4318/v1/traces"),
])
def test_config_from_environment(env: dict[str, str], protocol: str, endpoint: str) -> None:
    config = otlp_config(environ=env)
    assert (config.protocol, config.endpoint) == (protocol, endpoint)


def test_config_explicit_arguments_win() -> None:
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://env:4317",
           "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a=1,b=2",
           "OTEL_EXPORTER_OTLP_HEADERS": "ignored=1"}
    config = otlp_config("https://arg:4318", "http/protobuf", {"B": "3"}, environ=env)
    assert config.protocol == "http/protobuf"
    assert config.endpoint == "https://arg:4318/v1/traces"  # a bare base URL gets the path
    assert not config.insecure
    assert config.headers == {"a": "1", "b": "3"}
    assert otlp_config("http://arg:4318/x/traces", environ={}).endpoint == \
        "http://arg:4318/x/traces"


def test_config_batch_delay() -> None:
    assert otlp_config(environ={}).batch_delay_s == DEFAULT_BATCH_DELAY_S
    assert otlp_config(environ={"OTEL_BSP_SCHEDULE_DELAY": " 250 "}).batch_delay_s == 0.25


def test_config_headers_are_decoded() -> None:
    env = {"OTEL_EXPORTER_OTLP_HEADERS": " Api-Key = s%3Dcr%2Ct ,, x=a=b "}
    assert otlp_config(environ=env).headers == {"api-key": "s=cr,t", "x": "a=b"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"protocol": "http/json"}, "protocol: unsupported OTLP protocol 'http/json'"),
    ({"environ": {"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}},
     "OTEL_EXPORTER_OTLP_PROTOCOL: unsupported OTLP protocol 'thrift'"),
    ({"endpoint": "localhost:4317"}, "endpoint: invalid OTLP endpoint 'localhost:4317'"),
    ({"endpoint": "http://c:port"}, "endpoint: invalid OTLP endpoint 'http://c:port'"),
    ({"environ": {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://c"}},
     "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: invalid OTLP endpoint"),
    ({"environ": {"OTEL_EXPORTER_OTLP_HEADERS": "a=1,broken"}},
     "OTEL_EXPORTER_OTLP_HEADERS: malformed header 'broken'"),
    ({"timeout_s": 0}, "OTLP timeout must be positive"),
    *[({"environ": {"OTEL_BSP_SCHEDULE_DELAY": bad}},
       f"OTEL_BSP_SCHEDULE_DELAY: not a number of milliseconds above 0 and up to 86400000: "
       f"'{bad}'") for bad in ("1s", "0", "-5", "nan", "inf", "1e300")],
])
def test_config_rejects_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("environ", {})
    with pytest.raises(GotraceError) as caught:
        otlp_config(**kwargs)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


# --- JSON lines ---------------------------------------------------------------------------

JSONL_KEYS = {"trace_id", "span_id", "parent_span_id", "name", "kind", "start_time_unix_nano",
              "end_time_unix_nano", "status", "attributes", "resource"}


def test_jsonl_records(tmp_path) -> None:
    path = tmp_path / "spans.jsonl"
    exporter = JsonlExporter(path)
    spans = sample_spans()
    assert exporter.export(spans[:2])
    assert exporter.export(spans[2:])
    # Flushed per batch: readable before shutdown.
    lines = path.read_text().splitlines()
    exporter.shutdown()
    assert len(lines) == len(spans)
    for line, span in zip(lines, spans, strict=True):
        record = json.loads(line)
        assert set(record) == JSONL_KEYS
        assert record == {
            "trace_id": span.trace_id.hex(),
            "span_id": span.span_id.hex(),
            "parent_span_id": span.parent_span_id.hex() if span.parent_span_id else None,
            "name": span.name,
            "kind": span.kind,
            "start_time_unix_nano": span.start_time_unix_nano,
            "end_time_unix_nano": span.end_time_unix_nano,
            "status": span.status,
            "attributes": span.attributes,
            "resource": span.resource.attributes,
        }
    first = json.loads(lines[0])
    assert len(first["trace_id"]) == 32 and first["trace_id"] == first["trace_id"].lower()
    assert len(first["span_id"]) == 16
    assert first["parent_span_id"] is None
    assert len(json.loads(lines[1])["parent_span_id"]) == 16


def test_jsonl_dash_is_stdout(capsys) -> None:
    exporter = JsonlExporter("-")
    assert exporter.export(sample_spans()[:1])
    exporter.shutdown()
    assert json.loads(capsys.readouterr().out)["name"] == "GET /users/{id}"


def test_jsonl_unwritable_path(tmp_path) -> None:
    with pytest.raises(GotraceError, match=r"cannot write spans to .*missing"):
        JsonlExporter(tmp_path / "missing" / "spans.jsonl")


# --- console ------------------------------------------------------------------------------


def test_console_prints_traces_as_trees() -> None:
    out = io.StringIO()
    assert ConsoleExporter(out).export(list(reversed(sample_spans())))
    assert out.getvalue().splitlines() == [
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "  SERVER    GET /users/{id}  25.000 ms  OK  http_status=200  path=/users/7"
        "  client=10.0.0.5:51234  goroutine=17  [frontend]",
        "    CLIENT    GET  20.500 ms  UNSET  http_status=200  url=http://backend:8080/db"
        "  server=backend:8080  goroutine=18",
        "      SERVER    users.Users/Get  18.000 ms  ERROR(user not found)  grpc_status=5"
        "  goroutine=9  [backend]",
        "        INTERNAL  db.query  1.250 ms  UNSET",
        "trace 0af7651916cd43dd8448eb211c80319c",
        "  SERVER    POST /orders  1.000 ms  UNSET  http_status=201  path=/orders  [frontend]",
    ]


def test_console_prints_every_span_even_with_corrupt_parents() -> None:
    a, b = b"\xaa" * 8, b"\xbb" * 8
    looped = [Span(T1, a, b, "a", "INTERNAL", 1, 2, BACKEND),
              Span(T1, b, a, "b", "INTERNAL", 3, 4, BACKEND),
              Span(T1, b"\xcc" * 8, b"\xcc" * 8, "self", "INTERNAL", 5, 6, BACKEND)]
    out = io.StringIO()
    assert ConsoleExporter(out).export(looped)
    names = [line.split()[1] for line in out.getvalue().splitlines()[1:]]
    assert sorted(names) == ["a", "b", "self"]


def test_console_closed_stream_is_a_failed_export() -> None:
    out = io.StringIO()
    out.close()
    assert not ConsoleExporter(out).export(sample_spans())


# --- pipeline -----------------------------------------------------------------------------


def test_pipeline_batches_in_order() -> None:
    sink = Recording()
    pipeline = ExportPipeline({"sink": sink}, max_batch_size=10, **FAST)
    spans = numbered_spans(95, "x")
    for i in range(0, 95, 7):
        pipeline.submit(spans[i:i + 7])
    assert pipeline.flush(LIVENESS_S)
    assert sink.spans == spans
    assert all(1 <= len(b) <= 10 for b in sink.batches)
    pipeline.shutdown()
    assert sink.shut_down
    assert pipeline.stats().exported == {"sink": 95}


def test_pipeline_sends_without_flush_after_max_delay() -> None:
    sink = Recording()
    pipeline = ExportPipeline({"sink": sink}, max_batch_size=512, max_delay_s=0.05)
    pipeline.submit(numbered_spans(1, "x"))
    assert wait_until(lambda: len(sink.spans) == 1)
    pipeline.shutdown()


def test_pipeline_gives_an_exporter_its_own_delay() -> None:
    """OTLP waits longer to fill a batch (each export has a fixed cost); the console not."""
    prompt, patient = Recording(), Recording()
    pipeline = ExportPipeline({"prompt": prompt, "patient": patient}, max_delay_s=0.05,
                              delays={"patient": 60.0})
    pipeline.submit(numbered_spans(3, "x"))
    assert wait_until(lambda: len(prompt.spans) == 3)
    time.sleep(0.3)
    assert patient.spans == []
    assert pipeline.flush(LIVENESS_S)
    assert len(patient.spans) == 3
    pipeline.shutdown()


def test_pipeline_retries_until_delivered(caplog) -> None:
    flaky = Scripted()
    pipeline = ExportPipeline({"flaky": flaky}, **FAST)
    spans = numbered_spans(5, "x")
    pipeline.submit(spans)
    flaky.release(False, RuntimeError("collector said no"), True)
    assert pipeline.flush(LIVENESS_S)
    assert flaky.calls == 3
    assert flaky.delivered == spans
    stats = pipeline.stats()
    assert stats.exported == {"flaky": 5}
    assert stats.dropped_total == 0
    assert not stats.exporters["flaky"].failing
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("flaky: export failed")
    pipeline.shutdown()


def test_pipeline_gives_up_after_max_attempts() -> None:
    failing = Failing()
    pipeline = ExportPipeline({"failing": failing}, max_attempts=3, max_batch_size=10, **FAST)
    pipeline.submit(numbered_spans(25, "x"))
    assert pipeline.flush(LIVENESS_S)  # settled: given up, and counted
    stats = pipeline.stats()
    assert stats.exporters["failing"].dropped == {"queue_full": 0, "export_failed": 25}
    assert stats.dropped == {"queue_full": 0, "export_failed": 25}
    assert failing.calls == 3 * 3  # three batches, three tries each
    assert_accounted(stats)
    pipeline.shutdown()


def test_pipeline_queue_is_bounded_and_counts_drops() -> None:
    stuck = Scripted()
    pipeline = ExportPipeline({"stuck": stuck}, capacity=100, max_batch_size=10, **FAST)
    pipeline.submit(numbered_spans(1000, "x"))  # returns although the exporter is stuck
    stats = pipeline.stats()
    lane = stats.exporters["stuck"]
    assert (lane.queue_depth, lane.dropped["queue_full"]) == (100, 900)
    assert_accounted(stats)
    stuck.release(*[True] * 10)
    assert pipeline.flush(LIVENESS_S)
    assert pipeline.stats().exported == {"stuck": 100}
    pipeline.shutdown()


def test_room_is_what_the_fullest_queue_can_still_take() -> None:
    """The tracer takes no more records from the kernel than this (pipeline/session.py): the
    rest wait in the ring buffer, whose backlog the kernel sheds by trace."""
    stuck, flowing = Scripted(), Scripted()
    pipeline = ExportPipeline({"stuck": stuck, "flowing": flowing}, capacity=100,
                              max_batch_size=10, **FAST)
    assert pipeline.room() == 100
    pipeline.submit(numbered_spans(30, "x"))
    flowing.release(*[True] * 3)
    wait_until(lambda: pipeline.stats().queue_depth["flowing"] == 0)
    assert pipeline.room() == 70  # the stuck exporter's queue decides
    pipeline.submit(numbered_spans(150, "y"))
    assert pipeline.room() == 0
    stuck.release(*[True] * 10)
    flowing.release(*[True] * 10)
    assert pipeline.flush(LIVENESS_S)
    assert pipeline.room() == 100
    pipeline.shutdown()


def test_a_full_queue_keeps_errors_and_kept_traces_in_its_reserve() -> None:
    """Overflowing spans are dropped, except errors and the spans of traces the overload
    policy kept for an error or a slow request, up to a tenth more than the capacity."""
    stuck = Scripted()
    pipeline = ExportPipeline({"stuck": stuck}, capacity=100, max_batch_size=10, **FAST)
    pipeline.submit(numbered_spans(100, "x"))
    notable = numbered_spans(30, "notable")
    for i, span in enumerate(notable):
        if i % 2:
            span.status = "ERROR"
        else:
            span.sampling = "rescued"
    pipeline.submit([*numbered_spans(5, "ordinary"), *notable])
    lane = pipeline.stats().exporters["stuck"]
    assert (lane.queue_depth, lane.dropped["queue_full"]) == (110, 25)
    assert_accounted(pipeline.stats())
    stuck.release(*[True] * 11)
    assert pipeline.flush(LIVENESS_S)
    names = [span.name for span in stuck.delivered]
    assert sum(name.startswith("notable") for name in names) == 10
    assert not any(name.startswith("ordinary") for name in names)
    pipeline.shutdown()


def test_the_reserve_takes_what_the_tracer_calls_notable() -> None:
    """The tracer's rule (SamplingGate.notable: errors, and spans slower than their kind's
    threshold) decides which spans of traces nobody shed the reserve takes."""
    stuck = Scripted()
    pipeline = ExportPipeline({"stuck": stuck}, capacity=100, max_batch_size=10, **FAST)
    pipeline.reserve_for(lambda span: span.name == "slow")
    pipeline.submit(numbered_spans(100, "x"))
    pipeline.submit([*numbered_spans(5, "ordinary"), *numbered_spans(5, "slow")])
    assert pipeline.stats().exporters["stuck"].dropped["queue_full"] == 5
    stuck.release(*[True] * 11)
    assert pipeline.flush(LIVENESS_S)
    names = [span.name for span in stuck.delivered]
    assert names.count("slow") == 5 and "ordinary" not in names
    pipeline.shutdown()


def test_pipeline_abandons_failed_batch_when_queue_overflows() -> None:
    down = Scripted()
    pipeline = ExportPipeline({"down": down}, capacity=100, max_batch_size=50,
                              max_attempts=1000, **FAST)
    pipeline.submit(numbered_spans(100, "old"))
    assert down.wait_calls(1)  # the first batch of 50 is out, the other 50 queued
    pipeline.submit(numbered_spans(10, "refused"))
    down.release(False)  # fails while spans are being refused: give the batch up
    assert down.wait_calls(2)  # now trying the next batch
    lane = pipeline.stats().exporters["down"]
    assert lane.dropped == {"queue_full": 10, "export_failed": 50}
    assert lane.queue_depth == 50
    pipeline.submit(numbered_spans(60, "new"))  # 50 fit again
    stats = pipeline.stats()
    assert stats.exporters["down"].dropped == {"queue_full": 20, "export_failed": 50}
    assert stats.exporters["down"].queue_depth == 100
    assert_accounted(stats)
    down.release(*[True] * 10)
    assert pipeline.flush(LIVENESS_S)
    assert [s.name for s in down.delivered] == ["old"] * 50 + ["new"] * 50
    pipeline.shutdown()


def test_pipeline_exporters_fail_independently() -> None:
    stuck, sink = Scripted(), Recording()
    pipeline = ExportPipeline({"stuck": stuck, "sink": sink}, capacity=50, max_batch_size=10,
                              **FAST)
    spans = numbered_spans(500, "x")
    for i in range(0, 500, 10):
        pipeline.submit(spans[i:i + 10])
        assert wait_until(lambda n=i + 10: len(sink.spans) == n)  # keeps delivering
    stats = pipeline.stats()
    assert stats.exporters["stuck"].dropped["queue_full"] == 450
    assert stats.exporters["sink"].dropped_total == 0
    assert stats.dropped == {"queue_full": 450, "export_failed": 0}
    assert sink.spans == spans
    assert not pipeline.flush(0.05)  # the stuck exporter cannot settle
    pipeline.shutdown(timeout_s=0.05)


def test_pipeline_shutdown_counts_what_was_left() -> None:
    stuck = Scripted()
    pipeline = ExportPipeline({"stuck": stuck}, max_batch_size=10, **FAST)
    pipeline.submit(numbered_spans(35, "x"))
    assert stuck.wait_calls(1)
    assert not pipeline.shutdown(timeout_s=0.05)
    pipeline.submit(numbered_spans(5, "late"))
    stats = pipeline.stats()
    assert stats.submitted == 40
    assert stats.exporters["stuck"].dropped == {"queue_full": 0, "export_failed": 40}
    assert stats.exporters["stuck"].queue_depth == 0
    assert "stuck: exported 0, dropped 40 (export_failed 40)" in stats.summary()


def test_pipeline_rejects_bad_settings() -> None:
    with pytest.raises(GotraceError, match="capacity must be at least 1"):
        ExportPipeline({"sink": Recording()}, capacity=0)
    with pytest.raises(GotraceError, match="max_delay_s must be positive"):
        ExportPipeline({"sink": Recording()}, max_delay_s=0)
    with pytest.raises(GotraceError, match="no exporter"):
        ExportPipeline({})


def test_pipeline_fans_out_to_jsonl_and_console(tmp_path) -> None:
    path, out = tmp_path / "spans.jsonl", io.StringIO()
    pipeline = ExportPipeline({"jsonl": JsonlExporter(path), "console": ConsoleExporter(out)})
    spans = sample_spans()
    pipeline.submit(spans)
    assert pipeline.flush(LIVENESS_S)
    assert pipeline.shutdown()
    assert [json.loads(line)["span_id"] for line in path.read_text().splitlines()] == \
        [s.span_id.hex() for s in spans]
    assert out.getvalue().count("trace ") == 2
    assert pipeline.stats().summary() == "5 spans; jsonl: exported 5; console: exported 5"
