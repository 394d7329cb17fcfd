"""`gotrace report`: statistics on hand-made spans, the page in headless Chromium, the CLI."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tracing import REPO

from gotrace.errors import GotraceError
from gotrace.export import JsonlExporter
from gotrace.report import analyze, load_capture, write_report
from gotrace.report.charts import service_colours
from gotrace.report.dependencies import Node, dependency_graph
from gotrace.report.graph import dependency_graph_svg
from gotrace.report.layout import layered_layout
from gotrace.report.page import CONTENT_SECURITY_POLICY, render
from gotrace.report.spaninfo import Route
from gotrace.report.stats import bucket_counts, bucket_edges, percentile, route_stats
from gotrace.report.traces import slowest_traces, span_tree
from gotrace.spans import Resource, Span

BASE_NS = 1_700_000_000_000_000_000
MS = 1_000_000


# --- hand-made spans --------------------------------------------------------------------------

def make_span(service: str, kind: str, start_ns: int, end_ns: int, *, trace: int = 1,
              span: int = 1, parent: int | None = None, name: str = "op",
              status: str = "UNSET", attrs: dict[str, Any] | None = None) -> Span:
    return Span(
        trace_id=trace.to_bytes(16, "big"), span_id=span.to_bytes(8, "big"),
        parent_span_id=None if parent is None else parent.to_bytes(8, "big"),
        name=name, kind=kind, start_time_unix_nano=BASE_NS + start_ns,  # type: ignore[arg-type]
        end_time_unix_nano=BASE_NS + end_ns, status=status,  # type: ignore[arg-type]
        resource=Resource({"service.name": service, "process.pid": 4242}),
        own_attributes=attrs or {})


def http(method: str, path: str, code: int, route: str | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {"http.request.method": method, "url.path": path,
                             "http.response.status_code": code}
    if route:
        attrs["http.route"] = route
    return attrs


def grpc(service: str, method: str, code: int) -> dict[str, Any]:
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method,
            "rpc.grpc.status_code": code}


def peer(address: str, port: int) -> dict[str, Any]:
    return {"server.address": address, "server.port": port}


# --- statistics -------------------------------------------------------------------------------

def test_percentiles_are_nearest_rank():
    hundred = list(range(1, 101))
    assert [percentile(hundred, p) for p in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert [percentile([10, 20, 30, 40], p) for p in (25, 50, 95, 99)] == [10, 20, 40, 40]
    assert percentile([7], 50) == percentile([7], 99) == 7
    thousand = list(range(1000))  # rank 990 exactly: no float rounding up to 991
    assert percentile(thousand, 99) == 989


def test_route_rows_count_percentiles_and_errors():
    spans = [
        # http.route known: method + route; a 503 is an error even with status UNSET.
        *(make_span("api", "SERVER", 0, ms * MS, span=ms,
                    attrs=http("GET", f"/users/{ms}", 503 if ms == 3 else 200, "/users/{id}"))
          for ms in (4, 1, 3, 2)),
        make_span("api", "SERVER", 0, 5 * MS, span=5, attrs=http("GET", "/users/9", 404,
                                                                 "/users/{id}")),
        # No http.route: the method alone, as in the span name (a path is no route).
        make_span("api", "SERVER", 0, 7 * MS, span=6, attrs=http("POST", "/raw", 200)),
        # A client's 5xx is an error only when the tracer said so.
        make_span("api", "CLIENT", 0, 2 * MS, span=7, status="ERROR",
                  attrs=http("GET", "/x", 404)),
        make_span("api", "CLIENT", 0, 6 * MS, span=8, attrs=http("GET", "/x", 503)),
        make_span("api", "SERVER", 0, 9 * MS, span=9, status="ERROR",
                  attrs=grpc("pkg.Store", "Get", 13)),
        make_span("worker", "INTERNAL", 0, 1 * MS, span=10, name="tick"),
    ]
    rows = route_stats(spans, bucket_edges(s.duration_ns for s in spans))
    got = [(r.service, r.kind, r.route, r.summary.count, r.summary.errors,
            r.summary.p50_ns // MS, r.summary.p95_ns // MS, r.summary.p99_ns // MS)
           for r in rows]
    assert got == [
        ("api", "SERVER", Route("grpc", "pkg.Store/Get"), 1, 1, 9, 9, 9),
        ("api", "SERVER", Route("http", "GET /users/{id}"), 5, 1, 3, 5, 5),
        ("api", "SERVER", Route("http", "POST"), 1, 0, 7, 7, 7),
        ("api", "CLIENT", Route("http", "GET"), 2, 1, 2, 6, 6),
        ("worker", "INTERNAL", Route("", "tick"), 1, 0, 1, 1, 1),
    ]
    users = rows[1]
    assert users.summary.error_rate == pytest.approx(0.2)
    assert sum(users.histogram) == 5


def test_bucket_edges_are_one_two_five_and_cover_every_duration():
    edges = bucket_edges([1500, 23 * MS])
    assert edges[:4] == [1000, 2000, 5000, 10_000]
    assert edges[-2:] == [20 * MS, 50 * MS]
    assert bucket_counts([0, 1500, 2000, 4999, 23 * MS], edges) == \
        [2, 2] + [0] * (len(edges) - 4) + [1]
    assert bucket_edges([0]) == [1, 2]
    assert bucket_edges([10**15 - 1]) == [5 * 10**14, 10**15]


def test_dependency_edges_follow_server_children_and_name_external_peers():
    spans = [
        # trace 1: front -> back twice (one failing), and front -> an untraced database.
        make_span("front", "SERVER", 0, 50 * MS, trace=1, span=1),
        make_span("front", "CLIENT", 1 * MS, 11 * MS, trace=1, span=2, parent=1),
        make_span("back", "SERVER", 2 * MS, 10 * MS, trace=1, span=3, parent=2),
        make_span("front", "CLIENT", 12 * MS, 42 * MS, trace=1, span=4, parent=1,
                  status="ERROR"),
        make_span("back", "SERVER", 13 * MS, 40 * MS, trace=1, span=5, parent=4),
        make_span("front", "CLIENT", 43 * MS, 45 * MS, trace=1, span=6, parent=1,
                  attrs=peer("db.internal", 5432)),
        # trace 2: a SERVER whose parent id matches a client of trace 3 is not its callee.
        make_span("back", "SERVER", 0, 1 * MS, trace=2, span=8, parent=7),
        make_span("front", "CLIENT", 0, 3 * MS, trace=3, span=7, attrs=peer("::1", 8080)),
        # back calling itself; a client without any address.
        make_span("back", "CLIENT", 0, 4 * MS, trace=4, span=9),
        make_span("back", "SERVER", 1 * MS, 3 * MS, trace=4, span=10, parent=9),
        make_span("lonely", "CLIENT", 0, 1 * MS, trace=5, span=11),
    ]
    nodes, edges = dependency_graph(spans)
    assert nodes == [Node("[::1]:8080", True), Node("back"), Node("db.internal:5432", True),
                     Node("front"), Node("lonely"), Node("unknown", True)]
    got = {(e.source.name, e.target.name): (e.summary.count, e.summary.errors,
                                            e.summary.p50_ns // MS, e.summary.p99_ns // MS)
           for e in edges}
    assert got == {
        ("front", "back"): (2, 1, 10, 30),
        ("front", "db.internal:5432"): (1, 0, 2, 2),
        ("front", "[::1]:8080"): (1, 0, 3, 3),
        ("back", "back"): (1, 0, 4, 4),
        ("lonely", "unknown"): (1, 0, 1, 1),
    }


def test_untraced_databases_are_nodes_named_by_their_system():
    spans = [
        make_span("api", "SERVER", 0, 20 * MS, span=1),
        make_span("api", "CLIENT", 1 * MS, 3 * MS, span=2, parent=1,
                  attrs={"db.system.name": "postgresql", **peer("127.0.0.1", 5432)}),
        make_span("api", "CLIENT", 4 * MS, 5 * MS, span=3, parent=1,
                  attrs={"db.system.name": "postgresql", **peer("127.0.0.1", 5432)}),
        make_span("api", "CLIENT", 6 * MS, 7 * MS, span=4, parent=1,
                  attrs={"db.system.name": "sqlite"}),  # in the process: no address
        make_span("api", "CLIENT", 8 * MS, 9 * MS, span=5, parent=1,
                  attrs={"db.system.name": "redis", **peer("::1", 6379)}),
    ]
    nodes, edges = dependency_graph(spans)
    assert nodes == [Node("api"), Node("postgresql at 127.0.0.1:5432", True),
                     Node("redis at [::1]:6379", True), Node("sqlite", True)]
    assert {e.target.name: e.summary.count for e in edges} == {
        "postgresql at 127.0.0.1:5432": 2, "redis at [::1]:6379": 1, "sqlite": 1}


def test_graph_svg_draws_loops_and_cycles_without_covering_anything():
    calls = [("self", "self"), ("a", "b"), ("b", "a"),
             # x and u both call y and v: two edges cross, their labels fall on one spot.
             ("x", "y"), ("x", "v"), ("u", "y"), ("u", "v")]
    spans = []
    for trace, (caller, callee) in enumerate(calls):
        spans.append(make_span(caller, "CLIENT", 0, 5 * MS, trace=trace, span=1))
        spans.append(make_span(callee, "SERVER", 1, 4 * MS, trace=trace, span=2, parent=1))
    spans += [make_span("a", "CLIENT", 0, 7 * MS, trace=99, span=i, attrs=peer(f"db{i}", 1))
              for i in range(3)]
    nodes, edges = dependency_graph(spans)
    svg = dependency_graph_svg(nodes, edges, service_colours([n.name for n in nodes]))
    assert svg.count('<g class="edge"') == len(edges) == len(calls) + 3
    assert 'data-from="self" data-to="self"' in svg
    number = r'"(-?[\d.]+)"'
    rect = re.compile(rf'<rect (?:class="edge-label-plate" )?x={number} y={number} '
                      rf'width={number} height={number}')
    boxes = [tuple(map(float, found)) for found in rect.findall(svg)]
    assert len(boxes) == len(nodes) + len(edges)
    for i, (x, y, w, h) in enumerate(boxes):
        assert x >= 0 and y >= 0
        for ox, oy, ow, oh in boxes[i + 1:]:
            assert not (x < ox + ow and ox < x + w and y < oy + oh and oy < y + h)


def test_layered_layout_puts_callees_right_of_callers_and_survives_cycles():
    chain = layered_layout(["back", "front", "middle", "other"],
                           [("front", "middle"), ("middle", "back"), ("front", "back")])
    assert chain == {"front": (0, 0), "other": (0, 1), "middle": (1, 0), "back": (2, 0)}
    # a -> b -> c -> a entered at a (nobody calls x, x calls a), plus a self-call.
    cycle = layered_layout(["a", "b", "c", "x"],
                           [("x", "a"), ("a", "b"), ("b", "c"), ("c", "a"), ("b", "b")])
    assert cycle == {"x": (0, 0), "a": (1, 0), "b": (2, 0), "c": (3, 0)}
    # Barycentres: the callee of the second caller goes second.
    fan = layered_layout(["p", "q", "r", "s"], [("p", "s"), ("q", "r")])
    assert fan == {"p": (0, 0), "q": (0, 1), "s": (1, 0), "r": (1, 1)}


def test_slowest_traces_and_span_trees():
    spans = [
        make_span("a", "SERVER", 0, 10 * MS, trace=1, span=1),
        make_span("a", "SERVER", 0, 30 * MS, trace=2, span=2),
        make_span("a", "CLIENT", 5 * MS, 40 * MS, trace=2, span=3, parent=2),
        make_span("a", "SERVER", 0, 20 * MS, trace=3, span=4),
    ]
    slowest = slowest_traces(spans, 2)
    assert [(t.trace_id[-1], t.duration_ns // MS, len(t.rows)) for t in slowest] == \
        [(2, 40, 2), (3, 20, 1)]
    assert slowest[0].start_ns == BASE_NS

    tree = [
        make_span("a", "CLIENT", 3, 4, span=3, parent=2),
        make_span("a", "SERVER", 0, 9, span=1),
        make_span("a", "CLIENT", 1, 2, span=2, parent=1),
        make_span("a", "CLIENT", 5, 6, span=4, parent=1),
        make_span("a", "SERVER", 7, 8, span=5, parent=99),  # parent not captured: a root
        make_span("a", "CLIENT", 7, 8, span=6, parent=7),  # 6 and 7: a parent cycle
        make_span("a", "CLIENT", 7, 8, span=7, parent=6),
    ]
    rows = [(span.span_id[-1], depth) for span, depth in span_tree(tree)]
    assert rows == [(1, 0), (2, 1), (3, 2), (4, 1), (5, 0), (6, 0), (7, 1)]


# --- reading captures -------------------------------------------------------------------------

def test_capture_round_trips_what_the_jsonl_exporter_writes(tmp_path):
    spans = [
        make_span("front", "SERVER", 0, 5 * MS, span=1, attrs=http("GET", "/", 200, "/")),
        make_span("front", "CLIENT", 1, 4 * MS, span=2, parent=1, status="ERROR",
                  attrs={**grpc("a.B", "C", 14), **peer("b", 9)}),
    ]
    exporter = JsonlExporter(tmp_path / "spans.jsonl")
    exporter.export(spans)
    exporter.shutdown()
    assert load_capture(tmp_path / "spans.jsonl") == spans


GOOD_LINE = json.dumps({
    "trace_id": "ab" * 16, "span_id": "cd" * 8, "parent_span_id": None, "name": "GET /",
    "kind": "SERVER", "start_time_unix_nano": 1, "end_time_unix_nano": 2, "status": "UNSET",
    "attributes": {}, "resource": {"service.name": "s"}})


@pytest.mark.parametrize(("second_line", "reason"), [
    ("{not json", "not JSON"),
    ("[" * 100_000, "JSON nested too deeply"),
    ("[1, 2]", "expected a JSON object"),
    (GOOD_LINE.replace('"kind": "SERVER", ', ""), "no kind"),
    (GOOD_LINE.replace('"SERVER"', '"PRODUCER"'), "kind 'PRODUCER' is not one of"),
    (GOOD_LINE.replace("ab" * 16, "zz" * 16), "trace_id is not 32 hex digits"),
    (GOOD_LINE.replace('"cd' + "cd" * 7, '"cd' + "cd" * 6), "span_id is not 16 hex digits"),
    (GOOD_LINE.replace('"end_time_unix_nano": 2', '"end_time_unix_nano": 2.5'),
     "end_time_unix_nano is not a JSON integer"),
    (GOOD_LINE.replace('"start_time_unix_nano": 1', '"start_time_unix_nano": true'),
     "start_time_unix_nano is not a JSON integer"),
    (GOOD_LINE.replace('"start_time_unix_nano": 1', '"start_time_unix_nano": 3'),
     "end_time_unix_nano is before start_time_unix_nano"),
    (GOOD_LINE.replace('"attributes": {}', '"attributes": []'), "attributes is not a JSON object"),
])
def test_malformed_line_is_named_by_number(tmp_path, second_line, reason):
    capture = tmp_path / "bad.jsonl"
    capture.write_text(f"{GOOD_LINE}\n{second_line}\n{GOOD_LINE}\n")
    with pytest.raises(GotraceError, match=re.escape(f"{capture}:2: ")) as error:
        load_capture(capture)
    assert reason in str(error.value)


def test_unreadable_captures(tmp_path):
    cases = {tmp_path / "missing.jsonl": "cannot read capture",
             tmp_path: "cannot read capture"}
    (tmp_path / "empty.jsonl").write_text("\n\n")
    cases[tmp_path / "empty.jsonl"] = "no spans in the capture"
    (tmp_path / "binary.jsonl").write_bytes(GOOD_LINE.encode() + b"\n\xff\xfe\n")
    cases[tmp_path / "binary.jsonl"] = "binary.jsonl:2: not UTF-8 text"
    for path, message in cases.items():
        with pytest.raises(GotraceError, match=re.escape(message)):
            load_capture(path)
    with pytest.raises(GotraceError, match="no spans to report on"):
        write_report([], tmp_path / "out.html")
    (tmp_path / "c.html").write_text(GOOD_LINE)
    with pytest.raises(GotraceError, match="would overwrite the capture"):
        write_report(tmp_path / "c.html", tmp_path / "c.html")


def test_span_text_is_escaped():
    evil = '<img src=x onerror="alert(1)">'
    page = render(analyze([make_span(evil, "SERVER", 0, MS, name=evil,
                                     attrs=http("GET", f"/{evil}", 200))], source=evil))
    assert "<img" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


# --- the page in Chromium ---------------------------------------------------------------------

SLOW = {7: 40, 19: 30, 33: 20}  # trace number -> how many times slower than usual
FAILING = {3, 11, 19, 27, 35}
TRACES = 40
EVIL_PATH = "/<script>alert(1)</script>"


def chain_trace(number: int) -> list[dict[str, Any]]:
    """front (HTTP) -> middle (gRPC) -> back (HTTP), and front -> an untraced payments API.

    Times in µs from the trace's start, stretched by the trace's slowness; the failing ones
    fail at the back and the error travels up to the front.
    """
    scale = SLOW.get(number, 1 + number % 5 / 10)
    failed = number in FAILING

    def record(span: int, parent: int | None, service: str, kind: str, name: str,
               start_us: float, end_us: float, attrs: dict[str, Any],
               error: bool = failed) -> dict[str, Any]:
        origin = BASE_NS + number * 100 * MS
        return {
            "trace_id": f"{number:032x}", "span_id": f"{number:08x}{span:08x}",
            "parent_span_id": None if parent is None else f"{number:08x}{parent:08x}",
            "name": name, "kind": kind,
            "start_time_unix_nano": origin + int(start_us * 1000),
            "end_time_unix_nano": origin + int(end_us * 1000),
            "status": "ERROR" if error else "UNSET", "attributes": attrs,
            "resource": {"service.name": service, "process.pid": 1000 + len(service)},
        }

    return [
        record(1, None, "front", "SERVER", "GET /checkout/{cart}", 0, 1000 * scale,
               http("GET", f"/checkout/{number}", 500 if failed else 200, "/checkout/{cart}")),
        record(2, 1, "front", "CLIENT", "shop.Inventory/Reserve", 50, 50 + 600 * scale,
               {**grpc("shop.Inventory", "Reserve", 13 if failed else 0),
                **peer("middle.local", 9090)}),
        record(3, 2, "middle", "SERVER", "shop.Inventory/Reserve", 80, 80 + 550 * scale,
               grpc("shop.Inventory", "Reserve", 13 if failed else 0)),
        record(4, 3, "middle", "CLIENT", "POST", 100, 100 + 400 * scale,
               {**http("POST", "/stock/sku-1", 503 if failed else 200),
                **peer("back.local", 8080)}),
        record(5, 4, "back", "SERVER", "POST /stock/{sku}", 120, 120 + 360 * scale,
               http("POST", "/stock/sku-1", 503 if failed else 200, "/stock/{sku}")),
        record(6, 1, "front", "CLIENT", "POST", 100 + 600 * scale, 100 + 850 * scale,
               {**http("POST", "/charge", 200), **peer("payments.example", 443)},
               error=False),
    ]


@pytest.fixture
def chain_capture(tmp_path: Path) -> Path:
    records = [record for number in range(TRACES) for record in chain_trace(number)]
    evil = chain_trace(TRACES)[4]
    evil.update(parent_span_id=None, name='<img src=x onerror="alert(1)">',
                attributes=http("GET", EVIL_PATH, 200, EVIL_PATH), status="UNSET")
    path = tmp_path / "chain.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in [*records, evil]))
    return path


def chromium_dom(page: Path, profile: Path) -> str:
    """The DOM of a page after Chromium parsed, laid out and ran it."""
    browser = shutil.which("chromium")
    assert browser, "chromium is not installed (scripts/setup.sh installs it)"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,1200",
         f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "</html>" in result.stdout, result.stderr[-2000:]
    return result.stdout


# Run in a copy of the page without its Content-Security-Policy (which forbids any script):
# records what Chromium laid out, as JSON in <pre id="probe">.
LAYOUT_PROBE = """
const box = (e) => { const r = e.getBoundingClientRect();
                     return {x: r.left, y: r.top, w: r.width, h: r.height}; };
