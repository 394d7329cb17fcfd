"""What tracing costs the target: its CPU per request (from the server's CPU-time clock, so
the tracer's own CPU is separate), throughput and latency, untraced vs traced.

The server runs on a CPU of its own, the load generator, gotrace and the receiver on the
others (bench.cpus), so that its throughput at saturation is the server's.

One server per protocol serves every condition: a trivial handler and one burning ~200 µs of
CPU, each at a fixed request rate and at saturation. Rounds alternate between untraced and
traced (bench.rounds), a traced round being one gotrace session exporting over OTLP to the
sink while every condition runs once; each figure is the median over its rounds.

The database clients' rounds (bench.harness, bench.dbcalls) are the same (measure_rounds), with
one handler, their program's GET /two, and the database server beside the program on its CPU.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.apps import Server, serve
from bench.cpus import Placement
from bench.loadgen import SATURATION, Connections, LoadResult, run_load
from bench.otlp_sink import Sink
from bench.probe_hits import HitCount
from bench.procstat import cpu_seconds
from bench.rounds import alternation
from bench.session import Gotrace
from gotrace.pipeline.overload import machine_cpu_ticks

WORK_US = 200  # CPU the busy handler burns per request
TRIVIAL, BUSY = "trivial", f"~{WORK_US} µs of work"


@dataclass(frozen=True)
class Settings:
    pairs: int  # untraced/traced round pairs
    seconds: float  # per condition and round
    rate: int  # the fixed request rate of the trivial handler, per second
    busy_rate: int  # ... of the busy one (well below what the machine can do traced)
    conns: Connections


@dataclass(frozen=True)
class Sample:
    load: LoadResult
    target_cpu_s: float
    tracer_cpu_s: float | None  # None untraced
    machine_busy: float  # share of all CPUs' time that was busy during the load

    @property
    def cpu_us_per_request(self) -> float:
        return self.target_cpu_s / self.load.requests * 1e6


def _median(samples: list[Sample], value: Callable[[Sample], float]) -> float:
    return statistics.median(value(s) for s in samples)


@dataclass
class ConditionResult:
    handler: str
    rate: int  # SATURATION or requests per second
    untraced: list[Sample] = field(default_factory=list)
    traced: list[Sample] = field(default_factory=list)

    def cpu_us(self, traced: bool) -> float:
        return _median(self.traced if traced else self.untraced,
                       lambda s: s.cpu_us_per_request)

    @property
    def added_cpu_us(self) -> float:
        return self.cpu_us(True) - self.cpu_us(False)

    @property
    def added_spread_us(self) -> float:
        """Half the range of the rounds' own differences (traced less untraced, pair by
        pair): how far the rounds disagree about the added CPU."""
        added = [t.cpu_us_per_request - u.cpu_us_per_request
                 for u, t in zip(self.untraced, self.traced, strict=True)]
        return (max(added) - min(added)) / 2

    def ratio(self, value: Callable[[LoadResult], float]) -> float:
        """traced / untraced, of the medians."""
        return (_median(self.traced, lambda s: value(s.load))
                / _median(self.untraced, lambda s: value(s.load)))

    def machine_busy(self, traced: bool) -> float:
        return _median(self.traced if traced else self.untraced, lambda s: s.machine_busy)

    @property
    def tracer_cpu_us_per_request(self) -> float:
        return _median(self.traced, lambda s: (s.tracer_cpu_s or 0) / s.load.requests * 1e6)


@dataclass
class ProtocolResult:
    name: str
    conditions: list[ConditionResult]
    hits: dict[str, int] = field(default_factory=dict)  # over every traced round
    traced_requests: int = 0
    attach_s: list[float] = field(default_factory=list)
    placement: str = ""  # which CPUs the server and the rest ran on (bench.cpus)

    @property
    def hits_per_request(self) -> float:
        return sum(self.hits.values()) / self.traced_requests

    def hit_count(self, label: str) -> HitCount:
        return HitCount(label, self.traced_requests, self.hits)


def _targets(protocol: str, addr: str) -> dict[str, list[str]]:
    if protocol == "HTTP":
        return {TRIVIAL: ["-url", f"http://{addr}/hello"],
                BUSY: ["-url", f"http://{addr}/work?us={WORK_US}"]}
    grpc = ["-grpc", addr, "-method"]
    return {TRIVIAL: [*grpc, "/demo.Echo/Say", "-value", "bench"],
            BUSY: [*grpc, "/demo.Echo/Work", "-value", str(WORK_US)]}


def measure(protocol: str, server: Path, loadgen: Path, sink: Sink,
            settings: Settings, where: Placement,
            only: Sequence[tuple[str, int]] | None = None) -> ProtocolResult:
    """sink: an OTLP receiver already running on where.others; only: (handler, rate) of the
    conditions to measure, if not every one."""
    conditions = [ConditionResult(h, r) for h, rate in ((TRIVIAL, settings.rate),
                                                        (BUSY, settings.busy_rate))
                  for r in (rate, SATURATION) if only is None or (h, r) in only]
    with serve(server, cpus=where.server) as srv:
        # Warmed up at the busy handler's rate (it measures its loop).
        return measure_rounds(protocol, srv, _targets(protocol, srv.addr), conditions,
                              loadgen, sink, settings, where, warm_rate=settings.busy_rate)


def measure_rounds(name: str, srv: Server, targets: dict[str, list[str]],
                   conditions: list[ConditionResult], loadgen: Path, sink: Sink,
                   settings: Settings, where: Placement, warm_rate: float) -> ProtocolResult:
    """The alternating rounds against a server already running on where.server: each
    condition's load (its handler's loadgen target, at its rate, on settings.conns) once per
    round, after a warm-up of every target at warm_rate."""
    result = ProtocolResult(name, conditions, placement=where.describe())
    for target in targets.values():
        run_load(loadgen, target, rate=warm_rate, conns=settings.conns, seconds=0.5,
                 cpus=where.others)

    def one_round(session: Gotrace | None) -> list[Sample]:
        samples = []
        for cond in conditions:
            target_before = cpu_seconds(srv.pid)
            tracer_before = session.cpu() if session else 0.0
            busy_before, all_before = machine_cpu_ticks()
            load = run_load(loadgen, targets[cond.handler], rate=cond.rate,
                            conns=settings.conns, seconds=settings.seconds,
                            cpus=where.others)
            busy, all_ = machine_cpu_ticks()
            samples.append(Sample(load, cpu_seconds(srv.pid) - target_before,
                                  session.cpu() - tracer_before if session else None,
                                  (busy - busy_before) / max(1, all_ - all_before)))
        return samples

    for traced in alternation(settings.pairs):
        if not traced:
            for cond, sample in zip(conditions, one_round(None), strict=True):
                cond.untraced.append(sample)
            continue
        with Gotrace(["trace", "--pid", str(srv.pid), *sink.otlp_args()],
                     cpus=where.others) as session:
            result.attach_s.append(session.ready())
            samples = one_round(session)
            hits = session.stop().hits
        for cond, sample in zip(conditions, samples, strict=True):
            cond.traced.append(sample)
        result.traced_requests += sum(s.load.requests for s in samples)
        for probe, n in hits.items():
            result.hits[probe] = result.hits.get(probe, 0) + n
    return result
