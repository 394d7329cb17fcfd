"""The span as gotrace hands it to exporters: one finished request, already linked.

Kept deliberately plain (no SDK objects): the pipeline produces these in batches and each
exporter converts them to its own format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AttributeValue = str | int | float | bool
SpanKind = Literal["SERVER", "CLIENT", "INTERNAL"]
StatusCode = Literal["UNSET", "OK", "ERROR"]


@dataclass(slots=True)
class Resource:
    """The traced process: OpenTelemetry resource attributes (service.name, process.pid, ...)."""

    attributes: dict[str, AttributeValue]

    @property
    def key(self) -> tuple[tuple[str, AttributeValue], ...]:
        return tuple(sorted(self.attributes.items()))


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
    attributes: dict[str, AttributeValue] = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        return self.end_time_unix_nano - self.start_time_unix_nano
