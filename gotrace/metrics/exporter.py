"""The metrics output: an exporter in the span pipeline that keeps RED histograms, and the
/metrics endpoint that serves them together with gotrace's own counters."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from gotrace.metrics.counters import CounterSource
from gotrace.metrics.exposition import CounterFamily, counter_lines, document, histogram_lines
from gotrace.metrics.histograms import DEFAULT_MAX_SERIES, DurationHistograms
from gotrace.metrics.red import BUCKETS, DurationMetric, observation
from gotrace.metrics.server import MetricsServer
from gotrace.spans import Span

log = logging.getLogger(__name__)

OVERFLOW_COUNTER = "gotrace_metric_series_overflow_total"


class MetricsExporter:
    """Starts serving at once, so a port that cannot be bound fails before tracing starts."""

    def __init__(self, host: str, port: int, *, metrics: Sequence[DurationMetric] = (),
                 max_series: int = DEFAULT_MAX_SERIES) -> None:
        """metrics: the histograms to expose from the start (the probes' declarations); any
        other a span feeds is exposed from its first observation."""
        self._metrics = tuple(metrics)
        self._histograms = DurationHistograms(BUCKETS, max_series)
        self._sources: list[CounterSource] = []
        self._server = MetricsServer(host, port, self.render)

    @property
    def url(self) -> str:
        return self._server.url

    def add_counters(self, *sources: CounterSource) -> None:
        """Counter families to read at every scrape (gotrace's own: probe hits, drops...)."""
        self._sources.extend(sources)

    def export(self, spans: Sequence[Span]) -> bool:
        observations = []
        for span in spans:
            found = observation(span)
            if found is not None:
                metric, labels = found
                observations.append((metric, labels, span.duration_ns / 1e9))
        self._histograms.record(observations)
        return True

    def render(self) -> bytes:
        """The whole /metrics document, read fresh."""
        snapshot = self._histograms.snapshot()
        lines: list[str] = []
        for metric in dict.fromkeys((*self._metrics, *snapshot.series)):
            lines += histogram_lines(metric.prometheus_name, metric.description,
                                     self._histograms.bounds, snapshot.series.get(metric, []))
        for source in list(self._sources):
            # A source may be caught mid-change (the tracer closing its BPF programs at
            # exit): its counters are left out of this one scrape, never the whole answer.
            try:
                families = source()
            except Exception as e:
                log.debug("metrics: counter source failed: %s", e)
                continue
            for family in families:
                lines += counter_lines(family)
        lines += counter_lines(CounterFamily(
            OVERFLOW_COUNTER,
            f"Spans counted in an otel_metric_overflow series because "
            f"{self._histograms.max_series} labelled series existed already.",
            [((), snapshot.overflowed)]))
        return document(lines)

    def shutdown(self) -> None:
        self._server.close()

    def __str__(self) -> str:
        return f"metrics {self.url}"
