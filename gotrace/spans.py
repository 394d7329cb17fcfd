"""The span as gotrace hands it to exporters: one finished request, already linked.

Kept deliberately plain (no SDK objects): the pipeline produces these in batches and each
exporter converts them to its own format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from gotrace.metrics.red import RedMetric

AttributeValue = str | int | float | bool
SpanKind = Literal["SERVER", "CLIENT", "INTERNAL"]
# The kernel's sampling decision (gotrace/pipeline/sampling.py): kept, left to gotrace, or no
# (a span sent only so that linking can find its callee); under overload (bpf/shedding.h), a
# span of a shed trace kept for an error or a slow request ("rescued"), or a client span of a
# shed trace sent only for linking ("shed").
Sampling = Literal["sampled", "deferred", "link-only", "rescued", "shed"]
StatusCode = Literal["UNSET", "OK", "ERROR"]


@dataclass(slots=True)
class Resource:
    """The traced process: OpenTelemetry resource attributes (service.name, process.pid, ...)."""

    attributes: dict[str, AttributeValue]

    @property
    def key(self) -> tuple[tuple[str, AttributeValue], ...]:
        return tuple(sorted(self.attributes.items()))


class Connection(NamedTuple):
    """The TCP connection a span used, from the traced process's end."""

    local_address: str
    local_port: int
    peer_address: str
    peer_port: int


class SharedAttributes:
    """Attributes that many spans carry alike (those of one endpoint of one process: method,
    route, addresses, status), held once for all of them. An exporter may keep its encoding
    of them in `encoded` (under keys of its own choosing, which may include what else the
    spans of one endpoint share), and so encode them once rather than once per span."""

    __slots__ = ("encoded", "items")

    def __init__(self, items: Mapping[str, AttributeValue]) -> None:
        self.items: dict[str, AttributeValue] = dict(items)
        self.encoded: dict[object, bytes] = {}


NO_SHARED_ATTRIBUTES = SharedAttributes({})


@dataclass(slots=True)
class Span:
    trace_id: bytes  # 16 bytes
    span_id: bytes  # 8 bytes
    parent_span_id: bytes | None  # 8 bytes, or None for a root span
    name: str
    kind: SpanKind
    start_time_unix_nano: int
    end_time_unix_nano: int
    resource: Resource
    status: StatusCode = "UNSET"
    status_message: str = ""
    own_attributes: dict[str, AttributeValue] = field(default_factory=dict)  # this span's alone
    shared_attributes: SharedAttributes = NO_SHARED_ATTRIBUTES  # never the same keys as own
    # For linking across processes (gotrace/pipeline/linking.py); exporters use the attributes.
    connection: Connection | None = None
    stream_id: int = 0  # the HTTP/2 stream of a gRPC call
    remote_parent: bool = False  # the parent came from an incoming traceparent
    # The kernel's CLOCK_MONOTONIC stamps: exact between processes, unlike the wall-clock
    # times, whose conversion is re-measured as the tracer runs.
    monotonic_start_ns: int = 0
    monotonic_end_ns: int = 0
    sampling: Sampling = "sampled"
    metric: RedMetric | None = None  # the RED histogram it feeds (its probe's declaration)
    record_kind: int = 0  # the kernel's SPAN_KIND_* (the overload policy's rules are per kind)
    # The record's tcp_identity as it is, 16 bytes (four little-endian u32: gotrace/records.py
    # TCP_ID_*), for linking across hosts; all zeros without the tcp_identity option.
    tcp_identity: bytes = b""
    # The kernel found this server span's connection marked as having no traced client (its
    # sampling decided there): the linker looks for no calling span.
    caller_untraced: bool = False

    @property
    def attributes(self) -> dict[str, AttributeValue]:
        """All of the span's attributes (a new dict when some are shared)."""
        if not self.shared_attributes.items:
            return self.own_attributes
        return {**self.shared_attributes.items, **self.own_attributes}

    @property
    def duration_ns(self) -> int:
        return self.end_time_unix_nano - self.start_time_unix_nano
