"""The dependency graph as SVG: services in layers from callers to callees, edges labelled
with their calls and latency."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gotrace.report.dependencies import Edge, Node
from gotrace.report.layout import layered_layout
from gotrace.report.markup import Markup, element, format_duration, truncate

NODE_HEIGHT = 40
NODE_MIN_WIDTH = 110
NODE_MAX_CHARS = 30
CHAR_WIDTH = 7.4  # average advance of the 13px node labels
LABEL_CHAR_WIDTH = 6.2  # and of the 11px edge labels, for the plate behind them
LABEL_LINE = 13
COLUMN_GAP = 190  # wide enough for an edge label between two layers
ROW_PITCH = 100
MARGIN = 24
BEND = 40  # how far a curved edge bows out of the straight line
LOOP = 44  # height of a self-call's loop
LOOP_ROOM = 80  # above each row when a service calls itself: the loop and its label


@dataclass(slots=True)
class _Rect:
    x: float  # left
    y: float  # top
    width: float
    height: float

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2

    def overlaps(self, other: _Rect) -> bool:
        return (self.x < other.x + other.width and other.x < self.x + self.width
                and self.y < other.y + other.height and other.y < self.y + self.height)

    def boundary_towards(self, px: float, py: float) -> tuple[float, float]:
        """Where the line from the centre to (px, py) leaves the rectangle."""
        cx, cy = self.centre
        dx, dy = px - cx, py - cy
        limits = [abs(half / d) for half, d in ((self.width / 2, dx), (self.height / 2, dy))
                  if d]
        t = min(limits, default=0.0)
        return cx + dx * t, cy + dy * t


@dataclass(slots=True)
class _EdgeShape:
    edge: Edge
    path: str
    lines: tuple[str, str]
    plate: _Rect  # the label's background, centred where the label goes


def dependency_graph_svg(nodes: Sequence[Node], edges: Sequence[Edge],
                         colours: dict[str, str]) -> Markup:
    place = layered_layout(nodes, [(edge.source, edge.target) for edge in edges])
    loops = any(edge.source == edge.target for edge in edges)
    boxes = _boxes(nodes, place, LOOP_ROOM if loops else 0)
    pairs = {(edge.source, edge.target) for edge in edges}
    shapes = []
    for edge in edges:
        layered = place[edge.target][0] > place[edge.source][0]
        # A straight line unless it would run into the reverse edge or back through nodes.
        bend = 0 if layered and (edge.target, edge.source) not in pairs else BEND
        shapes.append(_edge_shape(edge, boxes, bend))
    _spread_labels([shape.plate for shape in shapes], list(boxes.values()))
    extent = [*boxes.values(), *(shape.plate for shape in shapes)]
    width = max((r.x + r.width for r in extent), default=0) + MARGIN
    height = max((r.y + r.height for r in extent), default=0) + MARGIN
    defs = element("defs", None, *(
        element("marker", {"id": marker, "viewBox": "0 0 10 10", "refX": 10, "refY": 5,
                           "markerWidth": 7, "markerHeight": 7, "orient": "auto"},
                element("path", {"d": "M0,0L10,5L0,10z", "class": marker}))
        for marker in ("arrow", "arrow-error")))
    return element("svg", {"id": "dependency-graph", "width": width, "height": height,
                           "viewBox": f"0 0 {width:.0f} {height:.0f}", "role": "img",
                           "aria-label": "service dependency graph",
                           "data-nodes": len(nodes), "data-edges": len(edges)},
                   defs, *(_edge(shape) for shape in shapes),
                   *(_node(node, boxes[node], colours) for node in nodes))


def _label(node: Node) -> str:
    return truncate(node.name, NODE_MAX_CHARS)


def _boxes(nodes: Sequence[Node], place: dict[Node, tuple[int, int]],
           loop_room: float) -> dict[Node, _Rect]:
    layers = max((layer for layer, _ in place.values()), default=-1) + 1
    widths = {node: max(NODE_MIN_WIDTH, len(_label(node)) * CHAR_WIDTH + 28) for node in nodes}
    column_width = [max((widths[n] for n in nodes if place[n][0] == layer), default=0)
                    for layer in range(layers)]
    sizes = [sum(1 for layer, _ in place.values() if layer == i) for i in range(layers)]
    tallest = max(sizes, default=0)
    pitch = ROW_PITCH + loop_room
    boxes = {}
    for node in nodes:
        layer, index = place[node]
        left = MARGIN + sum(column_width[:layer]) + COLUMN_GAP * layer
        # Centre each node in its column and each column on the tallest one.
        x = left + (column_width[layer] - widths[node]) / 2
        y = MARGIN + loop_room + (index + (tallest - sizes[layer]) / 2) * pitch
        boxes[node] = _Rect(x, y, widths[node], NODE_HEIGHT)
    return boxes


def _node(node: Node, box: _Rect, colours: dict[str, str]) -> Markup:
    cx, cy = box.centre
    kind = "external address" if node.external else "service"
    return element(
        "g", {"class": "node external" if node.external else "node", "data-name": node.name,
              "data-external": node.external},
        element("title", None, f"{kind} {node.name}"),
        element("rect", {"x": box.x, "y": box.y, "width": box.width, "height": box.height,
                         "rx": 6, "stroke": None if node.external else colours[node.name]}),
        element("text", {"x": cx, "y": cy + 4.5, "text-anchor": "middle"}, _label(node)),
    )


def _edge_shape(edge: Edge, boxes: dict[Node, _Rect], bend: float) -> _EdgeShape:
    summary = edge.summary
    source, target = boxes[edge.source], boxes[edge.target]
    if edge.source == edge.target:
        path, (lx, ly) = _loop(source)
    else:
        path, (lx, ly) = _curve(source, target, bend)
    calls = f"{summary.count} call{'s' if summary.count != 1 else ''}"
    if summary.errors:
        calls += f", {summary.errors} failed"
    latency = f"p50 {format_duration(summary.p50_ns)} · p99 {format_duration(summary.p99_ns)}"
    width = max(len(calls), len(latency)) * LABEL_CHAR_WIDTH + 8
    height = 2 * LABEL_LINE + 4
    return _EdgeShape(edge, path, (calls, latency),
                      _Rect(lx - width / 2, ly - height / 2, width, height))


def _spread_labels(plates: list[_Rect], obstacles: list[_Rect]) -> None:
    """Move each label down until it covers neither a node nor an earlier label."""
    placed = list(obstacles)
    for plate in plates:
        while hit := next((other for other in placed if plate.overlaps(other)), None):
            plate.y = hit.y + hit.height + 2
        placed.append(plate)


def _edge(shape: _EdgeShape) -> Markup:
    edge, summary, plate = shape.edge, shape.edge.summary, shape.plate
    calls, latency = shape.lines
    lx, _ = plate.centre
    failed = summary.errors > 0
    return element(
        "g", {"class": "edge has-errors" if failed else "edge", "data-from": edge.source.name,
              "data-to": edge.target.name, "data-to-external": edge.target.external,
              "data-count": summary.count, "data-errors": summary.errors,
              "data-p50-ns": summary.p50_ns, "data-p99-ns": summary.p99_ns},
        element("title", None, f"{edge.source.name} → {edge.target.name}: {calls}, {latency}"),
        element("path", {"d": shape.path,
                         "marker-end": f"url(#{'arrow-error' if failed else 'arrow'})"}),
        # The plate keeps the line from running through the text.
        element("rect", {"class": "edge-label-plate", "x": plate.x, "y": plate.y,
                         "width": plate.width, "height": plate.height, "rx": 3}),
        element("text", {"class": "edge-label", "x": lx, "y": plate.y + LABEL_LINE,
                         "text-anchor": "middle"},
                element("tspan", {"x": lx}, calls),
                element("tspan", {"x": lx, "dy": LABEL_LINE}, latency)),
    )


def _curve(source: _Rect, target: _Rect, bend: float) -> tuple[str, tuple[float, float]]:
    """A quadratic curve bowed `bend` to the left of its direction (so A→B and B→A part),
    and the curve's midpoint for the label."""
    (sx, sy), (tx, ty) = source.centre, target.centre
    length = math.hypot(tx - sx, ty - sy) or 1.0
    qx = (sx + tx) / 2 + bend * (ty - sy) / length
    qy = (sy + ty) / 2 - bend * (tx - sx) / length
    x0, y0 = source.boundary_towards(qx, qy)
    x1, y1 = target.boundary_towards(qx, qy)
    middle = (0.25 * x0 + 0.5 * qx + 0.25 * x1, 0.25 * y0 + 0.5 * qy + 0.25 * y1)
    return f"M{x0:.1f},{y0:.1f} Q{qx:.1f},{qy:.1f} {x1:.1f},{y1:.1f}", middle


def _loop(box: _Rect) -> tuple[str, tuple[float, float]]:
    """A service calling itself: a loop over the top of its box, the label above it."""
    cx, _ = box.centre
    top = box.y
    path = (f"M{cx - 14:.1f},{top:.1f} C{cx - 44:.1f},{top - LOOP:.1f} "
            f"{cx + 44:.1f},{top - LOOP:.1f} {cx + 14:.1f},{top:.1f}")
    return path, (cx, top - LOOP - LABEL_LINE)
