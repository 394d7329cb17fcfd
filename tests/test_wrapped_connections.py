"""Connections wrapped in other Go types, end to end: a chain of three testapps/wrapped processes
(HTTP front -> gRPC middle -> HTTP back) whose listeners and dialers wrap every connection
(go-conntrack, netutil.LimitListener, cmux, a PROXY-protocol listener, a wrapper type defined
in the program, TLS over any of those; Unix sockets). Every request must give exactly one trace
of five spans, and each client span the connection its server span saw, reversed."""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from conftest import FULL
from tracing import (
    chains,
    conn_misses,
    go_server,
    gotrace,
    name_of,
    own_tuple,
    reversed_tuple,
    stop,
)

from testapps import matrix

REQUESTS = 120
CONCURRENCY = 6


@dataclass(frozen=True)
class Hop:
    """One process of the chain: how it serves, its listener's wrappers, its dialer's."""

    serve: str
    listen_wrap: str
    next_wrap: str = ""
    unix: bool = False  # listens on a Unix socket

    @property
    def tls(self) -> bool:
        return self.listen_wrap.endswith("tls")


@dataclass(frozen=True)
class Chain:
    front: Hop
    middle: Hop
    back: Hop


CHAINS = {
    # cmux serving gRPC and HTTP on one port, go-conntrack on both dialers and listeners,
    # LimitListener over go-conntrack over TCP, the program's own wrapper type.
    "conntrack-limit-cmux-custom": Chain(
        Hop("http", "conntrack,limit", next_wrap="conntrack"),
        Hop("cmux", "custom", next_wrap="conntrack"),
        Hop("http", "conntrack,limit")),
    # TLS over wrappers at every hop, a PROXY-protocol listener, the program's own type.
    "proxyproto-tls-over-wrappers": Chain(
        Hop("http", "proxyproto,tls", next_wrap="custom"),
        Hop("grpc", "conntrack,tls", next_wrap="custom"),
        Hop("http", "limit,custom,tls")),
    # A gRPC server behind a PROXY-protocol listener, HTTP on cmux's other side, dialers
    # wrapping wrappers (the program's own type around go-conntrack's).
    "proxyproto-grpc-cmux-http": Chain(
        Hop("http", "custom,tls", next_wrap="conntrack,custom"),
        Hop("grpc", "proxyproto", next_wrap="conntrack,custom"),
        Hop("cmux", "proxyproto,limit")),
    # gRPC and HTTP over Unix sockets between the processes, through wrappers.
    "unix-sockets": Chain(
        Hop("http", "custom", next_wrap="conntrack"),
        Hop("grpc", "limit", next_wrap="custom", unix=True),
        Hop("http", "conntrack", unix=True)),
}


def wrapped_cell(go: str) -> matrix.Cell:
    grpc = [g for g in matrix.grpc_gopaths() if go in matrix.supported_go(g)][-1]
    return matrix.Cell("wrapped", go, "stripped", grpc)


def _next_url(hop: Hop, addr: str, grpc: bool) -> str:
    """The -next of the process calling hop at addr ('unix:PATH' for a Unix socket), over
    gRPC (the middle of a chain) or HTTP (its back)."""
    if not grpc:
        scheme = "https" if hop.tls else "http"
        return f"{scheme}+{addr}" if hop.unix else f"{scheme}://{addr}/chain"
    scheme = "grpcs" if hop.tls else "grpc"
    return f"{scheme}+{addr}" if hop.unix else f"{scheme}://{addr}"


@contextlib.contextmanager
def chain_running(binary, chain: Chain, tmp_path) -> Iterator[tuple[list[int], str]]:
    """The three processes, back first; yields their PIDs (front, middle, back) and the
    front's address."""
    def args(hop: Hop, name: str, next_url: str | None) -> list[str]:
        out = ["-serve", hop.serve, "-listen-wrap", hop.listen_wrap]
        if hop.unix:
            out += ["-addr", f"unix:{tmp_path / (name + '.sock')}"]
        if next_url:
            out += ["-next", next_url, "-next-wrap", hop.next_wrap]
        return out

    with contextlib.ExitStack() as stack:
        back, back_addr = stack.enter_context(go_server(binary, *args(chain.back, "back", None)))
        middle, middle_addr = stack.enter_context(go_server(binary, *args(
            chain.middle, "middle", _next_url(chain.back, back_addr, grpc=False))))
        front, front_addr = stack.enter_context(go_server(binary, *args(
            chain.front, "front", _next_url(chain.middle, middle_addr, grpc=True))))
        yield [front.pid, middle.pid, back.pid], front_addr


