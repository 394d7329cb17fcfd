"""--infer-routes: route templates made from URL paths (gotrace/pipeline/routes.py), the spans,
metrics, report rows and console lines that use them, and end to end on a Go server whose
ServeMux gives no pattern."""

from __future__ import annotations

import hashlib
import http.client
import random
import re
import time
import uuid
from collections import Counter

import pytest
from otlp_receiver import OtlpReceiver
from tracing import fetch, free_port, get, go_server, gotrace, metric_samples, otlp_args, stop

from gotrace.export.console import format_batch
from gotrace.metrics import MetricsExporter, route_counters
from gotrace.pipeline import decode
from gotrace.pipeline.decode import MonotonicClock, decode_records
from gotrace.pipeline.routes import (
    DEFAULT_MAX_ROUTES,
    INFERRED,
    OTHER_ROUTE,
    RouteInference,
    infer_template,
    is_identifier,
)
from gotrace.probes import DURATION_METRICS, SPAN_KINDS
from gotrace.records import SpanRecord
from gotrace.report.spaninfo import Route, route_of
from gotrace.report.stats import bucket_edges, route_stats
from gotrace.report.text import operation
from gotrace.spans import Resource, Span
from testapps import matrix

SERVICES = {100: Resource({"service.name": "api", "process.pid": 100}),
            200: Resource({"service.name": "web", "process.pid": 200})}
HTTP_SERVER = SPAN_KINDS["HTTP_SERVER"]


def server_record(number: int, path: str, *, pid: int = 100, method: str = "GET",
                  pattern: str = "", status: int = 200) -> bytes:
    """An HTTP server span record as the kernel sends it (pattern: a ServeMux pattern)."""
    rec = SpanRecord()
    rec.kind, rec.pid, rec.status = HTTP_SERVER, pid, status
    rec.start_ns, rec.end_ns = 1_000 * number, 1_000 * number + 500
    rec.trace_id[:] = (number + 1).to_bytes(16, "big")
    rec.span_id[:] = (number + 1).to_bytes(8, "big")
    rec.proto_major, rec.proto_minor = 1, 1
    rec.method, rec.path, rec.route = method.encode(), path.encode(), pattern.encode()
    return bytes(rec)


def server_spans(paths: list[str], **fields) -> list[Span]:
    """Decoded spans of requests to these paths, as the tracer decodes them."""
    raw = [server_record(n, path, **fields) for n, path in enumerate(paths)]
    return decode_records(raw, SERVICES.get, MonotonicClock())


def inferred(paths: list[str], inference: RouteInference | None = None, **fields) -> list[Span]:
    spans = server_spans(paths, **fields)
    (inference or RouteInference()).apply(spans)
    return spans


# --- which segments are ids -------------------------------------------------------------------

IDS = [
    "42", "0", "3.14", "2024-01-31", "1.21.0", "30fce798-1d34-49f9-b36c-d41abe23e000",
    "30FCE7981D3449F9B36CD41ABE23E000", hashlib.sha256(b"x").hexdigest(),
    hashlib.sha1(b"x").hexdigest(), "deadbeefdeadbeef", "5f3a9c1e", "INV-000123",
    "report_2023.pdf", "2024-01-31T10:00:00Z", "Hv5qzuO5WLG8uOj1Qr5UXw", "x7Kp2Qa9",
    "app.3f2a9c1b.js", "bob@example.com", "first.last+tag@mail.example.co.uk",
]
WORDS = [
    "", "users", "api", "v1", "v2", "oauth2", "i18n", "h2c", "k8s", "ipv6", "e2e", "deadbeef",
    "how-to-install-go-1-21", "favicon.ico", "logo@2x.png", "@me", "{id}", "index.html",
    "sha256sum", "CamelCaseName", "u42", "5f3a9c1",
]


@pytest.mark.parametrize("segment", IDS)
def test_ids_are_ids(segment):
    assert is_identifier(segment)
    assert infer_template(f"/things/{segment}/parts") == "/things/{id}/parts"


@pytest.mark.parametrize("segment", WORDS)
def test_words_stay(segment):
    assert not is_identifier(segment)
    assert infer_template(f"/things/{segment}/parts") == f"/things/{segment}/parts"


def test_paths_of_words_are_their_own_routes():
    paths = ["/", "/health", "/api/v1/items", "/oauth2/callback", "/static/css/site.css",
             "/users/", "/a//b", "/how-to-install-go-1-21"]
    spans = inferred(paths)
    assert [s.attributes["http.route"] for s in spans] == paths
    assert [s.name for s in spans] == [f"GET {path}" for path in paths]


# --- spans -------------------------------------------------------------------------------------

