"""The HTML document: one file with its style inline, no script and nothing fetched.

The Content-Security-Policy makes "nothing fetched" a property the browser enforces rather
than a promise: should a span's text ever get past escaping, it still could neither load
nor run anything.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gotrace.report.analysis import Report
from gotrace.report.charts import (
    ERROR_COLOUR,
    histogram,
    histogram_axis,
    service_colours,
    waterfall,
)
from gotrace.report.graph import dependency_graph_svg
from gotrace.report.markup import Markup, element, format_duration, void_element
from gotrace.report.spaninfo import is_error, service_of
from gotrace.report.stats import RouteStats

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"

_CSS = f"""
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px 32px; color: #1f2328; }}
h1 {{ margin-bottom: 4px; }}
h2 {{ margin-top: 36px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }}
code {{ font: 12px ui-monospace, monospace; }}
svg {{ max-width: 100%; height: auto; }}
.note {{ color: #57606a; }}
.swatch {{ display: inline-block; width: 11px; height: 11px; border-radius: 2px;
          margin-right: 8px; }}
table.routes {{ border-collapse: collapse; margin-bottom: 24px; }}
table.routes th, table.routes td {{ padding: 3px 10px; border-bottom: 1px solid #eaeef2;
                                    text-align: left; vertical-align: bottom;
                                    white-space: nowrap; }}
table.routes td.number {{ text-align: right; font-variant-numeric: tabular-nums; }}
table.routes td.bad {{ color: {ERROR_COLOUR}; font-weight: 600; }}
.histogram .bucket {{ fill: #3b6ea5; }}
.histogram .baseline, .histogram-axis line {{ stroke: #8c959f; }}
.histogram-axis {{ display: block; margin-top: 2px; }}
.histogram-axis text {{ font-size: 9px; font-weight: normal; fill: #57606a; }}
#dependency-graph .node rect {{ fill: #fff; stroke-width: 2; }}
#dependency-graph .node.external rect {{ fill: #f6f8fa; stroke: #8c959f;
                                         stroke-dasharray: 5 3; }}
#dependency-graph .node text {{ font-size: 13px; }}
#dependency-graph .edge path {{ fill: none; stroke: #57606a; stroke-width: 1.5; }}
#dependency-graph .edge.has-errors path {{ stroke: {ERROR_COLOUR}; }}
#dependency-graph .edge-label {{ font-size: 11px; fill: #24292f; }}
#dependency-graph .edge-label-plate {{ fill: #fff; opacity: 0.85; }}
#dependency-graph path.arrow {{ fill: #57606a; }}
#dependency-graph path.arrow-error {{ fill: {ERROR_COLOUR}; }}
section.trace {{ margin-bottom: 28px; }}
section.trace h3 {{ margin-bottom: 2px; }}
.waterfall text {{ font-size: 12px; fill: #1f2328; }}
.waterfall .span-row.error .span-label {{ fill: {ERROR_COLOUR}; font-weight: 600; }}
.waterfall .span-duration {{ fill: #57606a; }}
.waterfall .time-scale line {{ stroke: #eaeef2; }}
.waterfall .time-scale text {{ font-size: 10px; fill: #57606a; }}
"""


def render(report: Report) -> str:
    colours = service_colours(report.services)
    head = element(
        "head", None,
        void_element("meta", {"charset": "utf-8"}),
        void_element("meta", {"http-equiv": "Content-Security-Policy",
                              "content": CONTENT_SECURITY_POLICY}),
        void_element("meta", {"name": "viewport", "content": "width=device-width"}),
        element("title", None, f"gotrace report: {report.source}"),
        element("style", None, Markup(_CSS)),
    )
    body = element("body", None, _summary(report), _routes(report, colours),
                   _dependencies(report, colours), _slowest(report, colours))
    return f"<!DOCTYPE html>\n{element('html', {'lang': 'en'}, head, body)}\n"


def _summary(report: Report) -> Markup:
    start = datetime.fromtimestamp(report.start_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return element(
        "header", {"id": "summary", "data-spans": report.span_count,
                   "data-traces": report.trace_count, "data-services": len(report.services)},
        element("h1", None, "gotrace report"),
        element("p", None, f"{report.span_count} spans in {report.trace_count} traces from "
                f"{len(report.services)} services, captured from {start} over "
                f"{format_duration(report.end_ns - report.start_ns)}."),
        element("p", {"class": "note"}, "Capture: ", element("code", None, report.source)),
    )


def _swatch(colour: str) -> Markup:
    return element("span", {"class": "swatch", "style": f"background: {colour}"})


def _routes(report: Report, colours: dict[str, str]) -> Markup:
    header = element("tr", None, *(element("th", None, title) for title in (
        "Kind", "Protocol", "Route", "Count", "P50", "P95", "P99", "Errors", "Error rate")),
        element("th", None, "Latency (log scale)", histogram_axis(report.bucket_edges)))
    tables = []
    for service in report.services:
        rows = [_route_row(row, report.bucket_edges)
                for row in report.routes if row.service == service]
        tables.append(element("h3", None, _swatch(colours[service]), service))
        tables.append(element("table", {"class": "routes", "data-service": service},
                              element("thead", None, header), element("tbody", None, *rows)))
    return element(
        "section", {"id": "routes"}, element("h2", None, "Routes"),
        element("p", {"class": "note"}, "Latency percentiles are nearest-rank. Errors: spans "
                "with status ERROR, and HTTP server spans answering 5xx."),
        *tables)


def _route_row(row: RouteStats, edges: list[int]) -> Markup:
    summary = row.summary
    latency = (str(summary.count), *(format_duration(ns) for ns in
                                     (summary.p50_ns, summary.p95_ns, summary.p99_ns)))
    failures = (str(summary.errors), f"{summary.error_rate:.1%}")
    bad = "number bad" if summary.errors else "number"
    cells = [*(element("td", {"class": "number"}, text) for text in latency),
             *(element("td", {"class": bad}, text) for text in failures)]
    return element(
        "tr", {"class": "route-row", "data-service": row.service, "data-kind": row.kind,
               "data-protocol": row.route.protocol, "data-route": row.route.name,
               "data-count": summary.count, "data-errors": summary.errors,
               "data-p50-ns": summary.p50_ns, "data-p95-ns": summary.p95_ns,
               "data-p99-ns": summary.p99_ns},
        element("td", None, row.kind), element("td", None, row.route.protocol or "—"),
        element("td", None, element("code", None, row.route.name)),
        *cells, element("td", None, histogram(row, edges)))


def _dependencies(report: Report, colours: dict[str, str]) -> Markup:
    note = ("Each arrow: calls from a service's CLIENT spans to the service whose SERVER span "
            "answered them; dashed boxes are addresses that were called but not traced.")
    return element("section", {"id": "dependencies"},
                   element("h2", None, "Service dependencies"),
                   element("p", {"class": "note"}, note),
                   dependency_graph_svg(report.nodes, report.edges, colours))


def _slowest(report: Report, colours: dict[str, str]) -> Markup:
    traces = []
    for trace in report.slowest:
        root = trace.rows[0][0]
        errors = sum(is_error(span) for span, _ in trace.rows)
        traces.append(element(
            "section", {"class": "trace", "data-trace-id": trace.trace_id.hex(),
                        "data-duration-ns": trace.duration_ns,
                        "data-span-count": len(trace.rows)},
            element("h3", None, f"{service_of(root)} · {root.name} · "
                    f"{format_duration(trace.duration_ns)}"),
            element("p", {"class": "note"}, f"{len(trace.rows)} spans, {errors} failed, trace ",
                    element("code", None, trace.trace_id.hex())),
            waterfall(trace, colours)))
    title = f"Slowest {len(report.slowest)} of {report.trace_count} traces"
    return element("section", {"id": "slowest-traces"}, element("h2", None, title),
                   element("p", {"class": "note"}, "Red bars and labels: failed spans."),
                   *traces)
