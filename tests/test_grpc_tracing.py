"""End to end: grpc-go server spans for every grpc-go version of the matrix."""

from __future__ import annotations

import re
import subprocess
from collections import Counter

import grpc
import pytest
from google.protobuf import wrappers_pb2
from otlp_receiver import OtlpReceiver
from tracing import go_server, gotrace, otlp_args, stop

from testapps import matrix


def grpc_cells() -> list[matrix.Cell]:
    return [c for c in matrix.default_cells() if c.app == "grpcserver"]


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as r:
        yield r


@pytest.mark.parametrize("server_cell", grpc_cells(), ids=str)
def test_server_spans_from_go_client(tmp_path, receiver, server_cell):
    receiver.clear()
    client = matrix.build(matrix.Cell("grpcclient", server_cell.go, "stripped", server_cell.grpc))
    with go_server(matrix.build(server_cell)) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--stats",
                    *otlp_args(receiver)) as tracer:
        done = subprocess.run([str(client), "-addr", addr, "-n", "100", "-streams", "10",
                               "-fail", "-deadline-ms", "50"], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        spans = receiver.wait_for(112, timeout=30)
        _, err = stop(tracer)
    assert len(spans) == 112, err
    # Two probe hits per RPC (an entry probe may fire twice when the stack grows first).
    hits = {k: int(v) for k, v in re.findall(r"(grpc_server_\w+)=(\d+)", err)}
    assert 112 <= hits["grpc_server_entry"] < 120 and 112 <= hits["grpc_server_status"] < 120
    methods = Counter(s["name"] for s in spans)
    assert methods == {"demo.Echo/Say": 100, "demo.Echo/Count": 10, "demo.Echo/Fail": 1,
                       "demo.Echo/Sleep": 1}
    host, port = addr.rsplit(":", 1)
    for span in spans:
        attrs = span["attributes"]
        assert span["kind"] == "SERVER"
        assert attrs["rpc.system"] == "grpc"
        assert attrs["rpc.service"] == "demo.Echo"
        assert span["name"] == f"demo.Echo/{attrs['rpc.method']}"
        assert attrs["server.address"] == host and attrs["server.port"] == int(port)
        assert attrs["client.address"] == "127.0.0.1" and attrs["client.port"] > 0
        assert attrs["go.goroutine.id"] > 0
        code = attrs["rpc.grpc.status_code"]
        if attrs["rpc.method"] == "Fail":
            assert code == 5 and span["status"] == "UNSET"  # NOT_FOUND: the caller's error
        elif attrs["rpc.method"] == "Sleep":
            # The client's deadline passed: the server saw the stream cancelled (1), or its
            # own copy of the deadline expire (4), depending on the grpc-go version.
            assert code in (1, 4)
            assert span["end_time_unix_nano"] - span["start_time_unix_nano"] >= 40_000_000
        else:
            assert code == 0 and span["status"] == "UNSET"
    assert len({s["span_id"] for s in spans}) == 112


def test_server_spans_from_python_grpcio_client(tmp_path, receiver):
    receiver.clear()
    grpc_version = list(matrix.grpc_gopaths())[-1]
    cell = matrix.Cell("grpcserver", matrix.supported_go(grpc_version)[-1], "stripped",
                       grpc_version)
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
            with pytest.raises(grpc.RpcError) as failed:
                fail(wrappers_pb2.StringValue(value="x"))
            assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        spans = receiver.wait_for(6, timeout=30)
        stop(tracer)
    assert Counter(s["name"] for s in spans) == {"demo.Echo/Say": 5, "demo.Echo/Fail": 1}
    assert {s["attributes"]["rpc.grpc.status_code"] for s in spans
            if s["name"] == "demo.Echo/Fail"} == {5}


def client_cells() -> list[matrix.Cell]:
    return [c for c in matrix.default_cells() if c.app == "grpcclient"
            and c.variant == "stripped"]


@pytest.mark.parametrize("client_cell", client_cells(), ids=str)
def test_unary_client_spans(tmp_path, receiver, client_cell):
    receiver.clear()
    server = matrix.build(matrix.Cell("grpcserver", client_cell.go, "plain", client_cell.grpc))
    with go_server(server) as (_, addr):
        with gotrace(tmp_path, "run", "--stats", *otlp_args(receiver), "--",
                     str(matrix.build(client_cell)), "-addr", addr, "-n", "100",
                     "-streams", "0", "-fail", "-deadline-ms", "50") as tracer:
            tracer.wait(timeout=120)
        _, err = tracer.communicate()
        assert tracer.returncode == 0, err
    spans = receiver.wait_for(102, timeout=30)
    assert len(spans) == 102, err
    host, port = addr.rsplit(":", 1)
    codes = Counter((s["name"], s["attributes"]["rpc.grpc.status_code"], s["status"])
                    for s in spans)
    assert codes == {("demo.Echo/Say", 0, "UNSET"): 100, ("demo.Echo/Fail", 5, "ERROR"): 1,
                     ("demo.Echo/Sleep", 4, "ERROR"): 1}
    for span in spans:
        assert span["kind"] == "CLIENT" and span["parent_span_id"] is None
        assert span["attributes"]["rpc.system"] == "grpc"
        assert span["attributes"]["server.address"] == host
        assert span["attributes"]["server.port"] == int(port)


@pytest.mark.parametrize("grpc_version", list(matrix.grpc_gopaths()))
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
        assert client_tracer.returncode == 0, client_tracer.communicate()[1]
        spans = receiver.wait_for(20000, timeout=60)
        stop(server_tracer)
    kinds = Counter((s["kind"], s["name"], s["attributes"]["rpc.grpc.status_code"])
                    for s in spans)
    assert kinds == {("SERVER", "demo.Echo/Say", 0): 10000, ("CLIENT", "demo.Echo/Say", 0): 10000}
    assert len({s["span_id"] for s in spans}) == 20000
    ports = {s["attributes"]["client.port"] for s in spans if s["kind"] == "SERVER"}
    assert len(ports) == 1  # one connection carried every call