def ten_thousand_paths() -> list[str]:
    """10,000 requests with distinct ids: numbers, UUIDs with numbers, SHA-256 sums."""
    rng = random.Random(20)
    paths = []
    for n in range(10_000):
        if n % 3 == 0:
            paths.append(f"/users/{n * 7919}")
        elif n % 3 == 1:
            paths.append(f"/users/{uuid.UUID(int=rng.getrandbits(128))}/orders/{n}")
        else:
            paths.append(f"/blobs/{hashlib.sha256(str(n).encode()).hexdigest()}")
    assert len(set(paths)) == 10_000
    return paths


def test_ten_thousand_ids_collapse_into_three_routes():
    paths = ten_thousand_paths()
    inference = RouteInference()
    spans = inferred(paths, inference)
    assert Counter(s.name for s in spans) == {"GET /users/{id}": 3334,
                                              "GET /users/{id}/orders/{id}": 3333,
                                              "GET /blobs/{id}": 3333}
    for span, path in zip(spans, paths, strict=True):
        attrs = span.attributes
        assert attrs["http.route"] == span.name.removeprefix("GET ")
        assert attrs[INFERRED] is True
        assert attrs["url.path"] == path  # the request's own path stays, as its own
        assert not span.own_attributes.keys() & span.shared_attributes.items.keys()
    # The spans of one route share their attributes (and exporters their encoding of them).
    assert len({id(s.shared_attributes) for s in spans}) == 3
    assert inference.routes == {"api": {"/users/{id}", "/users/{id}/orders/{id}",
                                        "/blobs/{id}"}}
    assert inference.folded == {} and inference.overflow() == {"api": 0}


def test_the_cap_folds_new_routes_into_one_and_counts_them():
    inference = RouteInference(max_routes=3)
    paths = ["/a", "/b/1", "/c", "/d", "/e", "/b/2", "/d", "/a"]
    spans = inferred(paths, inference)
    assert [s.attributes["http.route"] for s in spans] == [
        "/a", "/b/{id}", "/c", OTHER_ROUTE, OTHER_ROUTE, "/b/{id}", OTHER_ROUTE, "/a"]
    assert spans[3].name == "GET /{other}" and spans[3].attributes[INFERRED] is True
    assert inference.folded == {"api": 3}
    # Per service: another one has its own routes, up to its own cap.
    web = inferred(["/d", "/e", "/f", "/g/7", "/g/8"], inference, pid=200)
    assert [s.attributes["http.route"] for s in web] == ["/d", "/e", "/f", OTHER_ROUTE,
                                                         OTHER_ROUTE]
    assert inference.overflow() == {"api": 3, "web": 2}
    assert inference.summary() == (f"api 3 (3 spans as {OTHER_ROUTE}), "
                                   f"web 3 (2 spans as {OTHER_ROUTE})")
    # 10,000 distinct ids of new shapes: not one more route.
    inference.apply(server_spans([f"/x{n % 7}/{n}" for n in range(10_000)]))
    assert len(inference.routes["api"]) == 3
    assert inference.folded["api"] == 10_003


def test_not_found_makes_no_route_but_takes_a_known_one():
    """A scanner's 404s do not use up the cap; a 404 on a route others made keeps it."""
    inference = RouteInference(max_routes=2)
    scans = inferred([f"/wp-admin/{word}.php" for word in ("setup", "install", "config")],
                     inference, status=404)
    assert {s.attributes["http.route"] for s in scans} == {OTHER_ROUTE}
    assert inference.folded == {"api": 3} and inference.routes == {"api": set()}
    users = inferred(["/users/1", "/health"], inference)
    missing = inferred(["/users/2", "/nothing"], inference, status=404)
    assert [s.attributes["http.route"] for s in users + missing] == [
        "/users/{id}", "/health", "/users/{id}", OTHER_ROUTE]
    assert missing[0].name == "GET /users/{id}" and missing[1].name == "GET /{other}"


def test_default_cap():
    inference = RouteInference()
    assert inference.max_routes == DEFAULT_MAX_ROUTES == 100
    spans = inferred([f"/page-{chr(97 + n % 26)}{chr(97 + n // 26)}" for n in range(150)],
                     inference)
    assert len({s.name for s in spans}) == 101
    assert inference.folded == {"api": 50}


def test_templates_of_paths_are_cached():
    inference = RouteInference(cache_size=4)
    inference.apply(server_spans(["/users/1", "/users/1", "/users/2", "/users/1"]))
    info = inference._template.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (2, 2, 4)
    inference.apply(server_spans([f"/users/{n}" for n in range(100)]))
    assert inference._template.cache_info().currsize == 4


