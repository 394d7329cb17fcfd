"""Real Go programs from Debian's archive, traced as installed: their connections are wrapped in
types gotrace has no special knowledge of, and their requests must still link into one trace.

- prometheus (2.42, Go 1.19, stripped, no module versions): its scrapes dial through
  go-conntrack (*conntrack.clientConnTracker); its web server accepts through go-conntrack
  inside netutil.LimitListener (*netutil.limitListenerConn around *conntrack.serverConnTracker).
"""

from __future__ import annotations

import json
import re
import time

from debian_programs import prometheus
from tracing import gotrace, stop


def read_spans(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def conn_misses(err: str) -> dict[str, int]:
    line = re.search(r"^gotrace: spans without their connection (.*)$", err, re.M)
    assert line, err
    return {k: int(v) for k, v in (item.split("=") for item in line[1].split(", "))}


def reversed_tuple(span: dict) -> tuple:
    a = span["attributes"]
    return (a["network.peer.address"], a["network.peer.port"],
            a["network.local.address"], a["network.local.port"])


def own_tuple(span: dict) -> tuple:
    a = span["attributes"]
    return (a["network.local.address"], a["network.local.port"],
            a["network.peer.address"], a["network.peer.port"])


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
    spans = read_spans(capture)
    clients = [s for s in spans if s["kind"] == "CLIENT"
               and s["attributes"].get("url.full") == f"http://{back_addr}/metrics"]
    servers = [s for s in spans if s["kind"] == "SERVER"
               and s["resource"]["process.pid"] == back.pid
               and s["attributes"].get("url.path") == "/metrics"]
    assert len(clients) >= 5, err
    assert len(servers) == len(clients), err
    by_id = {s["span_id"]: s for s in clients}
    for server in servers:
        client = by_id.get(server["parent_span_id"])
        assert client is not None, server
        assert client["trace_id"] == server["trace_id"]
        assert own_tuple(client) == reversed_tuple(server)
        assert client["resource"]["process.pid"] == front.pid
    assert conn_misses(err) == {"unknown_type": 0, "nil": 0, "too_deep": 0, "unix": 0}
