"""The `gotrace` command line."""

from __future__ import annotations

import argparse
import sys

from gotrace.errors import GotraceError

EXIT_USAGE = 2


def _trace_count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a number of traces: {text!r}")
    return int(text)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command line, and the parsers of the commands whose settings a --config file
    may give."""
    parser = argparse.ArgumentParser(
        prog="gotrace",
        description="Trace unmodified Go programs with eBPF and export OpenTelemetry spans.",
    )
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    inspect = sub.add_parser(
        "inspect",
        help="show what gotrace resolves in a Go binary (functions, RET sites, field offsets)",
        description="Show the Go version, build settings and modules of a Go binary, and for "
        "every function and struct field the probes need: where it is and which source "
        "(symtab, pclntab, typeinfo, dwarf, offsets-db) it was resolved from.",
        epilog="examples:\n  gotrace inspect /usr/bin/myservice\n"
        "  gotrace inspect --pid 4242 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = inspect.add_mutually_exclusive_group(required=True)
    target.add_argument("binary", nargs="?", help="path of a Go executable")
    target.add_argument("--pid", type=int, help="inspect the executable of a running process")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")

    from gotrace.cli import help as cli_help
    from gotrace.cli.trace import add_output_arguments, add_target_arguments

    trace = sub.add_parser(
        "trace",
        help="trace running Go programs",
        description=cli_help.TRACE_DESCRIPTION,
        epilog=cli_help.TRACE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_arguments(trace)
    add_output_arguments(trace)

    run = sub.add_parser(
        "run",
        help="launch a Go program and trace it from its first request",
        usage="%(prog)s [OPTIONS] -- PROGRAM [ARGS...]",
        description=cli_help.RUN_DESCRIPTION,
        epilog=cli_help.RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_output_arguments(run)
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- PROGRAM ARGS...")

    from gotrace.report import DEFAULT_SLOWEST

    report = sub.add_parser(
        "report",
        help="write an HTML report of a JSON-lines capture",
        description="Summarise spans written by `gotrace trace --jsonl` in one self-contained "
        "HTML file: latency percentiles, error rates and histograms per service and route, "
        "the service dependency graph, and the slowest traces as waterfalls. The page loads "
        "nothing from the network.",
        epilog="examples:\n  gotrace report spans.jsonl\n"
        "  gotrace report spans.jsonl -o /tmp/report.html --slowest 20",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("capture", metavar="CAPTURE.jsonl",
                        help="spans written by gotrace trace --jsonl")
    report.add_argument("-o", "--output", metavar="FILE",
                        help="where to write the report (default: CAPTURE with .html)")
    report.add_argument("--slowest", type=_trace_count, default=DEFAULT_SLOWEST, metavar="N",
                        help="draw the N slowest traces as waterfalls (default: %(default)s)")
    return parser, {"trace": trace, "run": run}


def main(argv: list[str] | None = None) -> int:
    try:
        parser, configurable = build_parser()  # loads the probe declarations
    except GotraceError as e:
        print(f"gotrace: {e}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    try:
        if args.subcommand == "inspect":
            from gotrace.cli.inspect import run_inspect

            print(run_inspect(args.binary, args.pid, args.json))
            return 0
        if args.subcommand == "report":
            from gotrace.report import default_output, write_report

            out = write_report(args.capture, args.output or default_output(args.capture),
                               slowest=args.slowest)
            print(f"gotrace: wrote {out}")
            return 0
        from gotrace.cli.config import apply_config
        from gotrace.cli.trace import run_program, run_trace

        args = apply_config(args, configurable[args.subcommand])
        return run_trace(args) if args.subcommand == "trace" else run_program(args)
    except GotraceError as e:
        print(f"gotrace: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