def test_a_routers_route_and_other_spans_are_left_alone():
    routed = server_spans(["/items/42"], pattern="GET /items/{item}")
    routed_name, routed_shared = routed[0].name, routed[0].shared_attributes
    unknown = server_spans(["*"], method="OPTIONS") + server_spans([""])
    client = Span(b"\1" * 16, b"\2" * 8, None, "GET", "CLIENT", 0, 1, SERVICES[100],
                  own_attributes={"http.request.method": "GET",
                                  "url.full": "http://db/users/42", "url.path": "/users/42"})
    grpc = Span(b"\1" * 16, b"\3" * 8, None, "pkg.Store/Get", "SERVER", 0, 1, SERVICES[100],
                own_attributes={"rpc.system": "grpc", "rpc.method": "Get"})
    inference = RouteInference()
    inference.apply([*routed, *unknown, client, grpc])
    assert routed[0].name == routed_name == "GET /items/{item}"
    assert routed[0].shared_attributes is routed_shared
    assert INFERRED not in routed[0].attributes
    assert unknown[0].attributes["http.route"] == "*"  # OPTIONS *: a route of its own
    assert unknown[1].name == "GET" and "http.route" not in unknown[1].attributes
    assert client.name == "GET" and "http.route" not in client.attributes
    assert grpc.name == "pkg.Store/Get" and "http.route" not in grpc.attributes
    assert inference.routes == {"api": {"*"}}


def test_compiled_and_python_decoding_give_the_same_inferred_spans():
    """The compiled loop makes names and shared attributes through decode's own functions;
    inference comes after either loop, and gives the same spans."""
    paths = [f"/users/{n}" for n in range(50)] + ["/health"] * 3 + ["/items/9"]
    raw = [server_record(n, path, pattern="GET /items/{item}" if "items" in path else "")
           for n, path in enumerate(paths)]
    decoded = []
    for loop in (decode._decode, decode.decode_in_python):
        spans = loop(list(raw), SERVICES.get, 0, (), False, None, {})
        RouteInference().apply(spans)
        decoded.append([(s.name, s.attributes, id(s.shared_attributes)) for s in spans])
    in_c, in_python = decoded
    assert [(name, attrs) for name, attrs, _ in in_c] == \
        [(name, attrs) for name, attrs, _ in in_python]
    assert len({shared for _, _, shared in in_c}) == len({shared for _, _, shared in in_python})
    assert in_c[-1][0] == "GET /items/{item}" and INFERRED not in in_c[-1][1]


# --- metrics, report, console ------------------------------------------------------------------

def exposition(spans: list[Span]) -> str:
    exporter = MetricsExporter("127.0.0.1", 0, metrics=DURATION_METRICS)
    try:
        exporter.export(spans)
        return exporter.render().decode()
    finally:
        exporter.shutdown()


def route_series(text: str) -> dict[str | None, float]:
    """http_server_request_duration_seconds_count by http_route (None: no route label)."""
    return {dict(labels).get("http_route"): value
            for (name, labels), value in metric_samples(text).items()
            if name == "http_server_request_duration_seconds_count"}


def test_metrics_group_by_the_inferred_route_and_never_by_path():
    paths = ten_thousand_paths()
    without = exposition(server_spans(paths))
    assert route_series(without) == {None: 10_000}
    assert "/users/" not in without and "/blobs/" not in without
    text = exposition(inferred(paths))
    assert route_series(text) == {"/users/{id}": 3334, "/users/{id}/orders/{id}": 3333,
                                  "/blobs/{id}": 3333}
    assert not re.search(r"/users/[0-9]", text)


def test_the_overflow_counter_is_exposed_per_service():
    inference = RouteInference(max_routes=1)
    inference.apply(server_spans(["/a", "/b", "/c"]) + server_spans(["/a"], pid=200))
    exporter = MetricsExporter("127.0.0.1", 0)
    try:
        exporter.add_counters(route_counters(inference.overflow))
        samples = metric_samples(exporter.render().decode())
    finally:
        exporter.shutdown()
    name = "gotrace_inferred_routes_overflow_total"
    assert samples[name, (("service_name", "api"),)] == 2
    assert samples[name, (("service_name", "web"),)] == 0


def test_report_rows_are_routes_or_methods_never_paths():
    spans = server_spans([f"/users/{n}" for n in range(1000)])
    assert {route_of(s) for s in spans} == {Route("http", "GET")}
    spans += inferred([f"/users/{n}" for n in range(1000)] + ["/health"])
    rows = route_stats(spans, bucket_edges(s.duration_ns for s in spans))
    assert [(r.route, r.summary.count) for r in rows] == [
        (Route("http", "GET"), 1000), (Route("http", "GET /health"), 1),
        (Route("http", "GET /users/{id}"), 1000)]


