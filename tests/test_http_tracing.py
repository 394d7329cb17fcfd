"""End to end: real probes on real Go servers, spans checked at a real OTLP receiver."""

from __future__ import annotations

import http.client
import socket
import time
from collections import Counter

import pytest
from conftest import FULL
from otlp_receiver import OtlpReceiver
from tracing import get, go_server, gotrace, newproc_probed, otlp_args, probe_hits, stop

from testapps import matrix

# (path, expected status, expected route on Go >= 1.23, method)
ROUTES = [
    ("/", 200, "/{$}"),
    ("/hello?name=gopher", 200, "/hello"),
    ("/notfound", 404, "/notfound"),
    ("/error", 500, "/error"),
    ("/users/42", 200, "/users/{id}"),
    ("/no/such/route", 404, None),
]


def http_server_cells() -> list[matrix.Cell]:
    """httpserver stripped on every Go, plain on the oldest and newest (with GOTRACE_MATRIX=full,
    plain on every Go too). A plain build differs from its stripped twin only in where gotrace
    reads functions and field offsets (.symtab, DWARF): tests/test_functions.py and
    tests/test_fields.py compare those with the stripped twin's for every Go."""
    gos = matrix.go_versions()
    return [c for c in matrix.default_cells() if c.app == "httpserver"
            and (c.variant == "stripped"
                 or (c.variant == "plain" and (FULL or c.go in (gos[0], gos[-1]))))]


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as r:
        yield r


def has_pattern(go: str) -> bool:
    return tuple(map(int, go.split("."))) >= (1, 22)  # ServeMux patterns


@pytest.mark.parametrize("server_cell", http_server_cells(), ids=str)
def test_server_spans(tmp_path, receiver, server_cell):
    receiver.clear()
    path = matrix.build(server_cell)
    with go_server(path) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), *otlp_args(receiver)) as tracer:
        conn = http.client.HTTPConnection(addr, timeout=10)
        sent: Counter[tuple[str, int]] = Counter()
        for i in range(200):
            target, status, _ = ROUTES[i % len(ROUTES)]
            assert get(addr, target, conn=conn) == status
            sent[(target.split("?")[0], status)] += 1
        assert get(addr, "/slow?ms=150") == 200
        conn.request("POST", "/echo", body=b"x" * 1234)
        assert conn.getresponse().read() == b"x" * 1234
        conn.close()
        _, err = stop(tracer)
    spans = [s for s in receiver.wait_for(202) if s["kind"] == "SERVER"]
    assert len(spans) == 202, err
    (post,) = [s for s in spans if s["attributes"]["url.path"] == "/echo"]
    assert post["attributes"]["http.request.method"] == "POST"
    assert post["attributes"]["http.request.body.size"] == 1234
    assert post["attributes"]["http.response.body.size"] == 1234
    spans.remove(post)
    got = Counter((s["attributes"]["url.path"], s["attributes"]["http.response.status_code"])
                  for s in spans if s["attributes"]["url.path"] != "/slow")
    assert got == sent
    host, port = addr.rsplit(":", 1)
    routes = {t.split("?")[0]: r for t, _, r in ROUTES} | {"/slow": "/slow"}
    for span in spans:
        attrs = span["attributes"]
        assert attrs["http.request.method"] == "GET"
        assert "url.query" not in attrs  # only with --include-query
        assert attrs["url.scheme"] == "http"
        assert attrs["server.address"] == host and attrs["server.port"] == int(port)
        assert attrs["client.address"] == "127.0.0.1" and attrs["client.port"] > 0
        assert attrs["network.peer.port"] == attrs["client.port"]
        assert attrs["network.local.port"] == int(port)
        assert attrs["network.protocol.version"] == "1.1"
        assert attrs["go.goroutine.id"] > 0
        assert span["parent_span_id"] is None and len(span["trace_id"]) == 32
        assert span["status"] == ("ERROR" if attrs["http.response.status_code"] >= 500
                                  else "UNSET")
        route = routes.get(attrs["url.path"])
        if has_pattern(server_cell.go) and route:
            assert attrs["http.route"] == route
            assert span["name"] == f"GET {route}"
        else:
            assert span["name"] == "GET"
        assert span["resource"]["process.pid"] == server.pid
        assert span["resource"]["process.runtime.version"].startswith(f"go{server_cell.go}")
    slow = next(s for s in spans if s["attributes"]["url.path"] == "/slow")
    assert slow["end_time_unix_nano"] - slow["start_time_unix_nano"] >= 150_000_000
    assert len({s["span_id"] for s in spans}) == len(spans)


