"""From the tracer to the exporters: batching, bounded buffering, retries, drop counting.

The tracer thread calls submit() and must keep up with the BPF ring buffer, so submit never
waits for an exporter: each exporter has its own lane (bounded queue + worker thread, see
lane.py), and whatever does not fit is dropped and counted, never blocked on.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from gotrace.errors import GotraceError
from gotrace.export.base import Exporter
from gotrace.export.lane import DROP_REASONS, DropReason, ExportLane, LaneSettings, LaneStats
from gotrace.spans import Span

# How long shutdown waits for a worker thread, before and after shutting its exporter down.
_STOP_GRACE_S = 1.0


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """A snapshot of the counters; per-exporter numbers count span deliveries, so a span
    lost by two exporters counts once in each (and twice in the totals)."""

    submitted: int
    exporters: dict[str, LaneStats]

    @property
    def exported(self) -> dict[str, int]:
        return {name: lane.exported for name, lane in self.exporters.items()}

    @property
    def queue_depth(self) -> dict[str, int]:
        return {name: lane.queue_depth for name, lane in self.exporters.items()}

    @property
    def dropped(self) -> dict[DropReason, int]:
        """Totals over all exporters, by reason."""
        return {reason: sum(lane.dropped[reason] for lane in self.exporters.values())
                for reason in DROP_REASONS}

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def errors(self) -> int:
        """Failed export attempts over all exporters, retries included."""
        return sum(lane.errors for lane in self.exporters.values())

    def summary(self) -> str:
        """One line for the end of a run."""
        parts = [f"{self.submitted} spans"]
        for name, lane in self.exporters.items():
            text = f"{name}: exported {lane.exported}"
            if lane.dropped_total:
                reasons = ", ".join(f"{reason} {n}" for reason, n in lane.dropped.items() if n)
                text += f", dropped {lane.dropped_total} ({reasons})"
            if lane.queue_depth:
                text += f", {lane.queue_depth} still queued"
            parts.append(text)
        return "; ".join(parts)


class ExportPipeline:
    """Delivers submitted spans to every exporter, in batches, from background threads.

    Per exporter: batches of up to max_batch_size spans, sent at the latest max_delay_s after
    their oldest span arrived (under load a batch fills long before: each export request has
    a cost of its own, whatever its size, which large batches spread over more spans); at
    most capacity spans buffered (including the batch being retried), newer spans beyond
    that dropped as queue_full; a failed batch retried with exponential backoff
    (min_backoff_s doubling up to max_backoff_s) and given up as export_failed after
    max_attempts tries, or as soon as the queue behind it overflows.
    """

    def __init__(
        self,
        exporters: Mapping[str, Exporter],
        *,
        capacity: int = 20_000,
        max_batch_size: int = 2048,
        max_delay_s: float = 0.2,
        max_attempts: int = 10,
        min_backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        delays: Mapping[str, float] | None = None,
    ) -> None:
        """delays: max_delay_s for some exporters by name, instead of the common one."""
        if not exporters:
            raise GotraceError("no exporter configured")
        settings = LaneSettings(capacity=capacity, max_batch_size=max_batch_size,
                                max_delay_s=max_delay_s, max_attempts=max_attempts,
                                min_backoff_s=min_backoff_s, max_backoff_s=max_backoff_s)
        delays = delays or {}
        self._lanes = [ExportLane(name, exporter, replace(
                           settings, max_delay_s=delays.get(name, max_delay_s)))
                       for name, exporter in exporters.items()]
        self._submitted = 0  # written by the one submitting thread only
        self._shutdown_result: bool | None = None

    def reserve_for(self, notable: Callable[[Span], bool]) -> None:
        """What the queues' reserve takes besides the spans of rescued traces, when they
        overflow (export/lane.py): the tracer's rule, errors and slow spans."""
        for lane in self._lanes:
            lane.notable = notable

    def submit(self, spans: Sequence[Span]) -> None:
        """Hand over finished spans; returns at once (call from one thread)."""
        if not spans:
            return
        self._submitted += len(spans)
        for lane in self._lanes:
            lane.offer(spans)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Deliver everything submitted so far; False if some of it is still queued or being
        retried when timeout_s runs out. Spans given up as export_failed count as settled."""
        deadline = time.monotonic() + timeout_s
        targets = [lane.start_flush() for lane in self._lanes]
        settled = [lane.wait_settled(target, deadline)
                   for lane, target in zip(self._lanes, targets, strict=True)]
        return all(settled)

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Flush for up to timeout_s, give up (and count) what is left, stop the workers and
        shut the exporters down. Returns the flush result. Spans submitted afterwards are
        counted as export_failed."""
        if self._shutdown_result is not None:
            return self._shutdown_result
        flushed = self._shutdown_result = self.flush(timeout_s)
        for lane in self._lanes:
            lane.stop()
        for lane in self._lanes:
            lane.join(_STOP_GRACE_S)
        for lane in self._lanes:
            # A worker may still be inside a slow export; shutting the exporter down makes
            # the SDK abandon its retries so the thread can settle its batch and finish.
            lane.exporter.shutdown()
        for lane in self._lanes:
            lane.join(_STOP_GRACE_S)
        return flushed

    def room(self) -> int:
        """Spans every exporter's queue can still take."""
        return max(0, min((lane.capacity - lane.stats().queue_depth for lane in self._lanes),
                          default=sys.maxsize))

    def fullest_queue(self) -> float:
        """The largest share of its capacity any exporter's queue holds."""
        return max(lane.stats().queue_depth / lane.capacity for lane in self._lanes)

    def stats(self) -> PipelineStats:
        exporters = {lane.name: lane.stats() for lane in self._lanes}
        return PipelineStats(submitted=self._submitted, exporters=exporters)
