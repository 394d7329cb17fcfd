"""The `gotrace` command line."""

from __future__ import annotations

import argparse
import sys

from gotrace.errors import GotraceError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gotrace",
        description="Trace unmodified Go programs with eBPF and export OpenTelemetry spans.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "inspect":
            from gotrace.inspect import run_inspect

            print(run_inspect(args.binary, args.pid, args.json))
        return 0
    except GotraceError as e:
        print(f"gotrace: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
