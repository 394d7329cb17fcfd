"""A busy node: the HTTP test server's trivial handler at saturation on this machine with every
process on any CPU (server, load generator, gotrace and the OTLP receiver share the two
cores), untraced and traced in alternating rounds, each traced round compared with the
untraced rounds on either side. Among the load, errors (/error, status 500)
and slow requests (/slow, past the --slow threshold) at a low rate: with the overload policy
(gotrace/pipeline/overload.py) every one of them must be exported, whatever is shed, and
nothing lost to a full ring buffer or export queue.

gotrace runs by default on idle CPU time only (SCHED_IDLE), shedding in the kernel when it
gets none; a few traced rounds among them run it with --no-yield-cpu (gotrace competing for
CPU at normal priority).

Per traced round: requests served (the load generators' counts), spans exported and received,
spans shed and sampled out, lost by reason, and the kept share the policy ended on and the
lowest it reached.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.apps import serve
from bench.otlp_sink import otlp_sink
from bench.procstat import cpu_seconds, stolen_cpu_ticks
from bench.session import Gotrace, TraceStats

SLOW_MS = 100  # gotrace's --slow; the slow requests take a fifth more

# Why the rounds alternate as they do (the report says it).
BRACKETED = """The machine's speed drifts over minutes with what the hypervisor's other guests do,
as the untraced rounds below show, often by more than tracing moves it; so every traced round
comes between two untraced ones, its throughput compared with their mean (a drift that is
steady over the three cancels), and the judged ratio is the median over many short rounds."""


@dataclass(frozen=True)
class Settings:
    seconds: float
    rounds: int  # traced rounds with gotrace's defaults: the judged ones
    competing_rounds: int  # traced rounds with --no-yield-cpu, spread among them
    conns: int  # of the flat-out load
    error_rate: float  # /error requests per second
    slow_rate: float  # /slow requests per second


@dataclass(frozen=True)
class Served:
    """What the load generators got done in one round."""

    requests: int  # every request, errors and slow ones included
    rps: float  # of the flat-out load
    errors: int  # /error requests
    slow: int  # /slow requests
    stolen: float  # the machine's CPU time the hypervisor took meanwhile, a share


@dataclass(frozen=True)
class TracedRound:
    served: Served
    stats: TraceStats  # the overload policy's kept share and shed spans among them
    received: int  # spans the receiver got
    received_errors: int  # ... with an ERROR status
    received_slow: int  # ... lasting at least SLOW_MS
    tracer_cpu_s: float
    receiver_cpu_s: float  # the OTLP receiver's, on this machine in place of a remote backend

    @property
    def accounted(self) -> int:
        """Spans exported, shed, sampled out or lost: the requests served, when none is
        unaccounted for."""
        s = self.stats
        return s.exported + sum(s.shed) + sum(s.sampled_out) + s.lost


@dataclass(frozen=True)
class Bracketed:
    """A traced round and the untraced rounds just before and just after it."""

    before: Served
    traced: TracedRound
    after: Served

    @property
    def untraced_rps(self) -> float:
        return (self.before.rps + self.after.rps) / 2

    @property
    def ratio(self) -> float:
        return self.traced.served.rps / self.untraced_rps


@dataclass(frozen=True)
class SaturationResult:
    untraced: list[Served]  # every untraced round, in order
    traced: list[Bracketed]  # gotrace with its defaults
    competing: list[Bracketed]  # gotrace with --no-yield-cpu
    settings: Settings

    @property
    def throughput_ratio(self) -> float:
        """The median over the traced rounds of each one's ratio to its untraced neighbours."""
        return statistics.median(b.ratio for b in self.traced)

    @property
    def competing_throughput_ratio(self) -> float:
        return statistics.median(b.ratio for b in self.competing)

    @property
    def ratio_of_medians(self) -> float:
        """The median traced round over the median untraced one: the drift left in, as this
        section judged before its rounds were bracketed; shown beside, not judged."""
        return statistics.median(b.traced.served.rps for b in self.traced) / \
            statistics.median(u.rps for u in self.untraced)


def _load(loadgen: Path, url: str, rate: float, conns: int, seconds: float
          ) -> subprocess.Popen[str]:
    return subprocess.Popen([str(loadgen), "-url", url, "-rate", str(rate), "-conns", str(conns),
                             "-duration", f"{seconds}s"], stdout=subprocess.PIPE, text=True)


def _serve_round(loadgen: Path, addr: str, settings: Settings) -> Served:
    s = settings
    stolen_at = stolen_cpu_ticks()
    loads = {"hello": _load(loadgen, f"http://{addr}/hello", 0, s.conns, s.seconds),
             "error": _load(loadgen, f"http://{addr}/error", s.error_rate, 1, s.seconds),
             "slow": _load(loadgen, f"http://{addr}/slow?ms={SLOW_MS * 6 // 5}", s.slow_rate, 1,
                           s.seconds)}
    results = {name: json.loads(load.communicate(timeout=s.seconds + 60)[0])
               for name, load in loads.items()}
    stolen, ticks = (after - before for after, before in zip(stolen_cpu_ticks(), stolen_at,
                                                              strict=True))
    return Served(requests=sum(r["requests"] for r in results.values()),
                  rps=results["hello"]["rps"], errors=results["error"]["requests"],
                  slow=results["slow"]["requests"], stolen=stolen / max(1, ticks))


def _traced_round(pid: int, loadgen: Path, addr: str, settings: Settings,
                  *options: str) -> TracedRound:
    with otlp_sink(slow_ns=SLOW_MS * 1_000_000) as sink, \
            Gotrace(["trace", "--pid", str(pid), "--slow", f"{SLOW_MS}ms", *options,
                     *sink.otlp_args()]) as session:
        session.ready()
        before, receiver_before = session.cpu(), cpu_seconds(sink.pid)
        served = _serve_round(loadgen, addr, settings)
        time.sleep(1.5)  # the last spans exported
        cpu, receiver_cpu = session.cpu() - before, cpu_seconds(sink.pid) - receiver_before
        stats = session.stop()
    return TracedRound(served, stats, sink.received, sink.errors, sink.slow, cpu, receiver_cpu)


def schedule(settings: Settings) -> list[bool]:
    """The traced rounds in order, True for those with --no-yield-cpu: one after every
    so many with the defaults, the first after the first of those."""
    every = max(1, settings.rounds // max(1, settings.competing_rounds))
    order: list[bool] = []
    for n in range(settings.rounds):
        order.append(False)
        if n % every == 0 and order.count(True) < settings.competing_rounds:
            order.append(True)
    return order + [True] * (settings.competing_rounds - order.count(True))


def measure(server: Path, loadgen: Path, settings: Settings) -> SaturationResult:
    traced: list[Bracketed] = []
    competing: list[Bracketed] = []
    with serve(server) as srv:
        _load(loadgen, f"http://{srv.addr}/hello", 0, settings.conns, 1).communicate()  # warm
        untraced = [_serve_round(loadgen, srv.addr, settings)]
        for compete in schedule(settings):
            options = ("--no-yield-cpu",) if compete else ()
            traced_round = _traced_round(srv.pid, loadgen, srv.addr, settings, *options)
            untraced.append(_serve_round(loadgen, srv.addr, settings))
            (competing if compete else traced).append(
                Bracketed(untraced[-2], traced_round, untraced[-1]))
    return SaturationResult(untraced, traced, competing, settings)
