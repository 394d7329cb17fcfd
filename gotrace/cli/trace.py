"""`gotrace trace` and `gotrace run`: set up exporters, attach, poll, report, clean up."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from gotrace.cli.listeners import pids_on_port
from gotrace.cli.status import StatusReporter, open_status, take_snapshot
from gotrace.errors import GotraceError
from gotrace.export import ConsoleExporter, Exporter, ExportPipeline, JsonlExporter, otlp_config
from gotrace.kernel.program import uprobe_mechanism
from gotrace.metrics import (
    MetricsExporter,
    cross_host_counters,
    kernel_counters,
    pipeline_counters,
    route_counters,
    shed_counters,
)
from gotrace.pipeline.cross_host import (
    DEFAULT_LINK_HOLD_S,
    CrossHostLinks,
    LinkTimes,
    is_final,
)
from gotrace.pipeline.link_store import LinkStore, parse_store_url
from gotrace.pipeline.linking import LinkStats
from gotrace.pipeline.overload import (
    BUSY_CPU,
    OverloadController,
    OverloadSettings,
    SlowRule,
    parse_max_cpu,
    parse_slow,
)
from gotrace.pipeline.routes import DEFAULT_MAX_ROUTES, OTHER_ROUTE, RouteInference
from gotrace.pipeline.sampling import SamplerConfig, sampler_config
from gotrace.pipeline.session import (
    Tracer,
    quiet_garbage_collector,
    require_kernel_reads,
    require_root,
    require_user_memory_writes,
)
from gotrace.probes import DURATION_METRICS
from gotrace.probes.runtime import DEEP_ANCESTRY
from gotrace.procfs import run_own_threads_when_idle

DEFAULT_METRICS_HOST = "0.0.0.0"
LINK_STORE_VARIABLE = "GOTRACE_LINK_STORE"


def port_number(text: str) -> int:
    """argparse type: a TCP port number."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (1-65535): {text!r}")
    return int(text)


