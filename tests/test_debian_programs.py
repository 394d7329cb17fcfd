"""Real Go programs from Debian's archive, traced as installed: their connections are wrapped in
types gotrace has no special knowledge of, and their requests must still link into one trace.

- prometheus (2.42, Go 1.19, stripped, no module versions): its scrapes dial through
  go-conntrack (*conntrack.clientConnTracker); its web server accepts through go-conntrack
  inside netutil.LimitListener (*netutil.limitListenerConn around *conntrack.serverConnTracker).
- prometheus-alertmanager (0.25, Go 1.19, stripped): its notifications' HTTP client dials
  through go-conntrack; prometheus sends it alerts, it sends them on to a webhook
  (prometheus-node-exporter, 1.5, Go 1.19, here only as an HTTP server).
- etcd and etcdctl (3.4, Go 1.19, stripped, no module versions): etcd serves gRPC and HTTP on
  one port through cmux (*cmux.MuxConn); etcdctl calls it over gRPC, one process a command.
- prometheus over HTTPS (its web config's TLS): Go's server offers HTTP/2 there, and with
  `enable_http2` its scrapes speak HTTP/2 too; curl and httpx call it over HTTP/2.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
from debian_programs import alertmanager, etcd, etcdctl, node_exporter, prometheus
from tracing import conn_misses, gotrace, linked_pairs, read_spans, stop


def linked_so_far(capture: Path, server_pid: int, client_pids: set[int] | None) -> int:
    """Server spans of server_pid whose parent is a client span of client_pids (any process
    when None) among the spans written to capture so far (whole lines only)."""
    text = capture.read_text() if capture.exists() else ""
    spans = [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]
    clients = {s["span_id"] for s in spans if s["kind"] == "CLIENT"
               and (client_pids is None or s["resource"]["process.pid"] in client_pids)}
    return sum(1 for s in spans if s["kind"] == "SERVER"
               and s["resource"]["process.pid"] == server_pid and s["parent_span_id"] in clients)


def wait_linked(capture: Path, wanted: dict[int, tuple[set[int] | None, int]],
                timeout: float = 30) -> None:
    """Until, for each server PID, at least the count of its spans are linked to a client span
    of its callers, or the time is up (the test's own assertions then say what is missing):
    polled in the capture (flushed after every batch) instead of sleeping a fixed time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(
            linked_so_far(capture, pid, callers) < count
            for pid, (callers, count) in wanted.items()):
        time.sleep(0.2)


def test_prometheus_scraping_prometheus_links_every_scrape(tmp_path):
    """Prometheus A scrapes prometheus B every half second: each of B's /metrics server spans
    is the child of A's client span, on the connection both ends report."""
    with prometheus(tmp_path, "back") as (back, back_addr), \
            prometheus(tmp_path, "front", scrape=[back_addr], interval="500ms") as (front, _):
        capture = tmp_path / "spans.jsonl"
        with gotrace(tmp_path, "trace", "--pid", str(front.pid), "--pid", str(back.pid),
                     "--jsonl", str(capture), "--stats") as tracer:
            wait_linked(capture, {back.pid: ({front.pid}, 5)})
            _, err = stop(tracer)
    pairs = linked_pairs(read_spans(capture), back.pid, {front.pid})
    assert len(pairs) >= 5, err
    for client, server in pairs:
        assert client["attributes"]["url.full"] == f"http://{back_addr}/metrics"
        assert server["attributes"]["url.path"] == "/metrics"
    assert conn_misses(err) == {"unknown_type": 0, "nil": 0, "too_deep": 0, "unix": 0}


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_prometheus_over_https_and_http2(tmp_path):
    """Prometheus B serves HTTPS; prometheus A scrapes it over HTTP/2, curl and httpx query
    it over HTTP/2 with a traceparent: every request a server span over HTTP/2 (B's scrapes
    linked to A's, the queries continuing the caller's trace)."""
    with prometheus(tmp_path, "back", https=True) as (back, back_addr), \
            prometheus(tmp_path, "front", scrape=[back_addr], interval="500ms",
                       https=True) as (front, _):
        capture = tmp_path / "spans.jsonl"
        with gotrace(tmp_path, "trace", "--pid", str(front.pid), "--pid", str(back.pid),
                     "--jsonl", str(capture), "--stats") as tracer:
            query = f"https://{back_addr}/api/v1/query?query=up"
            for _ in range(3):
                out = subprocess.run(["curl", "-sk", "--http2", "-H",
                                      f"traceparent: {TRACEPARENT}", "-o", "/dev/null", "-w",
                                      "%{http_version} %{http_code}", query],
                                     capture_output=True, text=True, check=True).stdout
                assert out == "2 200"
            with httpx.Client(http2=True, verify=False) as session:
                for _ in range(5):
                    response = session.get(query, headers={"traceparent": TRACEPARENT})
                    assert (response.http_version, response.status_code) == ("HTTP/2", 200)
            wait_linked(capture, {back.pid: ({front.pid}, 5)})
            _, err = stop(tracer)
    spans = read_spans(capture)
    queries = [s for s in spans if s["kind"] == "SERVER"
               and s["attributes"]["url.path"] == "/api/v1/query"]
    assert len(queries) == 8, err
    trace_id, parent = TRACEPARENT.split("-")[1:3]
    for span in queries:
        attrs = span["attributes"]
        assert (span["trace_id"], span["parent_span_id"]) == (trace_id, parent)
        assert attrs["network.protocol.version"] == "2" and attrs["url.scheme"] == "https"
        assert attrs["http.response.status_code"] == 200 and attrs["http2.stream.id"] > 0
    # Every other span of B's is a scrape, linked to A's call.
    scrapes = linked_pairs([s for s in spans if s not in queries], back.pid, {front.pid})
    assert len(scrapes) >= 5, err
    calls = [s for s in spans
             if s["kind"] == "CLIENT" and s["resource"]["process.pid"] == front.pid]
    assert len(scrapes) <= len(calls) <= len(scrapes) + 1  # one may be cut by the stop
    for client, server in scrapes:
        assert client["attributes"]["url.full"] == f"https://{back_addr}/metrics"
        assert client["attributes"]["network.protocol.version"] == "2"
        assert client["attributes"]["http2.stream.id"] == server["attributes"]["http2.stream.id"]
    assert {s["attributes"]["url.path"] for _, s in scrapes} == {"/metrics"}
    assert conn_misses(err) == {"unknown_type": 0, "nil": 0, "too_deep": 0, "unix": 0}


def test_etcdctl_calls_to_etcd_through_cmux_link(tmp_path):
    """Each etcdctl command (a new process, traced from its start through --exe) calls etcd,
    whose gRPC server sits behind cmux: every call's server span is the child of its client
    span."""
    with etcd(tmp_path) as (server, endpoint):
        capture = tmp_path / "spans.jsonl"
        with gotrace(tmp_path, "trace", "--pid", str(server.pid), "--exe", "/usr/bin/etcdctl",
                     "--jsonl", str(capture), "--stats") as tracer:
            for i in range(6):
                etcdctl(endpoint, "put", f"key{i}", "value")
            etcdctl(endpoint, "get", "key", "--prefix")
            wait_linked(capture, {server.pid: (None, 7)})  # a server span waits for its client
            _, err = stop(tracer)
    spans = read_spans(capture)
    client_pids = {s["resource"]["process.pid"] for s in spans
                   if s["resource"]["service.name"] == "etcdctl"}
    assert len(client_pids) == 7, err
    pairs = linked_pairs(spans, server.pid, client_pids)
    assert sorted(s["name"] for _, s in pairs) == ["etcdserverpb.KV/Put"] * 6 + [
        "etcdserverpb.KV/Range"], err
    assert all(c["name"] == s["name"] for c, s in pairs)
    assert conn_misses(err) == {"unknown_type": 0, "nil": 0, "too_deep": 0, "unix": 0}


def test_alerts_from_prometheus_through_alertmanager_to_a_webhook_link(tmp_path):
    """prometheus -> alertmanager -> webhook (node-exporter): both hops, each through a
    go-conntrack dialer, link every call (a notification is not a child of the alert that
    caused it: alertmanager sends it later, from its own goroutines)."""
    with node_exporter(tmp_path) as (hook, hook_addr), \
            alertmanager(tmp_path, f"http://{hook_addr}/metrics") as (manager, manager_addr), \
            prometheus(tmp_path, "alerting", alertmanager=manager_addr) as (source, _):
        capture = tmp_path / "spans.jsonl"
        with gotrace(tmp_path, "trace", "--pid", str(source.pid), "--pid", str(manager.pid),
                     "--pid", str(hook.pid), "--jsonl", str(capture), "--stats") as tracer:
            wait_linked(capture, {manager.pid: ({source.pid}, 3), hook.pid: ({manager.pid}, 1)})
            _, err = stop(tracer)
    spans = read_spans(capture)
    alerts = linked_pairs(spans, manager.pid, {source.pid})
    notifications = linked_pairs(spans, hook.pid, {manager.pid})
    assert len(alerts) >= 3 and len(notifications) >= 1, err
    assert {s["attributes"]["url.path"] for _, s in alerts} == {"/api/v2/alerts"}
    assert {(s["attributes"]["http.request.method"], s["attributes"]["url.path"])
            for _, s in notifications} == {("POST", "/metrics")}
    assert conn_misses(err) == {"unknown_type": 0, "nil": 0, "too_deep": 0, "unix": 0}
