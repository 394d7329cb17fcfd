"""Run the gotrace command line under cProfile, in every Python thread:

    python -m bench.profiled OUT.prof trace --pid 4242 ...

cProfile only sees the thread that enabled it, and gotrace exports from worker threads, so
each thread gets a profiler of its own; the main thread's and those of the threads that
finished are merged into OUT (a pstats file). Profilers count each thread's CPU time, not
wall time, so a thread waiting for work costs nothing. SIGUSR1 forgets what was profiled so
far (send it once attached to profile the steady state only). bench.profiles reads OUT.
"""

from __future__ import annotations

import cProfile
import pstats
import signal
import sys
import threading
import time
from pathlib import Path


def _profile_threads(profilers: list[cProfile.Profile],
                     finished: list[cProfile.Profile]) -> None:
    """From now on, every thread started runs under a profiler of its own."""
    run = threading.Thread.run
    lock = threading.Lock()

    def profiled_run(self: threading.Thread) -> None:
        profiler = cProfile.Profile(time.thread_time)
        with lock:
            profilers.append(profiler)
        try:
            profiler.runcall(run, self)
        finally:
            with lock:
                finished.append(profiler)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]


def main() -> int:
    out, args = Path(sys.argv[1]), sys.argv[2:]
    from gotrace.cli.main import main as gotrace_main

    profiler = cProfile.Profile(time.thread_time)
    profilers: list[cProfile.Profile] = [profiler]
    finished: list[cProfile.Profile] = []
    _profile_threads(profilers, finished)

    def forget(*_: object) -> None:
        for p in list(profilers):
            p.clear()

    signal.signal(signal.SIGUSR1, forget)
    try:
        return profiler.runcall(gotrace_main, args)
    finally:
        stats = pstats.Stats(profiler)
        for thread_profiler in list(finished):
            if thread_profiler.getstats():  # pstats refuses a profile of nothing
                stats.add(thread_profiler)
        stats.dump_stats(out)


if __name__ == "__main__":
    sys.exit(main())
