"""net/http client (anything through http.Transport): one CLIENT span per request."""

from __future__ import annotations

from gotrace.probes.base import (
    CLIENT_REQUEST_FIELDS,
    HTTP_REQUEST_FIELDS,
    Attachment,
    ErrorRule,
    Feature,
    Probe,
    SpanShape,
)
from gotrace.probes.features import resolved_macros
from gotrace.probes.http_attributes import (
    HTTP_CLIENT_METRIC,
    connection_attributes,
    connection_port,
    method_attributes,
    protocol_version,
    redact_query,
    server_attributes,
    span_method,
    split_host_port,
    stream_attributes,
)
from gotrace.records import F_HAS_QUERY, F_TRANSPORT_ERROR, SpanRecord, text
from gotrace.spans import AttributeValue

ROUND_TRIP = "net/http.(*Transport).roundTrip"
CONN_ROUND_TRIP = "net/http.(*persistConn).roundTrip"
# HTTP/2 through the bundled transport: the connection, and the stream id from the response's
# body (bpf/http_client.h).
HTTP2_CONN_ROUND_TRIP = "net/http.(*http2ClientConn).roundTrip"
HTTP2_FIELDS = ("net/http.http2ClientConn.tconn", "net/http.http2clientStream.ID",
                "net/http.http2transportResponseBody.cs", "net/http.http2gzipReader.body")
HTTP2_TYPES = ("net/http.http2transportResponseBody", "*net/http.http2gzipReader")
HTTP2 = Feature("http2", resolved_macros("NETHTTP_HTTP2_CLIENT", HTTP2_FIELDS, HTTP2_TYPES,
                                         functions=(HTTP2_CONN_ROUND_TRIP,)))


def endpoint_attributes(rec: SpanRecord) -> dict[str, AttributeValue]:
    scheme = text(rec.scheme) or "http"
    attrs: dict[str, AttributeValue] = method_attributes(rec)
    attrs.update(server_attributes(*split_host_port(text(rec.host), scheme)))
    if rec.flags & F_TRANSPORT_ERROR:
        attrs["error.type"] = "_OTHER"
    else:
        attrs["http.response.status_code"] = rec.status
        if rec.status >= 400:
            attrs["error.type"] = str(rec.status)
    if version := protocol_version(rec):  # HTTP/2's; the HTTP/1 transport does not say
        attrs["network.protocol.version"] = version
    attrs.update(connection_attributes(rec, "peer"))
    return attrs


def request_attributes(rec: SpanRecord, with_query: bool) -> dict[str, AttributeValue]:
    url = f"{text(rec.scheme) or 'http'}://{text(rec.host)}{text(rec.path)}"
    if rec.flags & F_HAS_QUERY:
        query = text(rec.query)
        url += "?" + (query if with_query else redact_query(query))
    attrs: dict[str, AttributeValue] = {"url.full": url, "go.goroutine.id": rec.goid}
    if not rec.flags & F_TRANSPORT_ERROR and rec.response_body_size >= 0:
        attrs["http.response.body.size"] = rec.response_body_size
    if rec.request_body_size > 0:
        attrs["http.request.body.size"] = rec.request_body_size
    attrs.update(connection_port(rec, "local"))
    attrs.update(stream_attributes(rec))
    return attrs


PROBE = Probe(
    library="nethttp_client",
    attachments=(
        Attachment(ROUND_TRIP, "entry", "http_client_entry"),
        Attachment(CONN_ROUND_TRIP, "entry", "http_client_conn"),
        Attachment(HTTP2_CONN_ROUND_TRIP, "entry", "http2_client_conn", feature=HTTP2.name),
        Attachment(ROUND_TRIP, "return", "http_client_return"),
    ),
    fields=(
        "net/http.Request.Method", "net/http.Request.URL", "net/http.Request.ContentLength",
        "net/url.URL.Scheme", "net/url.URL.Host", "net/url.URL.Path", "net/url.URL.RawQuery",
        "net/http.Response.StatusCode", "net/http.Response.ContentLength",
        "net/http.Response.Body", "net/http.persistConn.conn",
    ),
    optional_fields=HTTP2_FIELDS,
    optional_types=HTTP2_TYPES,
    features=(HTTP2,),
    record_kinds=(
        SpanShape(
            record_kind="HTTP_CLIENT",
            kind="CLIENT",
            name=span_method,
            endpoint_attributes=endpoint_attributes,
            request_attributes=request_attributes,
            is_error=ErrorRule(min_status=400, transport=True),
            request_fields=CLIENT_REQUEST_FIELDS | HTTP_REQUEST_FIELDS,
            metric=HTTP_CLIENT_METRIC,
        ),
    ),
)
