"""The Go runtime's own events, attributed to the spans they slowed.

Stop-the-world pauses and GC cycle starts arrive as records of their own (bpf/runtime.c), in
the same ring buffer as the process's spans and before any span that overlaps them ends (no
goroutine runs, so no span ends, while the world is stopped). Kept per process for a while;
each span gets the pause time that overlapped it and the GC cycles that began during it.

Attributes (documented in the README):
  go.gc.pause_ns   stop-the-world time that overlapped the span, in nanoseconds (GC pauses,
                   and the rare other stops: ReadMemStats, GOMAXPROCS changes, ...)
  go.gc.cycles     GC cycles that began while the span ran
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass

from gotrace.records import EVENT_KIND_GC_CYCLE, EVENT_KIND_STW_PAUSE, SpanRecord
from gotrace.spans import AttributeValue

EVENT_KINDS = frozenset({EVENT_KIND_STW_PAUSE, EVENT_KIND_GC_CYCLE})
KEEP_EVENTS = 4096  # per process: far more than overlap any span that is still to arrive
USUAL: dict[str, AttributeValue] = {"go.gc.pause_ns": 0, "go.gc.cycles": 0}


@dataclass
class ProcessGcTotals:
    pauses: int = 0
    pause_ns: int = 0
    cycles: int = 0

    def summary(self) -> str:
        return (f"{self.cycles} GC cycles, {self.pauses} stop-the-world pauses, "
                f"{self.pause_ns / 1e6:.3f} ms stopped")


def count_between(times: Sequence[int], start: int, end: int) -> int:
    """How many of the ascending `times` fall in [start, end], looking from the newest."""
    count = 0
    for t in reversed(times):
        if t < start:
            break
        count += t <= end
    return count


class RuntimeFacts:
    """Per process: recent pauses and cycle starts (monotonic ns), and session totals."""

    def __init__(self) -> None:
        self._pauses: dict[int, collections.deque[tuple[int, int]]] = {}
        self._cycles: dict[int, collections.deque[int]] = {}
        self.totals: dict[int, ProcessGcTotals] = {}
        self.events = 0
        # The newest pause end or cycle start of any process (a FactSource's latest_event_ns).
        self.latest_event_ns = -1

    def record(self, rec: SpanRecord) -> bool:
        """Take a runtime event; False when the record is not one (a span)."""
        if rec.kind not in EVENT_KINDS:
            return False
        self.events += 1
        totals = self.totals.setdefault(rec.pid, ProcessGcTotals())
        if rec.kind == EVENT_KIND_STW_PAUSE:
            pauses = self._pauses.setdefault(rec.pid, collections.deque(maxlen=KEEP_EVENTS))
            pauses.append((rec.start_ns, rec.end_ns))
            self.latest_event_ns = max(self.latest_event_ns, rec.end_ns)
            totals.pauses += 1
            totals.pause_ns += rec.end_ns - rec.start_ns
        else:
            cycles = self._cycles.setdefault(rec.pid, collections.deque(maxlen=KEEP_EVENTS))
            cycles.append(rec.start_ns)
            self.latest_event_ns = max(self.latest_event_ns, rec.start_ns)
            totals.cycles += 1
        return True

    def usual(self, rec: SpanRecord) -> dict[str, AttributeValue]:
        return USUAL

    def attributes(self, rec: SpanRecord) -> dict[str, AttributeValue] | None:
        """go.gc.* for a span of this process between its start and end (None: neither a
        pause nor a cycle)."""
        start, end = rec.start_ns, rec.end_ns
        pause = 0
        for p_start, p_end in reversed(self._pauses.get(rec.pid, ())):  # newest first
            if p_end <= start:
                break
            pause += max(0, min(end, p_end) - max(start, p_start))
        cycles = count_between(self._cycles.get(rec.pid, ()), start, end)
        if not pause and not cycles:
            return None
        return {"go.gc.pause_ns": pause, "go.gc.cycles": cycles}
