"""The tracing session: which processes, their binaries' layouts and BPF programs, the poll
loop that turns ring-buffer records into spans for the export pipeline.

Uprobes live on a file (an inode): attaching with a PID filter traces that process only;
without one (--exe), every process running the file is traced, including ones started later
and after a restart.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gotrace.errors import GotraceError, malformed_input_is_corrupt
from gotrace.export import ExportPipeline
from gotrace.facts.network import NetworkFacts
from gotrace.facts.runtime import RuntimeFacts
from gotrace.facts.scheduler import SchedWait
from gotrace.facts.unix_sockets import UnixSockets
from gotrace.gobin.binary import GoBinary
from gotrace.kernel.plan import Plan, plan_probes
from gotrace.kernel.program import Program, compile_program
from gotrace.kernel.ringbuf import UNLIMITED
from gotrace.kernel.tcp_events import TcpEventSource
from gotrace.pipeline.cross_host import CrossHostLinks
from gotrace.pipeline.decode import MonotonicClock, decode_records
from gotrace.pipeline.linking import Linker
from gotrace.pipeline.overload import (
    KindDurations,
    MachineLoad,
    OverloadController,
    OverloadSettings,
    Pressure,
    machine_cpu_ticks,
)
from gotrace.pipeline.resource import process_resource
from gotrace.pipeline.routes import RouteInference
from gotrace.pipeline.sampling import KEEP_ALL, SamplerConfig, SamplingGate
from gotrace.probes import CLIENT_KINDS, SERVER_KINDS, SHAPES, type_names
from gotrace.records import SAMPLING_REASONS
from gotrace.resolve.layout import Layout, resolve
from gotrace.spans import Connection, Resource, Span

# How long a poll waits for records when the kernel does not wake gotrace first (it does once
# a CPU has sent bpf/span.h's WAKEUP_EVERY records). Every poll decodes what came, and a
# small batch costs more per span than a large one (figures in bench/REPORT.md, "Measured
# once"), so polls are not more frequent than that. Not longer: a new connection's
# requests go to gotrace until it has read the first (bpf/sampling.h), and at 500 ms a
# quarter of a 100 requests/s connection's first second did.
POLL_INTERVAL_MS = 250
QUEUE_FULL_WAIT_MS = 20  # between polls while the export queues have no room
FINAL_DRAIN_S = 10.0  # at the end, for the records left in the ring buffers
DRAIN_STALL_S = 2.0  # ... unless the export queues have had no room for this long

ALL_PROCESSES = -1


@dataclass
class TracedBinary:
    path: str  # the path uprobes are attached through
    layout: Layout
    program: Program
    pids: set[int] = field(default_factory=set)  # PID filters attached (ALL_PROCESSES: all)


def take_while_queues_move(poll: Callable[[], bool], room: Callable[[], int],
                           seconds: float = FINAL_DRAIN_S, stall: float = DRAIN_STALL_S,
                           clock: Callable[[], float] = time.monotonic) -> None:
    """Call poll (Session.poll_once: True when the export queues' room ran out) while it
    leaves records behind, for up to seconds, and no longer once the queues have had no room
    for stall seconds: an exporter whose endpoint is down frees none, and waiting for it
    would only delay the exit."""
    start = no_room_since = clock()
    while poll():
        now = clock()
        if room():
            no_room_since = now
        if now - start >= seconds or now - no_room_since >= stall:
            return


def file_identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def require_root() -> None:
    if os.geteuid() != 0:
        raise GotraceError("tracing needs root (BPF programs and uprobes): run as root, "
                           "e.g. with sudo")


LOCKDOWN = Path("/sys/kernel/security/lockdown")


def lockdown_mode() -> str:
    """The kernel's lockdown mode ('none', 'integrity', 'confidentiality'). Its state is in
    securityfs, mounted here when nothing mounted it yet (as systemd does at boot)."""
    if not LOCKDOWN.exists() and LOCKDOWN.parent.is_dir():
        subprocess.run(["mount", "-t", "securityfs", "securityfs", str(LOCKDOWN.parent)],
                       capture_output=True, check=False)
    try:
        mode = LOCKDOWN.read_text()
    except OSError:
        return "none"  # a kernel without lockdown
    return mode[mode.find("[") + 1: mode.find("]")] if "[" in mode else "none"


def require_user_memory_writes() -> None:
    """--inject-traceparent writes into the programs' memory (bpf_probe_write_user), which
    kernel lockdown forbids in both its modes."""
    active = lockdown_mode()
    if active != "none":
        raise GotraceError(f"--inject-traceparent is impossible here: kernel lockdown is "
                           f"'{active}', which forbids BPF writes into process memory")


def require_kernel_reads() -> None:
    """--link-store reads TCP sockets' sequence numbers from kernel memory
    (bpf_probe_read_kernel), which lockdown's confidentiality mode forbids."""
    if lockdown_mode() == "confidentiality":
        raise GotraceError("--link-store is impossible here: kernel lockdown is "
                           "'confidentiality', which forbids BPF reads of kernel memory")


def pid_executable(pid: int) -> str:
    """The path that opens a running process's executable (also inside a container)."""
    exe = f"/proc/{pid}/exe"
    if not os.path.exists(f"/proc/{pid}"):
        raise GotraceError(f"no process with PID {pid}")
    try:
        os.readlink(exe)
    except FileNotFoundError:
        raise GotraceError(f"process {pid} has exited or is a kernel thread") from None
    except PermissionError:
        raise GotraceError(f"cannot read {exe}: permission denied (run as root)") from None
    return exe


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it runs no code any more.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def quiet_garbage_collector() -> None:
    """Python's cycle collector, tuned for the poll loop (bench/REPORT.md, "Measured once").

    The loop makes and drops a few containers per span (a Span, its attributes), in no cycle,
    at thousands a second: at Python's default the collector runs every 700 of them, and now
    and then walks everything the process holds, which once attached is mostly what it will
    hold for good (BCC, the layouts, the manifests). Call it once attached: the garbage of
    attaching is collected, the rest frozen out of the collector's walks, and the youngest
    generation is collected every 20,000 allocations instead."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def _summed(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Counters of several programs added up by name."""
    total: dict[str, int] = {}
    for table in counts:
        for name, n in table.items():
            total[name] = total.get(name, 0) + n
    return total


class Tracer:
    def __init__(self, pipeline: ExportPipeline, *, with_query: bool = False,
                 opt_in: Collection[str] = (), sampler: SamplerConfig = KEEP_ALL,
                 overload: OverloadSettings | None = None,
                 routes: RouteInference | None = None, tcp_identity: bool = False,
                 cross_host: CrossHostLinks | None = None) -> None:
        """opt_in: the opt-in probes to run (by library), and what probes' variants look for.
        routes: names HTTP server spans without a route by their path's template.
        tcp_identity: HTTP and gRPC spans carry their TCP connection's identity
        (Span.tcp_identity), for linking across hosts. cross_host: links calls between
        hosts through a link store (started here, closed with the tracer; implies
        tcp_identity)."""
        self.pipeline = pipeline
        self.sampler = sampler
        self.resources: dict[int, Resource] = {}
        machine = MachineLoad(machine_cpu_ticks, lambda: self.resources.keys(),
                              os.cpu_count() or 1)
        self.overload = OverloadController(overload or OverloadSettings(), machine=machine)
        self.durations = KindDurations()
        self._slow_ns: dict[int, int | None] = {}  # the slow thresholds the kernel has
        self._slow_refreshed = 0.0
        self._kernel_shed = 0  # the kernel's count when last read (its maps go at close)
        self.gate = SamplingGate(sampler, self.overload, self.slow_ns)
        pipeline.reserve_for(self.gate.notable)
        self.with_query = with_query
        self.routes = routes
        self.opt_in = frozenset(opt_in)
        self.tcp_identity = tcp_identity or cross_host is not None
        self.clock = MonotonicClock()
        self.programs: dict[str, Program] = {}
        self.binaries: dict[tuple[int, int], TracedBinary] = {}
        self.watched_exes: dict[str, tuple[int, int]] = {}
        self.spans_decoded = 0
        self.records_skipped = 0  # records no process could be found for (counted, not lost)
        self._raw: dict[str, list[bytes]] = {}  # plan key -> records not decoded yet
        self._stop = threading.Event()
        self.linker = Linker(opened_untraced=self._opened_untraced, cross_host=cross_host)
        if cross_host is not None:
            cross_host.store.start()
        self.runtime = RuntimeFacts()
        self.network = NetworkFacts(CLIENT_KINDS)
        self.sched = SchedWait(on="sched" in self.opt_in)
        self.unix = UnixSockets(SERVER_KINDS)
        self._tcp_raw: list[bytes] = []
        # Compiled while the first binary's layout is resolved; taken before the first probe
        # program is compiled, so the TCP program is loaded before gotrace says it is ready.
        self._tcp_loading = TcpEventSource.start(self._tcp_raw.extend)
        self.tcp: TcpEventSource | None = None

    # --- attaching --------------------------------------------------------------------------

    def _binary(self, path: str) -> TracedBinary:
        key = file_identity(path)
        traced = self.binaries.get(key)
        if traced is not None:
            return traced
        with malformed_input_is_corrupt(path), GoBinary(path) as binary:
            layout = resolve(binary)
        type_names.learn(layout.type_names)
        settings = self.sampler.kernel_macros()
        if self.linker.cross_host is not None:  # a traced caller may be on any host
            settings = {**settings, "LINK_ACROSS_HOSTS": 1}
        plan: Plan = plan_probes(layout, settings, opt_in=self.opt_in,
                                 tcp_identity=self.tcp_identity)
        if self.tcp is None:
            self.tcp = self._tcp_loading.result()
        program = self.programs.get(plan.key)
        if program is None:
            program = compile_program(plan)
            program.set_host_addresses(self.linker.local)
            self._tell_shedding(program)
            program.open_ring_buffer(self._raw.setdefault(plan.key, []).extend)
            self.programs[plan.key] = program
        traced = TracedBinary(path, layout, program)
        self.binaries[key] = traced
        return traced

    def _attach(self, traced: TracedBinary, pid: int) -> None:
        if pid in traced.pids or ALL_PROCESSES in traced.pids:
            return
        traced.program.attach(traced.path, traced.layout, pid)
        traced.pids.add(pid)

    def attach_pid(self, pid: int) -> TracedBinary:
        exe = pid_executable(pid)
        traced = self._binary(exe)
        self._attach(traced, pid)
        self.resources[pid] = self._resource(pid, traced)
        return traced

    def attach_launch(self, path: str, pid: int) -> TracedBinary:
        """Attach to a process that will exec the binary at path (gotrace run)."""
        traced = self._binary(path)
        self._attach(traced, pid)
        self.resources[pid] = process_resource(pid, path, traced.layout.go_version)
        return traced

    def attach_exe(self, path: str) -> TracedBinary:
        if not os.path.exists(path):
            raise GotraceError(f"{path}: no such file")
        real = str(Path(path).resolve())
        traced = self._binary(real)
        self._attach(traced, ALL_PROCESSES)
        self.watched_exes[real] = file_identity(real)
        return traced

    def _traced_process(self, pid: int) -> bool | None:
        """Whether this session traces a process; None when it is gone (and may have been)."""
        if any(pid in t.pids for t in self.binaries.values()):
            return True
        try:
            traced = self.binaries.get(file_identity(f"/proc/{pid}/exe"))
        except OSError:
            return None
        return traced is not None and ALL_PROCESSES in traced.pids

    def _opened_untraced(self, accepted: Connection) -> bool:
        """Whether a process this session does not trace opened a connection (then no client
        span will come for the requests on it)."""
        opener = self.network.opener(accepted)
        return opener is not None and self._traced_process(opener) is False

    def refused_probes(self) -> dict[str, str]:
        return {lib: why for t in self.binaries.values()
                for lib, why in t.program.plan.refused.items()}

    def _resource(self, pid: int, traced: TracedBinary) -> Resource:
        try:
            shown = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            shown = traced.path
        return process_resource(pid, shown, traced.layout.go_version)

    def _resource_of(self, pid: int, plan_key: str) -> Resource | None:
        """Resources of processes seen for the first time (--exe) are built on demand.

        A short-lived process may be gone before its first record is decoded: then the
        binary its records came from (through that layout's program) names it.
        """
        resource = self.resources.get(pid)
        if resource is not None:
            return resource
        candidates = [t for t in self.binaries.values() if t.program.plan.key == plan_key]
        try:
            identity = file_identity(f"/proc/{pid}/exe")
            traced = self.binaries.get(identity)
        except OSError:
            traced = candidates[0] if len(candidates) == 1 else None
        if traced is None:
            return None
        resource = self.resources[pid] = self._resource(pid, traced)
        return resource

    # --- running ------------------------------------------------------------------------------

    def stop(self, *_args: object) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGTERM, self.stop)

    def _drain(self) -> None:
        facts = (self.runtime, self.network, self.sched, self.unix)
        # TCP events first: each one that happened before a span ended is then known.
        decode_records(self._tcp_raw, lambda _pid: None, self.clock, facts)
        self._tcp_raw.clear()
        for plan_key, raw in self._raw.items():
            if not raw:
                continue
            batch, raw[:] = list(raw), []
            events = self.runtime.events
            spans = decode_records(batch, lambda pid, k=plan_key: self._resource_of(pid, k),
                                   self.clock, facts, self.with_query,
                                   self.programs[plan_key].take_held)
            self.spans_decoded += len(spans)
            if self.routes is not None:  # before linking: the sampler's rules see the name
                self.routes.apply(spans)
            self.records_skipped += len(batch) - len(spans) - (self.runtime.events - events)
            self._submit(self.linker.add(spans, time.monotonic_ns()))
            self._govern(spans)
        if self.linker.held:
            self._submit(self.linker.expire(time.monotonic_ns()))

    # --- the overload policy ---------------------------------------------------------------

    def slow_ns(self, kind: int) -> int | None:
        """What makes a span of this kind slow now (None: nothing yet)."""
        slow = self.overload.settings.slow
        if slow.threshold_ns is not None:
            return slow.threshold_ns
        return self.durations.quantile(kind, slow.quantile or 0.99)

    def _tell_shedding(self, program: Program) -> None:
        """A new program learns the shed bound and every kind's rule."""
        program.set_shed_bound(self.overload.bound)
        for kind, shape in SHAPES.items():
            slow = self._slow_ns[kind] = self.slow_ns(kind)
            program.set_shed_rule(kind, shape.is_error, slow)

    def _govern(self, spans: list[Span]) -> None:
        """Learn the kinds' durations; now and then, adjust the kernel's shed bound and slow
        thresholds (gotrace/pipeline/overload.py)."""
        self.durations.add(spans)
        if not self.overload.due():
            return
        if self.overload.update(self._pressure()):
            for program in self.programs.values():
                program.set_shed_bound(self.overload.bound)
        now = time.monotonic()
        if now - self._slow_refreshed >= 1.0:
            self._slow_refreshed = now
            self._refresh_slow_thresholds()

    def _pressure(self) -> Pressure:
        lost = sum(program.drops()["ringbuf_full"] for program in self.programs.values())
        return Pressure(
            ring_fill=max((p.ring_fill for p in self.programs.values()), default=0.0),
            queue_fill=self.pipeline.fullest_queue(),
            lost=lost + self.pipeline.stats().dropped["queue_full"])

    def _refresh_slow_thresholds(self) -> None:
        """The kernel's slow thresholds follow the kinds' percentiles (a tenth's change)."""
        for kind in self.durations.kinds():
            slow = self.slow_ns(kind)
            told = self._slow_ns.get(kind)
            if slow is None or (told is not None and abs(slow - told) * 10 < told):
                continue
            self._slow_ns[kind] = slow
            for program in self.programs.values():
                program.set_shed_rule(kind, SHAPES[kind].is_error, slow)

    def _submit(self, released: list[Span]) -> None:
        """What the linker released, sampled, to the exporters; and what linking learnt
        about connections, to the kernel."""
        for conn, seen_ns in self.linker.untraced_peers:
            for program in self.programs.values():
                program.mark_untraced_peer(conn, seen_ns)
        self.linker.untraced_peers.clear()
        kept = self.gate.filter(released)
        self.linker.publish_released(released, kept)
        self.pipeline.submit(kept)

    def poll_once(self, timeout_ms: int = POLL_INTERVAL_MS, limit: int | None = None) -> bool:
        """Take the ring buffers' records, no more than the export queues have room for
        (limit, when given, instead): what they cannot take now stays in the kernel's ring
        buffer, whose backlog makes the kernel shed by trace (bpf/sampling.h) instead of a
        full queue dropping spans at random. True when that room ran out, so records may
        have been left there."""
        programs = list(self.programs.values())
        room = self.pipeline.room() if limit is None else limit
        if not room:  # a wait would return at once: records are waiting
            time.sleep(max(timeout_ms, QUEUE_FULL_WAIT_MS) / 1000)
        for program in programs:
            room -= program.poll(max(1, timeout_ms // len(programs)) if room else 0, room)
        if self.tcp is not None:
            self.tcp.poll()  # after the spans' buffers: see _drain
        self._drain()
        return not room

    def _take_the_rest(self) -> None:
        """At the end: what the ring buffers still hold, as fast as the export queues take it
        (take_while_queues_move), then the rest at once. Not until they are empty: the
        probes still send records meanwhile."""
        take_while_queues_move(lambda: self.poll_once(0), self.pipeline.room)
        self.poll_once(0, UNLIMITED)

    def _check_replaced_executables(self) -> None:
        """--exe: a new file at the watched path (a redeploy) is traced as well."""
        for path, identity in list(self.watched_exes.items()):
            try:
                current = file_identity(path)
            except OSError:
                continue
            if current != identity:
                self.watched_exes[path] = current
                self._attach(self._binary(path), ALL_PROCESSES)

    def run(self, *, duration: float | None = None, until_pids_exit: set[int] | None = None,
            every_second: Callable[[], None] | None = None) -> None:
        """Poll until stopped, the duration is over, or every PID in until_pids_exit is gone.

        every_second is called about once a second from this thread (the status display).
        """
        deadline = None if duration is None else time.monotonic() + duration
        last_check = time.monotonic()
        self.overload.begin()
        while not self._stop.is_set():
            self.poll_once()
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if now - last_check >= 1.0:
                last_check = now
                self._check_replaced_executables()
                if every_second is not None:
                    every_second()
                if until_pids_exit is not None and not any(map(_alive, until_pids_exit)):
                    break
        self._take_the_rest()
        self._submit(self.linker.flush())

    def counters(self) -> tuple[dict[str, int], dict[str, int]]:
        """(probe hits by BPF program, kernel_drops())."""
        return _summed(program.hits() for program in self.programs.values()), \
            self.kernel_drops()

    def bpf_run_ns(self) -> dict[str, int]:
        """Nanoseconds each probe program ran (Program.run_ns: kernel.bpf_stats_enabled)."""
        return _summed(program.run_ns() for program in self.programs.values())

    def kernel_drops(self) -> dict[str, int]:
        """Spans and events lost in the kernel, by reason (all the status line needs: it
        reads them whenever it shows them, the hit counters only at the end)."""
        drops = _summed(program.drops() for program in self.programs.values())
        if self.tcp is not None:
            drops["tcp_events_lost"] = self.tcp.lost()
        for decision in SAMPLING_REASONS:  # not lost: see sampled_out and shed
            drops.pop(decision, None)
        return drops

    def conn_misses(self) -> dict[str, int]:
        """Spans whose connection was not found, by reason (bpf/conn.h)."""
        return _summed(program.conn_misses() for program in self.programs.values())

    def sampled_out(self) -> tuple[int, int]:
        """Spans the sampler dropped: (in the kernel, here)."""
        kernel = sum(program.drops()["sampled_out"] for program in self.programs.values())
        return kernel, self.gate.dropped - self.gate.shed

    def shed(self) -> tuple[int, int]:
        """Spans the overload policy shed: (in the kernel, here)."""
        if self.programs:
            self._kernel_shed = sum(program.drops()["shed"] for program in self.programs.values())
        return self._kernel_shed, self.gate.shed

    def close(self) -> None:
        self.shed()  # read while the programs are loaded
        for traced in self.binaries.values():
            for pid in list(traced.pids):
                traced.program.detach(traced.path, pid)
            traced.pids.clear()
        for program in self.programs.values():
            program.close()
        self.programs.clear()
        if self.tcp is None and self._tcp_loading.exception() is None:
            self.tcp = self._tcp_loading.result()  # loaded after an attach failed: unload it
        if self.tcp is not None:
            self.tcp.close()
            self.tcp = None
        if self.linker.cross_host is not None:
            self.linker.cross_host.close()  # after the last spans' publications