def route_count(text: str) -> int:
    """argparse type: how many inferred routes a service may have."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a number of routes (1 or more): {text!r}")
    return int(text)


def hold_seconds(text: str) -> float:
    """argparse type: how long a span may wait for its caller (seconds, 0.1 to 60)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0.1 <= seconds <= 60:
        raise argparse.ArgumentTypeError(f"not a hold time in seconds (0.1-60): {text!r}")
    return seconds


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_argument_group("targets (any combination, at least one)")
    targets.add_argument("--pid", type=int, action="append", metavar="PID",
                         help="a process to trace (repeatable)")
    targets.add_argument("--exe", action="append", metavar="PATH",
                         help="every process of this executable, also ones started later "
                         "(repeatable)")
    targets.add_argument("--port", type=port_number, action="append", metavar="N",
                         help="the processes listening on TCP port N when gotrace starts, "
                         "also in other network namespaces (repeatable)")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Outputs and session options of trace and run. Their defaults are None (switches:
    False) so that gotrace.cli.config can tell which were given; see there."""
    out = parser.add_argument_group("outputs (any combination; the console when none is given)")
    out.add_argument("--otlp-endpoint", metavar="URL",
                     help="send spans over OTLP (default from OTEL_EXPORTER_OTLP_ENDPOINT)")
    out.add_argument("--otlp-protocol", choices=("grpc", "http/protobuf"),
                     help="OTLP transport (default from OTEL_EXPORTER_OTLP_PROTOCOL, "
                     "else http/protobuf)")
    out.add_argument("--console", action="store_true", help="print each trace as a tree")
    out.add_argument("--jsonl", metavar="FILE", help="write one JSON span per line ('-': stdout)")
    out.add_argument("--metrics-port", type=port_number, metavar="PORT",
                     help="serve request-duration histograms and gotrace's counters for "
                     "Prometheus at http://HOST:PORT/metrics")
    out.add_argument("--metrics-host", metavar="HOST",
                     help=f"address to serve metrics on (default {DEFAULT_METRICS_HOST}: "
                     "every IPv4 interface, for a Prometheus elsewhere; '::' adds IPv6)")
    run = parser.add_argument_group("session")
    run.add_argument("--config", metavar="FILE",
                     help="read settings from this YAML file (flags given here win)")
    run.add_argument("--duration", type=float, metavar="SECONDS",
                     help="stop after this long, flushing every finished span")
    run.add_argument("--ready-file", metavar="PATH",
                     help="create this file once every probe is attached")
    run.add_argument("--stats", action="store_true",
                     help="print probe hits, spans and drops when the session ends")
    run.add_argument("--include-query", action="store_true",
                     help="export url.query and full query strings (redacted by default)")
    run.add_argument("--inject-traceparent", action="store_true",
                     help="write a W3C traceparent header into outgoing HTTP/1 requests, so "
                     "that traces continue on other hosts (changes the programs' requests; "
                     "see README)")
    run.add_argument("--sched-wait", action="store_true",
                     help="add go.sched.* to spans: how long the request's goroutine waited "
                     "to run and was blocked, by reason (costs a probe hit per goroutine "
                     "state change; see README)")
    run.add_argument("--goroutine-ancestry", action="store_true",
                     help="follow work through up to four levels of goroutines started by a "
                     "request's goroutine, each keeping the request it was started under "
                     "(costs a probe hit per goroutine creation; see README)")
    run.add_argument("--infer-routes", action="store_true",
                     help="give HTTP server spans that no router named a route made of their "
                     "path, each segment that looks like an id (number, UUID, hash, token, "
                     "date, e-mail) as {id}: http.route=/users/{id}, "
                     "gotrace.route.inferred=true, and the span name and metrics follow "
                     "(see README)")
    run.add_argument("--max-inferred-routes", type=route_count, metavar="N",
                     help=f"with --infer-routes: at most N inferred routes per service, the "
                     f"first seen (404 answers make none); the spans of any other are "
                     f"{OTHER_ROUTE} (default {DEFAULT_MAX_ROUTES})")
    run.add_argument("--link-store", metavar="URL",
                     help="link calls between hosts through this Redis, which every host's "
                     "agent is given: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or "
                     "rediss://... for TLS (default from GOTRACE_LINK_STORE; off when "
                     "neither; see README)")
    run.add_argument("--link-hold", type=hold_seconds, metavar="SECONDS",
                     help="with --link-store: how long a request from another host waits "
                     "for its caller's span before it is exported unlinked (default "
                     f"{DEFAULT_LINK_HOLD_S:g}; longer while the caller's own trace is still "
                     "being linked)")
    run.add_argument("--sampler", metavar="NAME",
                     help="which traces to keep: always_on, always_off, traceidratio, "
                     "parentbased_always_on (default), parentbased_always_off, "
                     "parentbased_traceidratio, or adaptive (default from "
                     "OTEL_TRACES_SAMPLER; see README)")
    run.add_argument("--sampler-arg", metavar="ARG",
                     help="the sampler's argument: a ratio for *traceidratio, "
                     "'rate=N,slow=pNN|DURATION' for adaptive (default from "
                     "OTEL_TRACES_SAMPLER_ARG)")
    run.add_argument("--max-cpu", metavar="PERCENT",
                     help="keep gotrace's CPU under this share of one core by shedding "
                     "traces in the kernel (errors and slow requests are kept; see README)")
    run.add_argument("--yield-cpu", action=argparse.BooleanOptionalAction, default=True,
                     help="once attached, run only on CPU time the machine would leave idle "
                     "(SCHED_IDLE; the default): on a saturated machine the traced programs "
                     "keep their CPU and the overload policy sheds traces in the kernel "
                     "(errors and slow requests are kept). --no-yield-cpu: compete for CPU "
                     "like any process, for complete traces at the traced programs' expense "
                     "(see README)")
    run.add_argument("--slow", metavar="DURATION|pNN",
                     help="what the overload policy keeps as slow however much it sheds: a "
                     "duration such as 250ms, or a percentile of each span kind (default: "
                     "the adaptive sampler's slow=, else p99)")


def _exporters(args: argparse.Namespace) -> tuple[dict[str, Exporter], dict[str, float]]:
    """The exporters by name, and the batch delays of those that want their own."""
    exporters: dict[str, Exporter] = {}
    delays: dict[str, float] = {}
    use_otlp = args.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or \
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if use_otlp:
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # before grpc is first imported
        from gotrace.export.otlp import OtlpExporter

        config = otlp_config(args.otlp_endpoint, args.otlp_protocol)
        exporters["otlp"] = OtlpExporter(config)
        delays["otlp"] = config.batch_delay_s
    if args.jsonl:
        exporters["jsonl"] = JsonlExporter(args.jsonl)
    if args.metrics_port is not None:
        exporters["metrics"] = MetricsExporter(args.metrics_host or DEFAULT_METRICS_HOST,
                                               args.metrics_port, metrics=DURATION_METRICS)
    if args.console or not exporters:
        exporters["console"] = ConsoleExporter()
    return exporters, delays


def _overload_settings(args: argparse.Namespace, sampler: SamplerConfig) -> OverloadSettings:
    """--max-cpu and --slow; the adaptive sampler's slow rule when --slow is not given."""
    if args.slow is not None:
        slow = parse_slow(args.slow)
    elif sampler.adaptive is not None:
        slow = SlowRule(sampler.adaptive.slow_ns, sampler.adaptive.slow_quantile)
    else:
        slow = SlowRule()
    return OverloadSettings(max_cpu=parse_max_cpu(args.max_cpu),
                            busy_cpu=BUSY_CPU if args.yield_cpu else None, slow=slow)


