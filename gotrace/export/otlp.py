"""OTLP export (gRPC or HTTP/protobuf): our own protobuf encoding, the SDK's transports.

Spans are encoded by gotrace.export.otlp_wire, not through SDK ReadableSpans (which cost
several times the CPU of everything else per span). The bytes are sent by the OpenTelemetry
SDK's own exporters, so channels, TLS and certificates, compression, headers, timeouts,
in-call retries and their log messages stay exactly the SDK's and follow its OTEL_*
variables. Two small hooks hand them bytes instead of spans; they rely on internals of the
SDK exporters (the gRPC stub and the HTTP client object), which tests/test_export.py checks
against a real receiver for both protocols. Retries beyond the short per-call budget in
OtlpConfig are the pipeline's job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NamedTuple

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import SpanExportResult

from gotrace.errors import GotraceError
from gotrace.export.otlp_config import OtlpConfig
from gotrace.export.otlp_wire import TraceRequestEncoder
from gotrace.spans import Span

SCOPE_NAME = "gotrace"
# The largest export request sent: a batch that encodes to more is sent in halves. Below the
# 4 MiB a gRPC server accepts by default (the collector's, Jaeger's, Tempo's OTLP/gRPC
# receivers), whatever the spans' attributes weigh.
MAX_REQUEST_BYTES = 3 * 1024 * 1024
_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

# Where the SDK's HTTP exporter logs (and _SdkFailureLog listens).
_http_log = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")


def _gotrace_version() -> str:
    try:
        return version("gotrace")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class EncodedBatch(NamedTuple):
    """An ExportTraceServiceRequest already encoded, and how many spans it holds."""

    payload: bytes
    count: int


class _BytesTraceStub:
    """TraceService's Export taking the request as bytes (the generated stub serializes a
    message object)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Export = channel.unary_unary(
            _EXPORT_METHOD, request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString)


class _GrpcBytesExporter(GrpcSpanExporter):
    """The SDK's gRPC exporter (channel, retries, reconnection), sending our bytes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stub = _BytesTraceStub  # used again when the SDK reconnects
        self._client = _BytesTraceStub(self._channel)

    def _translate_data(self, data: EncodedBatch) -> bytes:  # type: ignore[override]
        return data.payload

    def _count_data(self, data: EncodedBatch) -> int:  # type: ignore[override]
        return data.count


class _HttpBytesExporter(HttpSpanExporter):
    """The SDK's HTTP exporter (session, compression, retries), sending our bytes."""

    def export(self, spans: EncodedBatch) -> SpanExportResult:  # type: ignore[override]
        if self._shutdown:
            _http_log.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        if self._client.export(spans.payload).success:
            return SpanExportResult.SUCCESS
        return SpanExportResult.FAILURE


class _SdkFailureLog(logging.Filter):
    """Holds back the SDK exporters' warnings and errors, keeping the last one per thread.

    The SDK logs every failed try (on a dead endpoint, every few seconds); the pipeline
    instead reports an outage once, with this message as its reason. Thread-local because
    each exporter runs on its own pipeline thread.
    """

    LOGGERS = ("opentelemetry.exporter.otlp.proto.grpc.exporter",
               "opentelemetry.exporter.otlp.proto.http.trace_exporter")

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        self._local.message = record.getMessage()
        return False

    def take(self) -> str:
        message: str = getattr(self._local, "message", "")
        self._local.message = ""
        return message

    def install(self) -> None:
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            if self not in logger.filters:
                logger.addFilter(self)


_FAILURES = _SdkFailureLog()


def _sdk_exporter(config: OtlpConfig) -> _GrpcBytesExporter | _HttpBytesExporter:
    if config.protocol == "grpc":
        return _GrpcBytesExporter(endpoint=config.endpoint, insecure=config.insecure,
                                  headers=dict(config.headers), timeout=config.timeout_s)
    return _HttpBytesExporter(endpoint=config.endpoint, headers=dict(config.headers),
                              timeout=config.timeout_s)


class OtlpExporter:
    """Sends span batches to an OTLP receiver (collector, Jaeger, Tempo, ...)."""

    def __init__(self, config: OtlpConfig) -> None:
        self.config = config
        self._encoder = TraceRequestEncoder(SCOPE_NAME, _gotrace_version())
        _FAILURES.install()
        try:
            self._sdk = _sdk_exporter(config)
        # The SDK reads further OTEL_* variables (compression, certificates) and rejects bad
        # ones with assorted exception types; all of them are environment problems.
        except Exception as e:
            raise GotraceError(f"cannot set up OTLP export to {config.endpoint}: {e}") from None

    def export(self, spans: Sequence[Span]) -> bool:
        """True when delivered; raises GotraceError with the SDK's reason when not. A batch
        whose request would exceed MAX_REQUEST_BYTES goes in halves; when the second half fails
        the whole batch is retried, and the first half's spans may arrive twice (rare: a
        batch that large, and a failure between its halves)."""
        payload = self._encoder.encode(spans)
        if len(payload) > MAX_REQUEST_BYTES and len(spans) > 1:
            half = len(spans) // 2
            return self.export(spans[:half]) and self.export(spans[half:])
        _FAILURES.take()
        if self._sdk.export(EncodedBatch(payload, len(spans))) is SpanExportResult.SUCCESS:  # type: ignore[arg-type]
            return True
        reason = _FAILURES.take() or "no reason given"
        raise GotraceError(f"OTLP export to {self.config.endpoint} failed: {reason}")

    def shutdown(self) -> None:
        self._sdk.shutdown()

    def __str__(self) -> str:
        return f"otlp {self.config.protocol} {self.config.endpoint}"
