"""What a running session is doing, on stderr: a live line on a terminal, JSON lines elsewhere.

On a terminal, one line is redrawn in place about once a second:

    gotrace: 3 processes, 241 spans/s, exported 4812, dropped 0, errors 0

(processes traced right now; spans decoded per second; spans delivered, per exporter when
there are several; spans lost in the kernel, dropped by an exporter's queue or export, or
whose process could not be identified; failed export attempts, retries included), and once
the overload policy has shed anything, ", overloaded: keeping 25.0%, shed 91234" (the share
of the sampler's traces kept now, and the spans shed so far, which are decided, not lost:
gotrace/pipeline/overload.py). Messages
from gotrace's modules, an exporter starting to fail say, are printed above it. When the
console exporter prints span trees on the same terminal, the line is not drawn (it would
tear the trees); the messages still are.

Anywhere else (a file, a pipe, a container log) every line is one JSON object with `time`,
`level` and `msg`: "tracing" once attached, "status" every LOG_INTERVAL_S, "stopped" at the
end, and gotrace's messages. Counters that are still zero are left out, so a record that
names `dropped` (with `dropped_by`, the count per reason), `errors` or `kept_share` and
`shed` is one worth reading. The `--stats` lines are separate and unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from gotrace.export import ExportPipeline
from gotrace.pipeline.session import ALL_PROCESSES, Tracer
from gotrace.procfs import process_ids

LOG_INTERVAL_S = 10.0
DEFAULT_COLUMNS = 80
LOGGER = "gotrace"  # the parent of every logger in the package
# Kernel counters that count no lost span: a request sent without an injected traceparent.
NOT_SPAN_LOSSES = frozenset({"inject_skipped"})
_CLEAR_LINE = "\r\x1b[K"


@dataclass(frozen=True, slots=True)
class Snapshot:
    processes: int
    spans: int  # decoded since the session started
    exported: dict[str, int]  # per exporter
    dropped_by: dict[str, int]  # spans lost, by reason (only reasons that happened)
    errors: int
    kept_share: float = 1.0  # of the traces the sampler kept, the share not shed now
    shed: int = 0  # spans shed by the overload policy (not lost: decided)

    @property
    def dropped(self) -> int:
        return sum(self.dropped_by.values())


def attached_processes(tracer: Tracer) -> int:
    """Live processes the tracer's probes cover: the PIDs it attached to, and for --exe every
    process running a traced file (zombies have no executable any more, so they do not count).
    """
    wanted = {pid for traced in tracer.binaries.values() for pid in traced.pids}
    candidates = process_ids() if ALL_PROCESSES in wanted else wanted
    count = 0
    for pid in candidates:
        try:
            st = os.stat(f"/proc/{pid}/exe")
        except OSError:
            continue
        traced = tracer.binaries.get((st.st_dev, st.st_ino))
        if traced is not None and (pid in traced.pids or ALL_PROCESSES in traced.pids):
            count += 1
    return count


def take_snapshot(tracer: Tracer, pipeline: ExportPipeline,
                  kernel_lost: Mapping[str, int] | None = None) -> Snapshot:
    """kernel_lost: the tracer's kernel drop counters when already read; they cannot be read
    once the tracer is closed."""
    stats = pipeline.stats()
    counters = tracer.kernel_drops() if kernel_lost is None else kernel_lost
    reasons = {**{r: n for r, n in counters.items() if r not in NOT_SPAN_LOSSES},
               **stats.dropped, "process_unknown": tracer.records_skipped}
    return Snapshot(processes=attached_processes(tracer), spans=tracer.spans_decoded,
                    exported=stats.exported, dropped_by={r: n for r, n in reasons.items() if n},
                    errors=stats.errors, kept_share=tracer.overload.ratio,
                    shed=sum(tracer.shed()))


class StatusReporter(Protocol):
    def started(self, snapshot: Snapshot, now: float) -> None: ...
    def due(self, now: float) -> bool:
        """Whether tick would show anything now (a snapshot reads BPF maps and /proc)."""
        ...
    def tick(self, snapshot: Snapshot, now: float) -> None: ...
    def stopped(self, snapshot: Snapshot) -> None: ...
    def log(self, record: logging.LogRecord) -> None: ...


class _Rate:
    """Spans per second between the last two snapshots."""

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None
        self.per_second = 0.0

    def update(self, snapshot: Snapshot, now: float) -> None:
        if self._last is not None and now > self._last[0]:
            self.per_second = (snapshot.spans - self._last[1]) / (now - self._last[0])
        self._last = (now, snapshot.spans)


def _exported_text(exported: Mapping[str, int]) -> str:
    if len(exported) == 1:
        return f"exported {next(iter(exported.values()))}"
    return "exported " + " ".join(f"{name}={n}" for name, n in exported.items())


def _shed_text(snapshot: Snapshot) -> str:
    """The overload policy's part of the line, once it has shed anything."""
    if snapshot.kept_share >= 1 and not snapshot.shed:
        return ""
    return f", overloaded: keeping {snapshot.kept_share:.1%}, shed {snapshot.shed}"