def drive(front_addr: str, tls: bool, names: list[str]) -> None:
    host, port = front_addr.rsplit(":", 1)
    context = ssl._create_unverified_context() if tls else None  # the app's own certificate

    def worker(chunk: list[str]) -> None:
        conn = http.client.HTTPSConnection(host, int(port), timeout=30, context=context) \
            if tls else http.client.HTTPConnection(host, int(port), timeout=30)
        for name in chunk:
            conn.request("GET", f"/chain?{urllib.parse.urlencode({'name': name})}")
            response = conn.getresponse()
            assert response.status == 200, response.read()
            response.read()
        conn.close()

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(worker, [names[i::CONCURRENCY] for i in range(CONCURRENCY)]))


def check_chains(spans: list[dict], names: list[str], pids: list[int], chain: Chain) -> None:
    """One trace of five spans per request, parented front to back, each client span on the
    connection its server span saw, nothing crossed."""
    seen = []
    for hops in chains(spans, 5, len(names)):
        assert [(s["kind"], s["resource"]["process.pid"]) for s in hops] == [
            ("SERVER", pids[0]), ("CLIENT", pids[0]), ("SERVER", pids[1]),
            ("CLIENT", pids[1]), ("SERVER", pids[2])]
        assert hops[2]["name"] == "demo.Echo/Say"
        for client, server, callee in ((hops[1], hops[2], chain.middle),
                                       (hops[3], hops[4], chain.back)):
            if callee.unix:
                assert client["attributes"]["network.transport"] == "unix"
                assert server["attributes"]["network.transport"] == "unix"
                assert server["attributes"]["network.local.address"].endswith(".sock")
            else:
                assert own_tuple(client) == reversed_tuple(server)
        assert name_of(hops[0]) == name_of(hops[4]) is not None
        seen.append(name_of(hops[0]))
    assert sorted(seen) == sorted(names)


def runs() -> list[tuple[str, str]]:
    """(chain, oldest or newest Go): each chain once, two on each Go, so that every wrapper
    but the Unix sockets runs on both; with GOTRACE_MATRIX=full every chain on both. Where
    each wrapper type leads to its socket is checked for both Go versions by
    tests/test_conntypes.py, against DWARF."""
    if FULL:
        return [(chain, go) for chain in CHAINS for go in ("oldest", "newest")]
    return [("conntrack-limit-cmux-custom", "oldest"), ("proxyproto-tls-over-wrappers", "oldest"),
            ("proxyproto-grpc-cmux-http", "newest"), ("unix-sockets", "newest")]


@pytest.mark.parametrize(("chain_name", "go"), runs())
def test_wrapped_connections_link_one_trace_per_request(tmp_path, chain_name, go):
    gos = matrix.go_versions()
    binary = matrix.build(wrapped_cell(gos[0] if go == "oldest" else gos[-1]))
    chain = CHAINS[chain_name]
    names = [f"r{i}" for i in range(REQUESTS)]
    capture = tmp_path / "spans.jsonl"
    with contextlib.ExitStack() as running:
        pids, front_addr = running.enter_context(chain_running(binary, chain, tmp_path))
        tracer = running.enter_context(gotrace(
            tmp_path, "trace", *[a for pid in pids for a in ("--pid", str(pid))],
            "--include-query", "--stats", "--jsonl", str(capture)))
        drive(front_addr, chain.front.tls, names)
        _, err = stop(tracer)
    spans = [json.loads(line) for line in capture.read_text().splitlines()]
    assert len(spans) == 5 * REQUESTS, err
    assert "lost" not in err and "dropped" not in err, err
    check_chains(spans, names, pids, chain)
    assert conn_misses(err) == {"unknown_type": 0, "nil": 0, "too_deep": 0, "unix": 0}, err
