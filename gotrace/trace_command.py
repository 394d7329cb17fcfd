"""`gotrace trace` and `gotrace run`: set up exporters, attach, poll, report, clean up."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from gotrace.errors import GotraceError
from gotrace.export import ConsoleExporter, Exporter, ExportPipeline, JsonlExporter, otlp_config
from gotrace.metrics import MetricsExporter, kernel_counters, pipeline_counters
from gotrace.tracer import Tracer, require_root


def port_number(text: str) -> int:
    """argparse type: a TCP port to listen on."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (1-65535): {text!r}")
    return int(text)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
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
    out.add_argument("--metrics-host", default="0.0.0.0", metavar="HOST",
                     help="address to serve metrics on (default 0.0.0.0: every IPv4 "
                     "interface, for a Prometheus elsewhere; '::' adds IPv6)")
    run = parser.add_argument_group("session")
    run.add_argument("--duration", type=float, metavar="SECONDS",
                     help="stop after this long, flushing every finished span")
    run.add_argument("--ready-file", metavar="PATH",
                     help="create this file once every probe is attached")
    run.add_argument("--stats", action="store_true",
                     help="print probe hits, spans and drops when the session ends")
    run.add_argument("--include-query", action="store_true",
                     help="export url.query and full query strings (redacted by default)")


def _exporters(args: argparse.Namespace) -> dict[str, Exporter]:
    exporters: dict[str, Exporter] = {}
    use_otlp = args.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or \
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if use_otlp:
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # before grpc is first imported
        from gotrace.export.otlp import OtlpExporter

        exporters["otlp"] = OtlpExporter(otlp_config(args.otlp_endpoint, args.otlp_protocol))
    if args.jsonl:
        exporters["jsonl"] = JsonlExporter(args.jsonl)
    if args.metrics_port is not None:
        exporters["metrics"] = MetricsExporter(args.metrics_host, args.metrics_port)
    if args.console or not exporters:
        exporters["console"] = ConsoleExporter()
    return exporters


def _report(counters: tuple[dict[str, int], dict[str, int]], pipeline: ExportPipeline) -> None:
    hits, drops = counters
    print(f"gotrace: {pipeline.stats().summary()}", file=sys.stderr)
    print("gotrace: probe hits " + ", ".join(f"{k}={v}" for k, v in hits.items() if v),
          file=sys.stderr)
    kernel = sum(drops.values())
    if kernel:
        print("gotrace: spans lost in the kernel " + ", ".join(
            f"{k}={v}" for k, v in drops.items() if v), file=sys.stderr)


class _Session:
    """Exporters, pipeline and tracer, torn down in the right order whatever happens."""

    def __init__(self, args: argparse.Namespace) -> None:
        require_root()
        self.args = args
        exporters = _exporters(args)
        self.pipeline = ExportPipeline(exporters)
        self.tracer = Tracer(self.pipeline, with_query=args.include_query)
        metrics = exporters.get("metrics")
        if isinstance(metrics, MetricsExporter):
            metrics.add_counters(kernel_counters(self.tracer.counters),
                                 pipeline_counters(self.pipeline.stats))

    def ready(self) -> None:
        for library, why in self.tracer.refused_probes().items():
            print(f"gotrace: {library} probe not attached: {why}", file=sys.stderr)
        if self.args.ready_file:
            Path(self.args.ready_file).write_text(f"{os.getpid()}\n")

    def close(self) -> None:
        counters = self.tracer.counters()
        self.tracer.close()
        self.pipeline.flush()
        if self.args.stats:
            _report(counters, self.pipeline)
        self.pipeline.shutdown()
        dropped = self.pipeline.stats().dropped_total
        if dropped:
            print(f"gotrace: {dropped} spans could not be delivered", file=sys.stderr)
        if self.tracer.records_skipped:
            print(f"gotrace: {self.tracer.records_skipped} spans dropped: their process could "
                  "not be identified", file=sys.stderr)


def run_trace(args: argparse.Namespace) -> int:
    if not args.pid and not args.exe:
        raise GotraceError("say what to trace: --pid PID or --exe PATH")
    session = _Session(args)
    try:
        for pid in args.pid or ():
            session.tracer.attach_pid(pid)
        for exe in args.exe or ():
            session.tracer.attach_exe(exe)
        session.tracer.install_signal_handlers()
        session.ready()
        session.tracer.run(duration=args.duration,
                           until_pids_exit=set(args.pid) if args.pid and not args.exe else None)
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
        session.tracer.run(duration=args.duration, until_pids_exit={proc.pid})
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
