"""Benchmark of `gotrace inspect`: wall time and peak RSS per binary.

Prints a table; not a test. Targets (issue: Foundation): under 1.5 s for a 25 MB stripped
binary, under 4 s and 300 MB for a 100 MB-class binary. Each measurement runs inspect in a
fresh process (as a user would) and takes the best of a few runs, since this machine is noisy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bigprog import build_big_program
from testapps import matrix

# Large Go programs that machines of this kind ship; used when present.
SYSTEM_GO_BINARIES = ["/usr/local/bin/docker", "/usr/local/bin/terraform",
                      "/usr/lib/google-cloud-sdk/bin/anthoscli"]


def measure(path: Path, runs: int) -> tuple[float, float]:
    """(best wall seconds, peak RSS in MB) of `gotrace inspect --json path`."""
    best, peak = float("inf"), 0.0
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "gotrace", "inspect", "--json",
                                 str(path)], stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"inspect failed on {path}")
        best = min(best, elapsed)
        peak = max(peak, usage.ru_maxrss / 1024)
    return best, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-big", action="store_true", help="skip the generated big program")
    args = parser.parse_args()
    go = matrix.go_versions()[-1]
    targets: list[tuple[str, Path]] = []
    grpc = list(matrix.grpc_gopaths())[-1]
    targets.append(("grpc server, stripped", matrix.build(
        matrix.Cell("grpcserver", matrix.supported_go(grpc)[-1], "stripped", grpc))))
    if not args.no_big:
        targets.append(("generated, ~25 MB stripped", build_big_program(105, 40, 6, go)))
        targets.append(("generated, ~100 MB stripped", build_big_program(450, 40, 6, go)))
    targets += [(f"system: {Path(p).name}", Path(p)) for p in SYSTEM_GO_BINARIES
                if Path(p).exists()]
    print(f"{'binary':34} {'size MB':>8} {'wall s':>7} {'peak RSS MB':>12}")
    for label, path in targets:
        wall, rss = measure(path, args.runs)
        size = path.stat().st_size / 1e6
        print(f"{label:34} {size:8.1f} {wall:7.2f} {rss:12.0f}", flush=True)


if __name__ == "__main__":
    main()
