"""`make bench`: every figure the performance issue asks for, measured in one run, written as
a Markdown report (also printed) with each target checked.

    python -m bench [--quick] [--out bench/REPORT.md]

--quick runs every piece with a handful of requests: a smoke test of the harness, whose
figures mean nothing. Needs root (BPF).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench import REPO
from bench.harness import FULL, QUICK, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few requests of everything")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "REPORT.md",
                        help="where to write the report (default: bench/REPORT.md); the "
                        "profiles go next to it")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root (BPF programs and uprobes)", file=sys.stderr)
        return 2
    started = time.monotonic()

    def log(what: str) -> None:
        print(f"bench: [{time.monotonic() - started:4.0f} s] {what}", file=sys.stderr,
              flush=True)

    out: Path = args.out.resolve()
    run(QUICK if args.quick else FULL, out, log)
    print(out.read_text(), end="")
    log(f"report written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
