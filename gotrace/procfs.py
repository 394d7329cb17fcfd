"""The processes /proc lists (thread-group leaders; threads are not listed at its top), and
reading their memory."""

from __future__ import annotations

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
