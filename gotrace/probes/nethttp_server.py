"""net/http server: one SERVER span per request, two uprobe hits (both emulated branches)."""

from __future__ import annotations

from gotrace.probes.attribute_rules import AttributeRule, RuleAttributes, When
from gotrace.probes.base import (
    HTTP_REQUEST_FIELDS,
    SERVER_REQUEST_FIELDS,
    Attachment,
    ErrorRule,
    Feature,
    Probe,
    SpanShape,
)
from gotrace.probes.features import TRACEPARENT, resolved_macros
from gotrace.probes.http_attributes import (
    HTTP_SERVER_METRIC,
    connection_attributes,
    method_attributes,
    protocol_version,
    span_method,
    split_host_port,
)
from gotrace.probes.http_routes import route_template
from gotrace.records import (
    F_HAS_CONN,
    F_HAS_QUERY,
    SpanRecord,
    ip_text,
    text,
)
from gotrace.spans import AttributeValue

SERVE_HTTP = "net/http.serverHandler.ServeHTTP"
# Where the request ends (bpf/nethttp_server.c): after the handler, or when it hijacks.
FINISH_REQUEST = "net/http.(*response).finishRequest"
HIJACK = "net/http.(*response).Hijack"
# HTTP/2 (net/http's bundled server): ServeHTTP's writer is then an *http2responseWriter, and
# the request ends at that writer's handlerDone (bpf/http2_server.h).
HANDLER_DONE = "net/http.(*http2responseWriter).handlerDone"
HTTP2_FIELDS = (
    "net/http.http2responseWriter.rws", "net/http.http2responseWriterState.stream",
    "net/http.http2responseWriterState.req", "net/http.http2responseWriterState.conn",
    "net/http.http2responseWriterState.status", "net/http.http2responseWriterState.wroteBytes",
    "net/http.http2stream.id", "net/http.http2serverConn.conn",
)
HTTP2_TYPES = ("*net/http.http2responseWriter",)
HTTP2 = Feature("http2", resolved_macros("NETHTTP_HTTP2", HTTP2_FIELDS, HTTP2_TYPES,
                                         functions=(HANDLER_DONE,)))


def span_name(rec: SpanRecord) -> str:
    template = route_template(rec)
    return f"{span_method(rec)} {template}" if template else span_method(rec)


def endpoint_attributes(rec: SpanRecord) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {
        **method_attributes(rec),
        "url.scheme": text(rec.scheme) or "http",  # https: over TLS
    }
    if rec.status:  # none when the handler hijacked the connection without writing one
        attrs["http.response.status_code"] = rec.status
    if template := route_template(rec):
        attrs["http.route"] = template
    if version := protocol_version(rec):
        attrs["network.protocol.version"] = version
    host, port = split_host_port(text(rec.host))
    if host:
        attrs["server.address"] = host
    if port is None and rec.flags & F_HAS_CONN:
        port = rec.local_port
    if port is not None:
        attrs["server.port"] = port
    if rec.flags & F_HAS_CONN:
        attrs["client.address"] = ip_text(rec.peer_addr)
    attrs.update(connection_attributes(rec, "local"))
    return attrs


# Every request of every server: rules, which the compiled decoder applies itself.
request_attributes = RuleAttributes(
    AttributeRule("url.path", "path", text=True),
    AttributeRule("go.goroutine.id", "goid"),
    AttributeRule("url.query", "query", text=True, flags=F_HAS_QUERY, query=True),
    AttributeRule("http.request.body.size", "request_body_size", when=When.POSITIVE),
    AttributeRule("http.response.body.size", "response_body_size", when=When.NON_NEGATIVE),
    AttributeRule("client.port", "peer_port", flags=F_HAS_CONN),
    AttributeRule("network.peer.port", "peer_port", flags=F_HAS_CONN),
    AttributeRule("http2.stream.id", "stream_id", when=When.NON_ZERO),
)


PROBE = Probe(
    library="nethttp_server",
    attachments=(
        Attachment(SERVE_HTTP, "entry", "http_server_entry"),
        Attachment(FINISH_REQUEST, "entry", "http_server_end"),
        Attachment(HIJACK, "entry", "http_server_hijacked", optional=True),
        Attachment(HANDLER_DONE, "entry", "http2_server_end", feature=HTTP2.name),
    ),
    fields=(
        "net/http.Request.Method", "net/http.Request.URL", "net/http.Request.ProtoMajor",
        "net/http.Request.ProtoMinor", "net/http.Request.ContentLength", "net/http.Request.Host",
        "net/url.URL.Path", "net/url.URL.RawQuery", "net/http.response.conn",
        "net/http.response.req",
        "net/http.response.status", "net/http.response.written", "net/http.conn.rwc",
    ),
    optional_fields=("net/http.Request.Pattern", "net/http.Request.pat", "net/http.pattern.str",
                     "net/http.Request.Header", "net/http.Request.ctx",
                     # An HTTP/2 connection's addresses are read once where the runtime
                     # has it (bpf/http2_server.h).
                     "runtime.g.parentGoid", *HTTP2_FIELDS),
    # x/net's HTTP/2 writer, whose requests its own probe serves (xnet_http2_server).
    optional_types=("*golang.org/x/net/http2.responseWriter", *HTTP2_TYPES),
    features=(TRACEPARENT, HTTP2),
    record_kinds=(
        SpanShape(
            record_kind="HTTP_SERVER",
            kind="SERVER",
            name=span_name,
            endpoint_attributes=endpoint_attributes,
            request_attributes=request_attributes,
            is_error=ErrorRule(min_status=500),
            request_fields=SERVER_REQUEST_FIELDS | HTTP_REQUEST_FIELDS,
            metric=HTTP_SERVER_METRIC,
        ),
    ),
)
