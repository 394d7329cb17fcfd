"""One exporter's share of the pipeline: a bounded queue, a worker thread, retry state.

Every exporter gets its own lane so a slow or unreachable one (OTLP with the collector down)
cannot hold back the others (the console keeps printing).

Accounting, per lane, at every instant:
    offered = exported + dropped[queue_full] + dropped[export_failed] + queue_depth
where queue_depth counts queued spans plus the batch being exported or retried, and never
exceeds the capacity and its reserve: memory stays bounded however long the exporter stays
down. The reserve, a tenth of the capacity, takes only spans worth more than the others
when the queue is full (errors and slow spans, and the spans of traces the overload policy
kept for an error or a slow request): a burst that overflows the queue loses the ordinary
ones first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Literal

from gotrace.errors import GotraceError
from gotrace.export.base import Exporter
from gotrace.spans import Span

log = logging.getLogger(__name__)

DropReason = Literal["queue_full", "export_failed"]
DROP_REASONS: tuple[DropReason, ...] = ("queue_full", "export_failed")


def is_error(span: Span) -> bool:
    return span.status == "ERROR"


@dataclass(frozen=True, slots=True)
class LaneSettings:
    capacity: int = 20_000
    max_batch_size: int = 512
    max_delay_s: float = 0.2
    max_attempts: int = 10  # tries per batch before it is given up
    min_backoff_s: float = 0.1
    max_backoff_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("capacity", "max_batch_size", "max_attempts"):
            if getattr(self, name) < 1:
                raise GotraceError(f"export {name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_delay_s", "min_backoff_s", "max_backoff_s"):
            if not getattr(self, name) > 0:
                raise GotraceError(f"export {name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class LaneStats:
    exported: int
    dropped: dict[DropReason, int]
    queue_depth: int
    failing: bool  # the last export attempt failed
    errors: int = 0  # export attempts that failed, retries included

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class ExportLane:
    """Feeds one exporter from its own bounded queue on its own daemon thread."""

    def __init__(self, name: str, exporter: Exporter, settings: LaneSettings) -> None:
        self.name = name
        self.exporter = exporter
        self._settings = settings
        self._cond = threading.Condition()
        self._queue: deque[Span] = deque()
        self._first_queued_at = 0.0  # monotonic time the oldest queued span arrived
        self._in_flight = 0  # size of the batch the worker holds (exporting or retrying)
        self._offered = 0
        self._exported = 0
        self._dropped: dict[DropReason, int] = dict.fromkeys(DROP_REASONS, 0)
        self._overflowed = False  # spans were refused since the worker took its batch
        self._urgent = 0  # flushes waiting: send partial batches without delay
        self._stopping = False
        self._failing = False
        self._errors = 0
        self._backoff_s = settings.min_backoff_s
        # Which spans the reserve takes, besides those of rescued traces: errors, and slow
        # spans once the tracer knows what slow is (ExportPipeline.reserve_for).
        self.notable: Callable[[Span], bool] = is_error
        self._thread = threading.Thread(target=self._run, name=f"gotrace-export-{name}",
                                        daemon=True)
        self._thread.start()

    # --- producer side (the tracer thread): never waits for the worker ---

    def offer(self, spans: Sequence[Span]) -> None:
        """Queue what fits; count the rest as dropped. Holds the lock only briefly."""
        count = len(spans)
        with self._cond:
            self._offered += count
            if self._stopping:
                self._dropped["export_failed"] += count
                return
            depth = len(self._queue) + self._in_flight
            room = self._settings.capacity - depth
            if count > room:
                spans = self._overflowing(spans, room, depth)
                self._dropped["queue_full"] += count - len(spans)
                self._overflowed = True
            if not spans:
                return
            was_empty = not self._queue
            if was_empty:
                self._first_queued_at = time.monotonic()
            self._queue.extend(spans)
            if was_empty or len(self._queue) >= self._settings.max_batch_size:
                self._cond.notify_all()

    def _overflowing(self, spans: Sequence[Span], room: int, depth: int) -> Sequence[Span]:
        """What of spans is queued when they do not all fit: the first that fit, then the
        notable ones (errors, slow spans, traces kept for an error or a slow request) while
        the reserve has room."""
        capacity = self._settings.capacity
        taken = list(islice(spans, max(room, 0)))
        reserve = capacity + capacity // 10 - max(depth, capacity)
        for span in islice(spans, max(room, 0), None):
            if reserve <= 0:
                break
            if span.sampling == "rescued" or self.notable(span):
                taken.append(span)
                reserve -= 1
        return taken

    # --- control (any thread) ---

    @property
    def capacity(self) -> int:
        return self._settings.capacity

    def stats(self) -> LaneStats:
        with self._cond:
            return LaneStats(exported=self._exported, dropped=dict(self._dropped),
                             queue_depth=len(self._queue) + self._in_flight,
                             failing=self._failing, errors=self._errors)

    def start_flush(self) -> int:
        """Send queued spans without waiting for full batches; returns the target for
        wait_settled (how many accepted spans must be settled)."""
        with self._cond:
            self._urgent += 1
            self._cond.notify_all()
            return self._offered - self._dropped["queue_full"]

    def wait_settled(self, target: int, deadline: float) -> bool:
        """Wait until target accepted spans are exported or given up (ends a start_flush)."""
        with self._cond:
            try:
                while self._exported + self._dropped["export_failed"] < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._urgent -= 1

    def stop(self) -> None:
        """Give up everything still queued (counted as export_failed); the worker finishes
        the batch it holds and exits."""
        with self._cond:
            self._stopping = True
            self._dropped["export_failed"] += len(self._queue)
            self._queue.clear()
            self._cond.notify_all()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    # --- worker thread ---

    def _run(self) -> None:
        batch: list[Span] | None = None
        attempts = 0
        while True:
            if batch is None:
                batch = self._take_batch()
                if batch is None:
                    return
                attempts = 0
            if self._failing and not self._pause():
                self._settle(batch, delivered=False)
                batch = None
                continue
            delivered = self._attempt(batch)
            attempts += 1
            if delivered or attempts >= self._settings.max_attempts or self._must_give_up():
                self._settle(batch, delivered)
                batch = None

    def _take_batch(self) -> list[Span] | None:
        """Wait for a full batch, the oldest span's max delay, or a flush; None on stop."""
        settings = self._settings
        with self._cond:
            while not self._stopping:
                if self._queue:
                    if len(self._queue) >= settings.max_batch_size or self._urgent:
                        break
                    remaining = self._first_queued_at + settings.max_delay_s - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                else:
                    self._cond.wait()
            if self._stopping:
                return None
            size = min(len(self._queue), settings.max_batch_size)
            batch = [self._queue.popleft() for _ in range(size)]
            self._in_flight = size
            self._overflowed = False
            if self._queue:
                self._first_queued_at = time.monotonic()
            return batch

    def _attempt(self, batch: list[Span]) -> bool:
        try:
            delivered = bool(self.exporter.export(batch))
            problem = "export failed"
        except GotraceError as e:  # a failure the exporter could explain
            delivered, problem = False, str(e)
        except Exception as e:  # an exporter bug must not kill the lane either
            delivered, problem = False, f"export raised {type(e).__name__}: {e}"
        with self._cond:
            if delivered:
                if self._failing:
                    log.info("%s: export recovered", self.name)
                self._failing = False
                self._backoff_s = self._settings.min_backoff_s
                return True
            self._errors += 1
            if self._failing:
                self._backoff_s = min(self._backoff_s * 2, self._settings.max_backoff_s)
            else:
                log.warning("%s: %s; retrying with backoff (spans queue up to %d, then drop)",
                            self.name, problem, self._settings.capacity)
                self._failing = True
        return False

    def _must_give_up(self) -> bool:
        """A failed batch is abandoned once the queue behind it overflows: spans are being
        lost anyway, and its slots are better used by newer ones."""
        with self._cond:
            return self._overflowed or self._stopping

    def _pause(self) -> bool:
        """Back off before retrying; False when stop was requested meanwhile."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopping, self._backoff_s)
            return not self._stopping

    def _settle(self, batch: list[Span], delivered: bool) -> None:
        with self._cond:
            if delivered:
                self._exported += len(batch)
            else:
                self._dropped["export_failed"] += len(batch)
            self._in_flight = 0
            self._cond.notify_all()