def route_inference(args: argparse.Namespace) -> RouteInference | None:
    """--infer-routes and --max-inferred-routes; None when routes are not inferred."""
    if not args.infer_routes:
        if args.max_inferred_routes is not None:
            raise GotraceError("--max-inferred-routes goes with --infer-routes")
        return None
    return RouteInference(args.max_inferred_routes or DEFAULT_MAX_ROUTES)


def cross_host_links(args: argparse.Namespace) -> CrossHostLinks | None:
    """--link-store (or GOTRACE_LINK_STORE) and --link-hold; None when nothing links hosts."""
    url = args.link_store or os.environ.get(LINK_STORE_VARIABLE)
    if not url:
        if args.link_hold is not None:
            raise GotraceError("--link-hold goes with --link-store")
        return None
    require_kernel_reads()
    hold_s = args.link_hold or DEFAULT_LINK_HOLD_S
    settings = LinkTimes.for_hold(hold_s)
    store = LinkStore(parse_store_url(url), settings.ttl_ms, settled=is_final)
    return CrossHostLinks(store, settings.hold_ns, settings.pending_ns)


def _report(counters: tuple[dict[str, int], dict[str, int]], run_ns: dict[str, int],
            pipeline: ExportPipeline, links: LinkStats, cross_host: CrossHostLinks | None,
            sampler: str,
            sampled_out: tuple[int, int], conn_misses: dict[str, int],
            overload: OverloadController, shed: tuple[int, int], rescued: int) -> None:
    hits, drops = counters
    print(f"gotrace: {pipeline.stats().summary()}", file=sys.stderr)
    print("gotrace: spans without their connection " + ", ".join(
        f"{k}={v}" for k, v in conn_misses.items()), file=sys.stderr)
    print(f"gotrace: sampler {sampler}: spans sampled out {sampled_out[0]} in the kernel, "
          f"{sampled_out[1]} by gotrace", file=sys.stderr)
    cuts = ", ".join(f"{reason} {n}" for reason, n in overload.cuts.most_common())
    print(f"gotrace: overload: kept share {overload.ratio:.4g} (lowest "
          f"{overload.lowest_ratio:.4g}), spans shed {shed[0]} in the kernel, {shed[1]} by "
          f"gotrace; of shed traces, {rescued} spans kept for an error or a slow request"
          + (f"; the kept share cut for: {cuts}" if cuts else ""), file=sys.stderr)
    print(f"gotrace: same-host links {links.linked}, server spans with a local peer not "
          f"traced {links.unmatched}, released unlinked for lack of room {links.overflow}",
          file=sys.stderr)
    if cross_host is not None:
        print(f"gotrace: cross-host links: {cross_host.stats.summary()}; link store "
              f"{cross_host.store.stats.summary()}", file=sys.stderr)
    print("gotrace: probe hits " + ", ".join(f"{k}={v}" for k, v in hits.items() if v),
          file=sys.stderr)
    if any(run_ns.values()):
        print("gotrace: probe run time ns (kernel.bpf_stats_enabled) " + ", ".join(
            f"{k}={v}" for k, v in run_ns.items() if v), file=sys.stderr)
    skipped = drops.pop("inject_skipped", 0)
    tcp_lost = drops.pop("tcp_events_lost", 0)
    if tcp_lost:
        print(f"gotrace: TCP events lost in the kernel {tcp_lost} (network.tcp.* undercounted)",
              file=sys.stderr)
    if sum(drops.values()):
        print("gotrace: spans lost in the kernel " + ", ".join(
            f"{k}={v}" for k, v in drops.items() if v), file=sys.stderr)
    if skipped:
        print(f"gotrace: traceparent not injected into {skipped} requests (no room in the "
              "connection's buffer, or not a buffered writer)", file=sys.stderr)


