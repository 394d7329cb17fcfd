"""The overload policy: when gotrace cannot keep up, or would use more CPU than --max-cpu
allows, the kernel sheds a share of the traces the sampler kept, decided per trace where it
begins (bpf/sampling.h, bpf/shedding.h), instead of a full ring buffer or export queue losing
spans at random. Errors and slow requests are kept whole however much is shed.

The controller reads the pipeline's pressure after every poll: how full the ring buffers
were when read, how full the export queues are, spans lost to either since the last look,
and the tracer's CPU time. It halves the kept share at once under pressure or over the CPU
budget (scaled to the budget when that says more), and raises it by at most a quarter a
second once the pressure is gone and the budget allows. The kept share is the trace-id
rule's ratio, so processes with the same share agree on every trace, and a lower share
keeps a subset of what a higher one kept.

Slow: a fixed threshold (--slow 250ms), or a percentile of each span kind's durations
(--slow p99, the default), learnt from the spans that were not shed.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from gotrace.errors import GotraceError
from gotrace.spans import Span

BOUND_ONE = 1 << 63  # the trace-id rule's bound for a ratio of 1
MIN_RATIO = 1 / 1024  # the least share kept: a trace in 1024 still shows the service
PRESSURE = 0.5  # a ring buffer or queue this full when read: shed more
CALM = 0.1  # ... and this empty: shed less
CPU_WINDOW_S = 1.0  # CPU use is measured over this long
RAISE_EVERY_S = 1.0  # the kept share rises at most this often ...
RAISE_FACTOR = 1.25  # ... by at most this factor
CHECK_EVERY_S = 0.1  # pressure is looked at no more often than this
CUT_EVERY_S = 0.5  # the kept share falls at most this often: a cut takes effect gradually
DURATIONS_KEPT = 1024  # per span kind, for its percentile
MIN_DURATIONS = 100  # a kind has no percentile below this many
SAMPLE_EVERY = 4  # durations learnt from one span in this many
# --yield-cpu on a busy machine: when the other processes keep this share of its CPUs busy,
# and the programs gotrace traces do at least TRACED_FROM of that work, gotrace holds itself
# to BUSY_CPU cores. Idle time there is not free: the programs' wakeups must preempt gotrace
# and find their caches cold (bench/REPORT.md, the saturation section). A machine kept busy
# by something else leaves the traced programs' rate modest, and gotrace traces it whole.
BUSY_FROM = 0.75
TRACED_FROM = 1 / 3
BUSY_CPU = 0.05
DEFAULT_SLOW_QUANTILE = 0.99


@dataclass(frozen=True)
class SlowRule:
    """What makes a request slow: a fixed threshold, or a quantile of its kind's durations."""

    threshold_ns: int | None = None
    quantile: float | None = DEFAULT_SLOW_QUANTILE


@dataclass(frozen=True)
class OverloadSettings:
    max_cpu: float | None = None  # cores (0.2 for --max-cpu 20); None: no budget
    busy_cpu: float | None = None  # cores while the machine is busy (BUSY_FROM); None: no budget
    slow: SlowRule = SlowRule()


@dataclass(frozen=True)
class Pressure:
    """What the pipeline looked like at one poll."""

    ring_fill: float  # the fullest ring buffer's share in use when it was read
    queue_fill: float  # the fullest export queue's share in use
    lost: int  # spans lost to a full ring buffer or queue so far (a running total)


def quantile(durations: Collection[int], q: float) -> int:
    """The q quantile of some durations (the nearest lower rank), at least one of them."""
    ordered = sorted(durations)
    return ordered[int(q * (len(ordered) - 1))]


def trace_id_rank(trace_id: bytes) -> int:
    """OpenTelemetry's trace-id rule ranks a trace by its id's last 8 bytes, big-endian,
    shifted right by one; a ratio keeps the ranks below ratio x BOUND_ONE (bpf/sampling.h's
    trace_id_rank)."""
    return int.from_bytes(trace_id[8:16], "big") >> 1


DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|µs|ms|s)$")
UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")


def parse_slow(text: str) -> SlowRule:
    """'250ms' (a fixed threshold) or 'p99' (a percentile of the span kind's durations)."""
    if match := DURATION.match(text):
        return SlowRule(threshold_ns=int(float(match[1]) * UNIT_NS[match[2]]), quantile=None)
    if (match := PERCENTILE.match(text)) and 0 < float(match[1]) < 100:
        return SlowRule(quantile=float(match[1]) / 100)
    raise GotraceError(f"slow: a duration such as 250ms or a percentile p1-p99.9, not {text!r}")