# How a goroutine the handler starts finds the request: g.parentGoid with no probe (Go >= 1.21),
# runtime.newproc1's RET probe (older Go), or that probe asked for (--goroutine-ancestry, which
# leaves g.parentGoid unused, so /proxy-async links only through the probe).
ANCESTRY = {"parentGoid": (-1, ()), "newproc-go1.19": (0, ()),
            "newproc-asked": (-1, ("--goroutine-ancestry",))}


PROXY_ROUTES = ("/proxy", "/proxy-async")  # the call on the handler's goroutine, on another


@pytest.mark.parametrize("ancestry", ANCESTRY)
def test_client_call_from_handler_is_child_of_server_span(tmp_path, receiver, ancestry):
    """One request to each route under one tracer; each must make its own trace."""
    receiver.clear()
    version, flags = ANCESTRY[ancestry]
    go = matrix.go_versions()[version]
    with go_server(matrix.build(matrix.Cell("httpserver", go, "stripped"))) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--stats", *flags,
                    *otlp_args(receiver)) as tracer:
        for route in PROXY_ROUTES:
            assert get(addr, f"{route}?url=http://{addr}/notfound") == 404
        _, err = stop(tracer)
    spans = receiver.wait_for(3 * len(PROXY_ROUTES))
    hits = probe_hits(err)
    # Two server spans (the route's and /notfound's), one client span per route; an entry
    # probe may fire twice when the goroutine's stack grows first, a RET probe never does.
    routes = len(PROXY_ROUTES)
    assert 2 * routes <= hits["http_server_end"] <= 4 * routes
    assert (hits["http_client_conn"], hits["http_client_return"]) == (routes, routes)
    assert ("newproc_return" in hits) == (bool(flags) or newproc_probed(go))
    assert len(spans) == 3 * routes, err
    by_trace: dict[str, list[dict]] = {}
    for s in spans:
        by_trace.setdefault(s["trace_id"], []).append(s)
    assert len(by_trace) == routes, [(s["name"], s["kind"]) for s in spans]
    for route in PROXY_ROUTES:
        (outer,) = [s for s in spans if s["kind"] == "SERVER"
                    and s["attributes"]["url.path"] == route]
        trace = by_trace[outer["trace_id"]]
        (inner,) = [s for s in trace if s["kind"] == "SERVER"
                    and s["attributes"]["url.path"] == "/notfound"]
        (client,) = [s for s in trace if s["kind"] == "CLIENT"]
        assert client["parent_span_id"] == outer["span_id"], route
        assert client["attributes"]["url.full"] == f"http://{addr}/notfound"
        assert client["attributes"]["http.response.status_code"] == 404
        assert client["attributes"]["error.type"] == "404"
        assert client["status"] == "ERROR"
        assert client["attributes"]["network.peer.port"] == int(addr.rsplit(":", 1)[1])
        # The inner request arrives without a traceparent, over a connection whose other end
        # is the client span's: same-host linking makes it the client span's child.
        assert inner["parent_span_id"] == client["span_id"], route


def test_http_client_program_spans(tmp_path, receiver):
    receiver.clear()
    go = matrix.go_versions()[0]
    client_path = matrix.build(matrix.Cell("httpclient", go, "plain"))
    server_path = matrix.build(matrix.Cell("httpserver", go, "stripped"))
    with go_server(server_path) as (_, addr):
        url = f"http://{addr}/hello?name=secret"
        out = tmp_path / "spans.jsonl"
        with gotrace(tmp_path, "run", "--jsonl", str(out), *otlp_args(receiver), "--",
                     str(client_path), "-url", url, "-n", "5") as tracer:
            tracer.wait(timeout=60)
        assert tracer.returncode == 0
    spans = receiver.wait_for(5)
    assert len(spans) == 5
    for span in spans:
        assert span["kind"] == "CLIENT" and span["name"] == "GET"
        assert span["attributes"]["url.full"] == f"http://{addr}/hello?name=REDACTED"
        assert span["attributes"]["http.response.status_code"] == 200
        assert span["parent_span_id"] is None
    assert len(out.read_text().splitlines()) == 5


