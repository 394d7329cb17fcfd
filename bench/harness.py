"""One benchmark run: what it measures (a Plan), every section measured, the report written."""

from __future__ import annotations

import concurrent.futures
import datetime
import os
import subprocess
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench import REPO, attach, cross_host, dbcalls, overhead, pipeline, saturation
from bench.apps import Apps, build_apps
from bench.bigprog import build_big_program
from bench.calibrate import calibrate
from bench.cpus import ANYWHERE, placement
from bench.dbcalls import DB_WORKLOADS
from bench.loadgen import SATURATION, Connections
from bench.otlp_sink import otlp_sink
from bench.probe_hits import (
    CHI_MOUNTED,
    CONNECTION_WORKLOADS,
    HIT_WORKLOADS,
    HTTP2_WORKLOADS,
    OPT_IN_WORKLOADS,
    ROUTE_WORKLOADS,
    SCHED_WAIT,
    HitCount,
    count_hits,
)
from bench.report import render
from bench.results import Results
from bench.targets import BPF_BUDGETED, Verdict, evaluate
from testapps import matrix

T = TypeVar("T")
DB_CONNECTIONS = Connections(fixed=dbcalls.CONNECTIONS, saturation=dbcalls.CONNECTIONS)


@dataclass(frozen=True)
class Plan:
    """How much of everything one run measures."""

    name: str
    loop_calls: int  # calibration loop length
    calibration_pairs: int
    hit_calls: int  # requests/RPCs per probe-hit workload
    bpf_rounds: int  # rounds of the workloads whose probes' run time has a target
    hit_workloads: tuple[str, ...]  # of bench.probe_hits
    db_workloads: tuple[str, ...]  # of bench.dbcalls: their hits, CPU and throughput
    overhead: overhead.Settings
    pipeline: pipeline.Settings
    saturation: saturation.Settings
    databases: overhead.Settings  # rate: the fixed one (no busy handler: busy_rate unused)
    cross_host: cross_host.Settings
    attach_runs: int
    big_binary: bool  # attach to a generated 25 MB-class service, else to a test app
    parallel: bool  # run the sections at once: only where the figures do not matter


FULL = Plan(
    name="full", loop_calls=1_000_000, calibration_pairs=2, hit_calls=10_000, bpf_rounds=3,
    hit_workloads=(*HIT_WORKLOADS, *HTTP2_WORKLOADS, SCHED_WAIT, *CONNECTION_WORKLOADS,
                   *ROUTE_WORKLOADS),
    db_workloads=tuple(DB_WORKLOADS),
    overhead=overhead.Settings(pairs=3, seconds=5, rate=2000, busy_rate=1000,
                               conns=Connections(fixed=4, saturation=16)),
    pipeline=pipeline.Settings(rates=(1000, 2000, 4000, SATURATION), sampler_rate=2000,
                               seconds=4, conns=Connections(fixed=4, saturation=16),
                               sampler_seconds=8, sampler_pairs=3),
    saturation=saturation.Settings(seconds=5, rounds=9, competing_rounds=3, conns=16,
                                   error_rate=20, slow_rate=5),
    databases=overhead.Settings(pairs=3, seconds=4, rate=500, busy_rate=500,
                                conns=DB_CONNECTIONS),
    # 10,000 spans/s in all: a CLIENT span on one host and a SERVER span on the other.
    cross_host=cross_host.Settings(rate=5000, conns=8, seconds=8, pairs=3),
    attach_runs=3, big_binary=True, parallel=False)
QUICK = Plan(
    name="--quick (a smoke test: its figures mean nothing)", loop_calls=20_000,
    calibration_pairs=1, hit_calls=50, bpf_rounds=2,
    hit_workloads=("HTTP server", "HTTP client", "gRPC server, unary", "gRPC server, streaming",
                   *HTTP2_WORKLOADS, SCHED_WAIT, *CONNECTION_WORKLOADS,
                   # a judged route workload and the one only reported
                   "gin", CHI_MOUNTED),
    db_workloads=(dbcalls.SQL,),  # one database server started, not three
    overhead=overhead.Settings(pairs=1, seconds=0.5, rate=300, busy_rate=300,
                               conns=Connections(fixed=2, saturation=4)),
    pipeline=pipeline.Settings(rates=(300,), sampler_rate=300, seconds=0.5,
                               conns=Connections(fixed=2, saturation=4), sampler_pairs=1),
    saturation=saturation.Settings(seconds=1, rounds=1, competing_rounds=1, conns=4,
                                   error_rate=5, slow_rate=2),
    databases=overhead.Settings(pairs=1, seconds=0.5, rate=200, busy_rate=200,
                                conns=DB_CONNECTIONS),
    cross_host=cross_host.Settings(rate=300, conns=2, seconds=1, pairs=1),
    attach_runs=1, big_binary=False, parallel=True)


# The generated service: about 25 MB stripped with an HTTP and a gRPC server linked in.
BIG_PACKAGES, BIG_TYPES, BIG_METHODS = 60, 40, 6


def _attach_binary(apps: Apps, big: bool) -> tuple[Path, str]:
    if not big:
        return apps.loadgen, "testapps/loadgen (stripped; HTTP and gRPC clients)"
    gopath = matrix.grpc_gopaths()[apps.grpc].gopath
    path = build_big_program(BIG_PACKAGES, BIG_TYPES, BIG_METHODS, apps.grpc_go, gopath)
    return path, "a generated HTTP + gRPC service (stripped, bench/bigprog.py)"


