"""End to end: HTTP/2 in net/http. Server and client spans over TLS (net/http's bundled
HTTP/2), cleartext h2c and golang.org/x/net/http2 (Debian's golang-golang-x-net-dev), with
third-party clients (curl, httpx), and gRPC served through grpc-go's ServeHTTP."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import grpc
import httpx
import pytest
from conftest import FULL
from google.protobuf import wrappers_pb2
from otlp_receiver import OtlpReceiver
from tracing import go_server, gotrace, linked_pairs, otlp_args, probe_hits, stop

from testapps import matrix

# (server mode, client mode) of testapps/h2: which code serves and which sends.
#   tls: net/http's bundled HTTP/2 (ALPN h2) on both sides;
#   h2c, xnet: golang.org/x/net/http2's server (h2c.NewHandler; ServeConn without
#     net/http) and its Transport with AllowHTTP, cleartext prior knowledge;
#   xnet-tls: x/net's server through http2.ConfigureServer; x/net's Transport over TLS.
PAIRS = [("tls", "tls"), ("h2c", "h2c"), ("xnet", "xnet"), ("xnet-tls", "tls"),
         ("tls", "xnet-tls")]
TLS_MODES = {"tls", "xnet-tls"}
# Server probe hits per request: the span's beginning and end; x/net's ConfigureServer
# also runs net/http's ServeHTTP for each request (bpf/xnet_http2_server.c), one hit more.
SERVER_HITS = {"tls": {"http_server_entry": 1, "http2_server_end": 1},
               "h2c": {"xnet_http2_server_entry": 1, "xnet_http2_server_end": 1},
               "xnet": {"xnet_http2_server_entry": 1, "xnet_http2_server_end": 1},
               "xnet-tls": {"http_server_entry": 1, "xnet_http2_server_entry": 1,
                            "xnet_http2_server_end": 1}}
# The client's: the round trip's entry and RETs and the connection, as for HTTP/1.
CLIENT_HITS = {"tls": {"http_client_entry": 1, "http2_client_conn": 1, "http_client_return": 1},
               "h2c": {"xnet_http2_client_entry": 1, "xnet_http2_client_conn": 1,
                       "xnet_http2_client_return": 1}}
CLIENT_HITS["xnet"] = CLIENT_HITS["xnet-tls"] = CLIENT_HITS["h2c"]

CONCURRENT = 40  # requests, 20 at a time, multiplexed on one connection
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def h2_runs() -> list[tuple[matrix.Cell, str, str]]:
    """The oldest and newest Go stripped, the ones between plain. By default one pair on
    each Go, in turn from the newest, so that every pair runs; with GOTRACE_MATRIX=full
    every pair on the oldest and newest Go, and one on each Go between."""
    gos = matrix.go_versions()
    cells = [matrix.Cell("h2", go, "stripped" if go in (gos[0], gos[-1]) else "plain")
             for go in gos]
    runs = [(cell, *PAIRS[i % len(PAIRS)]) for i, cell in enumerate(reversed(cells))]
    if FULL:
        runs += [(cell, *pair) for cell in dict.fromkeys([cells[0], cells[-1]])
                 for pair in PAIRS if (cell, *pair) not in runs]
    return runs


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as r:
        yield r


def url(mode: str, addr: str, path: str) -> str:
    return f"{'https' if mode in TLS_MODES else 'http'}://{addr}{path}"


def call(client: Path, mode: str, target: str, n: int, concurrency: int) -> None:
    done = subprocess.run([str(client), "call", "-mode", mode, "-url", target, "-n", str(n),
                           "-concurrency", str(concurrency), "-linger", "1s"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CONNS 1\n" in done.stdout, done.stdout


@pytest.mark.parametrize("h2_cell,server_mode,client_mode", h2_runs(),
                         ids=lambda v: str(v) if isinstance(v, matrix.Cell) else v)
def test_server_and_client_spans(tmp_path, receiver, h2_cell, server_mode, client_mode):
    """N requests, 20 at a time on one connection, then two failing ones on another: exactly
    N + 2 server and client spans, each server span the child of its own client span (same
    connection, same stream), with HTTP/2's attributes."""
    receiver.clear()
    client = tmp_path / "h2"  # its own copy: --exe traces every process of the file
    binary = matrix.build(h2_cell)
    shutil.copy2(binary, client)
    with go_server(binary, "serve", "-mode", server_mode) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--exe", str(client),
                    "--stats", *otlp_args(receiver)) as tracer:
        call(client, client_mode, url(server_mode, addr, "/hello?name=h2"), CONCURRENT, 20)
        call(client, client_mode, url(server_mode, addr, "/error"), 2, 1)
        spans = receiver.wait_for(2 * (CONCURRENT + 2), timeout=30)
        _, err = stop(tracer)
    assert len(spans) == 2 * (CONCURRENT + 2), err
    assert len({s["span_id"] for s in spans}) == len(spans)
    pairs = linked_pairs(spans, server.pid, {s["resource"]["process.pid"] for s in spans
                                             if s["kind"] == "CLIENT"})
    assert len(pairs) == CONCURRENT + 2
    assert len({c["span_id"] for c, _ in pairs}) == CONCURRENT + 2  # none crossed or shared
    host, port = addr.rsplit(":", 1)
    statuses = Counter()
    for client_span, server_span in pairs:
        c, s = client_span["attributes"], server_span["attributes"]
        assert c["http2.stream.id"] == s["http2.stream.id"] > 0
        assert c["network.protocol.version"] == s["network.protocol.version"] == "2"
        assert s["url.scheme"] == ("https" if server_mode in TLS_MODES else "http")
        assert s["server.port"] == c["server.port"] == int(port)
        assert s["client.address"] == host and s["client.port"] == c["network.local.port"]
        assert s["http.request.method"] == c["http.request.method"] == "GET"
        assert c["http.response.status_code"] == s["http.response.status_code"]
        assert client_span["start_time_unix_nano"] <= server_span["start_time_unix_nano"]
        assert server_span["end_time_unix_nano"] <= client_span["end_time_unix_nano"]
        statuses[(s["url.path"], s["http.response.status_code"], server_span["status"])] += 1
        if s["url.path"] == "/hello":
            assert s["http.response.body.size"] == c["http.response.body.size"] == len("hello h2\n")
    assert statuses == {("/hello", 200, "UNSET"): CONCURRENT, ("/error", 500, "ERROR"): 2}
    check_hits(err, SERVER_HITS[server_mode], CLIENT_HITS[client_mode], CONCURRENT + 2)