def test_concurrent_keep_alive_clients_lose_mix_and_duplicate_nothing(tmp_path, receiver):
    """50 clients, each on its own keep-alive connection, 100 requests each: every request
    is one span, carrying its own query and its own connection's port."""
    import threading

    receiver.clear()
    cell = matrix.Cell("httpserver", matrix.go_versions()[-1], "stripped")
    ports: dict[int, int] = {}
    errors: list[str] = []
    with go_server(matrix.build(cell)) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--include-query",
                    *otlp_args(receiver)) as tracer:
        def client(n: int) -> None:
            conn = http.client.HTTPConnection(addr, timeout=30)
            try:
                for i in range(100):
                    if get(addr, f"/hello?name=c{n}-r{i}", conn=conn) != 200:
                        errors.append(f"c{n}-r{i}")
                    ports[n] = conn.sock.getsockname()[1]
            finally:
                conn.close()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        receiver.wait_for(5000, timeout=60)
        _, err = stop(tracer)
    assert errors == []
    spans = receiver.spans
    assert len(spans) == 5000, err
    queries = Counter(s["attributes"]["url.query"] for s in spans)
    assert len(queries) == 5000 and set(queries.values()) == {1}
    for span in spans:
        n = int(span["attributes"]["url.query"].split("-")[0].removeprefix("name=c"))
        assert span["attributes"]["client.port"] == ports[n]
    assert len({s["span_id"] for s in spans}) == 5000
    assert len({s["trace_id"] for s in spans}) == 5000


def test_replicas_of_one_binary_keep_their_requests_apart(tmp_path, receiver):
    """Two processes of one binary share its probes' maps, and their goroutine ids and heap
    addresses repeat (with GOMAXPROCS=1, goroutines are numbered alike; before Go 1.26 the heap
    begins at one address): concurrent requests through both must each keep their own span
    and their own calls' parent."""
    import os
    import threading

    receiver.clear()
    binary = matrix.build(matrix.Cell("httpserver", matrix.go_versions()[0], "stripped"))
    one_proc = {**os.environ, "GOMAXPROCS": "1"}
    errors: list[str] = []
    with go_server(binary, env=one_proc) as (first, first_addr), \
            go_server(binary, env=one_proc) as (second, second_addr), \
            go_server(binary) as (_, backend), \
            gotrace(tmp_path, "trace", "--pid", str(first.pid), "--pid", str(second.pid),
                    *otlp_args(receiver)) as tracer:
        def client(addr: str) -> None:
            conn = http.client.HTTPConnection(addr, timeout=30)
            try:
                for _ in range(50):
                    if get(addr, f"/proxy?url=http://{backend}/slow%3Fms=2", conn=conn) != 200:
                        errors.append(addr)
            finally:
                conn.close()
        threads = [threading.Thread(target=client, args=(addr,))
                   for addr in (first_addr, second_addr) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        spans = receiver.wait_for(800, timeout=60)
        _, err = stop(tracer)
    assert errors == []
    by_id = {s["span_id"]: s for s in spans}
    servers = [s for s in spans if s["kind"] == "SERVER"]
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    assert Counter(s["resource"]["process.pid"] for s in servers) == \
        {first.pid: 200, second.pid: 200}, err
    assert len(clients) == 400, err
    for span in clients:
        parent = by_id[span["parent_span_id"]]
        assert parent["kind"] == "SERVER" and parent["attributes"]["url.path"] == "/proxy"
        assert parent["resource"]["process.pid"] == span["resource"]["process.pid"]
    assert len({s["parent_span_id"] for s in clients}) == 400


@pytest.mark.parametrize("version", [0, -1], ids=["oldest-go", "newest-go"])
def test_https_server_spans_name_their_tcp_connection(tmp_path, receiver, version):
    """Over TLS, net/http's connection is a *tls.Conn: its addresses are those of the TCP
    connection inside it, and the scheme is https."""
    import ssl

    receiver.clear()
    binary = matrix.build(matrix.Cell("httpserver", matrix.go_versions()[version], "stripped"))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    ports = []
    with go_server(binary, "-tls") as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), *otlp_args(receiver)) as tracer:
        for _ in range(2):  # two connections, two requests on each
            conn = http.client.HTTPSConnection(addr, timeout=30, context=context)
            for _ in range(2):
                assert get(addr, "/hello", conn=conn) == 200
            ports.append(conn.sock.getsockname()[1])
            conn.close()
        spans = receiver.wait_for(4)
        _, err = stop(tracer)
    assert len(spans) == 4, err
    server_port = int(addr.rsplit(":", 1)[1])
    for span in spans:
        attrs = span["attributes"]
        assert attrs["url.scheme"] == "https"
        assert attrs["server.port"] == attrs["network.local.port"] == server_port
        assert attrs["client.address"] == attrs["network.peer.address"] == "127.0.0.1"
    assert sorted(s["attributes"]["client.port"] for s in spans) == sorted(ports * 2)


