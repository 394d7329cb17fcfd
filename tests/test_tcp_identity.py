"""End to end: with the tcp_identity option, HTTP/1, HTTP/2 and gRPC spans name their TCP
connection as both its ends do (isn_client, isn_server) and, for HTTP/1, the request's
position in the stream (bpf/conn.h read_tcp_identity): every server span finds its client
span by that key alone. Without the option the field is all zeros.

The key is in the decoded Span (Span.tcp_identity), which no exporter writes: the tracer
runs in this process, with an exporter that keeps the spans."""

from __future__ import annotations

import contextlib
import shutil
import struct
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from conftest import FULL
from tracing import go_server

from gotrace.export import ExportPipeline
from gotrace.pipeline.session import Tracer
from gotrace.records import TCP_ID_KNOWN, TCP_ID_POSITION
from gotrace.spans import Span
from testapps import matrix

# (server, client): stripped builds of the oldest and newest Go, crossed; the other way round
# with GOTRACE_MATRIX=full (by default tests/test_cross_host.py links an HTTP/1 client of the
# oldest Go to a server of the newest)
H1_RUNS = [
    (matrix.Cell("httpserver", "1.19", "stripped"), matrix.Cell("httpclient", "1.26", "stripped")),
    *([(matrix.Cell("httpserver", "1.26", "stripped"),
        matrix.Cell("httpclient", "1.19", "stripped"))] if FULL else []),
]
H2_MODES = [("tls", "tls"), ("h2c", "h2c"), ("xnet", "xnet"), ("xnet-tls", "xnet-tls")]
H2_CELLS = [matrix.Cell("h2", "1.19", "stripped"), matrix.Cell("h2", "1.26", "stripped")]
BODIES = (0, 5000, 9000, 20_000)  # request (and echoed response) bytes: beyond bufio's 4 KiB


