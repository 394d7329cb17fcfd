"""An OTLP/gRPC receiver that only counts the spans it gets, run as a process of its own so
that its CPU is never counted as the tracer's.

    python -m bench.otlp_sink     prints 'READY 127.0.0.1:PORT'; on SIGTERM, '{"spans": N}'
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

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench import REPO
from bench.cpus import pinned_to


class _Counter(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()

    def Export(self, request, context):  # the gRPC method name
        n = sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
        with self._lock:
            self.spans += n
        return trace_service_pb2.ExportTraceServiceResponse()


def main() -> None:
    counter = _Counter()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(counter, server)
    port = server.add_insecure_port("127.0.0.1:0")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"READY 127.0.0.1:{port}", flush=True)
    stop.wait()
    server.stop(grace=1).wait()
    print(json.dumps({"spans": counter.spans}), flush=True)


@dataclass
class Sink:
    endpoint: str  # http://127.0.0.1:PORT, for --otlp-endpoint
    received: int = 0  # spans received, known once the sink has stopped

    @property
    def otlp_args(self) -> list[str]:
        return ["--otlp-endpoint", self.endpoint, "--otlp-protocol", "grpc"]


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
    sink = Sink(f"http://{line.split()[1]}")
    try:
        yield sink
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        sink.received = json.loads(out)["spans"] if out.strip() else 0


if __name__ == "__main__":
    main()