def test_wall_clock_timestamps_resource_variables_and_http_protobuf(tmp_path, receiver):
    """Span times agree with the client's clock within 1 ms; OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES reach the resource; OTLP over HTTP; --duration ends the run."""
    import os
    import subprocess
    import sys
    import time

    receiver.clear()
    cell = matrix.Cell("httpserver", matrix.go_versions()[0], "stripped")
    ready = tmp_path / "ready"
    env = {**os.environ, "OTEL_SERVICE_NAME": "checkout",
           "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test,team=payments"}
    with go_server(matrix.build(cell)) as (server, addr):
        tracer = subprocess.Popen(
            [sys.executable, "-m", "gotrace", "trace", "--pid", str(server.pid),
             "--otlp-endpoint", receiver.http_base, "--otlp-protocol", "http/protobuf",
             "--duration", "3", "--ready-file", str(ready)], env=env, text=True,
            stderr=subprocess.PIPE)
        while not ready.exists():
            assert tracer.poll() is None, tracer.communicate()[1]
            time.sleep(0.05)
        windows = []
        for _ in range(20):
            before = time.time_ns()
            assert get(addr, "/slow?ms=5") == 200
            windows.append((before, time.time_ns()))
        _, err = tracer.communicate(timeout=60)  # --duration ends it
        assert tracer.returncode == 0, err
    spans = sorted(receiver.wait_for(20), key=lambda s: s["start_time_unix_nano"])
    assert len(spans) == 20
    for span, (before, after) in zip(spans, windows, strict=True):
        assert before - 1_000_000 <= span["start_time_unix_nano"]
        assert span["end_time_unix_nano"] <= after + 1_000_000
        assert span["end_time_unix_nano"] - span["start_time_unix_nano"] >= 5_000_000
        assert span["resource"]["service.name"] == "checkout"
        assert span["resource"]["deployment.environment"] == "test"
        assert span["resource"]["team"] == "payments"
        assert span["resource"]["process.runtime.name"] == "go"
        assert span["resource"]["host.name"]
        assert span["resource"]["telemetry.sdk.name"] == "gotrace"


@pytest.mark.parametrize("version", [0, -1], ids=["oldest-go", "newest-go"])
def test_hijacked_connection_ends_its_span_at_the_hijack(tmp_path, receiver, version):
    """A handler that takes the connection over (as a WebSocket upgrade does) gets a span
    that ends when it hijacks, without a status code (it answers on the raw connection)."""
    receiver.clear()
    go = matrix.go_versions()[version]
    with go_server(matrix.build(matrix.Cell("httpserver", go, "stripped"))) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--stats",
                    *otlp_args(receiver)) as tracer:
        host, port = addr.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(b"GET /upgrade HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\n"
                        b"Upgrade: echo\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += raw.recv(4096)
            assert answer.startswith(b"HTTP/1.1 101 ")
            time.sleep(0.5)  # the handler still runs, on the connection it took
            raw.sendall(b"ping\n")
            assert raw.recv(4096) == b"ping\n"
        assert get(addr, "/hello") == 200
        spans = receiver.wait_for(2)
        _, err = stop(tracer)
    by_path = {s["attributes"]["url.path"]: s for s in spans}
    assert by_path.keys() == {"/upgrade", "/hello"}
    upgraded = by_path["/upgrade"]
    assert "http.response.status_code" not in upgraded["attributes"]
    assert upgraded["end_time_unix_nano"] - upgraded["start_time_unix_nano"] < 400_000_000
    assert by_path["/hello"]["attributes"]["http.response.status_code"] == 200
    hits = probe_hits(err)
    assert hits["http_server_hijacked"] == 1
    assert 1 <= hits["http_server_end"] <= 2
