"""What the report needs to know about one span: its service, its route, whether it failed."""

from __future__ import annotations

from typing import NamedTuple

from gotrace.spans import Span

UNKNOWN_SERVICE = "unknown_service"  # OpenTelemetry's name for a service that gave none


class Route(NamedTuple):
    """protocol: "http", the rpc.system ("grpc") or "" for anything else."""

    protocol: str
    name: str


def service_of(span: Span) -> str:
    return str(span.resource.attributes.get("service.name") or UNKNOWN_SERVICE)


def route_of(span: Span) -> Route:
    """The operation a span belongs to, coarse enough to aggregate.

    HTTP: the method and http.route (a router's template, or one --infer-routes made), as in
    the span name; without a route, the method alone: a path is not a route (one row per
    user id, hash or token would bury the rest).
    RPC: service/method. Anything else: the span name.
    """
    attrs = span.attributes
    if "rpc.system" in attrs:
        return Route(str(attrs["rpc.system"]),
                     f"{attrs.get('rpc.service', '')}/{attrs.get('rpc.method', '')}")
    if "http.request.method" in attrs:
        method = str(attrs["http.request.method"])
        route = attrs.get("http.route")
        return Route("http", f"{method} {route}" if route else method)
    return Route("", span.name)


def is_error(span: Span) -> bool:
    """ERROR status, or a 5xx answer from an HTTP server (whatever status a capture gives it)."""
    if span.status == "ERROR":
        return True
    code = span.attributes.get("http.response.status_code")
    return span.kind == "SERVER" and isinstance(code, int) and code >= 500
