"""Which request-duration histogram a finished span feeds, and under which labels.

Metric and attribute names are the OpenTelemetry semantic conventions', translated the way
OpenTelemetry exports to Prometheus: dots become underscores and the unit is appended
(`http.server.request.duration` in seconds is `http_server_request_duration_seconds`).

Every duration is in seconds, the RPC ones included: the RPC conventions historically
specify milliseconds, but Prometheus' base unit is the second and the `_seconds` suffix says
which unit a series is in.

Each probe declares the histogram its spans feed and their labels (a RedMetric), chosen to
stay bounded: the route template, never the URL path; the status class ("2xx", "5xx"), not
the exact code, for HTTP; the code (at most 17 values) for gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass

from gotrace.spans import Span

Labels = tuple[tuple[str, str], ...]  # (label name, value) pairs, in exposition order

# The semantic conventions' bucket advice for HTTP request durations, in seconds. The RPC
# histograms use it too, so that HTTP and gRPC latencies can be compared bucket for bucket.
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0,
                              2.5, 5.0, 7.5, 10.0)


def label_name(attribute: str) -> str:
    """An OpenTelemetry attribute key as a Prometheus label name."""
    return attribute.replace(".", "_")


@dataclass(frozen=True, slots=True)
class DurationMetric:
    name: str  # the OpenTelemetry instrument name
    description: str

    @property
    def prometheus_name(self) -> str:
        return label_name(self.name) + "_seconds"


_ERROR_TYPE = "error.type"
_SERVER_ADDRESS = "server.address"


def status_class(code: int) -> str:
    """200 -> "2xx"; anything outside 100-599 -> "_OTHER"."""
    return f"{code // 100}xx" if 100 <= code <= 599 else "_OTHER"


@dataclass(frozen=True, slots=True)
class RedMetric:
    """How the spans of one record kind feed a histogram (a probe declares it): the
    histogram, the attributes copied into labels as they are (left out when a span lacks
    them), and the outcome: the class of a status-code attribute, or without one the span's
    error.type. A client span is labelled with the server it called."""

    metric: DurationMetric
    labels: tuple[str, ...]
    status_code: str | None = None  # the attribute whose class ("2xx") is a label

    def labels_of(self, span: Span) -> Labels:
        attrs = span.attributes
        labels = [("service_name", str(span.resource.attributes.get("service.name",
                                                                    "unknown_service")))]
        labels.extend((label_name(key), str(attrs[key])) for key in self.labels if key in attrs)
        if self.status_code is not None:
            code = attrs.get(self.status_code)
            if isinstance(code, int):
                labels.append((label_name(self.status_code), status_class(code)))
            elif _ERROR_TYPE in attrs:  # no response at all: the transport failed
                labels.append((label_name(_ERROR_TYPE), str(attrs[_ERROR_TYPE])))
        if span.kind == "CLIENT" and _SERVER_ADDRESS in attrs:
            labels.append((label_name(_SERVER_ADDRESS), str(attrs[_SERVER_ADDRESS])))
        return tuple(labels)


def observation(span: Span) -> tuple[DurationMetric, Labels] | None:
    """The histogram and labels span counts in; None for spans no RED metric covers."""
    red = span.metric
    return None if red is None else (red.metric, red.labels_of(span))
