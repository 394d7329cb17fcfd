"""Which request-duration histogram a finished span feeds, and under which labels.

Metric and attribute names are the OpenTelemetry semantic conventions', translated the way
OpenTelemetry exports to Prometheus: dots become underscores and the unit is appended
(`http.server.request.duration` in seconds is `http_server_request_duration_seconds`).

Every duration is in seconds, the RPC ones included: the RPC conventions historically
specify milliseconds, but Prometheus' base unit is the second and the `_seconds` suffix says
which unit a series is in.

Labels are chosen to stay bounded: the route template, never the URL path; the status class
("2xx", "5xx"), not the exact code, for HTTP; the code (at most 17 values) for gRPC.
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


HTTP_SERVER = DurationMetric("http.server.request.duration",
                             "Duration of HTTP server requests.")
HTTP_CLIENT = DurationMetric("http.client.request.duration",
                             "Duration of HTTP client requests.")
RPC_SERVER = DurationMetric("rpc.server.duration", "Duration of RPCs served.")
RPC_CLIENT = DurationMetric("rpc.client.duration", "Duration of RPCs made.")
DURATION_METRICS = (HTTP_SERVER, HTTP_CLIENT, RPC_SERVER, RPC_CLIENT)

# Attributes copied into labels as they are (left out when the span lacks them). The probes
# already reduce http.request.method to the known methods and "_OTHER".
_HTTP_ATTRIBUTES = ("http.request.method", "http.route")
_RPC_ATTRIBUTES = ("rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code")
_STATUS_CODE = "http.response.status_code"
_ERROR_TYPE = "error.type"
_SERVER_ADDRESS = "server.address"


def status_class(code: int) -> str:
    """200 -> "2xx"; anything outside 100-599 -> "_OTHER"."""
    return f"{code // 100}xx" if 100 <= code <= 599 else "_OTHER"


def observation(span: Span) -> tuple[DurationMetric, Labels] | None:
    """The histogram and labels span counts in; None for spans no RED metric covers."""
    attrs = span.attributes
    if span.kind not in ("SERVER", "CLIENT"):
        return None
    server = span.kind == "SERVER"
    outcome: list[tuple[str, str]] = []
    if "rpc.system" in attrs:
        metric = RPC_SERVER if server else RPC_CLIENT
        copied = _RPC_ATTRIBUTES
    elif "http.request.method" in attrs:
        metric = HTTP_SERVER if server else HTTP_CLIENT
        copied = _HTTP_ATTRIBUTES
        code = attrs.get(_STATUS_CODE)
        if isinstance(code, int):
            outcome.append((label_name(_STATUS_CODE), status_class(code)))
        elif _ERROR_TYPE in attrs:  # no response at all: the transport failed
            outcome.append((label_name(_ERROR_TYPE), str(attrs[_ERROR_TYPE])))
    else:
        return None
    labels = [("service_name", str(span.resource.attributes.get("service.name",
                                                                "unknown_service")))]
    labels.extend((label_name(key), str(attrs[key])) for key in copied if key in attrs)
    labels.extend(outcome)
    if not server and _SERVER_ADDRESS in attrs:
        labels.append((label_name(_SERVER_ADDRESS), str(attrs[_SERVER_ADDRESS])))
    return metric, tuple(labels)
