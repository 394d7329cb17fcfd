"""Cross-host linking's cost (`--link-store`, issue 22): two "hosts" of tests/hosts.py
(network namespaces behind a router namespace), each with its own agent, meeting in a
private Redis. On the client host testapps/loadgen, traced by that host's agent, calls
testapps/httpserver's trivial handler on the server host, traced by the other agent, at a
fixed rate over keep-alive connections: per request one CLIENT span, which the client's
agent publishes, and one SERVER span, which the server's agent holds until it has found its
caller's key and linked it. Rounds without and with --link-store alternate (bench.rounds);
the store, and the OTLP sink (a fresh one per round, timing the SERVER spans' arrival) run in
this process's namespace, where the hosts reach them; every process on any CPU, the agents
at normal priority (--no-yield-cpu): what linking costs them, not what they leave to a busy
machine.

Per round: each agent's CPU from the start of the load until SETTLE_S after it (when every
span has been exported), the spans it exported and its --stats counters, the store's among
them; the sink's delays between each SERVER span's end and its arrival.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import databases  # tests/ (bench/__init__.py)
from hosts import Network, hosts
from tracing import go_server

from bench.apps import Apps
from bench.loadgen import LoadResult, held_load
from bench.otlp_sink import Delays, otlp_sink
from bench.rounds import alternation
from bench.session import CrossHostCounts, Gotrace, TraceStats
from gotrace.export.otlp_config import DEFAULT_BATCH_DELAY_S
from gotrace.pipeline.cross_host import DEFAULT_LINK_HOLD_S

CLIENT, SERVER = "client", "server"  # the hosts
# After the load: a SERVER span whose caller's key is not found waits the link hold (the
# default), then goes with the next export batch, a batch delay later at most.
SETTLE_S = DEFAULT_LINK_HOLD_S + DEFAULT_BATCH_DELAY_S + 0.5


@dataclass(frozen=True)
class Settings:
    rate: int  # requests per second: a CLIENT span on one host and a SERVER span on the other
    conns: int  # the load generator's keep-alive connections
    seconds: float  # of load per round
    pairs: int  # of rounds, one without and one with the store each


@dataclass(frozen=True)
class AgentRound:
    """One agent in one round."""

    stats: TraceStats
    cpu_s: float  # from the start of the load until SETTLE_S after it

    @property
    def cpu_us_per_span(self) -> float:
        return self.cpu_s / max(1, self.stats.exported) * 1e6

    @property
    def store(self) -> CrossHostCounts:
        """Its link store counters (rounds with the store only)."""
        assert self.stats.cross_host is not None, "an agent without --link-store"
        return self.stats.cross_host


@dataclass(frozen=True)
class Round:
    linking: bool  # with --link-store
    load: LoadResult
    client: AgentRound  # the load generator's host's agent: publishes its CLIENT spans
    server: AgentRound  # the server's host's agent: looks its SERVER spans' callers up
    received: int  # spans the sink got, from both agents
    delays: Delays  # of the SERVER spans: their arrival at the sink after their end

    @property
    def agents(self) -> tuple[AgentRound, AgentRound]:
        return self.client, self.server

    @property
    def window_s(self) -> float:
        """The seconds the store may have had work: the load and the settling after it."""
        return self.load.seconds + SETTLE_S

    @property
    def lost(self) -> int:
        return sum(a.stats.lost for a in self.agents)


@dataclass(frozen=True)
class CrossHostResult:
    settings: Settings
    rounds: list[Round]

    def of(self, linking: bool) -> list[Round]:
        return [r for r in self.rounds if r.linking == linking]

    def median(self, linking: bool, value: Callable[[Round], float]) -> float:
        return statistics.median(value(r) for r in self.of(linking))

    def ratio(self, value: Callable[[Round], float]) -> float:
        """The median of value with the store / without."""
        return self.median(True, value) / self.median(False, value)

    def added(self, value: Callable[[Round], float]) -> float:
        """The median of value with the store - without."""
        return self.median(True, value) - self.median(False, value)


def _round(loadgen: Path, net: Network, url: str, server_pid: int, store: str | None,
           settings: Settings) -> Round:
    """One round: both agents attached, then the load, SETTLE_S, and the agents stopped."""
    linking = ["--link-store", store] if store else []
    with otlp_sink(host=net.outside, server_delays=True) as sink, \
            held_load(loadgen, ["-url", url], rate=settings.rate, conns=settings.conns,
                      seconds=settings.seconds, prefix=net[CLIENT].prefix) as load, \
            contextlib.ExitStack() as stack:
        agents = [stack.enter_context(Gotrace(
            ["trace", "--pid", str(pid), "--no-yield-cpu", *sink.otlp_args(), *linking],
            prefix=net[host].prefix)) for host, pid in ((CLIENT, load.pid),
                                                         (SERVER, server_pid))]
        for agent in agents:  # started together: they attach at once
            agent.ready()
        before = [agent.cpu() for agent in agents]
        served = load.go()
        time.sleep(SETTLE_S)
        cpu = [agent.cpu() - start for agent, start in zip(agents, before, strict=True)]
        for agent in agents:
            agent.interrupt()
        client, server = (AgentRound(agent.wait(), cpu_s)
                          for agent, cpu_s in zip(agents, cpu, strict=True))
    if sink.server_delays is None:
        raise RuntimeError(f"cross-host round: the sink received no server span ({url})")
    return Round(store is not None, served, client, server, sink.received, sink.server_delays)


def measure(apps: Apps, settings: Settings) -> CrossHostResult:
    with hosts(CLIENT, SERVER) as net, databases.redis(host=net.outside) as redis, \
            go_server(apps.httpserver, place=net[SERVER]) as (server, address):
        store = f"redis://{redis.dsn}"
        rounds = [_round(apps.loadgen, net, f"http://{address}/hello", server.pid,
                         store if linking else None, settings)
                  for linking in alternation(settings.pairs)]
    return CrossHostResult(settings, rounds)


def main(argv: list[str]) -> None:
    """The section alone, with the full plan's settings (or --quick's), its report and its
    targets printed: for work on cross-host linking without the whole bench (needs root).

        python -m bench.cross_host [--quick]
    """
    from bench.apps import build_apps
    from bench.harness import FULL, QUICK
    from bench.report import cross_host_section
    from bench.targets import cross_host_verdicts

    plan = QUICK if "--quick" in argv else FULL
    result = measure(build_apps(), plan.cross_host)
    print("\n".join(cross_host_section(result)))
    for v in cross_host_verdicts(result):
        print(f"- {v.target}: {v.measured} (limit {v.limit}) "
              f"{'PASS' if v.passed else 'MISS: ' + v.why}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