class LiveLine:
    """The terminal form; `live` False draws no line (another writer owns the terminal)."""

    def __init__(self, stream: TextIO, *, live: bool = True) -> None:
        self._stream = stream
        self._live = live
        self._lock = threading.Lock()
        self._rate = _Rate()
        self._line = ""  # what is drawn now

    def started(self, snapshot: Snapshot, now: float) -> None:
        self.tick(snapshot, now)

    def due(self, now: float) -> bool:
        return True  # redrawn every second

    def tick(self, snapshot: Snapshot, now: float) -> None:
        self._rate.update(snapshot, now)
        plural = "" if snapshot.processes == 1 else "es"
        self._draw(f"gotrace: {snapshot.processes} process{plural}, "
                   f"{self._rate.per_second:.0f} spans/s, {_exported_text(snapshot.exported)}, "
                   f"dropped {snapshot.dropped}, errors {snapshot.errors}{_shed_text(snapshot)}")

    def stopped(self, snapshot: Snapshot) -> None:
        """The last state stays on screen, as an ordinary line."""
        if not self._live:
            return
        self._draw(f"gotrace: stopped, {snapshot.spans} spans, "
                   f"{_exported_text(snapshot.exported)}, dropped {snapshot.dropped}, "
                   f"errors {snapshot.errors}{_shed_text(snapshot)}")
        with self._lock:
            self._write("\n")
            self._line, self._live = "", False

    def log(self, record: logging.LogRecord) -> None:
        with self._lock:
            self._write(f"{_CLEAR_LINE if self._line else ''}gotrace: {record.getMessage()}\n"
                        f"{self._line}")

    def _draw(self, line: str) -> None:
        if not self._live:
            return
        line = line[:self._width() - 1]  # a full-width line would wrap, and \r not undo it
        with self._lock:
            self._line = line
            self._write(_CLEAR_LINE + line)

    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self._stream.fileno()).columns
        except (OSError, ValueError):
            columns = 0
        return columns or DEFAULT_COLUMNS  # a pseudo-terminal may report 0

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # the terminal went away; tracing goes on
            self._live = False


class JsonLog:
    """The structured form: one JSON object per line."""

    def __init__(self, stream: TextIO, exporters: list[str],
                 interval_s: float = LOG_INTERVAL_S) -> None:
        self._stream = stream
        self._exporters = exporters
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._rate = _Rate()
        self._next_at = 0.0

    def started(self, snapshot: Snapshot, now: float) -> None:
        self._rate.update(snapshot, now)
        self._next_at = now + self._interval_s
        self._emit("info", "tracing", processes=snapshot.processes, exporters=self._exporters)

    def due(self, now: float) -> bool:
        return now >= self._next_at

    def tick(self, snapshot: Snapshot, now: float) -> None:
        if not self.due(now):
            return
        self._next_at = now + self._interval_s
        self._rate.update(snapshot, now)
        self._emit("info", "status", processes=snapshot.processes,
                   spans_per_s=round(self._rate.per_second, 1), **self._counters(snapshot))

    def stopped(self, snapshot: Snapshot) -> None:
        self._emit("info", "stopped", **self._counters(snapshot))

    def log(self, record: logging.LogRecord) -> None:
        self._emit(record.levelname.lower(), record.getMessage(), logger=record.name)

    @staticmethod
    def _counters(snapshot: Snapshot) -> dict[str, Any]:
        fields: dict[str, Any] = {"spans": snapshot.spans, "exported": snapshot.exported}
        if snapshot.dropped:
            fields.update(dropped=snapshot.dropped, dropped_by=snapshot.dropped_by)
        if snapshot.errors:
            fields["errors"] = snapshot.errors
        if snapshot.kept_share < 1 or snapshot.shed:
            fields.update(kept_share=round(snapshot.kept_share, 4), shed=snapshot.shed)
        return fields

    def _emit(self, level: str, msg: str, **fields: Any) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = json.dumps({"time": stamp, "level": level, "msg": msg, **fields})
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass


class _ToReporter(logging.Handler):
    def __init__(self, reporter: StatusReporter) -> None:
        super().__init__(logging.INFO)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.reporter.log(record)
        except Exception:
            self.handleError(record)


def open_status(stream: TextIO, exporters: list[str], *, console_on_terminal: bool
                ) -> StatusReporter:
    """The reporter for this stream, with gotrace's log messages routed through it."""
    reporter: StatusReporter
    if stream.isatty():
        reporter = LiveLine(stream, live=not console_on_terminal)
    else:
        reporter = JsonLog(stream, exporters)
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, _ToReporter)]:
        logger.removeHandler(handler)
    logger.addHandler(_ToReporter(reporter))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return reporter
