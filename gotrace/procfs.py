"""The processes /proc lists (thread-group leaders; threads are not listed at its top)."""

from __future__ import annotations

import os
from collections.abc import Iterator


def process_ids() -> Iterator[int]:
    """Every PID in /proc, in no particular order; processes may be gone by the time the
    caller looks at them."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)