def parse_max_cpu(text: str | None) -> float | None:
    """--max-cpu PERCENT (of one core) as cores."""
    if text is None:
        return None
    try:
        percent = float(text.rstrip("%"))
    except ValueError:
        raise GotraceError(f"--max-cpu: a percentage of one core, not {text!r}") from None
    if not 0 < percent <= 100:
        raise GotraceError(f"--max-cpu: between 0 and 100 (percent of one core), not {text}")
    return percent / 100


class KindDurations:
    """Recent durations of each span kind's kept spans, for their slow thresholds."""

    def __init__(self) -> None:
        self._windows: dict[int, collections.deque[int]] = {}

    def add(self, spans: Sequence[Span]) -> None:
        """Learn from every SAMPLE_EVERY-th span: plenty for a percentile, and cheap."""
        windows = self._windows
        for span in spans[::SAMPLE_EVERY]:
            if span.sampling != "sampled":  # kept for being slow: not a typical duration
                continue
            kind = span.record_kind
            window = windows.get(kind)
            if window is None:
                window = windows[kind] = collections.deque(maxlen=DURATIONS_KEPT)
            window.append(span.monotonic_end_ns - span.monotonic_start_ns)

    def quantile(self, kind: int, q: float) -> int | None:
        window = self._windows.get(kind)
        if window is None or len(window) < MIN_DURATIONS:
            return None
        return quantile(window, q)

    def kinds(self) -> list[int]:
        return list(self._windows)


def cpu_ticks() -> list[int]:
    """/proc/stat's clock ticks of every CPU since boot: user nice system idle iowait irq
    softirq steal (guest time is in user)."""
    with open("/proc/stat") as stat:
        return [int(v) for v in stat.readline().split()[1:9]]


def machine_cpu_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every CPU since boot; idle and iowait are not busy."""
    values = cpu_ticks()
    total = sum(values)
    return total - values[3] - values[4], total


def process_cpu_ticks(pids: Iterable[int]) -> dict[int, int]:
    """The clock ticks each live process has run (user and system), by PID."""
    ticks = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:  # gone
            continue
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks


class MachineLoad:
    """How busy the machine's CPUs were over the last window, apart from gotrace, and how
    much of that the traced programs did."""

    def __init__(self, machine_ticks: Callable[[], tuple[int, int]],
                 traced_pids: Callable[[], Collection[int]], cpus: int,
                 process_ticks: Callable[[Iterable[int]], dict[int, int]] = process_cpu_ticks
                 ) -> None:
        self._machine_ticks = machine_ticks
        self._traced_pids = traced_pids
        self._process_ticks = process_ticks
        self._cpus = cpus
        self.others_busy = 0.0  # share of the machine's CPUs, gotrace's own time left out
        self.traced_busy = 0.0  # share of the machine's CPUs the traced programs used
        self._machine = machine_ticks()
        self._traced: dict[int, int] = {}  # the first window counts no traced program
        # Traced processes found gone: not looked for again (the tracer remembers every
        # process it traced, and a PID used again is another program's).
        self._gone: set[int] = set()

    def begin(self) -> None:
        """Start a new window here."""
        self._machine = self._machine_ticks()
        pids = [pid for pid in self._traced_pids() if pid not in self._gone]
        self._traced = self._process_ticks(pids)
        self._gone.update(pid for pid in pids if pid not in self._traced)

    def measure(self, own_cores: float) -> None:
        """End the window (gotrace used own_cores over it) and begin the next."""
        (busy_before, total_before), traced_before = self._machine, self._traced
        self.begin()
        busy, total = self._machine
        if total <= total_before:
            return
        share = (busy - busy_before) / (total - total_before)
        self.others_busy = max(0.0, share - own_cores / self._cpus)
        traced = sum(ticks - traced_before[pid] for pid, ticks in self._traced.items()
                     if pid in traced_before)
        self.traced_busy = traced / (total - total_before)

    def busy(self) -> bool:
        """Busy, a third of it or more by the traced programs: gotrace's CPU would slow them."""
        return self.others_busy >= BUSY_FROM and self.traced_busy >= TRACED_FROM * self.others_busy


