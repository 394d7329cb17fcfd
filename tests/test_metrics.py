"""RED metrics: span -> histogram mapping, the text format, the /metrics endpoint, and end to
end a real Prometheus scraping `gotrace trace --metrics-port` on a traced Go server."""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tracing import (
    REPO,
    fetch,
    free_port,
    get,
    go_server,
    gotrace,
    metric_samples,
    routers,
    stop,
    terminate,
)

from gotrace.errors import GotraceError
from gotrace.export import LaneStats, PipelineStats
from gotrace.metrics import (
    CrossHostCounts,
    MetricsExporter,
    cross_host_counters,
    kernel_counters,
    pipeline_counters,
    shed_counters,
)
from gotrace.metrics.histograms import OVERFLOW_LABELS, DurationHistograms
from gotrace.metrics.red import BUCKETS, RedMetric, observation, status_class
from gotrace.probes import DURATION_METRICS
from gotrace.probes.db_attributes import DB_CLIENT_METRIC
from gotrace.probes.grpc_client import RPC_CLIENT_METRIC
from gotrace.probes.grpc_server import RPC_SERVER_METRIC
from gotrace.probes.http_attributes import HTTP_CLIENT_METRIC, HTTP_SERVER_METRIC
from gotrace.spans import AttributeValue, Resource, Span, SpanKind
from testapps import matrix

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
HTTP_SERVER, HTTP_CLIENT = HTTP_SERVER_METRIC.metric, HTTP_CLIENT_METRIC.metric
RPC_SERVER, RPC_CLIENT = RPC_SERVER_METRIC.metric, RPC_CLIENT_METRIC.metric


def make_span(kind: SpanKind, attributes: dict[str, AttributeValue], seconds: float = 0.001,
              service: str = "api", red: RedMetric | None = None) -> Span:
    """A span as decoding makes it: red is the RED metric its probe declares."""
    start = 1_700_000_000_000_000_000
    return Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, parent_span_id=None, name="op",
                kind=kind, start_time_unix_nano=start,
                end_time_unix_nano=start + round(seconds * 1e9),
                resource=Resource({"service.name": service}), own_attributes=attributes,
                metric=red)


def http_server(route: str | None = "/users/{id}", status: int = 200, method: str = "GET",
                seconds: float = 0.001) -> Span:
    attrs: dict[str, AttributeValue] = {"http.request.method": method, "url.path": "/users/7",
                                        "http.response.status_code": status}
    if route is not None:
        attrs["http.route"] = route
    return make_span("SERVER", attrs, seconds, red=HTTP_SERVER_METRIC)


def grpc(kind: SpanKind, code: int = 0) -> Span:
    attrs: dict[str, AttributeValue] = {"rpc.system": "grpc", "rpc.service": "demo.Echo",
                                        "rpc.method": "Say", "rpc.grpc.status_code": code,
                                        "server.address": "10.0.0.2", "server.port": 50051}
    return make_span(kind, attrs, red=RPC_SERVER_METRIC if kind == "SERVER" else RPC_CLIENT_METRIC)


@pytest.fixture
def exporter() -> Iterator[MetricsExporter]:
    e = MetricsExporter("127.0.0.1", 0, metrics=DURATION_METRICS)
    try:
        yield e
    finally:
        e.shutdown()


# --- span -> histogram and labels -----------------------------------------------------------

def test_http_server_span_labels():
    metric, labels = observation(http_server(status=503, method="POST"))
    assert metric is HTTP_SERVER
    assert metric.prometheus_name == "http_server_request_duration_seconds"
    assert labels == (("service_name", "api"), ("http_request_method", "POST"),
                      ("http_route", "/users/{id}"), ("http_response_status_code", "5xx"))


def test_http_server_span_without_route_has_method_only():
    """Without a route template the path is not used: it would make a series per URL."""
    _, labels = observation(http_server(route=None, status=404))
    assert dict(labels) == {"service_name": "api", "http_request_method": "GET",
                            "http_response_status_code": "4xx"}