def _overhead(apps: Apps, settings: overhead.Settings
              ) -> tuple[list[overhead.ProtocolResult], list[overhead.ProtocolResult]]:
    """Every condition with the server on a CPU of its own; and, for comparison, the busy
    handler at saturation with every process anywhere (how this bench measured it before)."""
    servers = (("HTTP", apps.httpserver), ("gRPC", apps.grpcserver))
    where = placement()
    with otlp_sink(cpus=where.others) as sink:
        own_cpu = [overhead.measure(name, server, apps.loadgen, sink, settings, where)
                   for name, server in servers]
    with otlp_sink() as sink:
        shared = [overhead.measure(name, server, apps.loadgen, sink, settings, ANYWHERE,
                                   only=[(overhead.BUSY, SATURATION)])
                  for name, server in servers]
    return own_cpu, shared


def _database_calls(apps: Apps, settings: overhead.Settings, labels: Sequence[str]
                    ) -> list[overhead.ProtocolResult]:
    """Each database client (bench.dbcalls) at a fixed rate and flat out, the program and its
    database server on the server's CPU, the load generator, gotrace and the receiver on the
    others."""
    where = placement()
    results = []
    with otlp_sink(cpus=where.others) as sink:
        for label in labels:
            with dbcalls.serving(apps, label, where.server) as srv:
                url = ["-url", f"http://{srv.addr}{DB_WORKLOADS[label].path}"]
                conditions = [overhead.ConditionResult(dbcalls.HANDLER, rate)
                              for rate in (settings.rate, SATURATION)]
                result = overhead.measure_rounds(label, srv, {dbcalls.HANDLER: url},
                                                 conditions, apps.loadgen, sink, settings,
                                                 where, warm_rate=settings.rate)
            result.placement = where.describe(beside="its database server")
            results.append(result)
    return results


def _gotrace_version() -> str:
    """The commit measured, and whether the working tree differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True,
                              text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" with uncommitted changes" if git("status", "--porcelain") else "")


def _machine(apps: Apps, plan: Plan) -> dict[str, str]:
    return {"mode": plan.name, "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "gotrace": _gotrace_version(), "CPUs": str(os.cpu_count()),
            "load average at the start": f"{os.getloadavg()[0]:.1f}",
            "kernel": os.uname().release, "Go": apps.go,
            "grpc-go": f"{apps.grpc} (with Go {apps.grpc_go})"}


def _grouped(counts: list[HitCount], *groups: Collection[str]) -> list[list[HitCount]]:
    """The counts of each group of labels, in order, then those of no group."""
    grouped = [[h for h in counts if h.label in group] for group in groups]
    return [*grouped, [h for h in counts if not any(h.label in g for g in groups)]]


def run(plan: Plan, out: Path, log: Callable[[str], None]) -> tuple[Results, list[Verdict]]:
    """Measure everything, write the report to out (profiles next to it) and return it."""
    started = time.monotonic()

    def section(what: str, measure: Callable[[], T]) -> T:
        log(f"{what}: started")
        result = measure()
        log(f"{what}: done")
        return result

    log("building the programs")
    apps = build_apps()
    attach_binary, attach_label = _attach_binary(apps, plan.big_binary)
    machine = _machine(apps, plan)
    out.parent.mkdir(parents=True, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=5 if plan.parallel else 1) as pool:
        calibration = pool.submit(section, "calibration of one uprobe hit", lambda: calibrate(
            apps.hitloop, calls=plan.loop_calls, pairs=plan.calibration_pairs))
        counted = pool.submit(section, "probe hits per request", lambda: count_hits(
            apps, plan.hit_calls, only=(*plan.hit_workloads, *plan.db_workloads),
            again=(*BPF_BUDGETED, *plan.db_workloads), rounds=plan.bpf_rounds))
        protocols = pool.submit(section, "target CPU per request", lambda: _overhead(
            apps, plan.overhead))
        databases = pool.submit(section, "database calls", lambda: _database_calls(
            apps, plan.databases, plan.db_workloads))
        spans = pool.submit(section, "tracer pipeline", lambda: pipeline.measure(
            apps.httpserver, apps.loadgen, plan.pipeline,
            out.with_name(f"{out.stem}-tracer.prof")))
        attached = pool.submit(section, "attach time and memory", lambda: attach.measure(
            attach_binary, attach_label, plan.attach_runs,
            out.with_name(f"{out.stem}-attach.prof")))
        busy = pool.submit(section, "saturation", lambda: saturation.measure(
            apps.httpserver, apps.loadgen, plan.saturation))
        crossed = pool.submit(section, "cross-host linking", lambda: cross_host.measure(
            apps, plan.cross_host))
    own_cpu, shared_cpus = protocols.result()
    opt_in, connections, routes, db_hits, hits = _grouped(
        counted.result(), OPT_IN_WORKLOADS, CONNECTION_WORKLOADS, ROUTE_WORKLOADS, DB_WORKLOADS)
    results = Results(machine, calibration.result(), hits, own_cpu, spans.result(),
                      attached.result(), time.monotonic() - started, opt_in, shared_cpus,
                      connections, busy.result(), routes, db_hits, databases.result(),
                      crossed.result())
    verdicts = evaluate(results)
    out.write_text(render(results, verdicts) + "\n" + kept_by_hand(out))
    return results, verdicts


KEPT_BY_HAND = "## Measured once, behind design choices"


def kept_by_hand(report: Path) -> str:
    """The report's last section, written by hand and carried from run to run: figures
    measured once on this machine that explain a choice in the code (whose comments point
    here rather than quote them)."""
    old = report.read_text() if report.exists() else ""
    start = old.find(KEPT_BY_HAND)
    return "\n" + old[start:] if start >= 0 else ""

