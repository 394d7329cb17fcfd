"""Span export: the pipeline and the console, JSON-lines and OTLP exporters.

OtlpExporter is imported from gotrace.export.otlp on purpose: it loads grpc and the
OpenTelemetry SDK (about half a second), which runs without OTLP should not pay for.
"""

from gotrace.export.base import Exporter
from gotrace.export.console import ConsoleExporter
from gotrace.export.jsonl import JsonlExporter
from gotrace.export.lane import DROP_REASONS, DropReason, LaneStats
from gotrace.export.otlp_config import OtlpConfig, otlp_config
from gotrace.export.pipeline import ExportPipeline, PipelineStats

__all__ = [
    "DROP_REASONS",
    "ConsoleExporter",
    "DropReason",
    "ExportPipeline",
    "Exporter",
    "JsonlExporter",
    "LaneStats",
    "OtlpConfig",
    "PipelineStats",
    "otlp_config",
]