def test_http_client_span_labels():
    span = make_span("CLIENT", {"http.request.method": "GET", "url.full": "http://db:8080/x",
                                "server.address": "db", "server.port": 8080,
                                "http.response.status_code": 200}, red=HTTP_CLIENT_METRIC)
    metric, labels = observation(span)
    assert metric is HTTP_CLIENT
    assert metric.prometheus_name == "http_client_request_duration_seconds"
    assert labels == (("service_name", "api"), ("http_request_method", "GET"),
                      ("http_response_status_code", "2xx"), ("server_address", "db"))


def test_http_client_transport_error_is_labelled_by_error_type():
    span = make_span("CLIENT", {"http.request.method": "GET", "server.address": "db",
                                "error.type": "_OTHER"}, red=HTTP_CLIENT_METRIC)
    _, labels = observation(span)
    assert dict(labels) == {"service_name": "api", "http_request_method": "GET",
                            "error_type": "_OTHER", "server_address": "db"}


@pytest.mark.parametrize(("kind", "metric", "name"), [
    ("SERVER", RPC_SERVER, "rpc_server_duration_seconds"),
    ("CLIENT", RPC_CLIENT, "rpc_client_duration_seconds"),
])
def test_grpc_span_labels(kind, metric, name):
    found, labels = observation(grpc(kind, code=14))
    assert found is metric and metric.prometheus_name == name
    expected = {"service_name": "api", "rpc_system": "grpc", "rpc_service": "demo.Echo",
                "rpc_method": "Say", "rpc_grpc_status_code": "14"}
    if kind == "CLIENT":
        expected["server_address"] = "10.0.0.2"
    assert dict(labels) == expected


def test_database_span_labels_are_system_operation_collection_and_outcome():
    """The query text is not a label (a series per statement), nor the namespace."""
    attrs: dict[str, AttributeValue] = {
        "db.system.name": "postgresql", "db.operation.name": "SELECT",
        "db.collection.name": "orders", "db.namespace": "shop",
        "db.query.text": "SELECT * FROM orders WHERE id = ?", "server.address": "10.0.0.5",
        "server.port": 5432}
    metric, labels = observation(make_span("CLIENT", attrs, red=DB_CLIENT_METRIC))
    assert metric is DB_CLIENT_METRIC.metric in DURATION_METRICS
    assert metric.prometheus_name == "db_client_operation_duration_seconds"
    assert dict(labels) == {"service_name": "api", "db_system_name": "postgresql",
                            "db_operation_name": "SELECT", "db_collection_name": "orders",
                            "server_address": "10.0.0.5"}
    _, failed = observation(make_span("CLIENT", {**attrs, "error.type": "42P01"},
                                      red=DB_CLIENT_METRIC))
    assert dict(failed)["error_type"] == "42P01"


def test_spans_no_red_metric_covers_are_ignored():
    """Only a span whose probe declares a RED metric feeds one."""
    assert observation(make_span("SERVER", {"http.request.method": "GET"})) is None


def test_every_span_probe_declares_a_red_metric():
    """A server or client record kind without a metric would silently have no RED data."""
    from gotrace.probes import SHAPES
    for shape in SHAPES.values():
        assert shape.kind == "INTERNAL" or shape.metric is not None, shape.record_kind
    assert {HTTP_SERVER, HTTP_CLIENT, RPC_SERVER, RPC_CLIENT} <= set(DURATION_METRICS)


@pytest.mark.parametrize(("code", "label"), [
    (100, "1xx"), (200, "2xx"), (204, "2xx"), (302, "3xx"), (404, "4xx"), (599, "5xx"),
    (0, "_OTHER"), (600, "_OTHER"),
])
def test_status_class(code, label):
    assert status_class(code) == label


# --- histograms ------------------------------------------------------------------------------

