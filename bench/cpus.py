"""Where the target-side measurements run: the measured server on a CPU of its own; the load
generator, gotrace and the OTLP receiver on the others.

On a machine this small (2 CPUs) they would otherwise all compete for the same CPUs, and a
server's throughput at saturation would fall by whatever CPU the others take, the tracer's
own included, which the report gives on its own (tracer CPU per span). With a CPU of its own,
the server's throughput and CPU per request are the server's: what tracing costs in its own
threads (the probe hits and their BPF programs), as on a production machine whose clients
are elsewhere and whose tracer has a core to itself. Go sizes GOMAXPROCS by the CPUs a
program may run on, so the server runs with GOMAXPROCS 1, traced and untraced alike.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Placement:
    server: frozenset[int] | None  # None: wherever the kernel likes
    others: frozenset[int] | None

    def describe(self, beside: str = "") -> str:
        """beside: what shares the server's CPU, if anything."""
        if self.server is None or self.others is None:
            return "every process on any CPU"
        alone = f"and {beside}" if beside else "alone"
        return (f"the server {alone} on CPU {_cpus(self.server)}, so with GOMAXPROCS "
                f"{len(self.server)}; the load generator, gotrace and the OTLP receiver on "
                f"CPU {_cpus(self.others)}")


ANYWHERE = Placement(None, None)


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(map(str, sorted(cpus)))


def placement() -> Placement:
    """The first CPU this process may use for the server, the rest for everything else (with
    a single CPU, nothing is pinned)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return ANYWHERE
    return Placement(frozenset(cpus[:1]), frozenset(cpus[1:]))


def pinned_to(cpus: frozenset[int] | None) -> Callable[[], None] | None:
    """A subprocess preexec_fn confining the child (and every thread it starts) to cpus."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def pin_process(pid: int, cpus: frozenset[int] | None) -> None:
    """Confine a running process to cpus (if given): each of its threads and, the same way,
    its children (the processes it forks later inherit it, as a database server's per
    connection backends do)."""
    if cpus is None:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), cpus)
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                pin_process(int(child), cpus)
