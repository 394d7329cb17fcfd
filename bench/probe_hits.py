"""Probe hits per span, from the probes' own counters (gotrace trace --stats).

Runs each traced workload once and prints hits per request/RPC for every probe program:
HTTP server and client (one keep-alive connection), gRPC server and unary client. Not a test.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testapps import matrix

CALLS = 2000


def start(path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([str(path), *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split()[1]


def traced(workload: list[str], pid: int | None) -> dict[str, int]:
    """Run the workload under gotrace (attached to pid, or launching it); return hits."""
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready"
        base = [sys.executable, "-m", "gotrace"]
        out = ["--jsonl", str(Path(tmp) / "spans.jsonl"), "--stats", "--ready-file", str(ready)]
        if pid is None:
            tracer = subprocess.Popen([*base, "run", *out, "--", *workload],
                                      stderr=subprocess.PIPE, text=True)
            _, err = tracer.communicate(timeout=600)
        else:
            tracer = subprocess.Popen([*base, "trace", "--pid", str(pid), *out],
                                      stderr=subprocess.PIPE, text=True)
            while not ready.exists():
                time.sleep(0.05)
            subprocess.run(workload, check=True, stdout=subprocess.DEVNULL)
            time.sleep(0.5)
            tracer.send_signal(signal.SIGINT)
            _, err = tracer.communicate(timeout=60)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", err.split("probe hits", 1)[-1])}


def report(label: str, hits: dict[str, int], prefix: str) -> None:
    mine = {k: v for k, v in hits.items() if k.startswith(prefix)}
    per_call = sum(mine.values()) / CALLS
    detail = ", ".join(f"{k} {v / CALLS:.2f}" for k, v in mine.items())
    print(f"{label:22} {per_call:5.2f} hits per call ({detail})", flush=True)


def main() -> None:
    go = matrix.go_versions()[-1]
    grpc = list(matrix.grpc_gopaths())[-1]
    grpc_go = matrix.supported_go(grpc)[-1]
    http_server = matrix.build(matrix.Cell("httpserver", go, "stripped"))
    http_client = matrix.build(matrix.Cell("httpclient", go, "stripped"))
    grpc_server = matrix.build(matrix.Cell("grpcserver", grpc_go, "stripped", grpc))
    grpc_client = matrix.build(matrix.Cell("grpcclient", grpc_go, "stripped", grpc))

    server, addr = start(http_server, "-addr", "127.0.0.1:0")
    try:
        load = [str(http_client), "-url", f"http://{addr}/hello", "-n", str(CALLS)]
        report("HTTP server", traced(load, server.pid), "http_server")
        report("HTTP client", traced(load, None), "http_client")
    finally:
        server.terminate()
        server.wait()
    server, addr = start(grpc_server, "-addr", "127.0.0.1:0")
    try:
        load = [str(grpc_client), "-addr", addr, "-n", str(CALLS), "-streams", "0"]
        report("gRPC server", traced(load, server.pid), "grpc_server")
        report("gRPC client (unary)", traced(load, None), "grpc_client")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
