"""An OTLP receiver that only counts the spans it gets, over gRPC and over HTTP (protobuf),
run as a process of its own so that its CPU is never counted as the tracer's.

    python -m bench.otlp_sink     prints 'READY grpc=127.0.0.1:PORT http=127.0.0.1:PORT';
                                  on SIGTERM, '{"spans": N}'
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench import REPO
from bench.cpus import pinned_to
from gotrace.export.otlp_config import DEFAULT_PROTOCOL, TRACES_PATH

RESPONSE = trace_service_pb2.ExportTraceServiceResponse()


class _Counter(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        n = sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
        with self._lock:
            self.spans += n

    def Export(self, request, context):  # the gRPC method name
        self.add(request)
        return RESPONSE


def _http_server(counter: _Counter) -> ThreadingHTTPServer:
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

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def main() -> None:
    counter = _Counter()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(counter, server)
    port = server.add_insecure_port("127.0.0.1:0")
    http = _http_server(counter)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    threading.Thread(target=http.serve_forever, daemon=True).start()
    print(f"READY grpc=127.0.0.1:{port} http=127.0.0.1:{http.server_address[1]}", flush=True)
    stop.wait()
    http.shutdown()
    server.stop(grace=1).wait()
    print(json.dumps({"spans": counter.spans}), flush=True)


@dataclass
class Sink:
    grpc_address: str  # host:port
    http_address: str
    received: int = 0  # spans received, known once the sink has stopped

    def otlp_args(self, protocol: str = DEFAULT_PROTOCOL) -> list[str]:
        """gotrace's options for exporting here (by default with gotrace's default protocol)."""
        endpoint = (f"http://{self.grpc_address}" if protocol == "grpc"
                    else f"http://{self.http_address}/{TRACES_PATH}")
        return ["--otlp-endpoint", endpoint, "--otlp-protocol", protocol]


@contextlib.contextmanager
def otlp_sink(cpus: frozenset[int] | None = None) -> Iterator[Sink]:
    """The sink in a process of its own (on cpus, if given: bench.cpus)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.otlp_sink"], cwd=REPO,
                            stdout=subprocess.PIPE, text=True, preexec_fn=pinned_to(cpus))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"the OTLP sink did not start: {line!r}")
    addresses = dict(word.split("=", 1) for word in line.split()[1:])
    sink = Sink(addresses["grpc"], addresses["http"])
    try:
        yield sink
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        sink.received = json.loads(out)["spans"] if out.strip() else 0


if __name__ == "__main__":
    main()