def test_bucket_placement_upper_bounds_are_inclusive():
    histograms = DurationHistograms(BUCKETS)
    labels = (("service_name", "api"),)
    values = [0.0, 0.005, 0.0050001, 0.1, 0.3, 10.0, 10.5, 42.0]
    histograms.record((HTTP_SERVER, labels, v) for v in values)
    (series,) = histograms.snapshot().series[HTTP_SERVER]
    assert series[0] == labels
    counts = dict(zip((*BUCKETS, math.inf), series[1].buckets, strict=True))
    assert {le: n for le, n in counts.items() if n} == {
        0.005: 2, 0.01: 1, 0.1: 1, 0.5: 1, 10.0: 1, math.inf: 2}
    assert series[1].count == len(values)
    assert series[1].sum == pytest.approx(sum(values))


def test_span_duration_lands_in_its_bucket_in_seconds(exporter):
    exporter.export([http_server(seconds=0.005), http_server(seconds=0.02),
                     http_server(seconds=3.0)])
    samples = metric_samples(exporter.render().decode())
    labels = (("http_request_method", "GET"), ("http_response_status_code", "2xx"),
              ("http_route", "/users/{id}"), ("service_name", "api"))
    name = "http_server_request_duration_seconds"

    def bucket(le: str) -> float:
        return samples[f"{name}_bucket", tuple(sorted((*labels, ("le", le))))]

    assert [bucket(le) for le in ("0.005", "0.01", "0.025", "2.5", "5.0", "+Inf")] == \
        [1, 1, 2, 2, 3, 3]
    assert samples[f"{name}_count", labels] == 3
    assert samples[f"{name}_sum", labels] == pytest.approx(3.025)


def test_series_cap_sends_new_label_sets_to_one_overflow_series():
    histograms = DurationHistograms(BUCKETS, max_series=3)
    routes = [f"/r{i}" for i in range(5)]
    for _ in range(2):
        histograms.record((HTTP_SERVER, (("http_route", r),), 0.001) for r in routes)
    histograms.record([(RPC_SERVER, (("rpc_method", "Say"),), 0.001)])
    snapshot = histograms.snapshot()
    http = dict(snapshot.series[HTTP_SERVER])
    # The first three label sets keep their series and keep counting after the cap.
    assert {labels: h.count for labels, h in http.items()} == {
        (("http_route", "/r0"),): 2, (("http_route", "/r1"),): 2, (("http_route", "/r2"),): 2,
        OVERFLOW_LABELS: 4}
    assert dict(snapshot.series[RPC_SERVER])[OVERFLOW_LABELS].count == 1
    assert snapshot.overflowed == 5


def test_series_cap_is_reported_as_a_counter():
    e = MetricsExporter("127.0.0.1", 0, max_series=2)
    try:
        e.export([http_server(route=f"/r{i}") for i in range(5)])
        samples = metric_samples(e.render().decode())
    finally:
        e.shutdown()
    assert samples["gotrace_metric_series_overflow_total", ()] == 3
    counts = {labels: v for (name, labels), v in samples.items()
              if name == "http_server_request_duration_seconds_count"}
    assert len(counts) == 3 and sum(counts.values()) == 5
    assert counts[(("otel_metric_overflow", "true"),)] == 3


# --- counters and the text format ------------------------------------------------------------

def pipeline_stats() -> PipelineStats:
    return PipelineStats(submitted=12, exporters={
        "otlp": LaneStats(exported=7, dropped={"queue_full": 3, "export_failed": 2},
                          queue_depth=0, failing=True),
        "metrics": LaneStats(exported=12, dropped={"queue_full": 0, "export_failed": 0},
                             queue_depth=0, failing=False),
    })


