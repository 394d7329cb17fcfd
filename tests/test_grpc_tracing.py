"""End to end: grpc-go server spans for every grpc-go version of the matrix."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter

import grpc
import pytest
from conftest import FULL
from google.protobuf import wrappers_pb2
from otlp_receiver import OtlpReceiver
from tracing import go_server, gotrace, newproc_probed, otlp_args, probe_hits, stop

from testapps import matrix


def grpc_cells() -> list[matrix.Cell]:
    """grpcserver stripped for every grpc-go version, plain for the oldest and newest (with
    GOTRACE_MATRIX=full, plain for every version too). A plain build differs from its stripped
    twin only in where gotrace reads functions and field offsets (.symtab, DWARF):
    tests/test_functions.py and tests/test_fields.py compare those for every cell."""
    versions = list(matrix.grpc_gopaths())
    return [c for c in matrix.default_cells() if c.app == "grpcserver"
            and (c.variant == "stripped" or FULL or c.grpc in (versions[0], versions[-1]))]


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as r:
        yield r


# What the Go client makes: 100 unary Says, 10 Count streams (half of them read on another
# goroutine), a Fail (NOT_FOUND), a Sleep past its deadline, a stream it cancels.
CALLS = {"demo.Echo/Say": 100, "demo.Echo/Count": 11, "demo.Echo/Fail": 1, "demo.Echo/Sleep": 1}
N_CALLS = sum(CALLS.values())


@pytest.mark.parametrize("server_cell", grpc_cells(), ids=str)
def test_server_and_client_spans(tmp_path, receiver, server_cell):
    """Both sides traced by one gotrace: the server by PID, the client by executable."""
    receiver.clear()
    # A copy of its own: --exe traces every process of the file, and only this test's
    # client must run from this one.
    client = tmp_path / "grpcclient"
    shutil.copy2(matrix.build(matrix.Cell("grpcclient", server_cell.go, server_cell.variant,
                                          server_cell.grpc)), client)
    with go_server(matrix.build(server_cell)) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--exe", str(client),
                    "--stats", *otlp_args(receiver)) as tracer:
        done = subprocess.run([str(client), "-addr", addr, "-n", "100", "-streams", "10",
                               "-fail", "-deadline-ms", "50", "-cancel-stream"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        spans = receiver.wait_for(2 * N_CALLS, timeout=30)
        _, err = stop(tracer)
    assert len(spans) == 2 * N_CALLS, err
    assert len({s["span_id"] for s in spans}) == 2 * N_CALLS
    servers = [s for s in spans if s["kind"] == "SERVER"]
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    assert Counter(s["name"] for s in servers) == CALLS
    assert Counter(s["name"] for s in clients) == CALLS
    check_probe_hits(err, server_cell.go)
    host, port = addr.rsplit(":", 1)
    for span in spans:
        attrs = span["attributes"]
        assert attrs["rpc.system"] == "grpc"
        assert attrs["rpc.service"] == "demo.Echo"
        assert span["name"] == f"demo.Echo/{attrs['rpc.method']}"
        assert attrs["server.address"] == host and attrs["server.port"] == int(port)
        assert attrs["go.goroutine.id"] > 0
    client_port = check_server_spans(servers)
    check_client_spans(clients, client_port)


def check_probe_hits(err: str, go: str) -> None:
    """Server: two hits per RPC. Client: two per unary call; a stream's three, plus its
    second finish from grpc's context watcher. An entry probe may fire twice when the
    goroutine's stack grows first. The goroutines grpc starts per RPC cost nothing where the
    runtime records their creator (Go >= 1.21); before, one newproc1 RET hit each."""
    hits = probe_hits(err)
    assert ("newproc_return" in hits) == newproc_probed(go)
    unary, streams = CALLS["demo.Echo/Say"] + 2, CALLS["demo.Echo/Count"]
    assert N_CALLS <= hits["grpc_server_entry"] < N_CALLS + 8
    assert N_CALLS <= hits["grpc_server_status"] < N_CALLS + 8
    assert unary <= hits["grpc_client_invoke"] < unary + 8
    assert hits["grpc_client_new_stream"] == hits["grpc_client_stream_returned"] == streams
    assert unary + 2 * streams - 1 <= hits["grpc_client_finish"] < unary + 2 * streams + 8


def check_server_spans(servers: list[dict]) -> int:
    """Codes and statuses as the server saw them; returns the client's port."""
    codes = Counter()
    for span in servers:
        attrs = span["attributes"]
        assert attrs["client.address"] == "127.0.0.1" and attrs["client.port"] > 0
        assert attrs["network.peer.port"] == attrs["client.port"]
        code = attrs["rpc.grpc.status_code"]
        if attrs["rpc.method"] == "Sleep":
            # The client's deadline passed: the server saw the stream cancelled (1), or its
            # own copy of the deadline expire (4), depending on the grpc-go version.
            assert code in (1, 4)
            assert span["end_time_unix_nano"] - span["start_time_unix_nano"] >= 40_000_000
        elif code:
            codes[(attrs["rpc.method"], "error")] += 1
            assert span["status"] == ("ERROR" if code in (2, 4, 12, 13, 14, 15) else "UNSET")
        else:
            codes[(attrs["rpc.method"], "ok")] += 1
            assert span["status"] == "UNSET"
    assert codes == {("Say", "ok"): 100, ("Count", "ok"): 10, ("Count", "error"): 1,
                     ("Fail", "error"): 1}
    assert {s["attributes"]["rpc.grpc.status_code"] for s in servers
            if s["attributes"]["rpc.method"] == "Fail"} == {5}
    ports = {s["attributes"]["client.port"] for s in servers}
    assert len(ports) == 1  # one ClientConn, one connection
    return ports.pop()