class _Session:
    """Exporters, pipeline and tracer, torn down in the right order whatever happens."""

    def __init__(self, args: argparse.Namespace) -> None:
        routes = route_inference(args)
        require_root()
        self.args = args
        exporters, delays = _exporters(args)
        self.exporter_names = list(exporters)
        self.pipeline = ExportPipeline(exporters, delays=delays)
        self.status: StatusReporter | None = None
        if args.inject_traceparent:
            require_user_memory_writes()
        opt_in = {"nethttp_inject"} if args.inject_traceparent else set()
        if args.sched_wait:
            opt_in.add("sched")
        if args.goroutine_ancestry:
            opt_in.add(DEEP_ANCESTRY)
        sampler = sampler_config(args.sampler, args.sampler_arg)
        self.tracer = Tracer(self.pipeline, with_query=args.include_query, opt_in=opt_in,
                             sampler=sampler, overload=_overload_settings(args, sampler),
                             routes=routes, cross_host=cross_host_links(args))
        metrics = exporters.get("metrics")
        if isinstance(metrics, MetricsExporter):
            metrics.add_counters(kernel_counters(self.tracer.counters),
                                 shed_counters(self.tracer.shed),
                                 pipeline_counters(self.pipeline.stats))
            if routes is not None:
                metrics.add_counters(route_counters(routes.overflow))
            cross_host = self.tracer.linker.cross_host
            if cross_host is not None:
                metrics.add_counters(cross_host_counters(cross_host.counts))

    def ready(self) -> None:
        quiet_garbage_collector()
        for library, why in self.tracer.refused_probes().items():
            print(f"gotrace: {library} probe not attached: {why}", file=sys.stderr)
        if self.args.yield_cpu:
            run_own_threads_when_idle()
        if self.args.ready_file:
            Path(self.args.ready_file).write_text(f"{os.getpid()}\n")
        console_on_terminal = "console" in self.exporter_names and sys.stdout.isatty()
        self.status = open_status(sys.stderr, self.exporter_names,
                                  console_on_terminal=console_on_terminal)
        self.status.started(take_snapshot(self.tracer, self.pipeline), time.monotonic())

    def tick(self) -> None:
        """Called by the tracer about once a second."""
        now = time.monotonic()
        if self.status is not None and self.status.due(now):
            self.status.tick(take_snapshot(self.tracer, self.pipeline), now)

    def close(self) -> None:
        counters = self.tracer.counters()
        run_ns = self.tracer.bpf_run_ns() if self.args.stats else {}
        sampled_out, shed = self.tracer.sampled_out(), self.tracer.shed()
        conn_misses = self.tracer.conn_misses()
        self.tracer.close()
        self.pipeline.flush()
        if self.status is not None:
            self.status.stopped(take_snapshot(self.tracer, self.pipeline, counters[1]))
        if self.args.stats:
            _report(counters, run_ns, self.pipeline, self.tracer.linker.stats,
                    self.tracer.linker.cross_host, self.tracer.sampler.name, sampled_out,
                    conn_misses, self.tracer.overload, shed, self.tracer.gate.rescued)
            print(f"gotrace: TCP retransmits seen {self.tracer.network.retransmits}",
                  file=sys.stderr)
            print(f"gotrace: uprobes attached through {uprobe_mechanism()}", file=sys.stderr)
            if self.tracer.routes is not None:
                print(f"gotrace: inferred routes per service: {self.tracer.routes.summary()}",
                      file=sys.stderr)
            for pid, totals in sorted(self.tracer.runtime.totals.items()):
                print(f"gotrace: runtime pid {pid}: {totals.summary()}", file=sys.stderr)
        self.pipeline.shutdown()
        dropped = self.pipeline.stats().dropped_total
        if dropped:
            print(f"gotrace: {dropped} spans could not be delivered", file=sys.stderr)
        if self.tracer.records_skipped:
            print(f"gotrace: {self.tracer.records_skipped} spans dropped: their process could "
                  "not be identified", file=sys.stderr)


