"""kvwire (a test-only library, testapps/kvwire): its probe's declaration, beside its
manifest and C. Given to gotrace with GOTRACE_PROBE_PATH; tests/test_probe_library.py."""

from __future__ import annotations

from gotrace.metrics.red import DurationMetric, RedMetric
from gotrace.probes.base import (
    CLIENT_REQUEST_FIELDS,
    SERVER_REQUEST_FIELDS,
    Attachment,
    ErrorRule,
    Probe,
    SpanShape,
)
from gotrace.probes.http_attributes import connection_attributes, connection_port
from gotrace.records import F_TRANSPORT_ERROR, SpanRecord, text
from gotrace.spans import AttributeValue

HANDLE = "main.(*kvServer).handle"
CALL = "main.(*kvClient).call"
KEY_FIELDS = frozenset({"path"})  # the key: one per request, never an endpoint's
LABELS = ("kv.operation", "kv.status")


def span_name(rec: SpanRecord) -> str:
    return f"kv {text(rec.method)}"


def server_attributes(rec: SpanRecord) -> dict[str, AttributeValue]:
    return {"kv.operation": text(rec.method), "kv.status": rec.status,
            **connection_attributes(rec, "local")}


def client_attributes(rec: SpanRecord) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {"kv.operation": text(rec.method),
                                        **connection_attributes(rec, "peer")}
    if rec.flags & F_TRANSPORT_ERROR:
        attrs["error.type"] = "_OTHER"
    else:
        attrs["kv.status"] = rec.status
    return attrs


def request_attributes(end: str):
    def attributes(rec: SpanRecord, with_query: bool) -> dict[str, AttributeValue]:
        return {"kv.key": text(rec.path), **connection_port(rec, end)}
    return attributes


PROBE = Probe(
    library="kvwire",
    attachments=(
        Attachment(HANDLE, "entry", "kv_server_entry"),
        Attachment(HANDLE, "return", "kv_server_return"),
        Attachment(CALL, "entry", "kv_client_entry"),
        Attachment(CALL, "return", "kv_client_return"),
    ),
    fields=("main.kvRequest.Op", "main.kvRequest.Key", "main.kvReply.Status",
            "main.connState.conn", "main.kvClient.conn"),
    record_kinds=(
        SpanShape(
            record_kind="KV_SERVER",
            kind="SERVER",
            name=span_name,
            endpoint_attributes=server_attributes,
            request_attributes=request_attributes("peer"),
            is_error=ErrorRule(min_status=1),
            request_fields=SERVER_REQUEST_FIELDS | KEY_FIELDS,
            metric=RedMetric(DurationMetric("kv.server.duration", "Duration of kv requests."),
                             LABELS),
        ),
        SpanShape(
            record_kind="KV_CLIENT",
            kind="CLIENT",
            name=span_name,
            endpoint_attributes=client_attributes,
            request_attributes=request_attributes("local"),
            is_error=ErrorRule(min_status=1),
            request_fields=CLIENT_REQUEST_FIELDS | KEY_FIELDS,
            metric=RedMetric(DurationMetric("kv.client.duration", "Duration of kv calls."),
                             LABELS),
        ),
    ),
)
