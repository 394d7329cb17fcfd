"""The service dependency graph: who calls whom, how often and how fast.

A CLIENT span calls the service of every SERVER span that is its child (same trace, parent
span id = the client's span id). A call whose server was not traced goes to an external node
named after the address the client dialled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from gotrace.report.spaninfo import service_of
from gotrace.report.stats import LatencySummary, summarize
from gotrace.spans import Span


@dataclass(frozen=True, slots=True, order=True)
class Node:
    """A traced service (by service.name) or, external=True, an address nobody traced."""

    name: str
    external: bool = False


@dataclass(frozen=True, slots=True)
class Edge:
    source: Node
    target: Node
    summary: LatencySummary  # of the client spans: latency as the caller saw it


def external_node(client: Span) -> Node:
    """server.address:server.port of the call ("[::1]:80" for IPv6), "unknown" without one;
    a database's named by its system too ("postgresql at 127.0.0.1:5432"; "sqlite", in the
    process itself)."""
    attrs = client.attributes
    system = attrs.get("db.system.name")
    if system and not attrs.get("server.address"):
        return Node(str(system), external=True)
    address = str(attrs.get("server.address") or "unknown")
    if ":" in address:
        address = f"[{address}]"
    port = attrs.get("server.port")
    where = address if port is None else f"{address}:{port}"
    return Node(f"{system} at {where}" if system else where, external=True)


def dependency_graph(spans: Iterable[Span]) -> tuple[list[Node], list[Edge]]:
    """Every node (each traced service, called or not, and each external address) and every
    edge with the calls made along it, both sorted by name."""
    spans = list(spans)
    servers: dict[tuple[bytes, bytes], set[str]] = defaultdict(set)
    for span in spans:
        if span.kind == "SERVER" and span.parent_span_id is not None:
            servers[(span.trace_id, span.parent_span_id)].add(service_of(span))
    calls: dict[tuple[Node, Node], list[Span]] = defaultdict(list)
    for client in (span for span in spans if span.kind == "CLIENT"):
        source = Node(service_of(client))
        called = servers.get((client.trace_id, client.span_id))
        targets = sorted(Node(name) for name in called) if called else [external_node(client)]
        for target in targets:
            calls[(source, target)].append(client)
    nodes = {Node(service_of(span)) for span in spans}
    nodes.update(target for _, target in calls)
    edges = [Edge(source, target, summarize(group))
             for (source, target), group in sorted(calls.items())]
    return sorted(nodes), edges
