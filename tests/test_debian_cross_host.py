"""Debian's programs across hosts: issue 22's cross-host linking on real Go programs as
installed (tests/test_debian_programs.py has them on one host).

Each test runs on the hosts of tests/test_cross_host.py (fresh network namespaces behind a
router, its `net`, `receiver` and `store` fixtures: building them takes half a second), one
Debian program on "front" calling one on "back", and one gotrace agent per host tracing only
its host's program, all meeting in one Redis link store:

- prometheus A on front scrapes prometheus B on back at a service address (a DNAT in the
  router, as kube-proxy makes one), over HTTP/1, then over HTTPS with HTTP/2;
- etcdctl on front (each command a process, traced from its start with --exe) calls etcd on
  back through a SNAT (etcd sees the router's address).

Neither end of a hop sees the other's 4-tuple, so a link can only come from the store. A link
is proven the right one by more than the parent id: the client span's wall-clock interval holds
the server span's (both hosts' agents read one clock), the client's URL is the scrape's and
the server's path /metrics, on HTTP/2 both carry the same stream id, and for etcd the client
span is that command's process's and names the same RPC.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import test_cross_host
from debian_programs import etcd, etcdctl, prometheus
from otlp_receiver import OtlpReceiver
from test_cross_host import (
    QUIET,
    agents,
    cross_host_stats,
    link_args,
    pid_args,
    stop_all,
    wrong_links,
)
from tracing import own_tuple, reversed_tuple, terminate

# test_cross_host's fixtures (fresh hosts, OTLP receiver and Redis for each test), made this
# module's: pytest looks fixtures up among a test module's attributes.
net, receiver, store = test_cross_host.net, test_cross_host.receiver, test_cross_host.store

INTERVAL, INTERVAL_NS = "500ms", 500_000_000  # A's scrape interval (and so its timeout)
SCRAPES = 4  # linked scrapes to wait for, counted from one interval after the agents attached
ETCDCTL = (("put", "k1", "v"), ("put", "k2", "v"), ("get", "k", "--prefix"))


def wait_until(source: OtlpReceiver, done: Callable[[list[dict]], bool], timeout: float
               ) -> list[dict]:
    """The spans received once done(spans) holds, or when timeout seconds have passed (the
    test's assertions then say what is missing)."""
    deadline = time.monotonic() + timeout
    while not done(spans := source.spans) and time.monotonic() < deadline:
        time.sleep(0.2)
    return spans


def linked_children(spans: list[dict], server_pid: int, client_pid: Callable[[int], bool],
                    since_ns: int = 0, until_ns: int | None = None
                    ) -> tuple[list[tuple[dict | None, dict]], dict[str, dict]]:
    """Each SERVER span of server_pid started at since_ns or later (and ended by until_ns) with
    its parent among the CLIENT spans of the processes client_pid accepts (None when the
    parent is not one of those); and those client spans by span id."""
    clients = {s["span_id"]: s for s in spans
               if s["kind"] == "CLIENT" and client_pid(s["resource"]["process.pid"])}
    servers = [s for s in spans if s["kind"] == "SERVER"
               and s["resource"]["process.pid"] == server_pid
               and s["start_time_unix_nano"] >= since_ns
               and (until_ns is None or s["end_time_unix_nano"] <= until_ns)]
    return [(clients.get(s["parent_span_id"] or ""), s) for s in servers], clients


def check_pairs(pairs: list[tuple[dict | None, dict]], clients: dict[str, dict],
                stats: list[str]) -> None:
    """Every server span linked to a client span of its own, one to one, in the client's
    trace; and the one client span (of clients) whose time holds the server span's start
    (the request sent before the server began, the response's header not yet read: a client
    span ends when its round trip returns, so a server still sending a body may end after it)
    is that parent. stats (the callee agent's --stats lines) go in the failure message."""
    unlinked = [s for c, s in pairs if c is None]
    assert not unlinked, (f"{len(unlinked)} of {len(pairs)} server spans not the child of "
                          f"their caller's CLIENT span: {[s['attributes'] for s in unlinked]}; "
                          f"{stats}")
    parents = [c["span_id"] for c, _ in pairs if c is not None]
    assert len(set(parents)) == len(parents), "two server spans under one client span"
    for client, server in pairs:
        assert client is not None
        assert client["trace_id"] == server["trace_id"]
        start = server["start_time_unix_nano"]
        around = [c["span_id"] for c in clients.values()
                  if c["start_time_unix_nano"] <= start <= c["end_time_unix_nano"]]
        assert around == [client["span_id"]], (around, client, server)
        # The two ends saw different 4-tuples: the link did not come from addresses.
        assert own_tuple(client) != reversed_tuple(server)


def linked_count(stats: list[str]) -> int:
    """`linked N` of an agent's `cross-host links:` line."""
    assert len(stats) == 1, stats
    return int(stats[0].split("cross-host links: linked ", 1)[1].split(",", 1)[0])


@pytest.mark.parametrize("https", [False, True], ids=["http1", "https-http2"])
def test_prometheus_scrapes_prometheus_across_hosts(tmp_path, net, receiver, store, https):
    """Prometheus A (front) scrapes prometheus B (back) every half second at a service
    address: every /metrics server span of B's, from one interval after the agents attached
    (a scrape A began before its agent attached has timed out by then) to A's stop, is the
    child of A's scrape, one to one. Over HTTPS both speak HTTP/2 and the stream ids agree."""
    front, back = net["front"], net["back"]
    with prometheus(tmp_path, "back", https=https, place=back) as (b, b_addr):
        vip = net.service(back, int(b_addr.rsplit(":", 1)[1]))
        with prometheus(tmp_path, "front", scrape=[vip], interval=INTERVAL, https=https,
                        place=front) as (a, _), \
                agents(tmp_path, receiver, [(front, pid_args(a.pid)), (back, pid_args(b.pid))],
                       *link_args(store)) as procs:
            since = time.time_ns() + INTERVAL_NS
            wait_until(receiver, lambda spans: sum(
                c is not None for c, _ in linked_children(spans, b.pid, {a.pid}.__contains__,
                                                          since)[0]) >= SCRAPES, timeout=30)
            until = time.time_ns()
            terminate(a, timeout=20)  # no scrape after this: the receiver can go quiet
            spans = receiver.settle(len(receiver.spans), QUIET)
            errs = stop_all(procs)
    stats = cross_host_stats(errs[1])
    pairs, clients = linked_children(spans, b.pid, {a.pid}.__contains__, since, until)
    assert len(pairs) >= SCRAPES, (len(pairs), errs)
    check_pairs(pairs, clients, stats)
    # (scheme, the client's protocol version, the server's): net/http's HTTP/1 transport
    # does not say its version.
    scheme, client_version, server_version = ("https", "2", "2") if https else \
        ("http", None, "1.1")
    for client, server in pairs:
        assert client is not None
        attrs, server_attrs = client["attributes"], server["attributes"]
        assert attrs["url.full"] == f"{scheme}://{vip}/metrics"
        assert (server_attrs["url.scheme"], server_attrs["url.path"]) == (scheme, "/metrics")
        assert attrs.get("network.protocol.version") == client_version
        assert server_attrs["network.protocol.version"] == server_version
        # HTTP/2: the same stream at both ends; HTTP/1: none.
        assert attrs.get("http2.stream.id") == server_attrs.get("http2.stream.id")
        assert ("http2.stream.id" in attrs) == https
        # A called the service address; B saw A's own address (a DNAT, no SNAT).
        assert attrs["network.peer.address"] == vip.split(":")[0]
        assert server_attrs["network.peer.address"] == front.address
    assert not wrong_links(spans)
    assert linked_count(stats) >= len(pairs), stats
    assert all("same-host links 0," in err for err in errs), errs


def test_etcdctl_calls_etcd_across_hosts(tmp_path, net, receiver, store):
    """etcdctl commands on front (each a process, traced from its start through --exe) call
    etcd on back, whose gRPC server sits behind cmux, through a SNAT: each of etcd's server
    spans is the child of its command's gRPC client span, the same RPC, one to one."""
    front, back = net["front"], net["back"]
    with etcd(tmp_path, place=back) as (server, endpoint):
        net.snat(front, back)
        with agents(tmp_path, receiver, [(front, ["--exe", "/usr/bin/etcdctl"]),
                                         (back, pid_args(server.pid))],
                    *link_args(store)) as procs:
            commands = [etcdctl(endpoint, *args, place=front) for args in ETCDCTL]
            # Two spans a command; other etcdctl processes on this machine (other tests)
            # are traced too, and left out below by their pids.
            spans = receiver.settle(2 * len(ETCDCTL), QUIET)
            errs = stop_all(procs)
    stats = cross_host_stats(errs[1])
    pairs, clients = linked_children(spans, server.pid, set(commands).__contains__)
    assert len(pairs) == len(ETCDCTL), ([s["name"] for _, s in pairs], errs)
    check_pairs(pairs, clients, stats)
    by_command = {c["resource"]["process.pid"]: (c, s) for c, s in pairs if c is not None}
    assert sorted(by_command) == sorted(commands), "a command's call not linked"
    expected = {"put": "etcdserverpb.KV/Put", "get": "etcdserverpb.KV/Range"}
    for pid, (verb, *_) in zip(commands, ETCDCTL, strict=True):
        client, server_span = by_command[pid]
        assert client["name"] == server_span["name"] == expected[verb]
        # etcdctl called etcd's own address; etcd saw the router's (a SNAT).
        assert client["attributes"]["network.peer.address"] == back.address
        assert server_span["attributes"]["network.peer.address"] == net.router_address
    assert len(clients) == len(ETCDCTL)
    assert not wrong_links([s for s in spans if s["resource"]["process.pid"]
                            in {server.pid, *commands}])
    assert linked_count(stats) == len(ETCDCTL), stats