def check_hits(err: str, server: dict[str, int], client: dict[str, int], requests: int) -> None:
    """Each program its hits per request; an entry may fire once more when the goroutine's
    stack grows first."""
    hits = probe_hits(err)
    for program, per_request in {**server, **client}.items():
        assert per_request * requests <= hits[program] <= per_request * requests + 4, hits


def test_third_party_clients(tmp_path, receiver):
    """curl (nghttp2) and httpx (h2) over TLS and with prior knowledge, on both the bundled
    and x/net servers: a span per request, over HTTP/2, continuing their traceparent."""
    receiver.clear()
    cell = next(c for c in matrix.default_cells() if c.app == "h2" and c.variant == "stripped")
    binary = matrix.build(cell)
    requests = 0
    with go_server(binary, "serve", "-mode", "tls") as (tls_server, tls_addr), \
            go_server(binary, "serve", "-mode", "h2c") as (h2c_server, h2c_addr), \
            gotrace(tmp_path, "trace", "--pid", str(tls_server.pid), "--pid",
                    str(h2c_server.pid), *otlp_args(receiver)) as tracer:
        for target, flag in ((f"https://{tls_addr}/headers", "--http2"),
                             (f"http://{h2c_addr}/headers", "--http2-prior-knowledge")):
            out = subprocess.run(["curl", "-sk", flag, "-H", f"traceparent: {TRACEPARENT}",
                                  "-w", " %{http_version}", target],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
            assert out.split() == [TRACEPARENT, "2"]
            requests += 1
        for target, options in ((f"https://{tls_addr}/headers", {"verify": False}),
                                (f"http://{h2c_addr}/headers", {"http1": False})):
            with httpx.Client(http2=True, **options) as session:
                for _ in range(5):
                    response = session.get(target, headers={"traceparent": TRACEPARENT})
                    assert response.http_version == "HTTP/2"
                    assert response.text.strip() == TRACEPARENT
                    requests += 1
        spans = receiver.wait_for(requests, timeout=30)
        stop(tracer)
    assert len(spans) == requests
    by_server = Counter(s["resource"]["process.pid"] for s in spans)
    assert by_server == {tls_server.pid: requests // 2, h2c_server.pid: requests // 2}
    trace_id, parent = TRACEPARENT.split("-")[1:3]
    for span in spans:
        attrs = span["attributes"]
        assert span["kind"] == "SERVER" and span["name"] == "GET"
        assert span["trace_id"] == trace_id and span["parent_span_id"] == parent
        assert attrs["network.protocol.version"] == "2" and attrs["http2.stream.id"] > 0
        assert attrs["url.path"] == "/headers" and attrs["http.response.status_code"] == 200
        tls = span["resource"]["process.pid"] == tls_server.pid
        assert attrs["url.scheme"] == ("https" if tls else "http")


def grpc_ends() -> list[tuple[str, str]]:
    """(grpc version, Go) of the oldest grpc-go with its oldest Go, the newest with its newest."""
    versions = list(matrix.grpc_gopaths())
    return [(versions[0], matrix.supported_go(versions[0])[0]),
            (versions[-1], matrix.supported_go(versions[-1])[-1])]


@pytest.mark.parametrize("grpc_version,go", grpc_ends())
def test_grpc_served_through_servehttp(tmp_path, receiver, grpc_version, go):
    """grpc-go behind net/http (h2c, x/net's server): each RPC a gRPC SERVER span with its
    service, method and status, the child of its HTTP/2 request's span, which is linked to
    the Go client's call by connection and stream."""
    receiver.clear()
    server_cell = matrix.Cell("grpchttp", go, "stripped", grpc_version)
    client = tmp_path / "grpcclient"
    shutil.copy2(matrix.build(matrix.Cell("grpcclient", go, "stripped", grpc_version)), client)
    with go_server(matrix.build(server_cell), "-mode", "h2c") as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--exe", str(client),
                    "--stats", *otlp_args(receiver)) as tracer:
        done = subprocess.run([str(client), "-addr", addr, "-n", "10", "-fail"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        calls = 12  # 10 Says, the Count stream grpcclient always opens, a Fail
        spans = receiver.wait_for(3 * calls, timeout=30)
        _, err = stop(tracer)
    assert len(spans) == 3 * calls, err
    by_id = {s["span_id"]: s for s in spans}
    rpcs = [s for s in spans if s["kind"] == "SERVER" and "rpc.system" in s["attributes"]]
    assert Counter((s["name"], s["attributes"]["rpc.grpc.status_code"]) for s in rpcs) == \
        {("demo.Echo/Say", 0): 10, ("demo.Echo/Count", 0): 1, ("demo.Echo/Fail", 5): 1}
    for rpc in rpcs:
        assert rpc["attributes"]["rpc.service"] == "demo.Echo"
        request = by_id[rpc["parent_span_id"]]  # the HTTP/2 request that carried it
        assert request["kind"] == "SERVER" and request["trace_id"] == rpc["trace_id"]
        assert request["attributes"]["url.path"] == "/" + rpc["name"]
        assert request["attributes"]["network.protocol.version"] == "2"
        caller = by_id[request["parent_span_id"]]
        assert caller["kind"] == "CLIENT" and caller["name"] == rpc["name"]
        assert request["start_time_unix_nano"] <= rpc["start_time_unix_nano"]
        assert rpc["end_time_unix_nano"] <= request["end_time_unix_nano"]
    hits = probe_hits(err)
    assert calls <= hits["grpc_server_entry"] <= calls + 2
    assert calls <= hits["grpc_server_status"] <= calls + 2


def test_grpc_served_through_servehttp_over_tls(tmp_path, receiver):
    """grpcio (C core) calls grpc-go behind net/http's own HTTP/2 server (TLS, ALPN h2) with a
    traceparent in its metadata: the HTTP/2 request's span continues it, and each RPC's span
    is that request's child with its method and status."""
    receiver.clear()
    grpc_version, go = grpc_ends()[-1]
    cert = tmp_path / "cert.pem"
    cell = matrix.Cell("grpchttp", go, "stripped", grpc_version)
    with go_server(matrix.build(cell), "-mode", "tls", "-cert", str(cert)) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), *otlp_args(receiver)) as tracer:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(addr, credentials, options=[
                ("grpc.ssl_target_name_override", "localhost")]) as channel:
            say, fail = (channel.unary_unary(
                f"/demo.Echo/{method}",
                request_serializer=wrappers_pb2.StringValue.SerializeToString,
                response_deserializer=wrappers_pb2.StringValue.FromString)
                for method in ("Say", "Fail"))
            metadata = (("traceparent", TRACEPARENT),)
            for i in range(5):
                assert "tls" in say(wrappers_pb2.StringValue(value=f"tls{i}"),
                                    metadata=metadata).value
            with pytest.raises(grpc.RpcError) as failed:
                fail(wrappers_pb2.StringValue(value="x"), metadata=metadata)
            assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        spans = receiver.wait_for(12, timeout=30)
        stop(tracer)
    assert len(spans) == 12
    requests = {s["span_id"]: s for s in spans if "rpc.system" not in s["attributes"]}
    rpcs = [s for s in spans if "rpc.system" in s["attributes"]]
    assert Counter((s["name"], s["attributes"]["rpc.grpc.status_code"]) for s in rpcs) == \
        {("demo.Echo/Say", 0): 5, ("demo.Echo/Fail", 5): 1}
    trace_id, parent = TRACEPARENT.split("-")[1:3]
    for rpc in rpcs:
        request = requests[rpc["parent_span_id"]]
        assert (request["trace_id"], request["parent_span_id"]) == (trace_id, parent)
        assert rpc["trace_id"] == trace_id and rpc["kind"] == request["kind"] == "SERVER"
        assert request["attributes"]["url.scheme"] == "https"
        assert request["attributes"]["network.protocol.version"] == "2"
