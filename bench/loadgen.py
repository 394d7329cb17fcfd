"""Runs testapps/loadgen: HTTP keep-alive or unary gRPC load at a fixed rate or flat out."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.cpus import pinned_to

SATURATION = 0  # as a rate: as fast as the connections go


@dataclass(frozen=True)
class Connections:
    """How many connections the load generator opens: a few at a fixed rate; more flat out,
    so that the machine and not the connections' round trips sets the pace."""

    fixed: int
    saturation: int

    def at(self, rate: float) -> int:
        return self.saturation if rate == SATURATION else self.fixed


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_us: float
    p99_us: float


def run_load(loadgen: Path, target: Sequence[str], *, rate: float, conns: Connections,
             seconds: float, cpus: frozenset[int] | None = None) -> LoadResult:
    """target: ["-url", URL] or ["-grpc", ADDR, "-method", M, "-value", V]; cpus: where the
    load generator runs (bench.cpus), if not anywhere."""
    out = subprocess.run(
        [str(loadgen), *target, "-rate", str(rate), "-conns", str(conns.at(rate)),
         "-duration", f"{seconds}s"],
        check=True, capture_output=True, text=True, timeout=seconds + 60,
        preexec_fn=pinned_to(cpus))
    data = json.loads(out.stdout)
    result = LoadResult(requests=data["requests"], errors=data["errors"],
                        seconds=data["seconds"], rps=data["rps"], p50_us=data["p50_us"],
                        p99_us=data["p99_us"])
    if result.errors:
        raise RuntimeError(f"{result.errors} of {result.requests} requests failed: "
                           f"{' '.join(target)}")
    return result