const all = (root, selector) => Array.from(root.querySelectorAll(selector));
const graph = document.getElementById("dependency-graph");
const probe = {
  scripts: all(document, "script").length,
  images: all(document, "img").length,
  graph: box(graph),
  nodes: all(graph, ".node").map((n) => ({
    name: n.dataset.name, external: n.dataset.external === "true",
    box: box(n.querySelector("rect")), text: n.querySelector("text").textContent})),
  edges: all(graph, ".edge").map((e) => ({
    from: e.dataset.from, to: e.dataset.to, count: Number(e.dataset.count),
    errors: Number(e.dataset.errors), path: box(e.querySelector("path")),
    label: e.querySelector(".edge-label").textContent})),
  routes: all(document, "tr.route-row").map((r) => ({
    service: r.dataset.service, kind: r.dataset.kind, route: r.dataset.route,
    count: Number(r.dataset.count), errors: Number(r.dataset.errors),
    buckets: all(r, "svg.histogram .bucket").map((b) => [Number(b.dataset.count), box(b).h])})),
  traces: all(document, "section.trace").map((t) => ({
    id: t.dataset.traceId, duration: Number(t.dataset.durationNs),
    rows: all(t, "svg.waterfall .span-row").map((r) => ({
      service: r.dataset.service, depth: Number(r.dataset.depth),
      error: r.classList.contains("error"), bar: box(r.querySelector(".span-bar")),
      fill: getComputedStyle(r.querySelector(".span-bar")).fill,
      label: box(r.querySelector(".span-label"))}))})),
};
const out = document.createElement("pre");
out.id = "probe";
out.textContent = JSON.stringify(probe);
document.body.append(out);
"""
ERROR_FILL = "rgb(214, 40, 40)"


def with_script(page: str, script: str) -> str:
    return page.replace("</body>", f"<script>{script}</script></body>")


def laid_out(page: str, tmp_path: Path) -> dict[str, Any]:
    """What the probe saw of `page` (its CSP removed) in Chromium."""
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert policy and html.unescape(policy[1]) == CONTENT_SECURITY_POLICY
    copy = tmp_path / "probed.html"
    copy.write_text(with_script(page.replace(policy[0], ""), LAYOUT_PROBE))
    dom = chromium_dom(copy, tmp_path / "profile")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(html.unescape(found[1]))


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and \
        a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


def inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return outer["x"] - 0.5 <= inner["x"] and inner["x"] + inner["w"] <= outer["x"] + outer["w"] \
        + 0.5 and outer["y"] - 0.5 <= inner["y"] and inner["y"] + inner["h"] <= outer["y"] \
        + outer["h"] + 0.5


def test_report_is_self_contained_and_scripts_cannot_run(chain_capture, tmp_path):
    out = write_report(chain_capture, tmp_path / "report.html")
    page = out.read_text()
    assert not re.search(r"https?://", page)
    assert not re.search(r"<(script|link|img|iframe|object)\b|@import|url\((?!#)", page)
    # The policy is in force: a script slipped into the page does not run.
    canary = tmp_path / "canary.html"
    canary.write_text(with_script(page, "document.body.dataset.ran = 'yes';"))
    dom = chromium_dom(canary, tmp_path / "profile")
    assert "data-ran" not in dom
    assert dom.count('<g class="node') == 4
    assert dom.count('class="span-bar"') == 10 * 6
    assert len(re.findall(r'<svg class="histogram"', dom)) == 7


def test_report_renders_in_chromium(chain_capture, tmp_path):
    page = write_report(chain_capture, tmp_path / "report.html").read_text()
    probe = laid_out(page, tmp_path)
    assert probe["scripts"] == 1 and probe["images"] == 0  # only the probe; nothing injected

    # Routes: per service and kind, counts and errors; histograms drawn to scale.
    routes = {(r["service"], r["kind"], r["route"]): (r["count"], r["errors"])
              for r in probe["routes"]}
    failures = len(FAILING)
    assert routes == {
        ("front", "SERVER", "GET /checkout/{cart}"): (TRACES, failures),
        ("front", "CLIENT", "shop.Inventory/Reserve"): (TRACES, failures),
        ("front", "CLIENT", "POST"): (TRACES, 0),
        ("middle", "SERVER", "shop.Inventory/Reserve"): (TRACES, failures),
        ("middle", "CLIENT", "POST"): (TRACES, failures),
        ("back", "SERVER", "POST /stock/{sku}"): (TRACES, failures),
        ("back", "SERVER", f"GET {EVIL_PATH}"): (1, 0),
    }
    for route in probe["routes"]:
        buckets = route["buckets"]
        assert sum(count for count, _ in buckets) == route["count"]
        tallest = max(height for _, height in buckets)
        assert tallest > 10
        for count, height in buckets:
            assert (height > 0) == (count > 0)
            assert (height == tallest) == (count == max(c for c, _ in buckets))

    # The dependency graph: four boxes, apart, callers left of callees, three labelled edges.
    nodes = {n["name"]: n for n in probe["nodes"]}
    assert {name: n["external"] for name, n in nodes.items()} == {
        "front": False, "middle": False, "back": False, "payments.example:443": True}
    boxes = [n["box"] for n in probe["nodes"]]
    for i, node_box in enumerate(boxes):
        assert node_box["w"] > 50 and node_box["h"] > 20 and inside(node_box, probe["graph"])
        assert not any(overlap(node_box, other) for other in boxes[i + 1:])
    assert nodes["front"]["box"]["x"] < nodes["middle"]["box"]["x"] < nodes["back"]["box"]["x"]
    assert nodes["front"]["box"]["x"] < nodes["payments.example:443"]["box"]["x"]
    edges = {(e["from"], e["to"]): (e["count"], e["errors"]) for e in probe["edges"]}
    assert edges == {("front", "middle"): (TRACES, failures),
                     ("middle", "back"): (TRACES, failures),
                     ("front", "payments.example:443"): (TRACES, 0)}
    for edge in probe["edges"]:
        assert edge["path"]["w"] > 20 and inside(edge["path"], probe["graph"])
        assert f"{TRACES} calls" in edge["label"] and "p50" in edge["label"]

    # The ten slowest traces, slowest first, each a waterfall of its six spans.
    traces = probe["traces"]
    assert [int(t["id"], 16) for t in traces[:3]] == list(SLOW)
    assert len(traces) == 10
    assert [t["duration"] for t in traces] == sorted((t["duration"] for t in traces),
                                                     reverse=True)
    for trace in traces:
        rows = trace["rows"]
        assert [r["depth"] for r in rows] == [0, 1, 2, 3, 4, 1]
        assert [r["service"] for r in rows] == ["front", "front", "middle", "middle", "back",
                                                "front"]
        failed = int(trace["id"], 16) in FAILING
        assert [r["error"] for r in rows] == [failed] * 5 + [False]
        assert [r["fill"] == ERROR_FILL for r in rows] == [r["error"] for r in rows]
        root = rows[0]["bar"]
        assert root["w"] > 400
        parents = {0: root}
        for row in rows[1:]:
            bar, parent = row["bar"], parents[row["depth"] - 1]
            assert parent["x"] - 0.5 <= bar["x"] and bar["x"] + bar["w"] <= \
                parent["x"] + parent["w"] + 0.5
            assert bar["w"] < parent["w"]
            parents[row["depth"]] = bar
        labels = [r["label"]["x"] for r in rows[:5]]
        assert labels == sorted(labels) and len(set(labels)) == 5  # indented by depth
    slowest = traces[0]["rows"]
    assert slowest[5]["bar"]["x"] > slowest[1]["bar"]["x"] + slowest[1]["bar"]["w"] - 0.5


# --- the command line -------------------------------------------------------------------------

def run_report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gotrace", "report", *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def test_cli_bad_captures_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(GOOD_LINE + "\n{\n")
    for capture, expect in ((tmp_path / "missing.jsonl", "cannot read capture"),
                            (bad, f"{bad}:2: not JSON")):
        result = run_report(str(capture))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("gotrace: "), result.stderr
        assert expect in lines[0]
        assert not (tmp_path / f"{capture.stem}.html").exists()


def test_cli_writes_the_report(chain_capture, tmp_path):
    result = run_report(str(chain_capture))
    assert result.returncode == 0, result.stderr
    default = chain_capture.with_suffix(".html")
    assert str(default) in result.stdout
    assert 'id="dependency-graph"' in default.read_text()
    chosen = tmp_path / "chosen.html"
    result = run_report(str(chain_capture), "-o", str(chosen), "--slowest", "3")
    assert result.returncode == 0, result.stderr
    assert chosen.read_text().count('<section class="trace"') == 3