def check_client_spans(clients: list[dict], client_port: int) -> None:
    codes = Counter((s["name"], s["attributes"]["rpc.grpc.status_code"], s["status"])
                    for s in clients)
    assert codes == {("demo.Echo/Say", 0, "UNSET"): 100, ("demo.Echo/Count", 0, "UNSET"): 10,
                     ("demo.Echo/Count", 1, "ERROR"): 1, ("demo.Echo/Fail", 5, "ERROR"): 1,
                     ("demo.Echo/Sleep", 4, "ERROR"): 1}
    for span in clients:
        attrs = span["attributes"]
        assert span["parent_span_id"] is None
        assert attrs["network.local.port"] == client_port
        assert attrs["network.peer.port"] == attrs["server.port"]
    sleep = next(s for s in clients if s["name"] == "demo.Echo/Sleep")
    assert 45_000_000 <= sleep["end_time_unix_nano"] - sleep["start_time_unix_nano"] < 1e9


@pytest.mark.parametrize("grpc_version", list(matrix.grpc_gopaths()))
def test_server_spans_from_python_grpcio_client(tmp_path, receiver, grpc_version):
    """grpcio (C core) as the caller; its traceparent metadata is continued, with the oldest
    Go (old map layout) for grpc-go 1.33 and the newest (swiss tables) otherwise."""
    receiver.clear()
    oldest_grpc, *_ = matrix.grpc_gopaths()
    supported = matrix.supported_go(grpc_version)
    go = supported[0] if grpc_version == oldest_grpc else supported[-1]
    cell = matrix.Cell("grpcserver", go, "stripped", grpc_version)
    with go_server(matrix.build(cell)) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), *otlp_args(receiver)) as tracer:
        with grpc.insecure_channel(addr) as channel:
            say = channel.unary_unary(
                "/demo.Echo/Say",
                request_serializer=wrappers_pb2.StringValue.SerializeToString,
                response_deserializer=wrappers_pb2.StringValue.FromString)
            fail = channel.unary_unary(
                "/demo.Echo/Fail",
                request_serializer=wrappers_pb2.StringValue.SerializeToString,
                response_deserializer=wrappers_pb2.StringValue.FromString)
            for i in range(5):
                assert "python" in say(wrappers_pb2.StringValue(value=f"python{i}")).value
            # W3C trace context in the metadata, as grpcio's OpenTelemetry instrumentation
            # sends it; among other metadata so the map has more than one entry.
            for trace_id, parent in REMOTE_PARENTS:
                say(wrappers_pb2.StringValue(value="traced"), metadata=(
                    ("x-request-id", "r1"), ("traceparent", f"00-{trace_id}-{parent}-01"),
                    ("tracestate", "k=v")))
            with pytest.raises(grpc.RpcError) as failed:
                fail(wrappers_pb2.StringValue(value="x"))
            assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        spans = receiver.wait_for(6 + len(REMOTE_PARENTS), timeout=30)
        stop(tracer)
    assert Counter(s["name"] for s in spans) == {"demo.Echo/Say": 5 + len(REMOTE_PARENTS),
                                                 "demo.Echo/Fail": 1}
    assert {s["attributes"]["rpc.grpc.status_code"] for s in spans
            if s["name"] == "demo.Echo/Fail"} == {5}
    continued = {(s["trace_id"], s["parent_span_id"]) for s in spans if s["parent_span_id"]}
    assert continued == set(REMOTE_PARENTS)
    assert len({s["trace_id"] for s in spans}) == len(spans)  # the others: fresh traces


