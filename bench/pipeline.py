"""The tracer's side: CPU per exported span and sustained spans per second with OTLP export to
a receiver in another process (bench.otlp_sink), the highest rate at which nothing is
dropped, and how much CPU head sampling (OTEL_TRACES_SAMPLER=traceidratio, 0.1) saves.
Export is over gotrace's default protocol (OTLP/HTTP, protobuf); one pair of sampler steps
over OTLP/gRPC shows what that exporter's client library adds.

Each step is a gotrace session tracing the HTTP test server by PID while the load generator
calls its trivial handler at one rate (or flat out); the tracer's CPU is read from its
CPU-time clock between the start of the load and the moment its last spans have been exported.
gotrace runs at normal priority here (--no-yield-cpu): what it can do when it gets the CPU,
not what it leaves to a saturated machine (bench.saturation).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.apps import serve
from bench.loadgen import SATURATION, Connections, LoadResult, run_load
from bench.otlp_sink import Sink, otlp_sink
from bench.session import Gotrace, TraceStats
from gotrace.export.otlp_config import DEFAULT_PROTOCOL

# After the load: a server span whose client is on this host but not traced (the load
# generator) is held 1 s for its client span, then exported with the next batch (<= 0.2 s).
SETTLE_S = 1.5
ALWAYS_ON = {"OTEL_TRACES_SAMPLER": "always_on"}
RATIO = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}


@dataclass(frozen=True)
class Settings:
    rates: tuple[int, ...]  # requests per second of each step; SATURATION: flat out
    sampler_rate: int  # the rate (one of rates) at which the samplers are compared
    seconds: float
    conns: Connections
    # The samplers' steps last longer: a tenth of the spans, and a fixed cost (polls, the
    # status line, the gRPC client's threads) that the seconds after the load add to.
    sampler_seconds: float = 0.0  # 0: seconds
    # always_on / traceidratio step pairs, alternating: a disturbed step moves a median less.
    sampler_pairs: int = 1
    grpc_pair: bool = True  # and one more pair exporting over OTLP/gRPC

    def seconds_at(self, rate: int) -> float:
        if rate == self.sampler_rate and self.sampler_seconds:
            return self.sampler_seconds
        return self.seconds


JSON_LINES = "jsonl"  # a Step's protocol when it wrote JSON lines instead of OTLP
CAPACITY_PROTOCOLS = ("grpc", JSON_LINES)  # measured flat out beside the default protocol


@dataclass(frozen=True)
class Step:
    rate: int
    protocol: str  # the OTLP exporter's, or JSON_LINES
    load: LoadResult
    stats: TraceStats
    tracer_cpu_s: float
    grpc_cpu_s: float  # of tracer_cpu_s, in the threads of gRPC's client library
    rss_mb: float  # VmRSS at the end of the step
    peak_rss_mb: float  # VmHWM

    @property
    def spans_per_s(self) -> float:
        return self.stats.exported / self.load.seconds

    @property
    def cpu_us_per_span(self) -> float:
        return self.tracer_cpu_s / max(1, self.stats.exported) * 1e6

    @property
    def cpu_us_per_request(self) -> float:
        return self.tracer_cpu_s / self.load.requests * 1e6

    @property
    def grpc_cpu_us_per_request(self) -> float:
        return self.grpc_cpu_s / self.load.requests * 1e6

    @property
    def exported_fraction(self) -> float:
        return self.stats.exported / self.load.requests


@dataclass(frozen=True)
class SamplerPair:
    always_on: Step
    ratio: Step  # traceidratio 0.1, right after its always_on twin


@dataclass(frozen=True)
class PipelineResult:
    steps: list[Step]  # always_on, one per rate (at the sampler rate: the first pair's)
    sampler: list[SamplerPair]  # at the sampler rate
    grpc_pair: SamplerPair | None  # the same, exporting over OTLP/gRPC
    profiled: Step  # always_on at the highest fixed rate, under bench.profiled
    profile: Path
    sent_to_sink: int  # spans exported by every session of this section
    received: int  # by the sink
    # Flat out with the other exporters (OTLP/gRPC, JSON lines), for their spans per core.
    capacity: list[Step]

    def step_at(self, rate: int) -> Step:
        return next(s for s in self.steps if s.rate == rate)

    @property
    def sampled(self) -> Step:
        """The traceidratio step whose tracer CPU per request is the median."""
        return _median_step([p.ratio for p in self.sampler])

    @property
    def sampled_always_on(self) -> Step:
        """The always_on step at the sampler rate whose tracer CPU per request is the median."""
        return _median_step([p.always_on for p in self.sampler])

    @property
    def busiest(self) -> Step:
        """The step that exported the most spans per second."""
        return max(self.steps, key=lambda s: s.spans_per_s)

    @property
    def lossless(self) -> list[Step]:
        return [s for s in self.steps if s.stats.lost == 0]


def _median_step(steps: list[Step]) -> Step:
    """The step at the (lower) median of tracer CPU per request."""
    ordered = sorted(steps, key=lambda s: s.cpu_us_per_request)
    return ordered[(len(ordered) - 1) // 2]


def _step(pid: int, url: str, loadgen: Path, sink: Sink, settings: Settings, rate: int,
          env: dict[str, str], profile: Path | None = None,
          protocol: str = DEFAULT_PROTOCOL) -> Step:
    with tempfile.TemporaryDirectory(prefix="gotrace-bench-") as scratch:
        outputs = ["--jsonl", f"{scratch}/spans.jsonl"] if protocol == JSON_LINES \
            else sink.otlp_args(protocol)
        return _traced_step(pid, url, loadgen, settings, rate, env, profile, protocol, outputs)


def _traced_step(pid: int, url: str, loadgen: Path, settings: Settings, rate: int,
                 env: dict[str, str], profile: Path | None, protocol: str,
                 outputs: list[str]) -> Step:
    with Gotrace(["trace", "--pid", str(pid), "--no-yield-cpu", *outputs], env=env,
                 profile=profile) as session:
        session.ready()
        if profile:
            session.restart_profile()
        before, grpc_before = session.cpu(), session.grpc_cpu()
        load = run_load(loadgen, ["-url", url], rate=rate, conns=settings.conns,
                        seconds=settings.seconds_at(rate))
        time.sleep(SETTLE_S)
        cpu, grpc_cpu = session.cpu() - before, session.grpc_cpu() - grpc_before
        rss, peak = session.memory("VmRSS"), session.memory("VmHWM")
        return Step(rate, protocol, load, session.stop(), cpu, grpc_cpu, rss, peak)


def measure(server: Path, loadgen: Path, settings: Settings, profile: Path) -> PipelineResult:
    with otlp_sink() as sink, serve(server) as srv:
        url = f"http://{srv.addr}/hello"
        run_load(loadgen, ["-url", url], rate=SATURATION, conns=settings.conns, seconds=0.5)
        if settings.sampler_rate not in settings.rates:
            raise ValueError(f"sampler rate {settings.sampler_rate} is not one of the rates")
        steps: list[Step] = []
        sampler: list[SamplerPair] = []
        for rate in settings.rates:
            if rate != settings.sampler_rate:
                steps.append(_step(srv.pid, url, loadgen, sink, settings, rate, ALWAYS_ON))
                continue
            for _ in range(settings.sampler_pairs):
                sampler.append(_pair(srv.pid, url, loadgen, sink, settings))
            steps.append(sampler[0].always_on)
        grpc_pair = _pair(srv.pid, url, loadgen, sink, settings, "grpc") \
            if settings.grpc_pair else None
        capacity = [_step(srv.pid, url, loadgen, sink, settings, SATURATION, ALWAYS_ON,
                          protocol=protocol) for protocol in CAPACITY_PROTOCOLS]
        highest = max((r for r in settings.rates if r != SATURATION), default=SATURATION)
        profiled = _step(srv.pid, url, loadgen, sink, settings, highest, ALWAYS_ON, profile)
    pairs = [*sampler, *([grpc_pair] if grpc_pair else [])]
    extra = [step for pair in pairs for step in (pair.always_on, pair.ratio)][1:]
    sent = sum(s.stats.exported for s in (*steps, *extra, profiled, *capacity)
               if s.protocol != JSON_LINES)
    return PipelineResult(steps, sampler, grpc_pair, profiled, profile, sent, sink.received,
                          capacity)


def _pair(pid: int, url: str, loadgen: Path, sink: Sink, settings: Settings,
          protocol: str = DEFAULT_PROTOCOL) -> SamplerPair:
    """always_on, then traceidratio, at the sampler rate."""
    rate = settings.sampler_rate
    return SamplerPair(
        _step(pid, url, loadgen, sink, settings, rate, ALWAYS_ON, protocol=protocol),
        _step(pid, url, loadgen, sink, settings, rate, RATIO, protocol=protocol))


def main(argv: list[str]) -> None:
    """One always_on step, for work on the pipeline without the whole bench (needs root):

        python -m bench.pipeline [RATE [SECONDS [PROFILE.prof]]]   (RATE 0: flat out)
    """
    from bench.apps import build_apps
    from bench.loadgen import Connections

    rate = int(argv[0]) if argv else 4000
    seconds = float(argv[1]) if len(argv) > 1 else 4.0
    profile = Path(argv[2]).resolve() if len(argv) > 2 else None
    settings = Settings(rates=(rate,), sampler_rate=rate, seconds=seconds,
                        conns=Connections(fixed=4, saturation=16))
    apps = build_apps()
    with otlp_sink() as sink, serve(apps.httpserver) as srv:
        url = f"http://{srv.addr}/hello"
        step = _step(srv.pid, url, apps.loadgen, sink, settings, rate, ALWAYS_ON, profile)
    print(f"rate {rate}/s: {step.stats.exported} spans exported ({step.spans_per_s:.0f}/s), "
          f"lost {step.stats.lost}, received {sink.received}; tracer CPU "
          f"{step.cpu_us_per_span:.1f} µs per span, RSS {step.rss_mb:.0f} MB")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
