"""Cross-host linking's parts on hand-made spans, through a real Redis: the store client, the
keys, and three hosts' linkers (one per "host", each seeing only its own spans) joining one
trace however late each host's spans arrive."""

from __future__ import annotations

import io
import itertools
import os
import signal
import struct
import subprocess
import time

import databases
import pytest
from test_linking_units import span
from tracing import free_port

from gotrace.pipeline.cross_host import CrossHostLinks, LinkTimes, is_final, link_key
from gotrace.pipeline.link_store import LinkStore, LinkStoreError, parse_store_url
from gotrace.pipeline.linking import Linker
from gotrace.records import TCP_ID_KNOWN, TCP_ID_POSITION
from gotrace.spans import Span

_isns = itertools.count(0x10000000, 0x01234567)
MS = 1_000_000


@pytest.fixture(scope="module")
def store_server():
    with databases.redis() as server:
        yield server


@pytest.fixture
def store_url(store_server):
    return f"redis://{store_server.host}:{store_server.port}"


def wait_until(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def identity(isn_client: int, isn_server: int, position: int | None = None) -> bytes:
    flags = TCP_ID_KNOWN | (TCP_ID_POSITION if position is not None else 0)
    return struct.pack("<4I", isn_client, isn_server, position or 0, flags)


def call(kind_pair: tuple[str, str], start: int, end: int, *, parent: Span | None = None,
         stream: int = 0, position: int | None = 0) -> tuple[Span, Span]:
    """A client span on one host and the server span it caused on another: addresses that
    differ at both ends (NAT), the same TCP identity."""
    tcp = identity(next(_isns) & 0xFFFFFFFF, next(_isns) & 0xFFFFFFFF,
                   None if stream else position)
    client = span(kind_pair[0], start, end, parent=parent,
                  conn=("10.0.0.1", 40000 + start % 1000, "10.96.0.10", 80), stream=stream)
    server = span(kind_pair[1], start + 5, end - 5,
                  conn=("10.0.0.2", 8080, "10.0.0.254", 50000 + start % 1000), stream=stream)
    client.tcp_identity = server.tcp_identity = tcp
    return client, server


def linker(url: str, hold_s: float = 0.3) -> Linker:
    times = LinkTimes.for_hold(hold_s)
    store = LinkStore(parse_store_url(url), times.ttl_ms, warn=io.StringIO(), settled=is_final)
    store.start()
    return Linker(frozenset({"127.0.0.1"}),
                  cross_host=CrossHostLinks(store, times.hold_ns, times.pending_ns))


def run_until(linkers: list[Linker], done, seconds: float = 10.0) -> list[Span]:
    """Expire every linker every 20 ms until done(released spans) or the time is up."""
    out: list[Span] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for one in linkers:
            released = one.expire(time.monotonic_ns())
            one.publish_released(released, released)  # every trace kept
            out.extend(released)
        if done(out):
            return out
        time.sleep(0.02)
    return out


def test_keys_are_the_same_at_both_ends_and_differ_per_request():
    client, server = call(("CLIENT", "SERVER"), 0, 100, position=123)
    assert link_key(client) == link_key(server) is not None
    assert link_key(client).endswith(b":p7b")
    h2_client, h2_server = call(("CLIENT", "SERVER"), 0, 100, stream=5)
    assert link_key(h2_client) == link_key(h2_server) != link_key(client)
    assert link_key(h2_client).endswith(b":s5")
    unknown = span("SERVER", 0, 1)
    assert link_key(unknown) is None
    unknown.tcp_identity = struct.pack("<4I", 1, 2, 3, 0)
    assert link_key(unknown) is None


def test_store_urls():
    address = parse_store_url("rediss://agent:s%40cret@store.example:6380/2?cacert=/ca.pem")
    assert (address.tls, address.username, address.password, address.host, address.port,
            address.database, address.cacert) == (True, "agent", "s@cret", "store.example",
                                                  6380, 2, "/ca.pem")
    assert "s@cret" not in address.shown
    assert parse_store_url("redis://h").port == 6379
    for bad in ("http://h", "redis://", "redis://h:x", "redis://h/abc", "redis://h?tls=1"):
        with pytest.raises(LinkStoreError):
            parse_store_url(bad)


def test_three_hosts_one_trace_bottom_up(store_url):
    """front (called by an untraced client) -> middle -> back, one linker each: every span
    arrives at its host in the order the kernel sends them (each host's own spans bottom-up),
    and the back's agent sees its span first. One trace, each server the child of the client
    span that called it."""
    front_host, middle_host, back_host = (linker(store_url) for _ in range(3))
    try:
        now = time.monotonic_ns()
        front = span("SERVER", now, now + 100 * MS, conn=("10.0.0.1", 80, "192.0.2.7", 5555))
        front.tcp_identity = identity(1, 2, 0)  # its caller has no agent
        to_middle, middle = call(("CLIENT", "SERVER"), now + 10 * MS, now + 90 * MS,
                                 parent=front, stream=1)
        to_back, back = call(("CLIENT", "SERVER"), now + 20 * MS, now + 80 * MS,
                             parent=middle)
        released = back_host.add([back], time.monotonic_ns())
        released += middle_host.add([to_back, middle], time.monotonic_ns())
        released += front_host.add([to_middle, front], time.monotonic_ns())
        # (the spans reach each host's sampler only once released: publish_released there)
        assert released == []  # every root waits for its caller
        released = run_until([front_host, middle_host, back_host], lambda out: len(out) == 5)
        assert len(released) == 5
        assert {s.trace_id for s in released} == {front.trace_id}
        assert middle.parent_span_id == to_middle.span_id
        assert back.parent_span_id == to_back.span_id
        assert front.parent_span_id is None
        assert middle_host.cross_host.stats.linked == back_host.cross_host.stats.linked == 1
        assert front_host.cross_host.stats.unlinked["not_found"] == 1
    finally:
        for one in (front_host, middle_host, back_host):
            one.cross_host.close()


def test_no_caller_agent_waits_the_hold_only(store_url):
    host = linker(store_url, hold_s=0.2)
    try:
        now = time.monotonic_ns()
        _, server = call(("CLIENT", "SERVER"), now, now + MS)
        t0 = time.monotonic()
        assert host.add([server], now) == []
        released = run_until([host], lambda out: len(out) == 1, seconds=5)
        assert released == [server] and server.parent_span_id is None
        assert 0.15 < time.monotonic() - t0 < 1.0
        assert host.cross_host.stats.unlinked["not_found"] == 1
    finally:
        host.cross_host.close()


def test_store_lost_while_spans_wait_releases_them_then_holds_nothing():
    """Redis goes away while a server span waits: it is released at once (not after its 5 s
    hold), and while the store is down nothing is held and publications are dropped, each
    counted; one line says so."""
    warnings = io.StringIO()
    times = LinkTimes.for_hold(5)
    with databases.redis() as server:
        store = LinkStore(parse_store_url(f"redis://{server.host}:{server.port}"),
                          times.ttl_ms, warn=warnings)
        store.start()
        host = Linker(frozenset({"127.0.0.1"}),
                      cross_host=CrossHostLinks(store, times.hold_ns, times.pending_ns))
        try:
            now = time.monotonic_ns()
            _, waiting = call(("CLIENT", "SERVER"), now, now + MS)
            assert host.add([waiting], now) == []  # held: the store is up
            os.kill(server.pid, signal.SIGKILL)
            t0 = time.monotonic()
            assert run_until([host], lambda out: len(out) == 1, seconds=4) == [waiting]
            assert time.monotonic() - t0 < 3
            assert host.cross_host.stats.unlinked["store_down"] == 1
            client, later = call(("CLIENT", "SERVER"), now, now + MS)
            assert host.add([later, client], now) == [later, client]  # nothing held
            host.publish_released([client], [client])
            assert host.cross_host.stats.unlinked["store_down"] == 2
            assert store.stats.publish_dropped["store_down"] == 1
            assert warnings.getvalue().count("\n") == 1 and "unavailable" in warnings.getvalue()
        finally:
            store.close()



def test_tls_and_an_acl_user_limited_to_what_gotrace_sends(tmp_path):
    """rediss:// with a private CA, logged in as an ACL user who may only SET and MGET keys
    under gt1: (what the README tells operators to grant)."""
    ca_key, ca, key, csr, cert = (tmp_path / n for n in (
        "ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    openssl = ["openssl"]
    subprocess.run([*openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=gotrace test CA", "-keyout", ca_key, "-out", ca],
                   check=True, capture_output=True)
    subprocess.run([*openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-keyout", key, "-out", csr], check=True, capture_output=True)
    extension = tmp_path / "san.cnf"
    extension.write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run([*openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                    "-CAcreateserial", "-days", "1", "-extfile", extension, "-out", cert],
                   check=True, capture_output=True)
    tls_port = free_port()
    extra = ["--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file",
             str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
             "--user", "agent", "on", ">s3cret", "~gt1:*", "+set", "+mget"]
    with databases.redis(extra=extra) as server:
        url = f"rediss://agent:s3cret@{server.host}:{tls_port}?cacert={ca}"
        publisher, reader = linker(url), linker(url)
        try:
            now = time.monotonic_ns()
            client, callee = call(("CLIENT", "SERVER"), now, now + 10 * MS)
            assert reader.add([callee], now) == []
            released = publisher.add([client], now)
            publisher.publish_released(released, released)
            assert run_until([reader], lambda out: len(out) == 1) == [callee]
            assert callee.parent_span_id == client.span_id
            assert callee.trace_id == client.trace_id
            assert publisher.cross_host.store.stats.outages == 0
            assert reader.cross_host.store.stats.found == 1  # a final value: asked no more
        finally:
            publisher.cross_host.close()
            reader.cross_host.close()
        wrong = LinkStore(parse_store_url(url.replace("s3cret", "wrong")), 10_000,
                          warn=io.StringIO())
        wrong.start()
        try:
            deadline = time.monotonic() + 5
            while wrong.up and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not wrong.up  # refused logins are an outage, said in one line
        finally:
            wrong.close()


def test_a_stalled_store_is_down_until_it_answers_again(store_server, store_url):
    """A Redis that stops answering (SIGSTOP: connections still accepted, nothing answered)
    is down within about a second, and up again once it answers: one line each way."""
    pid = store_server.pid
    warnings = io.StringIO()
    store = LinkStore(parse_store_url(store_url), 10_000, warn=warnings)
    store.start()
    try:
        store.want(b"gt1:nothing", 30)
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_until(lambda: not store.up, 5)
            store.forget(b"gt1:nothing")  # nothing to send: only an answer may say "up"
            time.sleep(1.5)  # reconnecting meanwhile: accepted, never answered
            assert not store.up
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_until(lambda: store.up, 5)
        lines = warnings.getvalue().splitlines()
        assert len(lines) == 2 and "unavailable" in lines[0] and "again" in lines[1], lines
    finally:
        store.close()
