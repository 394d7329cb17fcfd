"""grpc-go client: one CLIENT span per unary call made through a ClientConn, two hits."""

from __future__ import annotations

from gotrace.probes.base import Attachment, Probe, SpanShape
from gotrace.probes.grpc_server import rpc_attributes, span_name
from gotrace.probes.http_attributes import split_host_port
from gotrace.records import SPAN_KIND_GRPC_CLIENT, SpanRecord, text
from gotrace.spans import AttributeValue

INVOKE = "google.golang.org/grpc.(*ClientConn).Invoke"


def server_of(target: str) -> tuple[str, int | None]:
    """A dial target ('host:port', 'dns:///host:port', 'passthrough:///...') as an address."""
    _, sep, rest = target.partition(":///")
    host, port = split_host_port(rest if sep else target, scheme="")
    return host, port


def attributes(rec: SpanRecord, _with_query: bool) -> dict[str, AttributeValue]:
    attrs = rpc_attributes(rec)
    host, port = server_of(text(rec.host))
    if host:
        attrs["server.address"] = host
    if port is not None:
        attrs["server.port"] = port
    return attrs


PROBE = Probe(
    library="grpc_client",
    attachments=(
        Attachment(INVOKE, "entry", "grpc_client_entry"),
        Attachment(INVOKE, "return", "grpc_client_return"),
    ),
    fields=(
        "google.golang.org/grpc.ClientConn.target",
        "google.golang.org/grpc/internal/status.Status.s",
        "google.golang.org/genproto/googleapis/rpc/status.Status.Code",
        "google.golang.org/grpc/internal/status.Error.s",  # found as Error.e in grpc 1.33
    ),
    record_kinds={
        SPAN_KIND_GRPC_CLIENT: SpanShape(
            kind="CLIENT",
            name=span_name,
            attributes=attributes,
            is_error=lambda rec: rec.status != 0,  # any non-OK status is the caller's error
        )
    },
)