class Keeper:
    """An exporter that keeps every span."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    def export(self, spans: Sequence[Span]) -> bool:
        self.spans.extend(spans)
        return True

    def shutdown(self) -> None:
        pass


@contextlib.contextmanager
def polling(tracer: Tracer) -> Iterator[None]:
    """The tracer's poll loop on a thread of its own (everything attached before)."""
    thread = threading.Thread(target=tracer.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        tracer.stop()
        thread.join(timeout=30)


@contextlib.contextmanager
def in_process_tracer(tcp_identity: bool) -> Iterator[tuple[Tracer, Keeper]]:
    keeper = Keeper()
    pipeline = ExportPipeline({"keeper": keeper}, max_delay_s=0.05)
    tracer = Tracer(pipeline, tcp_identity=tcp_identity)
    try:
        yield tracer, keeper
    finally:
        tracer.close()
        pipeline.flush()
        pipeline.shutdown()


def identity(span: Span) -> tuple[int, int, int, int]:
    """(isn_client, isn_server, position, flags)."""
    assert len(span.tcp_identity) == 16
    return struct.unpack("<4I", span.tcp_identity)


def pid_of(span: Span) -> object:
    return span.resource.attributes["process.pid"]


def check_keys(spans: list[Span], server_pid: int, since_ns: int, http1: bool) -> int:
    """Every server span of server_pid begun after since_ns has a client span with the same
    (isn_client, isn_server, key): the position for HTTP/1, the stream id otherwise; the
    identity is known; a connection has one ISN pair, and no two connections share it.
    Returns the number of server spans checked."""
    servers = [s for s in spans if s.kind == "SERVER" and pid_of(s) == server_pid
               and s.monotonic_start_ns > since_ns]
    clients: dict[tuple[int, int, int], list[Span]] = defaultdict(list)
    for span in spans:
        if span.kind == "CLIENT":
            isn_c, isn_s, position, flags = identity(span)
            assert flags & TCP_ID_KNOWN, span
            assert bool(flags & TCP_ID_POSITION) == http1, span
            clients[(isn_c, isn_s, position if http1 else span.stream_id)].append(span)
    pairs_by_conn: dict[object, set[tuple[int, int]]] = defaultdict(set)
    for server in servers:
        isn_c, isn_s, position, flags = identity(server)
        assert flags & TCP_ID_KNOWN, server
        assert bool(flags & TCP_ID_POSITION) == http1, server
        if not http1:
            assert position == 0 and server.stream_id > 0, server
        key = (isn_c, isn_s, position if http1 else server.stream_id)
        found = clients.get(key, [])
        assert len(found) == 1, (key, server, found)
        client = found[0]
        assert client.connection is not None and server.connection is not None
        assert client.connection.local_port == server.connection.peer_port
        assert client.monotonic_start_ns <= server.monotonic_start_ns
        pairs_by_conn[server.connection].add((isn_c, isn_s))
    assert all(len(pairs) == 1 for pairs in pairs_by_conn.values()), pairs_by_conn
    all_pairs = [next(iter(pairs)) for pairs in pairs_by_conn.values()]
    assert len(set(all_pairs)) == len(all_pairs), pairs_by_conn
    return len(servers)


def own_copy(cell: matrix.Cell, tmp_path: Path) -> Path:
    """The cell's binary, copied: the tracer follows every process of the file."""
    copy = tmp_path / cell.name
    shutil.copy2(matrix.build(cell), copy)
    return copy


def http1_client(binary: Path, addr: str, body: int, n: int, interval: str = "50ms",
                 concurrency: int = 1) -> subprocess.Popen[str]:
    args = ["-url", f"http://{addr}/echo", "-method", "POST", "-body", "x" * body] if body \
        else ["-url", f"http://{addr}/hello?name=tcp"]
    return subprocess.Popen([str(binary), *args, "-n", str(n), "-interval", interval,
                             "-concurrency", str(concurrency)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(clients: list[subprocess.Popen[str]]) -> None:
    for proc in clients:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "DONE" in out, out + err


@pytest.mark.parametrize("server_cell,client_cell", H1_RUNS, ids=lambda c: c.name)
def test_http1_keep_alive_connections(tmp_path, server_cell, client_cell):
    """Keep-alive connections, two opened before the tracer attached (their requests go on
    through the attach), the others after; bodies beyond bufio's 4 KiB both ways."""
    client = own_copy(client_cell, tmp_path)
    with go_server(matrix.build(server_cell)) as (server, addr), \
            in_process_tracer(tcp_identity=True) as (tracer, keeper):
        early = [http1_client(client, addr, BODIES[1], 500, "30ms"),
                 http1_client(client, addr, BODIES[3], 500, "30ms", concurrency=2)]
        time.sleep(0.5)  # their connections are open
        tracer.attach_pid(server.pid)
        tracer.attach_exe(str(client))
        attached_ns = time.monotonic_ns()
        with polling(tracer):
            late = [http1_client(client, addr, body, 20, "5ms") for body in BODIES]
            finish(early + late)
            time.sleep(0.5)
    checked = check_keys(keeper.spans, server.pid, attached_ns, http1=True)
    assert checked >= 4 * 20, checked
    early_pids = {proc.pid for proc in early}
    assert sum(pid_of(s) in early_pids for s in keeper.spans) > 0  # pre-attach connections


@pytest.mark.parametrize("h2_cell", H2_CELLS, ids=lambda c: c.name)
def test_http2_streams(tmp_path, h2_cell):
    """Each server mode of testapps/h2 with its client: one connection per call, 20
    requests at once on it."""
    binary = own_copy(h2_cell, tmp_path)
    with in_process_tracer(tcp_identity=True) as (tracer, keeper):
        tracer.attach_exe(str(binary))  # servers and clients alike
        with polling(tracer):
            servers = []
            for server_mode, client_mode in H2_MODES:
                with go_server(binary, "serve", "-mode", server_mode) as (server, addr):
                    servers.append((server_mode, server.pid))
                    scheme = "https" if server_mode in ("tls", "xnet-tls") else "http"
                    for _ in range(2):
                        done = subprocess.run(
                            [str(binary), "call", "-mode", client_mode, "-url",
                             f"{scheme}://{addr}/hello?name=h2", "-n", "40",
                             "-concurrency", "20"], capture_output=True, text=True, timeout=60)
                        assert done.returncode == 0, done.stdout + done.stderr
            time.sleep(0.5)
    for server_mode, pid in servers:
        assert check_keys(keeper.spans, pid, 0, http1=False) == 80, server_mode


@pytest.mark.parametrize("go,grpc", [("1.19", "1.33"), ("1.26", "1.79")])
def test_grpc_unary_calls(tmp_path, go, grpc):
    client = own_copy(matrix.Cell("grpcclient", go, "stripped", grpc), tmp_path)
    server_binary = matrix.build(matrix.Cell("grpcserver", go, "stripped", grpc))
    with go_server(server_binary) as (server, addr), \
            in_process_tracer(tcp_identity=True) as (tracer, keeper):
        tracer.attach_pid(server.pid)
        tracer.attach_exe(str(client))
        attached_ns = time.monotonic_ns()
        with polling(tracer):
            for _ in range(2):
                done = subprocess.run([str(client), "-addr", addr, "-n", "30", "-streams", "0",
                                       "-concurrency", "4"],
                                      capture_output=True, text=True, timeout=60)
                assert done.returncode == 0, done.stdout + done.stderr
            time.sleep(0.5)
    assert check_keys(keeper.spans, server.pid, attached_ns, http1=False) == 60


def test_without_the_option_the_identity_is_zeros(tmp_path):
    client = own_copy(H1_RUNS[0][1], tmp_path)
    with go_server(matrix.build(H1_RUNS[0][0])) as (server, addr), \
            in_process_tracer(tcp_identity=False) as (tracer, keeper):
        tracer.attach_pid(server.pid)
        tracer.attach_exe(str(client))
        with polling(tracer):
            finish([http1_client(client, addr, BODIES[1], 10, "5ms")])
            time.sleep(0.5)
    assert len(keeper.spans) >= 20
    assert all(s.tcp_identity == bytes(16) for s in keeper.spans)
