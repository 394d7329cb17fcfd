"""SVG charts: latency histograms and trace waterfalls, drawn in Python (the page runs no
script)."""

from __future__ import annotations

from collections.abc import Sequence

from gotrace.facts.slowdown import slowdown
from gotrace.report.markup import Markup, element, format_duration, truncate
from gotrace.report.spaninfo import is_error, service_of
from gotrace.report.stats import RouteStats
from gotrace.report.traces import TraceView

# Colours told apart by most readers; services take them in name order, round robin.
PALETTE = ("#3b6ea5", "#4f9d69", "#8c6bb1", "#d08c2f", "#2a9d8f", "#a0522d", "#6b7f99",
           "#c2577a")
ERROR_COLOUR = "#d62828"

BUCKET_WIDTH = 12
HISTOGRAM_HEIGHT = 32
AXIS_HEIGHT = 14
AXIS_OVERHANG = 40  # room for the last tick's label past the last bucket

WATERFALL_WIDTH = 980
LABEL_WIDTH = 360
BAR_X = LABEL_WIDTH + 10
BAR_WIDTH = 480
ROW_HEIGHT = 22
INDENT = 14
CHAR_WIDTH = 6.6  # average advance of the 12px sans-serif labels, for truncation
SCALE_HEIGHT = 18
SCALE_TICKS = 4


def service_colours(services: Sequence[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(services))}


def histogram(row: RouteStats, edges: Sequence[int]) -> Markup:
    """One bar per bucket, heights relative to the fullest bucket of this route."""
    tallest = max(row.histogram)
    bars = []
    for i, count in enumerate(row.histogram):
        height = (HISTOGRAM_HEIGHT - 2) * count / tallest
        label = f"{format_duration(edges[i])} to {format_duration(edges[i + 1])}: {count}"
        bars.append(element("rect", {
            "class": "bucket", "x": i * BUCKET_WIDTH + 1, "y": HISTOGRAM_HEIGHT - height,
            "width": BUCKET_WIDTH - 2, "height": height, "data-count": count,
            "data-low-ns": edges[i], "data-high-ns": edges[i + 1],
        }, element("title", None, label)))
    width = len(row.histogram) * BUCKET_WIDTH
    return element("svg", {
        "class": "histogram", "width": width, "height": HISTOGRAM_HEIGHT,
        "viewBox": f"0 0 {width} {HISTOGRAM_HEIGHT}", "role": "img",
        "aria-label": f"latency histogram of {row.route.name}",
        "data-service": row.service, "data-kind": row.kind, "data-route": row.route.name,
        "data-count": row.summary.count,
    }, *bars, element("line", {"class": "baseline", "x1": 0, "y1": HISTOGRAM_HEIGHT - 0.5,
                               "x2": width, "y2": HISTOGRAM_HEIGHT - 0.5}))


def histogram_axis(edges: Sequence[int]) -> Markup:
    """The shared x axis of every histogram: a tick and a label at each power of ten."""
    ticks = []
    for i, edge in enumerate(edges):
        if str(edge).rstrip("0") == "1":
            x = i * BUCKET_WIDTH
            ticks.append(element("line", {"x1": x, "y1": 0, "x2": x, "y2": 4}))
            ticks.append(element("text", {"x": x + 2, "y": AXIS_HEIGHT - 2},
                                 format_duration(edge)))
    width = (len(edges) - 1) * BUCKET_WIDTH + AXIS_OVERHANG
    return element("svg", {"class": "histogram-axis", "width": width, "height": AXIS_HEIGHT,
                           "viewBox": f"0 0 {width} {AXIS_HEIGHT}", "aria-hidden": True},
                   *ticks)


def waterfall(trace: TraceView, colours: dict[str, str]) -> Markup:
    """Each span a bar placed on the trace's time scale, its label indented by depth."""
    scale = BAR_WIDTH / max(trace.duration_ns, 1)
    rows = [_waterfall_scale(trace.duration_ns)]
    for index, (span, depth) in enumerate(trace.rows):
        y = SCALE_HEIGHT + index * ROW_HEIGHT
        service = service_of(span)
        failed = is_error(span)
        offset = span.start_time_unix_nano - trace.start_ns
        indent = depth * INDENT
        room = int((LABEL_WIDTH - indent - 4) / CHAR_WIDTH)
        note = slowdown(span)
        tooltip = (f"{service} · {span.kind} {span.name}\n{format_duration(span.duration_ns)}"
                   f" from +{format_duration(offset)} · status {span.status}"
                   + (f"\n{note}" if note else ""))
        classes = "span-row" + (" error" if failed else "") + (" slowed" if note else "")
        rows.append(element("g", {
            "class": classes, "data-span-id": span.span_id.hex(), "data-slowdown": note,
            "data-depth": depth, "data-service": service, "data-kind": span.kind,
        },
            element("title", None, tooltip),
            element("text", {"class": "span-label", "x": 4 + indent, "y": y + 15},
                    truncate(f"{service} · {span.name}", room)),
            element("rect", {
                "class": "span-bar", "x": BAR_X + offset * scale, "y": y + 4,
                "width": max(1.0, span.duration_ns * scale), "height": ROW_HEIGHT - 8,
                "fill": ERROR_COLOUR if failed else colours[service],
                "data-offset-ns": offset, "data-duration-ns": span.duration_ns,
            }),
            element("text", {"class": "span-duration", "x": BAR_X + BAR_WIDTH + 8, "y": y + 15},
                    format_duration(span.duration_ns) + (f" · {note}" if note else "")),
        ))
    height = SCALE_HEIGHT + len(trace.rows) * ROW_HEIGHT
    return element("svg", {"class": "waterfall", "width": WATERFALL_WIDTH, "height": height,
                           "viewBox": f"0 0 {WATERFALL_WIDTH} {height}", "role": "img",
                           "aria-label": f"waterfall of trace {trace.trace_id.hex()}",
                           "data-span-count": len(trace.rows)}, *rows)


def _waterfall_scale(duration_ns: int) -> Markup:
    """Time ticks across the bar area, from the trace's start to its end."""
    marks = []
    for tick in range(SCALE_TICKS + 1):
        x = BAR_X + BAR_WIDTH * tick / SCALE_TICKS
        anchor = "end" if tick == SCALE_TICKS else "start" if tick == 0 else "middle"
        marks.append(element("line", {"x1": x, "y1": SCALE_HEIGHT - 4, "x2": x, "y2": "100%"}))
        marks.append(element("text", {"x": x, "y": SCALE_HEIGHT - 6, "text-anchor": anchor},
                             format_duration(duration_ns * tick / SCALE_TICKS)))
    return element("g", {"class": "time-scale"}, *marks)
