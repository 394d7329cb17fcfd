"""OpenTelemetry resource attributes for a traced process."""

from __future__ import annotations

import os
import socket
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import unquote

from gotrace.spans import AttributeValue, Resource


def gotrace_version() -> str:
    try:
        return version("gotrace")
    except PackageNotFoundError:
        return "0.0.0"


def parse_resource_attributes(text: str) -> dict[str, str]:
    """OTEL_RESOURCE_ATTRIBUTES: 'k=v,k2=v2', values percent-encoded; bad pairs ignored."""
    out = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            out[key.strip()] = unquote(value.strip())
    return out


def process_resource(pid: int, executable: str, go_version: str,
                     environ: dict[str, str] | None = None) -> Resource:
    env = os.environ if environ is None else environ
    attrs: dict[str, AttributeValue] = {
        "service.name": os.path.basename(executable) or "unknown_service",
        "process.pid": pid,
        "process.executable.path": executable,
        "process.executable.name": os.path.basename(executable),
        "process.runtime.name": "go",
        "process.runtime.version": go_version,
        "host.name": socket.gethostname(),
        "telemetry.sdk.name": "gotrace",
        "telemetry.sdk.language": "go",
        "telemetry.sdk.version": gotrace_version(),
    }
    attrs.update(parse_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", "")))
    if env.get("OTEL_SERVICE_NAME"):
        attrs["service.name"] = env["OTEL_SERVICE_NAME"]
    return Resource(attrs)
