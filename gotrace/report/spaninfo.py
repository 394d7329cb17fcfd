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

    HTTP: the method and http.route (the handler's pattern), else the method and url.path; the
    method is kept in both because gotrace's http.route is the pattern's path part only.
    RPC: service/method. Anything else: the span name.
    """
    attrs = span.attributes
    if "rpc.system" in attrs:
        return Route(str(attrs["rpc.system"]),
                     f"{attrs.get('rpc.service', '')}/{attrs.get('rpc.method', '')}")
    if "http.request.method" in attrs:
        path = attrs.get("http.route") or attrs.get("url.path", "")
        return Route("http", f"{attrs['http.request.method']} {path}")
    return Route("", span.name)


def is_error(span: Span) -> bool:
    """ERROR status, or a 5xx answer from an HTTP server (whatever status a capture gives it)."""
    if span.status == "ERROR":
        return True
    code = span.attributes.get("http.response.status_code")
    return span.kind == "SERVER" and isinstance(code, int) and code >= 500