def test_gotrace_counters_are_read_at_every_scrape(exporter):
    hits = {"http_server_entry": 0, "http_server_end": 0}
    exporter.add_counters(
        kernel_counters(lambda: (hits, {"ringbuf_full": 1, "inflight_full": 0})),
        shed_counters(lambda: (40, 2)),
        pipeline_counters(pipeline_stats))
    hits["http_server_entry"] = 5
    samples = metric_samples(exporter.render().decode())
    assert samples["gotrace_probe_hits_total", (("probe", "http_server_entry"),)] == 5
    hits["http_server_entry"] = 9
    samples = metric_samples(exporter.render().decode())
    assert samples["gotrace_probe_hits_total", (("probe", "http_server_entry"),)] == 9
    assert samples["gotrace_kernel_spans_lost_total", (("reason", "ringbuf_full"),)] == 1
    assert samples["gotrace_spans_shed_total", (("where", "kernel"),)] == 40
    assert samples["gotrace_spans_shed_total", (("where", "gotrace"),)] == 2
    assert samples["gotrace_spans_exported_total", (("exporter", "otlp"),)] == 7
    assert samples["gotrace_spans_exported_total", (("exporter", "metrics"),)] == 12
    assert samples["gotrace_spans_dropped_total",
                   (("exporter", "otlp"), ("reason", "queue_full"))] == 3
    assert samples["gotrace_spans_dropped_total",
                   (("exporter", "otlp"), ("reason", "export_failed"))] == 2


def test_cross_host_counters(exporter):
    counts = [CrossHostCounts(7, {"not_found": 2, "store_down": 0}, 11,
                              {"store_down": 3, "queue_full": 0}, 4, 1)]
    exporter.add_counters(cross_host_counters(lambda: counts[0]))
    counts[0] = counts[0]._replace(linked=8)  # read at the scrape
    samples = metric_samples(exporter.render().decode())
    assert samples["gotrace_cross_host_server_spans_total", (("result", "linked"),)] == 8
    assert samples["gotrace_cross_host_server_spans_total",
                   (("reason", "not_found"), ("result", "unlinked"))] == 2
    assert samples["gotrace_cross_host_server_spans_total",
                   (("reason", "store_down"), ("result", "unlinked"))] == 0
    assert samples["gotrace_link_store_publications_total", (("result", "written"),)] == 11
    assert samples["gotrace_link_store_publications_total",
                   (("reason", "store_down"), ("result", "dropped"))] == 3
    assert samples["gotrace_link_store_round_trips_total", ()] == 4
    assert samples["gotrace_link_store_outages_total", ()] == 1


def test_a_failing_counter_source_leaves_out_only_its_counters(exporter):
    def broken() -> tuple[dict[str, int], dict[str, int]]:
        raise RuntimeError("dictionary changed size during iteration")

    exporter.add_counters(kernel_counters(broken), pipeline_counters(pipeline_stats))
    exporter.export([http_server()])
    names = {name for name, _ in metric_samples(exporter.render().decode())}
    assert "gotrace_probe_hits_total" not in names
    assert {"gotrace_spans_exported_total", "http_server_request_duration_seconds_count"} \
        <= names


def test_exposition_is_valid_for_promtool(exporter):
    """promtool (from the prometheus package) parses and lints the whole document,
    label values that need escaping included."""
    exporter.add_counters(kernel_counters(lambda: ({"http_server_entry": 3}, {})),
                          pipeline_counters(pipeline_stats))
    exporter.export([
        http_server(route='/q/"quoted"\\back\nslash', status=201),
        http_server(route=None, status=500, method="_OTHER"),
        make_span("CLIENT", {"http.request.method": "GET", "server.address": "db",
                             "error.type": "_OTHER"}, seconds=12, red=HTTP_CLIENT_METRIC),
        grpc("SERVER"), grpc("CLIENT", code=2),
    ])
    text = exporter.render().decode()
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr
    samples = metric_samples(text)
    assert ("http_server_request_duration_seconds_count",
            (("http_request_method", "GET"), ("http_response_status_code", "2xx"),
             ("http_route", '/q/\\"quoted\\"\\\\back\\nslash'), ("service_name", "api"))) \
        in samples
    # Every histogram: cumulative buckets, +Inf equal to the count.
    for (name, labels), count in samples.items():
        if not name.endswith("_count"):
            continue
        base = name.removesuffix("_count")
        cumulative = [samples[f"{base}_bucket", tuple(sorted((*labels, ("le", le))))]
                      for le in [*(repr(b) for b in BUCKETS), "+Inf"]]
        assert cumulative == sorted(cumulative) and cumulative[-1] == count


