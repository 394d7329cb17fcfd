"""An OTLP receiver that only counts the spans it gets, over gRPC and over HTTP (protobuf),
run as a process of its own so that its CPU is never counted as the tracer's.

    python -m bench.otlp_sink [--slow-ns N] [--host ADDRESS] [--server-delays]
        prints 'READY grpc=ADDRESS:PORT http=ADDRESS:PORT' (ADDRESS 127.0.0.1 unless told);
        on SIGTERM, '{"spans": N, "errors": E, "slow": S, "server_delays": D}': of the spans,
        those with an ERROR status and, given --slow-ns, those lasting at least that long;
        with --server-delays, D says how long after their end the SERVER spans arrived
        ({"count": N, "p50_s": X, "p99_s": Y}, null if none came)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench import REPO
from bench.cpus import pinned_to
from gotrace.export.otlp_config import DEFAULT_PROTOCOL, TRACES_PATH

RESPONSE = trace_service_pb2.ExportTraceServiceResponse()
ERROR = 2  # Status.code STATUS_CODE_ERROR
SERVER = 2  # Span.kind SPAN_KIND_SERVER


@dataclasses.dataclass(frozen=True)
class Delays:
    """How long after their end (wall clock, as exported) the sink received spans."""

    count: int
    p50_s: float
    p99_s: float

    @classmethod
    def of(cls, delays_ns: list[int]) -> Delays | None:
        if len(delays_ns) < 2:  # no percentile of fewer
            return None
        cuts = statistics.quantiles(delays_ns, n=100)
        return cls(len(delays_ns), statistics.median(delays_ns) / 1e9, cuts[98] / 1e9)


class _Counter(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, slow_ns: int | None, server_delays: bool) -> None:
        self.spans = self.errors = self.slow = 0
        self._slow_ns = slow_ns
        # Arrival minus end of each SERVER span: one clock read per export request.
        self.server_delays_ns: list[int] | None = [] if server_delays else None
        self._lock = threading.Lock()

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        spans = [span for rs in request.resource_spans for scope in rs.scope_spans
                 for span in scope.spans]
        errors = sum(span.status.code == ERROR for span in spans)
        slow = 0 if self._slow_ns is None else sum(
            span.end_time_unix_nano - span.start_time_unix_nano >= self._slow_ns
            for span in spans)
        with self._lock:
            self.spans += len(spans)
            self.errors += errors
            self.slow += slow
            if self.server_delays_ns is not None:
                now = time.time_ns()
                self.server_delays_ns.extend(now - span.end_time_unix_nano for span in spans
                                             if span.kind == SERVER)

    def Export(self, request, context):  # the gRPC method name
        self.add(request)
        return RESPONSE


def _http_server(counter: _Counter, host: str) -> ThreadingHTTPServer:
    """OTLP/HTTP: POST /v1/traces with a protobuf ExportTraceServiceRequest."""
    body = RESPONSE.SerializeToString()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as exporters expect

        def do_POST(self) -> None:  # the name http.server calls
            data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            counter.add(trace_service_pb2.ExportTraceServiceRequest.FromString(data))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer((host, 0), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.otlp_sink")
    parser.add_argument("--slow-ns", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--server-delays", action="store_true")
    args = parser.parse_args()
    counter = _Counter(args.slow_ns, args.server_delays)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(counter, server)
    port = server.add_insecure_port(f"{args.host}:0")
    http = _http_server(counter, args.host)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    threading.Thread(target=http.serve_forever, daemon=True).start()
    print(f"READY grpc={args.host}:{port} http={args.host}:{http.server_address[1]}",
          flush=True)
    stop.wait()
    http.shutdown()
    server.stop(grace=1).wait()
    delays = None if counter.server_delays_ns is None else Delays.of(counter.server_delays_ns)
    print(json.dumps({"spans": counter.spans, "errors": counter.errors, "slow": counter.slow,
                      "server_delays": None if delays is None else dataclasses.asdict(delays)}),
          flush=True)


@dataclasses.dataclass
class Sink:
    grpc_address: str  # host:port
    http_address: str
    pid: int  # of the sink's process
    received: int = 0  # spans received, known once the sink has stopped
    errors: int = 0  # ... of them with an ERROR status
    slow: int = 0  # ... of them lasting at least the sink's slow_ns
    server_delays: Delays | None = None  # with server_delays, if SERVER spans came

    def otlp_args(self, protocol: str = DEFAULT_PROTOCOL) -> list[str]:
        """gotrace's options for exporting here (by default with gotrace's default protocol)."""
        endpoint = (f"http://{self.grpc_address}" if protocol == "grpc"
                    else f"http://{self.http_address}/{TRACES_PATH}")
        return ["--otlp-endpoint", endpoint, "--otlp-protocol", protocol]


@contextlib.contextmanager
def otlp_sink(cpus: frozenset[int] | None = None, slow_ns: int | None = None,
              host: str = "127.0.0.1", server_delays: bool = False) -> Iterator[Sink]:
    """The sink in a process of its own (on cpus, if given: bench.cpus) listening on host,
    counting the spans lasting at least slow_ns, if given, and with server_delays timing
    the SERVER spans' arrival."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.otlp_sink", "--host", host,
                             *(["--slow-ns", str(slow_ns)] if slow_ns is not None else []),
                             *(["--server-delays"] if server_delays else [])], cwd=REPO,
                            stdout=subprocess.PIPE, text=True, preexec_fn=pinned_to(cpus))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"the OTLP sink did not start: {line!r}")
    addresses = dict(word.split("=", 1) for word in line.split()[1:])
    sink = Sink(addresses["grpc"], addresses["http"], proc.pid)
    try:
        yield sink
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        if out.strip():
            counts = json.loads(out)
            sink.received, sink.errors, sink.slow = (counts["spans"], counts["errors"],
                                                     counts["slow"])
            if counts["server_delays"]:
                sink.server_delays = Delays(**counts["server_delays"])


if __name__ == "__main__":
    main()
