"""Everything one benchmark run measured, as the report and the target check read it."""

from __future__ import annotations

from dataclasses import dataclass

from bench.attach import AttachResult
from bench.calibrate import Calibration
from bench.cross_host import CrossHostResult
from bench.overhead import ProtocolResult
from bench.pipeline import PipelineResult
from bench.probe_hits import HitCount
from bench.saturation import SaturationResult


@dataclass(frozen=True)
class Results:
    machine: dict[str, str]  # what ran where: CPUs, kernel, Go, grpc-go, mode
    calibration: Calibration
    hits: list[HitCount]
    overhead: list[ProtocolResult]  # HTTP, gRPC
    pipeline: PipelineResult
    attach: AttachResult
    seconds: float  # the whole run
    opt_in_hits: list[HitCount]  # bench.probe_hits.OPT_IN_WORKLOADS
    # The busy handler at saturation with every process on any CPU, per protocol (overhead
    # has the server on a CPU of its own): for comparison, no target.
    shared_cpus: list[ProtocolResult]
    connection_hits: list[HitCount]  # bench.probe_hits.CONNECTION_WORKLOADS
    saturation: SaturationResult  # a trivial handler flat out, every process on any CPU
    route_hits: list[HitCount]  # bench.probe_hits.ROUTE_WORKLOADS
    db_hits: list[HitCount]  # bench.dbcalls.DB_WORKLOADS
    # The same workloads loaded at a fixed rate and flat out, untraced and traced (one
    # "protocol" each, named by its label, with the one handler dbcalls.HANDLER).
    db_rounds: list[ProtocolResult]
    cross_host: CrossHostResult  # with and without --link-store, two hosts

    def shared_throughput(self, protocol: str) -> float | None:
        """traced / untraced throughput of the busy handler at saturation, CPUs shared."""
        for proto in self.shared_cpus:
            if proto.name == protocol and proto.conditions:
                return proto.conditions[0].ratio(lambda load: load.rps)
        return None
