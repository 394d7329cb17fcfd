"""Runs testapps/loadgen: HTTP keep-alive or unary gRPC load at a fixed rate or flat out."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator, Sequence
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


def _command(loadgen: Path, target: Sequence[str], rate: float, conns: int,
             seconds: float) -> list[str]:
    return [str(loadgen), *target, "-rate", str(rate), "-conns", str(conns),
            "-duration", f"{seconds}s"]


def _result(output: str, target: Sequence[str]) -> LoadResult:
    """The load generator's JSON line; RuntimeError if any request failed."""
    data = json.loads(output)
    result = LoadResult(requests=data["requests"], errors=data["errors"],
                        seconds=data["seconds"], rps=data["rps"], p50_us=data["p50_us"],
                        p99_us=data["p99_us"])
    if result.errors:
        raise RuntimeError(f"{result.errors} of {result.requests} requests failed: "
                           f"{' '.join(target)}")
    return result


def run_load(loadgen: Path, target: Sequence[str], *, rate: float, conns: Connections,
             seconds: float, cpus: frozenset[int] | None = None) -> LoadResult:
    """target: ["-url", URL] or ["-grpc", ADDR, "-method", M, "-value", V]; cpus: where the
    load generator runs (bench.cpus), if not anywhere."""
    out = subprocess.run(_command(loadgen, target, rate, conns.at(rate), seconds),
                         check=True, capture_output=True, text=True, timeout=seconds + 60,
                         preexec_fn=pinned_to(cpus))
    return _result(out.stdout, target)


@dataclass(frozen=True)
class HeldLoad:
    """A load generator waiting for its start (-stdin), as held_load gives it."""

    process: subprocess.Popen[str]
    target: Sequence[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def go(self) -> LoadResult:
        """Send the load; its result once it is done."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return _result(self.process.stdout.readline(), self.target)


@contextlib.contextmanager
def held_load(loadgen: Path, target: Sequence[str], *, rate: float, conns: int,
              seconds: float, prefix: Sequence[str] = ()) -> Iterator[HeldLoad]:
    """The load generator started (behind the command prefix, e.g. a tests/hosts.py Host's)
    but sending nothing until HeldLoad.go(), and alive until the block ends: a tracer can
    attach to it by pid before its first request and export its last spans before it
    exits (`gotrace trace --pid` ends with its targets)."""
    proc = subprocess.Popen([*prefix, *_command(loadgen, target, rate, conns, seconds),
                             "-stdin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        yield HeldLoad(proc, target)
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()  # it exits
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
