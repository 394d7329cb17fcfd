"""grpc-go client: one CLIENT span per call made through a ClientConn (unary: two hits,
streaming: three; see bpf/grpc_client.c)."""

from __future__ import annotations

from gotrace.metrics.red import DurationMetric, RedMetric
from gotrace.probes.attribute_rules import AttributeRule, RuleAttributes
from gotrace.probes.base import CLIENT_REQUEST_FIELDS, Attachment, ErrorRule, Probe, SpanShape
from gotrace.probes.grpc_server import GOROUTINE, RPC_METRIC_LABELS, rpc_attributes, span_name
from gotrace.probes.http_attributes import (
    connection_attributes,
    server_attributes,
    split_host_port,
)
from gotrace.records import F_HAS_CONN, SpanRecord, text
from gotrace.spans import AttributeValue

INVOKE = "google.golang.org/grpc.(*ClientConn).Invoke"
NEW_STREAM = "google.golang.org/grpc.(*ClientConn).NewStream"
FINISH = "google.golang.org/grpc.(*clientStream).finish"

RPC_CLIENT_METRIC = RedMetric(DurationMetric("rpc.client.duration", "Duration of RPCs made."),
                              RPC_METRIC_LABELS)


def server_of(target: str) -> tuple[str, int | None]:
    """A dial target ('host:port', 'dns:///host:port', 'passthrough:///...') as an address."""
    _, sep, rest = target.partition(":///")
    host, port = split_host_port(rest if sep else target, scheme="")
    return host, port


def endpoint_attributes(rec: SpanRecord) -> dict[str, AttributeValue]:
    attrs = rpc_attributes(rec)
    attrs.update(server_attributes(*server_of(text(rec.host))))
    attrs.update(connection_attributes(rec, "peer"))
    return attrs


request_attributes = RuleAttributes(
    GOROUTINE, AttributeRule("network.local.port", "local_port", flags=F_HAS_CONN))


PROBE = Probe(
    library="grpc_client",
    attachments=(
        Attachment(INVOKE, "entry", "grpc_client_invoke"),
        Attachment(NEW_STREAM, "entry", "grpc_client_new_stream"),
        Attachment(NEW_STREAM, "return", "grpc_client_stream_returned"),
        Attachment(FINISH, "entry", "grpc_client_finish"),
    ),
    fields=(
        "google.golang.org/grpc.ClientConn.target",
        "google.golang.org/grpc.clientStream.attempt",
        "google.golang.org/grpc.csAttempt.t",  # csAttempt.transport in grpc-go 1.69+
        "google.golang.org/grpc.csAttempt.s",  # csAttempt.transportStream in grpc-go 1.69+
        "google.golang.org/grpc/internal/transport.http2Client.conn",
        "google.golang.org/grpc/internal/transport.Stream.id",
        "google.golang.org/grpc/internal/status.Status.s",
        "google.golang.org/genproto/googleapis/rpc/status.Status.Code",
        "google.golang.org/grpc/internal/status.Error.s",  # found as Error.e in grpc 1.33
        "errors.errorString.s",
        "internal/abi.ITab.Hash",
    ),
    types=("*google.golang.org/grpc/internal/status.Error", "*errors.errorString"),
    record_kinds=(
        SpanShape(
            record_kind="GRPC_CLIENT",
            kind="CLIENT",
            name=span_name,
            endpoint_attributes=endpoint_attributes,
            request_attributes=request_attributes,
            is_error=ErrorRule(min_status=1),  # any non-OK status is the caller's error
            request_fields=CLIENT_REQUEST_FIELDS,
            metric=RPC_CLIENT_METRIC,
        ),
    ),
)