def test_console_lines_name_the_route_and_keep_the_path():
    plain, named = server_spans(["/users/42"]) + inferred(["/users/42"])
    assert operation(named) == "GET /users/{id}"
    assert operation(plain) == "GET /users/42"  # one request's line: its path, not a group
    line = format_batch([named]).splitlines()[1]
    assert re.match(r"\s+SERVER\s+GET /users/\{id\}\s", line), line
    assert "path=/users/42" in line


# --- end to end ---------------------------------------------------------------------------------

REQUESTS = 10_000
CAP = 5
NOT_FOUND = ["/wp-login.php", "/.env", "/no/such/route"]  # before anything: no route made
# Users named by words: routes of their own, four until the cap of five is reached.
WORDS_OF_USERS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def go_without_patterns() -> str:
    """A Go whose net/http gives no route pattern (Request.Pattern is from 1.23): 1.21."""
    older = [go for go in matrix.go_versions() if tuple(map(int, go.split("."))) < (1, 23)]
    assert older, "no Go before 1.23 installed"
    return "1.21" if "1.21" in older else older[-1]


def scrape_when_counted(url: str, requests: int) -> dict:
    """The metrics once the HTTP server histograms have counted that many requests."""
    deadline = time.monotonic() + 30
    while True:
        samples = metric_samples(fetch(url)[1])
        counted = sum(value for (name, _), value in samples.items()
                      if name == "http_server_request_duration_seconds_count")
        if counted >= requests or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_tracer_infers_routes_of_ten_thousand_ids_with_bounded_metrics(tmp_path):
    """10,000 requests to /users/<id>, each id new (numbers and UUIDs), to a Go 1.21 server
    (no pattern): every span has http.route /users/{id}, and /metrics a handful of series.
    Around them, 404s that make no route and eight users named by words: with a cap of
    five routes, four of them get their own, the other four /{other}."""
    cell = matrix.Cell("httpserver", go_without_patterns(), "stripped")
    port = free_port()
    rng = random.Random(21)
    ids = [str(n) if n % 2 else str(uuid.UUID(int=rng.getrandbits(128)))
           for n in range(REQUESTS)]
    words = [f"/users/{word}" for word in WORDS_OF_USERS]
    with OtlpReceiver() as receiver, go_server(matrix.build(cell)) as (server, addr), \
            gotrace(tmp_path, "trace", "--pid", str(server.pid), "--infer-routes",
                    "--max-inferred-routes", str(CAP), "--metrics-host", "127.0.0.1",
                    "--metrics-port", str(port), "--stats", *otlp_args(receiver)) as tracer:
        conn = http.client.HTTPConnection(addr, timeout=10)
        for path in NOT_FOUND:
            assert get(addr, path, conn=conn) == 404
        for user in ids:
            assert get(addr, f"/users/{user}", conn=conn) == 200
        for path in words:
            assert get(addr, path, conn=conn) == 200
        conn.close()
        total = len(NOT_FOUND) + REQUESTS + len(words)
        spans = receiver.wait_for(total, timeout=120)
        samples = scrape_when_counted(f"http://127.0.0.1:{port}/metrics", total)
        _, err = stop(tracer)
    spans = sorted((s for s in spans if s["kind"] == "SERVER"),
                   key=lambda s: s["start_time_unix_nano"])
    assert len(spans) == total, err
    assert [s["attributes"]["url.path"] for s in spans] == \
        NOT_FOUND + [f"/users/{user}" for user in ids] + words
    routes = [s["attributes"]["http.route"] for s in spans]
    folded = len(NOT_FOUND) + len(words) - (CAP - 1)
    assert routes == [OTHER_ROUTE] * len(NOT_FOUND) + ["/users/{id}"] * REQUESTS + \
        words[:CAP - 1] + [OTHER_ROUTE] * (len(words) - CAP + 1)
    for span, route in zip(spans, routes, strict=True):
        assert span["name"] == f"GET {route}"
        assert span["attributes"][INFERRED] is True

    service = spans[0]["resource"]["service.name"]
    counts = {(dict(labels)["http_route"], dict(labels)["http_response_status_code"]): value
              for (name, labels), value in samples.items()
              if name == "http_server_request_duration_seconds_count"}
    assert counts == {(OTHER_ROUTE, "4xx"): len(NOT_FOUND), ("/users/{id}", "2xx"): REQUESTS,
                      **{(word, "2xx"): 1 for word in words[:CAP - 1]},
                      (OTHER_ROUTE, "2xx"): len(words) - CAP + 1}
    series = {tuple(label for label in labels if label[0] != "le")
              for name, labels in samples if name.startswith("http_server_request")}
    assert len(series) == len(counts) == CAP + 2
    assert samples["gotrace_inferred_routes_overflow_total",
                   (("service_name", service),)] == folded
    assert f"inferred routes per service: {service} {CAP} ({folded} spans as {OTHER_ROUTE})" \
        in err
