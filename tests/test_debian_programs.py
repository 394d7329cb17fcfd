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
"""

from __future__ import annotations

import time

from debian_programs import alertmanager, etcd, etcdctl, node_exporter, prometheus
from tracing import conn_misses, gotrace, linked_pairs, read_spans, stop


def test_prometheus_scraping_prometheus_links_every_scrape(tmp_path):
    """Prometheus A scrapes prometheus B every half second: each of B's /metrics server spans
    is the child of A's client span, on the connection both ends report."""
    with prometheus(tmp_path, "back") as (back, back_addr), \
            prometheus(tmp_path, "front", scrape=[back_addr], interval="500ms") as (front, _):
        capture = tmp_path / "spans.jsonl"
        with gotrace(tmp_path, "trace", "--pid", str(front.pid), "--pid", str(back.pid),
                     "--jsonl", str(capture), "--stats") as tracer:
            time.sleep(6)
            _, err = stop(tracer)
    pairs = linked_pairs(read_spans(capture), back.pid, {front.pid})
    assert len(pairs) >= 5, err
    for client, server in pairs:
        assert client["attributes"]["url.full"] == f"http://{back_addr}/metrics"
        assert server["attributes"]["url.path"] == "/metrics"
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
            time.sleep(1.5)  # a same-host server span waits up to a second for its client
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
            time.sleep(8)
            _, err = stop(tracer)
    spans = read_spans(capture)
    alerts = linked_pairs(spans, manager.pid, {source.pid})
    notifications = linked_pairs(spans, hook.pid, {manager.pid})
    assert len(alerts) >= 3 and len(notifications) >= 1, err
    assert {s["attributes"]["url.path"] for _, s in alerts} == {"/api/v2/alerts"}
    assert {(s["attributes"]["http.request.method"], s["attributes"]["url.path"])
            for _, s in notifications} == {("POST", "/metrics")}
    assert conn_misses(err) == {"unknown_type": 0, "nil": 0, "too_deep": 0, "unix": 0}
