"""Everything one benchmark run measured, as the report and the target check read it."""

from __future__ import annotations

from dataclasses import dataclass

from bench.attach import AttachResult
from bench.calibrate import Calibration
from bench.overhead import ProtocolResult
from bench.pipeline import PipelineResult
from bench.probe_hits import HitCount


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
