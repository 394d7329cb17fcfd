"""grpc-go server: one SERVER span per RPC (unary or streaming), two uprobe hits."""

from __future__ import annotations

from gotrace.metrics.red import DurationMetric, RedMetric
from gotrace.probes.attribute_rules import AttributeRule, RuleAttributes
from gotrace.probes.base import SERVER_REQUEST_FIELDS, Attachment, ErrorRule, Probe, SpanShape
from gotrace.probes.features import GRPC_TRACEPARENT
from gotrace.probes.http_attributes import (
    connection_attributes,
)
from gotrace.records import F_HAS_CONN, SpanRecord, ip_text, text
from gotrace.spans import AttributeValue

HANDLE_STREAM = "google.golang.org/grpc.(*Server).handleStream"
WRITE_STATUS = "google.golang.org/grpc/internal/transport.(*http2Server).WriteStatus"
# RPCs served through (*Server).ServeHTTP, inside net/http's HTTP/2 requests.
HANDLER_WRITE_STATUS = \
    "google.golang.org/grpc/internal/transport.(*serverHandlerTransport).WriteStatus"

# Codes the RPC semantic conventions count as server errors: UNKNOWN, DEADLINE_EXCEEDED,
# UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
SERVER_ERROR_CODES = frozenset({2, 4, 12, 13, 14, 15})

RPC_METRIC_LABELS = ("rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code")
RPC_SERVER_METRIC = RedMetric(DurationMetric("rpc.server.duration", "Duration of RPCs served."),
                              RPC_METRIC_LABELS)


def split_method(rec: SpanRecord) -> tuple[str, str]:
    """'/demo.Echo/Say' -> ('demo.Echo', 'Say')."""
    service, _, method = text(rec.path).lstrip("/").rpartition("/")
    return service, method


def span_name(rec: SpanRecord) -> str:
    return text(rec.path).lstrip("/") or "grpc"


def rpc_attributes(rec: SpanRecord) -> dict[str, AttributeValue]:
    """The RPC semantic conventions' attributes, the same on both sides of a call."""
    service, method = split_method(rec)
    return {
        "rpc.system": "grpc",
        "rpc.service": service,
        "rpc.method": method,
        "rpc.grpc.status_code": rec.status,
    }


GOROUTINE = AttributeRule("go.goroutine.id", "goid")


def endpoint_attributes(rec: SpanRecord) -> dict[str, AttributeValue]:
    attrs = rpc_attributes(rec)
    if rec.flags & F_HAS_CONN:
        attrs["server.address"] = ip_text(rec.local_addr)
        attrs["server.port"] = rec.local_port
        attrs["client.address"] = ip_text(rec.peer_addr)
    attrs.update(connection_attributes(rec, "local"))
    return attrs


request_attributes = RuleAttributes(
    GOROUTINE,
    AttributeRule("client.port", "peer_port", flags=F_HAS_CONN),
    AttributeRule("network.peer.port", "peer_port", flags=F_HAS_CONN),
)


PROBE = Probe(
    library="grpc_server",
    attachments=(
        Attachment(HANDLE_STREAM, "entry", "grpc_server_entry"),
        Attachment(WRITE_STATUS, "entry", "grpc_server_status"),
        Attachment(HANDLER_WRITE_STATUS, "entry", "grpc_server_status", optional=True),
    ),
    fields=(
        "google.golang.org/grpc/internal/transport.Stream.method",
        "google.golang.org/grpc/internal/transport.http2Server.conn",
        "google.golang.org/grpc/internal/status.Status.s",
        "google.golang.org/genproto/googleapis/rpc/status.Status.Code",
        "google.golang.org/grpc/internal/transport.Stream.id",
    ),
    optional_fields=(
        "google.golang.org/grpc/internal/transport.Stream.ctx",
        # Where the binary has them, a connection's addresses are read once (bpf/grpc_server.c);
        # g.parentGoid is the runtime manifest's.
        "google.golang.org/grpc.Server.opts",
        "google.golang.org/grpc.serverOptions.numServerWorkers",
        "runtime.g.parentGoid",
    ),
    optional_types=("google.golang.org/grpc/metadata.mdIncomingKey",
                    "*google.golang.org/grpc/internal/transport.serverHandlerTransport"),
    features=(GRPC_TRACEPARENT,),
    record_kinds=(
        SpanShape(
            record_kind="GRPC_SERVER",
            kind="SERVER",
            name=span_name,
            endpoint_attributes=endpoint_attributes,
            request_attributes=request_attributes,
            is_error=ErrorRule(statuses=SERVER_ERROR_CODES),
            request_fields=SERVER_REQUEST_FIELDS,
            metric=RPC_SERVER_METRIC,
        ),
    ),
)