def run_trace(args: argparse.Namespace) -> int:
    if not args.pid and not args.exe and not args.port:
        raise GotraceError("say what to trace: --pid PID, --exe PATH or --port N")
    # Before the session starts: its metrics server must not be mistaken for a target.
    pids = list(dict.fromkeys([*(args.pid or ()),
                               *(pid for port in args.port or () for pid in pids_on_port(port))]))
    session = _Session(args)
    try:
        for pid in pids:
            session.tracer.attach_pid(pid)
        for exe in args.exe or ():
            session.tracer.attach_exe(exe)
        session.tracer.install_signal_handlers()
        session.ready()
        session.tracer.run(duration=args.duration,
                           until_pids_exit=set(pids) if pids and not args.exe else None,
                           every_second=session.tick)
    finally:
        session.close()
    return 0


def run_program(args: argparse.Namespace) -> int:
    """Launch a program held at a gate until its probes are attached, then trace it."""
    # Only the separator goes; a "--" among the program's own arguments is the program's.
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise GotraceError("give the program to run after --")
    session = _Session(args)
    gate_read, gate_write = os.pipe()
    try:
        # The shell waits on the gate, then becomes the program (same PID) with exec.
        proc = subprocess.Popen(
            ["/bin/sh", "-c", f'read _ <&{gate_read}; exec {gate_read}<&-; exec "$0" "$@"',
             *command],
            pass_fds=(gate_read,))
    except OSError as e:
        raise GotraceError(f"cannot start {command[0]}: {e.strerror}") from None
    os.close(gate_read)
    try:
        program = command[0] if "/" in command[0] else _which(command[0])
        session.tracer.attach_launch(str(Path(program).resolve()), proc.pid)
        session.tracer.install_signal_handlers()
        session.ready()
        os.write(gate_write, b"go\n")
        session.tracer.run(duration=args.duration, until_pids_exit={proc.pid},
                           every_second=session.tick)
    except BaseException:
        proc.kill()
        raise
    finally:
        os.close(gate_write)
        session.close()
    if proc.poll() is None:
        proc.terminate()
    return proc.wait()


def _which(name: str) -> str:
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK) and os.path.isfile(candidate):
            return candidate
    raise GotraceError(f"{name}: command not found")