# --- the endpoint ----------------------------------------------------------------------------

def test_endpoint_serves_metrics_only(exporter):
    exporter.export([http_server()])
    content_type, body = fetch(exporter.url)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert "http_server_request_duration_seconds_count" in body
    with pytest.raises(urllib.error.HTTPError) as e:
        fetch(exporter.url.removesuffix("/metrics") + "/")
    assert e.value.code == 404


def test_concurrent_scrapes_see_consistent_histograms(exporter):
    """One thread exports (as the pipeline does) while four scrape: every scrape parses,
    each histogram's +Inf bucket equals its count, and counts never go down."""
    batches, per_batch = 200, 25
    failures: list[str] = []
    done = threading.Event()

    def scrape() -> None:
        last = 0.0
        while not done.is_set():
            samples = metric_samples(fetch(exporter.url)[1])
            counts = [v for (name, labels), v in samples.items()
                      if name == "http_server_request_duration_seconds_count"]
            inf = [v for (name, labels), v in samples.items()
                   if name == "http_server_request_duration_seconds_bucket"
                   and ("le", "+Inf") in labels]
            if sum(counts) < last or sum(counts) != sum(inf):
                failures.append(f"counts {counts}, +Inf {inf}, before {last}")
            last = sum(counts)

    scrapers = [threading.Thread(target=scrape) for _ in range(4)]
    for t in scrapers:
        t.start()
    try:
        for i in range(batches):
            exporter.export([http_server(route=f"/r{i % 7}", seconds=i / 1000)
                             for _ in range(per_batch)])
    finally:
        done.set()
        for t in scrapers:
            t.join()
    assert failures == []
    samples = metric_samples(fetch(exporter.url)[1])
    assert sum(v for (name, _), v in samples.items()
               if name == "http_server_request_duration_seconds_count") == batches * per_batch


def test_port_in_use_is_one_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(GotraceError, match=f"cannot serve metrics on 127.0.0.1:{port}: "
                           "Address already in use"):
            MetricsExporter("127.0.0.1", port)


def test_cli_port_in_use_exits_2_with_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "gotrace", "trace", "--pid", str(os.getpid()),
             "--metrics-host", "127.0.0.1", "--metrics-port", str(port)],
            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr == (f"gotrace: cannot serve metrics on 127.0.0.1:{port}: "
                           "Address already in use\n")


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_cli_rejects_a_port_out_of_range(port):
    proc = subprocess.run([sys.executable, "-m", "gotrace", "trace", "--pid", "1",
                           "--metrics-port", port], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert f"not a TCP port (1-65535): '{port}'" in proc.stderr


# --- end to end with a real Prometheus -------------------------------------------------------

@contextlib.contextmanager
def prometheus(tmp_path: Path, target: str) -> Iterator[Callable[[str], list[dict]]]:
    """Run Debian's Prometheus binary scraping target every second; yields query(promql)
    -> the instant vector's results."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: gotrace\n    static_configs:\n"
        f"      - targets: ['{target}']\n")
    base = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "prometheus.log"
    with open(log, "w") as log_file:
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address={base.removeprefix('http://')}"],
            stdout=log_file, stderr=subprocess.STDOUT)

    def query(promql: str) -> list[dict]:
        url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        answer = json.loads(fetch(url)[1])
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"prometheus exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"prometheus not ready: {log.read_text()}"
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200:
                    break
            time.sleep(0.2)
        yield query
    finally:
        terminate(proc, timeout=30)


def wait_for_total(query: Callable[[str], list[dict]], promql: str, expected: float,
                   timeout: float = 60) -> None:
    """Until the sum of promql's results, as Prometheus last scraped them, is expected."""
    deadline = time.monotonic() + timeout
    total = None
    while time.monotonic() < deadline:
        total = sum(float(r["value"][1]) for r in query(promql))
        if total == expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"{promql}: {total}, expected {expected}")


