"""net/http client (anything through http.Transport): one CLIENT span per request."""

from __future__ import annotations

from gotrace.probes.base import (
    CLIENT_REQUEST_FIELDS,
    HTTP_REQUEST_FIELDS,
    Attachment,
    Probe,
    SpanShape,
)
from gotrace.probes.http_attributes import (
    HTTP_CLIENT_METRIC,
    connection_attributes,
    connection_port,
    method_attributes,
    redact_query,
    span_method,
    split_host_port,
)
from gotrace.records import F_HAS_QUERY, F_TRANSPORT_ERROR, SpanRecord, text
from gotrace.spans import AttributeValue

ROUND_TRIP = "net/http.(*Transport).roundTrip"
CONN_ROUND_TRIP = "net/http.(*persistConn).roundTrip"


def is_error(rec: SpanRecord) -> bool:
    return bool(rec.flags & F_TRANSPORT_ERROR) or rec.status >= 400


def endpoint_attributes(rec: SpanRecord) -> dict[str, AttributeValue]:
    scheme = text(rec.scheme) or "http"
    attrs: dict[str, AttributeValue] = method_attributes(rec)
    host, port = split_host_port(text(rec.host), scheme)
    if host:
        attrs["server.address"] = host
    if port is not None:
        attrs["server.port"] = port
    if rec.flags & F_TRANSPORT_ERROR:
        attrs["error.type"] = "_OTHER"
    else:
        attrs["http.response.status_code"] = rec.status
        if rec.status >= 400:
            attrs["error.type"] = str(rec.status)
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
    return attrs


PROBE = Probe(
    library="nethttp_client",
    attachments=(
        Attachment(ROUND_TRIP, "entry", "http_client_entry"),
        Attachment(CONN_ROUND_TRIP, "entry", "http_client_conn"),
        Attachment(ROUND_TRIP, "return", "http_client_return"),
    ),
    fields=(
        "net/http.Request.Method", "net/http.Request.URL", "net/http.Request.ContentLength",
        "net/url.URL.Scheme", "net/url.URL.Host", "net/url.URL.Path", "net/url.URL.RawQuery",
        "net/http.Response.StatusCode", "net/http.Response.ContentLength",
        "net/http.persistConn.conn",
    ),
    record_kinds=(
        SpanShape(
            record_kind="HTTP_CLIENT",
            kind="CLIENT",
            name=span_method,
            endpoint_attributes=endpoint_attributes,
            request_attributes=request_attributes,
            is_error=is_error,
            request_fields=CLIENT_REQUEST_FIELDS | HTTP_REQUEST_FIELDS,
            metric=HTTP_CLIENT_METRIC,
        ),
    ),
)