class OverloadController:
    """Decides the share of kept traces the kernel sends, from the pipeline's pressure."""

    def __init__(self, settings: OverloadSettings,
                 cpu_clock: Callable[[], float] = time.process_time,
                 clock: Callable[[], float] = time.monotonic,
                 machine: MachineLoad | None = None) -> None:
        """machine: how busy the machine is, for the busy budget (settings.busy_cpu)."""
        self.settings = settings
        self.ratio = 1.0
        self.lowest_ratio = 1.0
        self._cpu_clock = cpu_clock
        self._clock = clock
        now = clock()
        self._checked = now
        self._raised = now
        self._cut = now - CUT_EVERY_S
        self._window_start = (now, cpu_clock())
        self.machine = machine if settings.busy_cpu is not None else None
        self.cpu = 0.0  # cores, over the last complete window
        self._cpu_fresh = False  # the window was measured at the current ratio
        self._lost = 0
        # Cuts of the kept share by reason: spans lost, backlog (a ring buffer or export
        # queue past PRESSURE), --max-cpu, busy machine (the busy budget).
        self.cuts: collections.Counter[str] = collections.Counter()

    @property
    def bound(self) -> int:
        """The kernel's shed bound: 0 sheds nothing (bpf/sampling.h)."""
        return 0 if self.ratio >= 1 else max(1, int(self.ratio * BOUND_ONE))

    def keeps(self, trace_id: bytes) -> bool:
        """The kernel's rule, for traces decided here (the deferred ones)."""
        bound = self.bound
        return not bound or trace_id_rank(trace_id) < bound

    def due(self) -> bool:
        """Whether to look at the pipeline now (reading its pressure costs a little)."""
        return self._clock() - self._checked >= CHECK_EVERY_S

    def update(self, pressure: Pressure) -> bool:
        """Look at the pipeline; True when the ratio changed (tell the kernel)."""
        now = self._checked = self._clock()
        start, cpu_start = self._window_start
        if now - start >= CPU_WINDOW_S:
            cpu_now = self._cpu_clock()
            self.cpu = (cpu_now - cpu_start) / (now - start)
            if self.machine is not None:
                self.machine.measure(self.cpu)
            self._window_start = (now, cpu_now)
            self._cpu_fresh = True
        lost, self._lost = pressure.lost - self._lost, pressure.lost
        ratio = self._next_ratio(now, pressure, lost)
        if ratio == self.ratio:
            return False
        self.ratio = ratio
        self.lowest_ratio = min(self.lowest_ratio, ratio)
        return True

    def begin(self) -> None:
        """Tracing begins: what gotrace spent attaching is not judged against a budget."""
        self._window_start = (self._clock(), self._cpu_clock())
        if self.machine is not None:
            self.machine.begin()

    def budget(self) -> float | None:
        """The CPU budget in force, in cores: --max-cpu's, else the busy machine's."""
        if self.settings.max_cpu is not None:
            return self.settings.max_cpu
        if self.settings.busy_cpu is not None and self.machine is not None \
                and self.machine.busy():
            return self.settings.busy_cpu
        return None

    def _cut_reason(self, lost: int, fill: float) -> str:
        """Why the kept share is cut now (the first that applies)."""
        if lost > 0:
            return "spans lost"
        if fill >= PRESSURE:
            return "backlog"
        return "--max-cpu" if self.settings.max_cpu is not None else "busy machine"

    def _next_ratio(self, now: float, pressure: Pressure, lost: int) -> float:
        ratio = self.ratio
        budget = self.budget()
        fill = max(pressure.ring_fill, pressure.queue_fill)
        over_budget = budget is not None and self._cpu_fresh and self.cpu > budget
        if fill >= PRESSURE or lost > 0 or over_budget:
            if now - self._cut < CUT_EVERY_S or ratio <= MIN_RATIO:
                return ratio
            cut = 0.5
            if over_budget and budget is not None:
                cut = min(cut, 0.9 * budget / self.cpu)
            self.cuts[self._cut_reason(lost, fill)] += 1
            self._window_start = (now, self._cpu_clock())  # judge the new ratio afresh
            self._cpu_fresh = False
            self._cut = self._raised = now
            return max(MIN_RATIO, ratio * max(cut, 0.1))
        waiting_for_cpu = budget is not None and not self._cpu_fresh
        if ratio >= 1 or fill > CALM or now - self._raised < RAISE_EVERY_S or waiting_for_cpu:
            return ratio
        factor = RAISE_FACTOR
        if budget is not None and self.cpu > 0:
            factor = min(factor, 0.9 * budget / self.cpu)
        if factor <= 1:
            return ratio
        self._raised = now
        self._window_start = (now, self._cpu_clock())
        self._cpu_fresh = False
        return min(1.0, ratio * factor)