def by_label(results: list[dict], *names: str) -> dict[tuple[str | None, ...], float]:
    return {tuple(r["metric"].get(n) for n in names): float(r["value"][1]) for r in results}


def test_prometheus_scrapes_exact_request_counts(tmp_path):
    """37 requests to /hello, 5 to /error (500), 3 to a path no route matches (404):
    Prometheus, scraping gotrace every second, counts exactly those per route and status
    class, and sees gotrace's own counters."""
    cell = matrix.Cell("httpserver", matrix.go_versions()[-1], "stripped")
    sent = {("/hello", "2xx"): 37, ("/error", "5xx"): 5, (None, "4xx"): 3}
    total = sum(sent.values())
    port = free_port()
    with go_server(matrix.build(cell)) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--metrics-host",
                    "127.0.0.1", "--metrics-port", str(port)) as tracer, \
            prometheus(tmp_path, f"127.0.0.1:{port}") as query:
        for _ in range(37):
            assert get(addr, "/hello?name=x") == 200
        for _ in range(5):
            assert get(addr, "/error") == 500
        for i in range(3):
            assert get(addr, f"/no/such/route/{i}") == 404
        wait_for_total(query, "http_server_request_duration_seconds_count", total)
        wait_for_total(query, 'gotrace_spans_exported_total{exporter="metrics"}', total)

        counts = query("http_server_request_duration_seconds_count")
        assert by_label(counts, "http_route", "http_response_status_code") == sent
        service = os.path.basename(os.readlink(f"/proc/{server.pid}/exe"))
        for r in counts:
            assert r["metric"]["service_name"] == service
            assert r["metric"]["http_request_method"] == "GET"
            assert "url_path" not in r["metric"]
        inf = query('http_server_request_duration_seconds_bucket{le="+Inf"}')
        assert by_label(inf, "http_route", "http_response_status_code") == sent
        sums = query("http_server_request_duration_seconds_sum")
        assert all(0 < float(r["value"][1]) < 10 for r in sums)
        assert query("http_client_request_duration_seconds_count") == []

        assert by_label(query('up{job="gotrace"}'), "instance") == {(f"127.0.0.1:{port}",): 1}
        hits = by_label(query("gotrace_probe_hits_total"), "probe")
        assert hits[("http_server_entry",)] == total
        dropped = query("gotrace_spans_dropped_total")
        assert by_label(dropped, "exporter", "reason") == {
            ("metrics", "queue_full"): 0, ("metrics", "export_failed"): 0}
        lost = by_label(query("gotrace_kernel_spans_lost_total"), "reason")
        assert lost and set(lost.values()) == {0}
        assert by_label(query("gotrace_metric_series_overflow_total"), "job") == \
            {("gotrace",): 0}
        out, _ = stop(tracer)
    assert out == ""  # --metrics-port is an output: no console by default


def test_prometheus_sees_one_series_per_route_template(tmp_path):
    """1,000 distinct ids in the path through each of five routers (testapps/routers): one
    series per route template, none per path."""
    ids = 1000
    port = free_port()
    cell = matrix.Cell("routers", matrix.go_versions()[-1], "pie-stripped")
    with routers(matrix.build(cell)) as (server, addrs), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--metrics-host",
                    "127.0.0.1", "--metrics-port", str(port)), \
            prometheus(tmp_path, f"127.0.0.1:{port}") as query:
        for addr in addrs.values():
            for i in range(ids):
                assert get(addr, f"/users/{i * 7919}") == 200
        wait_for_total(query, "http_server_request_duration_seconds_count", ids * len(addrs))
        counts = query("http_server_request_duration_seconds_count")
    # gin, httprouter and echo write the template ":id", chi and gorilla/mux "{id}".
    assert by_label(counts, "http_route", "http_response_status_code") == {
        ("/users/:id", "2xx"): 3 * ids, ("/users/{id}", "2xx"): 2 * ids}
    assert all("url_path" not in r["metric"] for r in counts)