REMOTE_PARENTS = [("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),
                  ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")]


def route_call_versions() -> list[str]:
    """The oldest grpc-go (with GOTRACE_MATRIX=full, every one): with the others, an HTTP route
    calling gRPC is the front of tests/test_linking.py's chains (grpc-go 1.64 with Go 1.21,
    the newest with the newest Go), whose client spans' attributes test_server_and_client_spans
    checks for every version."""
    versions = list(matrix.grpc_gopaths())
    return versions if FULL else versions[:1]


@pytest.mark.parametrize("grpc_version", route_call_versions())
def test_http_route_making_a_grpc_call_is_one_trace(tmp_path, receiver, grpc_version):
    """SERVER (HTTP) -> CLIENT (gRPC) in one trace, from an unmodified stripped binary."""
    from tracing import get

    receiver.clear()
    go = matrix.supported_go(grpc_version)[-1]
    front = matrix.build(matrix.Cell("httpgrpc", go, "stripped", grpc_version))
    back = matrix.build(matrix.Cell("grpcserver", go, "stripped", grpc_version))
    with go_server(back) as (_, back_addr), go_server(front) as (front_proc, front_addr), \
            gotrace(tmp_path, "trace", "--pid", str(front_proc.pid),
                    *otlp_args(receiver)) as tracer:
        for i in range(5):
            assert get(front_addr, f"/say?addr={back_addr}&name=n{i}") == 200
        spans = receiver.wait_for(10, timeout=30)
        stop(tracer)
    servers = [s for s in spans if s["kind"] == "SERVER"]
    clients = {s["parent_span_id"]: s for s in spans if s["kind"] == "CLIENT"}
    assert len(servers) == 5 and len(clients) == 5
    host, port = back_addr.rsplit(":", 1)
    for server in servers:
        assert server["attributes"]["url.path"] == "/say"
        client = clients[server["span_id"]]
        assert client["trace_id"] == server["trace_id"]
        assert client["name"] == "demo.Echo/Say"
        assert client["attributes"]["rpc.grpc.status_code"] == 0
        assert client["attributes"]["server.address"] == host
        assert client["attributes"]["server.port"] == int(port)


def test_multiplexed_calls_on_one_connection(tmp_path, receiver):
    """20 concurrent callers x 500 calls over one HTTP/2 connection, both sides traced."""
    receiver.clear()
    grpc_version = list(matrix.grpc_gopaths())[-1]
    go = matrix.supported_go(grpc_version)[-1]
    server = matrix.build(matrix.Cell("grpcserver", go, "stripped", grpc_version))
    client = matrix.build(matrix.Cell("grpcclient", go, "stripped", grpc_version))
    with go_server(server) as (server_proc, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server_proc.pid),
                    *otlp_args(receiver)) as server_tracer:
        with gotrace(tmp_path, "run", *otlp_args(receiver), "--", str(client), "-addr", addr,
                     "-n", "10000", "-concurrency", "20", "-streams", "0") as client_tracer:
            client_tracer.wait(timeout=300)
        client_err = client_tracer.communicate()[1]
        assert client_tracer.returncode == 0, client_err
        spans = receiver.wait_for(20000, timeout=60)
        server_err = stop(server_tracer)[1]
    kinds = Counter((s["kind"], s["name"], s["attributes"]["rpc.grpc.status_code"])
                    for s in spans)
    assert kinds == {("SERVER", "demo.Echo/Say", 0): 10000,
                     ("CLIENT", "demo.Echo/Say", 0): 10000}, (server_err, client_err)
    assert len({s["span_id"] for s in spans}) == 20000
    ports = {s["attributes"]["client.port"] for s in spans if s["kind"] == "SERVER"}
    assert len(ports) == 1  # one connection carried every call


OLDEST_GRPC, *_, NEWEST_GRPC = matrix.grpc_gopaths()


@pytest.mark.parametrize(("grpc_version", "workers"),
                         [(OLDEST_GRPC, 0), (NEWEST_GRPC, 0), (NEWEST_GRPC, 4)])
def test_each_connection_keeps_its_addresses(tmp_path, receiver, grpc_version, workers):
    """One connection after another, with and without stream workers (grpc.NumStreamWorkers):
    every server span names the connection its call came on. Without workers the addresses
    are read once per connection (bpf/served_conn.h), keyed by the goroutine serving it; a
    worker serves any connection, and its RPCs are read one by one. The client's own spans
    (read on its side) say which connection each call used."""
    receiver.clear()
    go = matrix.supported_go(grpc_version)[-1]  # with g.parentGoid (Go >= 1.21)
    server = matrix.build(matrix.Cell("grpcserver", go, "stripped", grpc_version))
    client = tmp_path / "grpcclient"
    shutil.copy2(matrix.build(matrix.Cell("grpcclient", go, "stripped", grpc_version)), client)
    runs, calls = 5, 20
    with go_server(server, "-workers", str(workers)) as (server_proc, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server_proc.pid), "--exe", str(client),
                    *otlp_args(receiver)) as tracer:
        for _ in range(runs):  # a process, so a connection, each
            done = subprocess.run([str(client), "-addr", addr, "-n", str(calls),
                                   "-streams", "0"], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stdout + done.stderr
        spans = receiver.wait_for(2 * runs * calls, timeout=30)
        _, err = stop(tracer)
    assert len(spans) == 2 * runs * calls, err
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    servers = [s for s in spans if s["kind"] == "SERVER"]
    assert len({s["attributes"]["network.local.port"] for s in clients}) == runs
    for span in servers:
        # Its call: the client span around it (calls ran one after another).
        around = [c for c in clients
                  if c["start_time_unix_nano"] <= span["start_time_unix_nano"]
                  and span["end_time_unix_nano"] <= c["end_time_unix_nano"]]
        assert len(around) == 1, span
        assert span["attributes"]["client.port"] == around[0]["attributes"]["network.local.port"]
