"""OTLP export (gRPC or HTTP/protobuf) through the OpenTelemetry SDK's own exporters.

Our spans are converted to SDK ReadableSpans so the SDK does the protobuf encoding and the
transport; retries beyond the short per-call budget in OtlpConfig are the pipeline's job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.trace import SpanKind as SdkSpanKind
from opentelemetry.trace.status import Status, StatusCode

from gotrace.errors import GotraceError
from gotrace.export.otlp_config import OtlpConfig
from gotrace.spans import AttributeValue, Span

SCOPE_NAME = "gotrace"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_KINDS = {
    "SERVER": SdkSpanKind.SERVER,
    "CLIENT": SdkSpanKind.CLIENT,
    "INTERNAL": SdkSpanKind.INTERNAL,
}
_STATUS_CODES = {"UNSET": StatusCode.UNSET, "OK": StatusCode.OK, "ERROR": StatusCode.ERROR}


def _gotrace_version() -> str:
    try:
        return version("gotrace")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


SCOPE = InstrumentationScope(SCOPE_NAME, _gotrace_version())


@lru_cache(maxsize=256)
def _sdk_resource(key: tuple[tuple[str, AttributeValue], ...]) -> SdkResource:
    """One SDK Resource per traced process, shared by all its spans.

    Bounded because traced processes come and go over a long run.
    """
    return SdkResource(dict(key))


def to_readable_span(span: Span) -> ReadableSpan:
    trace_id = int.from_bytes(span.trace_id, "big")
    context = SpanContext(trace_id=trace_id, span_id=int.from_bytes(span.span_id, "big"),
                          is_remote=False, trace_flags=_SAMPLED)
    parent = None
    if span.parent_span_id is not None:
        parent = SpanContext(trace_id=trace_id,
                             span_id=int.from_bytes(span.parent_span_id, "big"),
                             is_remote=False, trace_flags=_SAMPLED)
    code = _STATUS_CODES[span.status]
    # The SDK only keeps a description for ERROR (and warns about any other).
    status = Status(code, span.status_message or None) if code is StatusCode.ERROR \
        else Status(code)
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=_sdk_resource(span.resource.key),
        attributes=dict(span.attributes),
        kind=_KINDS[span.kind],
        status=status,
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano,
        instrumentation_scope=SCOPE,
    )


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


def _sdk_exporter(config: OtlpConfig) -> SpanExporter:
    if config.protocol == "grpc":
        return GrpcSpanExporter(endpoint=config.endpoint, insecure=config.insecure,
                                headers=dict(config.headers), timeout=config.timeout_s)
    return HttpSpanExporter(endpoint=config.endpoint, headers=dict(config.headers),
                            timeout=config.timeout_s)


class OtlpExporter:
    """Sends span batches to an OTLP receiver (collector, Jaeger, Tempo, ...)."""

    def __init__(self, config: OtlpConfig) -> None:
        self.config = config
        _FAILURES.install()
        try:
            self._sdk = _sdk_exporter(config)
        # The SDK reads further OTEL_* variables (compression, certificates) and rejects bad
        # ones with assorted exception types; all of them are environment problems.
        except Exception as e:
            raise GotraceError(f"cannot set up OTLP export to {config.endpoint}: {e}") from None

    def export(self, spans: Sequence[Span]) -> bool:
        """True when delivered; raises GotraceError with the SDK's reason when not."""
        _FAILURES.take()
        result = self._sdk.export([to_readable_span(span) for span in spans])
        if result is SpanExportResult.SUCCESS:
            return True
        reason = _FAILURES.take() or "no reason given"
        raise GotraceError(f"OTLP export to {self.config.endpoint} failed: {reason}")

    def shutdown(self) -> None:
        self._sdk.shutdown()

    def __str__(self) -> str:
        return f"otlp {self.config.protocol} {self.config.endpoint}"
