"""A real OTLP receiver for tests: OTLP/gRPC and OTLP/HTTP (protobuf), on 127.0.0.1 unless
given another address (tests/hosts.py's Network.outside, for agents in other namespaces).

Received spans are flattened into plain dicts so tests can compare them with what was sent:
    trace_id, span_id (hex), parent_span_id (hex or None), name, kind ("SERVER", ...),
    start_time_unix_nano, end_time_unix_nano, status ("UNSET"/"OK"/"ERROR"), status_message,
    attributes and resource (dicts of plain Python values), scope_name, scope_version.

stop() and start() take the receiver down and bring it back on the same ports, to simulate a
collector outage.
"""

from __future__ import annotations

import gzip
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus

HOST = "127.0.0.1"
TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"


def plain_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as the Python value it carries."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [plain_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return plain_attributes(value.kvlist_value.values)
    return getattr(value, which)


def plain_attributes(attributes: Any) -> dict[str, Any]:
    pairs: list[KeyValue] = list(attributes)
    return {kv.key: plain_value(kv.value) for kv in pairs}


def flatten(request: trace_service_pb2.ExportTraceServiceRequest) -> list[dict[str, Any]]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = plain_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append({
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex() or None,
                    "name": span.name,
                    "kind": PbSpan.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                    "start_time_unix_nano": span.start_time_unix_nano,
                    "end_time_unix_nano": span.end_time_unix_nano,
                    "status": PbStatus.StatusCode.Name(span.status.code)
                    .removeprefix("STATUS_CODE_"),
                    "status_message": span.status.message,
                    "attributes": plain_attributes(span.attributes),
                    "resource": dict(resource),
                    "scope_name": scope_spans.scope.name,
                    "scope_version": scope_spans.scope.version,
                })
    return spans


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(self, request, context):  # the gRPC method name
        self._receiver._record(request, dict(context.invocation_metadata()))
        return trace_service_pb2.ExportTraceServiceResponse()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    receiver: OtlpReceiver


class _HttpHandler(BaseHTTPRequestHandler):
    server: _HttpServer

    def do_POST(self) -> None:
        if self.path != TRACES_PATH:
            self.send_error(404)
            return
        if self.headers.get("Content-Type", "").split(";")[0].strip() != PROTOBUF:
            self.send_error(415)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.receiver._record(request, {k.lower(): v for k, v in self.headers.items()})
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", PROTOBUF)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log lines."""


class OtlpReceiver:
    """Context manager running both receivers; ports stay the same across stop()/start()."""

    def __init__(self, host: str = HOST) -> None:
        self.host = host
        self._cond = threading.Condition()
        self._spans: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._grpc_port = 0
        self._http_port = 0
        self._grpc_server: grpc.Server | None = None
        self._http_server: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None

    def __enter__(self) -> OtlpReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def grpc_endpoint(self) -> str:
        return f"http://{self.host}:{self._grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """The full OTLP/HTTP traces URL."""
        return f"http://{self.host}:{self._http_port}{TRACES_PATH}"

    @property
    def http_base(self) -> str:
        return f"http://{self.host}:{self._http_port}"

    @property
    def spans(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._spans)

    @property
    def headers(self) -> list[dict[str, str]]:
        """Request headers (gRPC metadata or HTTP headers) of every export received."""
        with self._cond:
            return list(self._headers)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The spans received once there are at least count of them (fewer on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._spans) < count and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return list(self._spans)

    def settle(self, count: int, quiet: float, timeout: float = 60.0) -> list[dict[str, Any]]:
        """The spans received once there are at least count of them and then none came for
        `quiet` seconds (what is there on timeout): for exporters that may still send a few
        more than the count a test is sure of, each within a known time."""
        deadline = time.monotonic() + timeout
        self.wait_for(count, timeout)
        with self._cond:
            seen = len(self._spans)
            while (left := deadline - time.monotonic()) > 0:
                self._cond.wait(min(quiet, left))
                if len(self._spans) == seen:
                    break
                seen = len(self._spans)
            return list(self._spans)

    def clear(self) -> None:
        with self._cond:
            self._spans.clear()
            self._headers.clear()

    def start(self) -> None:
        grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self),
                                                                  grpc_server)
        self._grpc_port = grpc_server.add_insecure_port(f"{self.host}:{self._grpc_port}")
        grpc_server.start()
        self._grpc_server = grpc_server

        http_server = _HttpServer((self.host, self._http_port), _HttpHandler)
        http_server.receiver = self
        self._http_port = http_server.server_address[1]
        self._http_thread = threading.Thread(target=http_server.serve_forever,
                                             kwargs={"poll_interval": 0.05}, daemon=True)
        self._http_thread.start()
        self._http_server = http_server

    def stop(self) -> None:
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=None).wait()
            self._grpc_server = None
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
            self._http_server = None
        if self._http_thread is not None:
            self._http_thread.join()
            self._http_thread = None

    def _record(self, request: trace_service_pb2.ExportTraceServiceRequest,
                headers: dict[str, str]) -> None:
        spans = flatten(request)
        with self._cond:
            self._spans.extend(spans)
            self._headers.append(headers)
            self._cond.notify_all()
