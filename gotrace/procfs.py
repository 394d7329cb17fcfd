"""The processes /proc lists (thread-group leaders; threads are not listed at its top),
reading their memory, and gotrace's own threads' scheduling."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def process_ids() -> Iterator[int]:
    """Every PID in /proc, in no particular order; processes may be gone by the time the
    caller looks at them."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def read_memory(pid: int, address: int, size: int) -> bytes | None:
    """size bytes of process pid's memory at address (read only, through /proc/<pid>/mem);
    None when the process is gone or the memory unreadable."""
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, size, address)
    except (OSError, OverflowError):
        return None
    finally:
        os.close(fd)
    return data if len(data) == size else None


def run_own_threads_when_idle() -> None:
    """Every thread of this process runs only on CPU time nothing else wants (SCHED_IDLE);
    threads they start later inherit it. Scheduling is per thread in Linux, hence the loop."""
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
            os.sched_setscheduler(int(task), os.SCHED_IDLE, os.sched_param(0))
