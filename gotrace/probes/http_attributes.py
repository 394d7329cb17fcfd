"""OpenTelemetry HTTP semantic conventions, shared by the server and client probes."""

from __future__ import annotations

from typing import Literal

from gotrace.metrics.red import DurationMetric, RedMetric
from gotrace.records import F_HAS_CONN, SpanRecord, ip_text, text
from gotrace.spans import AttributeValue

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
DEFAULT_PORTS = {"http": 80, "https": 443}

# The probes reduce http.request.method to the known methods and "_OTHER" already.
_METRIC_LABELS = ("http.request.method", "http.route")
HTTP_SERVER_METRIC = RedMetric(
    DurationMetric("http.server.request.duration", "Duration of HTTP server requests."),
    _METRIC_LABELS, status_code="http.response.status_code")
HTTP_CLIENT_METRIC = RedMetric(
    DurationMetric("http.client.request.duration", "Duration of HTTP client requests."),
    _METRIC_LABELS, status_code="http.response.status_code")


def method_attributes(rec: SpanRecord) -> dict[str, AttributeValue]:
    method = text(rec.method)
    if method in KNOWN_METHODS:
        return {"http.request.method": method}
    return {"http.request.method": "_OTHER", "http.request.method_original": method}


def span_method(rec: SpanRecord) -> str:
    method = text(rec.method)
    return method if method in KNOWN_METHODS else "HTTP"


ConnectionEnd = Literal["local", "peer"]


def connection_attributes(rec: SpanRecord, fixed_end: ConnectionEnd) -> dict[str, AttributeValue]:
    """The TCP connection the span used, so a backend can join spans to network data: the
    endpoint's part, with the port that every connection of the endpoint shares (a server's
    local port, a client's peer port); connection_port gives the other end's."""
    if not rec.flags & F_HAS_CONN:
        return {}
    return {
        "network.transport": "tcp",
        "network.local.address": ip_text(rec.local_addr),
        "network.peer.address": ip_text(rec.peer_addr),
        **connection_port(rec, fixed_end),
    }


def connection_port(rec: SpanRecord, end: ConnectionEnd) -> dict[str, AttributeValue]:
    if not rec.flags & F_HAS_CONN:
        return {}
    if end == "local":
        return {"network.local.port": rec.local_port}
    return {"network.peer.port": rec.peer_port}


def split_host_port(hostport: str, scheme: str = "http") -> tuple[str, int | None]:
    """'example.com:8080' -> ('example.com', 8080); '[::1]:80' -> ('::1', 80)."""
    host, port = hostport, None
    if hostport.startswith("["):
        end = hostport.find("]")
        host = hostport[1:end] if end > 0 else hostport
        rest = hostport[end + 1:] if end > 0 else ""
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif hostport.count(":") == 1:
        name, _, digits = hostport.partition(":")
        if digits.isdigit():
            host, port = name, int(digits)
    return host, port if port is not None else DEFAULT_PORTS.get(scheme)


def server_attributes(host: str, port: int | None) -> dict[str, AttributeValue]:
    """server.address and server.port, each when known."""
    attrs: dict[str, AttributeValue] = {}
    if host:
        attrs["server.address"] = host
    if port is not None:
        attrs["server.port"] = port
    return attrs


def redact_query(query: str) -> str:
    """Keep the parameter names, hide their values (they often carry secrets)."""
    return "&".join(
        f"{part.partition('=')[0]}=REDACTED" if "=" in part else part
        for part in query.split("&")
    )


def protocol_version(rec: SpanRecord) -> str | None:
    if rec.proto_major == 1:
        return f"1.{rec.proto_minor}"
    if rec.proto_major >= 2:
        return str(rec.proto_major)
    return None


def stream_attributes(rec: SpanRecord) -> dict[str, AttributeValue]:
    """The HTTP/2 stream a request went on (both ends see the same id)."""
    return {"http2.stream.id": rec.stream_id} if rec.stream_id else {}
