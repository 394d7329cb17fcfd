"""RED metrics (request rate, errors, duration) from finished spans, for Prometheus.

red.py maps a span to a histogram and labels, histograms.py keeps them (bounded),
counters.py turns gotrace's own counters into counter families, exposition.py writes the
text format, server.py serves it, exporter.py plugs all of it into the span pipeline.
"""

from gotrace.metrics.counters import (
    CrossHostCounts,
    cross_host_counters,
    kernel_counters,
    pipeline_counters,
    route_counters,
    shed_counters,
)
from gotrace.metrics.exporter import MetricsExporter

__all__ = ["CrossHostCounts", "MetricsExporter", "cross_host_counters", "kernel_counters",
           "pipeline_counters", "route_counters", "shed_counters"]
