"""Where and how to send OTLP: explicit settings first, then the standard OTEL_* variables.

Follows the OpenTelemetry exporter configuration rules: a signal-specific variable
(OTEL_EXPORTER_OTLP_TRACES_*) beats the generic one; for OTLP/HTTP the generic
OTEL_EXPORTER_OTLP_ENDPOINT is a base URL that gets "v1/traces" appended, while the
traces-specific endpoint is used exactly as given; header values are percent-decoded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast
from urllib.parse import unquote, urlsplit

from gotrace.errors import GotraceError

OtlpProtocol = Literal["grpc", "http/protobuf"]
PROTOCOLS: tuple[OtlpProtocol, ...] = ("grpc", "http/protobuf")
DEFAULT_PROTOCOL: OtlpProtocol = "http/protobuf"  # the spec's recommended default
DEFAULT_ENDPOINTS: dict[OtlpProtocol, str] = {
    "grpc": "http://localhost:4317",
    "http/protobuf": "http://localhost:4318/v1/traces",
}
TRACES_PATH = "v1/traces"
# Short on purpose: the SDK exporter retries inside this budget, and a dead endpoint must not
# hold a pipeline thread for long; the pipeline does its own retrying with backoff.
DEFAULT_TIMEOUT_S = 3.0
# How long a batch may wait to fill (OTEL_BSP_SCHEDULE_DELAY, in milliseconds; the SDKs' own
# default is 5 s). Each export is a request that costs the tracer about a millisecond of CPU
# whatever its size, which at a few hundred spans a second outweighs their encoding.
DEFAULT_BATCH_DELAY_S = 1.0
MAX_BATCH_DELAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class OtlpConfig:
    """A fully resolved OTLP destination.

    endpoint is the URL the SDK exporter is given: for http/protobuf the full traces URL, for
    grpc "http(s)://host:port" (http:// means a plaintext connection).
    """

    protocol: OtlpProtocol
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S
    batch_delay_s: float = DEFAULT_BATCH_DELAY_S

    @property
    def insecure(self) -> bool:
        return urlsplit(self.endpoint).scheme == "http"


def otlp_config(
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    environ: Mapping[str, str] | None = None,
) -> OtlpConfig:
    """Resolve the OTLP settings; arguments that are not None win over the environment.

    An explicit endpoint is treated like a base URL when it has no path
    ("http://collector:4318" -> ".../v1/traces" for http/protobuf) and used as given otherwise.
    Explicit headers are merged over the environment's, key by key.
    """
    env = os.environ if environ is None else environ
    proto = _protocol(protocol, env)
    url = _endpoint(endpoint, proto, env)
    merged = _env_headers(env)
    merged.update({k.strip().lower(): v for k, v in (headers or {}).items()})
    if timeout_s <= 0:
        raise GotraceError(f"OTLP timeout must be positive, got {timeout_s}")
    return OtlpConfig(protocol=proto, endpoint=url, headers=merged, timeout_s=timeout_s,
                      batch_delay_s=_batch_delay(env))


def _batch_delay(env: Mapping[str, str]) -> float:
    """OTEL_BSP_SCHEDULE_DELAY in seconds. Up to a day: a wait beyond what the platform's
    clock can express (inf, 1e300) would kill the export thread."""
    value = env.get("OTEL_BSP_SCHEDULE_DELAY", "").strip()
    if not value:
        return DEFAULT_BATCH_DELAY_S
    try:
        delay_ms = float(value)
    except ValueError:
        delay_ms = -1
    if not 0 < delay_ms <= MAX_BATCH_DELAY_MS:  # NaN fails too
        raise GotraceError(f"OTEL_BSP_SCHEDULE_DELAY: not a number of milliseconds above 0 "
                           f"and up to {MAX_BATCH_DELAY_MS}: {value!r}")
    return delay_ms / 1000


def _first_set(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """The first variable among names that is set to something non-blank, with its name."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def _protocol(explicit: str | None, env: Mapping[str, str]) -> OtlpProtocol:
    source, value = "protocol", explicit
    if explicit is None:
        found = _first_set(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
        if found is None:
            return DEFAULT_PROTOCOL
        source, value = found
    value = value.strip().lower()
    if value not in PROTOCOLS:
        raise GotraceError(f"{source}: unsupported OTLP protocol {value!r} "
                           f"(use {' or '.join(PROTOCOLS)})")
    return cast(OtlpProtocol, value)


def _endpoint(explicit: str | None, protocol: OtlpProtocol, env: Mapping[str, str]) -> str:
    if explicit is not None:
        url = _checked_url(explicit.strip(), "endpoint")
        if protocol == "http/protobuf" and urlsplit(url).path in ("", "/"):
            return _with_traces_path(url)
        return url
    found = _first_set(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if found is not None:
        return _checked_url(found[1], found[0])
    found = _first_set(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if found is not None:
        url = _checked_url(found[1], found[0])
        return _with_traces_path(url) if protocol == "http/protobuf" else url
    return DEFAULT_ENDPOINTS[protocol]


def _with_traces_path(base: str) -> str:
    return f"{base.rstrip('/')}/{TRACES_PATH}"


def _checked_url(url: str, source: str) -> str:
    """Reject what no OTLP exporter can use, naming where the bad value came from."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError when the port is not a number
    except ValueError as e:
        raise GotraceError(f"{source}: invalid OTLP endpoint {url!r} ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GotraceError(f"{source}: invalid OTLP endpoint {url!r} "
                           "(expected http://host:port or https://host:port)")
    return url


def _env_headers(env: Mapping[str, str]) -> dict[str, str]:
    found = _first_set(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
    if found is None:
        return {}
    return parse_headers(found[1], found[0])


def parse_headers(text: str, source: str) -> dict[str, str]:
    """Parse "key1=value1,key2=value2" (W3C baggage style, values percent-encoded)."""
    parsed: dict[str, str] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        key = unquote(key).strip().lower()
        if not sep or not key:
            raise GotraceError(f"{source}: malformed header {entry.strip()!r} "
                               "(expected key=value)")
        parsed[key] = unquote(value).strip()
    return parsed
