"""A planned BPF program compiled, loaded and attached: one compilation per distinct layout
(gotrace/kernel/plan.py), uprobes attached to every binary of that layout, and the maps
gotrace reads and fills.

Attachment is always at function entries (on the stack check's branch where there is one: see
gobin/disasm.py) and at every RET site: never a uretprobe, which crashes Go programs when
their stacks move.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gotrace.addresses import address_bytes
from gotrace.errors import GotraceError
from gotrace.gobin.conntypes import ConnStep
from gotrace.gobin.elffile import ElfImage
from gotrace.kernel import uprobe_multi
from gotrace.kernel.c_source import BPF_DIR
from gotrace.kernel.plan import CONN_MISS_REASONS, CONN_STEP_FLAGS, PROBE_IDS, Plan
from gotrace.kernel.ringbuf import UNLIMITED, RingBuffer
from gotrace.probes.base import ErrorRule
from gotrace.records import F_SAMPLED, KERNEL_DROP_REASONS, RECORD_SIZE, SpanRecord
from gotrace.resolve.layout import Layout
from gotrace.spans import Connection

RecordsCallback = Callable[[list[bytes]], None]


@dataclass
class Program:
    """One compiled BPF object, shared by every process whose binary has the same layout.

    Its uprobes are attached as one uprobe_multi link per probe program, binary and PID where
    the kernel has them (multi; gotrace/kernel/uprobe_multi.py), else one perf event per
    uprobe through BCC. A program loaded for links cannot be attached the other way, so the
    mechanism is fixed before any is loaded (BCC loads each at its first attachment)."""

    plan: Plan
    bpf: object  # bcc.BPF
    multi: bool = False
    _uprobes: list[tuple[str, int, int]] = field(default_factory=list)  # (path, addr, pid)
    _links: dict[tuple[str, int], list[int]] = field(default_factory=dict)  # (path, pid): fds
    # Probe program -> its copy loaded for perf-event uprobes, where a link could not be had.
    _perf_copies: dict[bytes, object] = field(default_factory=dict)
    _ring: RingBuffer | None = None
    _on_records: RecordsCallback | None = None
    ring_fill: float = 0.0  # the ring buffer's share in use when last read
    held_taken: int = 0  # records take_held took, which the kernel had counted as shed
    _taken: int = 0  # records read from the ring buffer

    def attach(self, path: str, layout: Layout, pid: int = -1) -> int:
        """Attach every probe of the plan to the binary at path, for the process pid (-1:
        every process); returns the uprobe count. On failure none of them stays attached."""
        sites = self._sites(path, layout)
        uprobes_before = len(self._uprobes)
        try:
            if self.multi:
                self._attach_links(path, sites, pid)
            else:
                for program, (function, addrs) in sites.items():
                    self._attach_uprobes(path, program, function, addrs, pid)
        except GotraceError:
            for _path, addr, _pid in self._uprobes[uprobes_before:]:
                with contextlib.suppress(Exception):  # BCC raises bare Exception
                    self.bpf.detach_uprobe(name=path, addr=addr, pid=pid)
            del self._uprobes[uprobes_before:]
            raise
        return sum(len(addrs) for _function, addrs in sites.values())

    def _sites(self, path: str, layout: Layout) -> dict[str, tuple[str, list[int]]]:
        """Probe program -> (a function it probes, for messages; the virtual addresses)."""
        sites: dict[str, tuple[str, list[int]]] = {}
        for probe in self.plan.probes:
            for a in probe.attachments:
                fn = layout.functions.get(a.function)
                if fn is None:  # an optional one (plan_probes)
                    continue
                addrs = [fn.entry_probe] if a.where == "entry" else list(fn.ret_addresses)
                if not addrs:
                    raise GotraceError(f"{path}: {a.function} has no RET instruction to probe")
                sites.setdefault(a.program, (a.function, []))[1].extend(addrs)
        return sites

    def _attach_uprobes(self, path: str, program: str, function: str, addrs: list[int],
                        pid: int) -> None:
        """A perf-event uprobe per address, through BCC (which loads the program first)."""
        for addr in addrs:
            try:
                self.bpf.attach_uprobe(name=path, addr=addr, fn_name=program, pid=pid)
            except Exception as e:  # BCC raises bare Exception
                raise GotraceError(f"cannot attach a uprobe to {path} at {addr:#x} "
                                   f"({function}): {e}") from None
            self._uprobes.append((path, addr, pid))

    def _attach_links(self, path: str, sites: dict[str, tuple[str, list[int]]],
                      pid: int) -> None:
        """A uprobe_multi link per probe program, kept only if all could be attached.

        A link is refused (EINVAL) where another tool's uprobe is already at one of its
        offsets with another USDT semaphore offset (ref_ctr_offset): the kernel keeps one per
        offset, and BCC 0.26's Python module sets garbage there (its ctypes declaration of
        bpf_attach_uprobe lacks libbcc's last argument), so any BCC tool's uprobe, an older
        gotrace's included, conflicts. Those programs are attached as perf-event uprobes,
        which share the semaphore offset BCC sets."""
        offsets = file_offsets(path, [a for _f, addrs in sites.values() for a in addrs])
        links: list[int] = []
        try:
            for program, (function, addrs) in sites.items():
                try:
                    fd = self.bpf.load_func(  # type: ignore[attr-defined]
                        program, uprobe_multi.BPF_PROG_TYPE_KPROBE,
                        attach_type=uprobe_multi.BPF_TRACE_UPROBE_MULTI).fd
                except Exception as e:  # BCC raises bare Exception
                    raise GotraceError(f"cannot load the BPF program {program}: {e}") from None
                try:
                    links.append(uprobe_multi.attach(fd, path, [offsets[a] for a in addrs],
                                                     max(pid, 0)))
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise GotraceError(f"cannot attach {len(addrs)} uprobes to {path} "
                                           f"({function}, {program}): {e.strerror}") from None
                    with self._perf_copy(program):
                        self._attach_uprobes(path, program, function, addrs, pid)
        except GotraceError:
            uprobe_multi.close_links(links)
            raise
        self._links.setdefault((path, pid), []).extend(links)

    @contextlib.contextmanager
    def _perf_copy(self, program: str) -> Iterator[None]:
        """BCC's table of loaded programs holding, while perf-event uprobes are attached,
        the copy of program loaded without the uprobe_multi attach type (BCC loads it at
        its first use), which a perf event accepts."""
        funcs = self.bpf.funcs  # type: ignore[attr-defined]
        name = program.encode()
        linked = funcs.pop(name)
        if name in self._perf_copies:
            funcs[name] = self._perf_copies[name]
        try:
            yield
        finally:
            if name in funcs:
                self._perf_copies[name] = funcs[name]
            funcs[name] = linked

    def detach(self, path: str, pid: int = -1) -> None:
        uprobe_multi.close_links(self._links.pop((path, pid), []))
        keep = []
        for entry in self._uprobes:
            if entry[0] == path and entry[2] == pid:
                # The process may be gone already: then there is nothing to undo.
                with contextlib.suppress(Exception):
                    self.bpf.detach_uprobe(name=path, addr=entry[1], pid=pid)
            else:
                keep.append(entry)
        self._uprobes = keep

    def open_ring_buffer(self, on_records: RecordsCallback) -> None:
        """on_records gets the spans' records, a batch (maybe empty) per poll."""
        self._ring = open_ring(self.bpf, "spans", RECORD_SIZE)
        self._on_records = on_records

    def set_host_addresses(self, addresses: Iterable[str]) -> None:
        """This host's addresses, for telling same-host callers (bpf/sampling.h)."""
        table = self.bpf["host_addresses"]
        for address in addresses:
            key = table.Key()
            ctypes.memmove(key.addr, address_bytes(address), 16)
            table[key] = ctypes.c_uint8(1)

    def mark_untraced_peer(self, conn: Connection, seen_ns: int) -> None:
        """No traced client at the other end of this server-side connection, whose request
        came at seen_ns (CLOCK_MONOTONIC): the kernel decides its traces itself while
        requests keep coming (bpf/sampling.h)."""
        table = self.bpf["untraced_peers"]
        key = table.Key()
        ctypes.memmove(key.peer_addr, address_bytes(conn.peer_address), 16)
        key.peer_port, key.local_port = conn.peer_port, conn.local_port
        table[key] = ctypes.c_uint64(seen_ns)

    def set_shed_bound(self, bound: int) -> None:
        """Shed the kept traces whose trace-id rank is at least bound (0: none; bpf/sampling.h)."""
        self.bpf["shed_bound"][ctypes.c_int(0)] = ctypes.c_uint64(bound)

    def set_shed_rule(self, kind: int, rule: ErrorRule, slow_ns: int | None) -> None:
        """Which spans of a kind a shed trace is kept for (bpf/shedding.h)."""
        table = self.bpf["shed_rules"]
        value = table.Leaf()
        value.slow_ns = slow_ns or 0
        value.error_statuses = rule.status_mask
        value.error_min_status = rule.min_status
        value.error_transport = int(rule.transport)
        table[ctypes.c_int(kind)] = value

    def take_held(self, trace_id: bytes, count: int) -> list[bytes]:
        """The records of a kept shed trace that the kernel held for its root (bpf/shedding.h),
        marked kept; taken out of the kernel's table."""
        table = self.bpf["parked_spans"]
        taken = []
        for index in range(count):
            key = table.Key()
            ctypes.memmove(key.trace_id, trace_id, 16)
            key.index = index
            try:
                held = SpanRecord.from_buffer_copy(bytes(table[key]))
                del table[key]
            except KeyError:  # forgotten by the LRU, or one slot taken twice
                continue
            held.flags |= F_SAMPLED
            taken.append(bytes(held))
        self.held_taken += len(taken)
        return taken

    def poll(self, timeout_ms: int, limit: int = UNLIMITED) -> int:
        """Wait up to timeout_ms for a wakeup, then take the records, at most limit (how many
        it took): the probes wake gotrace only now and then (bpf/span.h emit), so a wait can
        end with records that announced nothing."""
        self._ring.wait(timeout_ms)
        self.ring_fill = self._ring.fill()
        records = self._ring.take(limit)
        if records:
            self._taken += len(records)  # the kernel's backlog (bpf/sampling.h)
            self.bpf["records_taken"][ctypes.c_int(0)] = ctypes.c_uint64(self._taken)
        self._on_records(records)
        return len(records)

    def hits(self) -> dict[str, int]:
        """Hits per BPF program."""
        hits_table = self.bpf["probe_hits"]
        return {prog: sum(hits_table[ctypes.c_int(i)]) for prog, i in PROBE_IDS.items()}

    def run_ns(self) -> dict[str, int]:
        """Nanoseconds each BPF program loaded so far has run, as the kernel counts them
        while the sysctl kernel.bpf_stats_enabled is 1 (zero while it is 0)."""
        run_ns = {name.decode(): _run_time_ns(fn.fd)
                  for name, fn in self.bpf.funcs.items()}  # type: ignore[attr-defined]
        for name, fn in self._perf_copies.items():
            run_ns[name.decode()] += _run_time_ns(fn.fd)  # type: ignore[attr-defined]
        return run_ns

    def drops(self) -> dict[str, int]:
        """Spans not sent by the kernel, by reason (KERNEL_DROP_REASONS)."""
        drops = self._per_cpu_counts("kernel_drops", KERNEL_DROP_REASONS)
        drops["shed"] -= self.held_taken  # held, then sent after all
        return drops

    def conn_misses(self) -> dict[str, int]:
        """Spans whose connection was not found, by reason (CONN_MISS_REASONS)."""
        return self._per_cpu_counts("conn_misses", CONN_MISS_REASONS)

    def _per_cpu_counts(self, name: str, reasons: tuple[str, ...]) -> dict[str, int]:
        table = self.bpf[name]
        return {reason: sum(table[ctypes.c_int(i)]) for i, reason in enumerate(reasons)}

    def close(self) -> None:
        uprobe_multi.close_links([fd for links in self._links.values() for fd in links])
        self._links.clear()
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        self.bpf.cleanup()
        for fn in self._perf_copies.values():
            os.close(fn.fd)  # type: ignore[attr-defined]
        self._perf_copies.clear()


def uprobe_mechanism() -> str:
    """How this kernel gets gotrace's uprobes attached (compile_program's default)."""
    if uprobe_multi.supported():
        return "uprobe_multi links, one per probe program, binary and process"
    return "one perf event per uprobe (this kernel has no uprobe_multi links)"


def file_offsets(path: str, addrs: Iterable[int]) -> dict[int, int]:
    """The file offset of each virtual address in the executable segments of the ELF file
    at path, where a uprobe is attached (as BCC converts the addresses it is given)."""
    with contextlib.closing(ElfImage(path)) as elf:
        offsets = {}
        for addr in addrs:
            seg = elf.segment_of(addr)
            if seg is None or not seg.executable or addr - seg.vaddr >= seg.filesz:
                raise GotraceError(f"{path}: address {addr:#x} is not in its code")
            offsets[addr] = addr - seg.vaddr + seg.offset
        return offsets


def _run_time_ns(prog_fd: int) -> int:
    with open(f"/proc/self/fdinfo/{prog_fd}") as info:
        for line in info:
            if line.startswith("run_time_ns:"):
                return int(line.split()[1])
    return 0  # a kernel without BPF run-time statistics


def open_ring(bpf: object, name: str, min_size: int = 0) -> RingBuffer:
    """The reader of a BPF_RINGBUF_OUTPUT map of a compiled program, its records padded with
    zeros to min_size."""
    table = bpf[name]  # type: ignore[index]
    return RingBuffer(table.map_fd, table.max_entries, min_size)


def require_kernel_headers() -> None:
    """BCC compiles against the running kernel's headers, or where BCC_KERNEL_SOURCE says;
    without them it prints pages of compiler errors."""
    kernel_build = Path(os.environ.get("BCC_KERNEL_SOURCE")
                        or f"/lib/modules/{os.uname().release}/build")
    if not (kernel_build / "include").exists():
        raise GotraceError(f"no kernel headers at {kernel_build}: install them "
                           "(scripts/setup.sh links Debian's when none match this kernel)")


def bcc_compiler() -> type:
    """BCC's BPF class, once it is importable and the kernel headers are there."""
    try:
        from bcc import BPF
    except ImportError:
        raise GotraceError("BCC's Python module is not importable: run scripts/setup.sh "
                           "(Debian package python3-bpfcc)") from None
    require_kernel_headers()
    return BPF


# BCC 0.26 (Debian bookworm's) reads all of /proc/kallsyms again at every call of
# bpf_probe_read_user in the program's text, to learn whether the kernel has that helper (if
# not, it would substitute bpf_probe_read): most of a probe program's compile time (bench/
# REPORT.md, "Measured once"). The kernels gotrace runs on have it (the ring buffers need 5.8, the
# helper 5.5), so the programs call it under another name, declared as BCC's helpers.h
# declares it (a pointer holding the helper's number), which BCC does not look into. The text
# after it begins with a #line of its own (gotrace/kernel/c_source.py), so compiler errors
# name the program's files and lines.
_READ_USER_UNCHECKED = """\
static long (*const gotrace_read_user)(void *dst, __u32 size, const void *src) =
    (void *)BPF_FUNC_probe_read_user;
#define bpf_probe_read_user gotrace_read_user
"""


def compile_bpf(text: str, macros: dict[str, int], what: str) -> object:
    """A loaded bcc.BPF module of the C text (program_text's), with macros as -D flags; a
    failure is a GotraceError naming what was being compiled."""
    BPF = bcc_compiler()
    cflags = [f"-I{BPF_DIR}", "-Wno-unused-function", *(f"-D{k}={v}" for k, v in macros.items())]
    try:
        return BPF(text=_READ_USER_UNCHECKED + text, cflags=cflags)
    except Exception as e:  # BCC raises bare Exception
        raise GotraceError(f"cannot load {what}: {e}") from None
    finally:
        _trim_heap()


def compile_program(plan: Plan, multi: bool | None = None) -> Program:
    """The plan's program, to be attached through uprobe_multi links if multi (by default:
    where the kernel has them; False only where tests compare with the other mechanism)."""
    if multi is None:
        multi = uprobe_multi.supported()
    program = Program(plan, compile_bpf(plan.text(), plan.macros, "the BPF program"), multi)
    _fill_conn_steps(program.bpf, plan.conn_steps)
    _drop_compiler_code()
    return program


def _fill_conn_steps(bpf: object, steps: dict[int, ConnStep]) -> None:
    """bpf/conn.h's conn_steps: how each connection type of the layout leads to its socket."""
    table = bpf["conn_steps"]  # type: ignore[index]
    for type_hash, step in steps.items():
        value = table.Leaf()
        value.kind, value.offset, value.next_hash = step.kind, step.offset, step.next_hash
        value.flags = sum(bit for name, bit in CONN_STEP_FLAGS.items() if getattr(step, name))
        table[table.Key(type_hash)] = value


_COMPILER_LIBRARIES = ("libLLVM", "libclang")
_MADV_DONTNEED = 4


def _compiler_code() -> list[tuple[int, int]]:
    """(address, length) of the executable mappings of LLVM's and clang's libraries that
    hold no private copy of a page (/proc/self/smaps 'Anonymous: 0 kB'): pages of those
    are the file's, and can be read again from it whenever they are needed."""
    found: list[tuple[int, int]] = []
    code: tuple[int, int] | None = None
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            key, _, value = line.partition(" ")
            if not key.endswith(":"):  # a mapping: "start-end perms offset dev inode [path]"
                words = line.split()
                library = os.path.basename(words[5]) if len(words) > 5 else ""
                code = None
                if words[1] == "r-xp" and library.startswith(_COMPILER_LIBRARIES):
                    start, end = (int(x, 16) for x in words[0].split("-"))
                    code = (start, end - start)
            elif key == "Anonymous:" and code is not None and value.split()[0] == "0":
                found.append(code)
    return found


def _trim_heap() -> None:
    """Return to the system what LLVM and clang freed (tens of MB a compilation), which
    glibc's malloc otherwise keeps in its heaps, one per thread that compiled."""
    libc = ctypes.CDLL(None)
    if hasattr(libc, "malloc_trim"):  # glibc only
        libc.malloc_trim(0)


def _drop_compiler_code() -> None:
    """Take the pages of LLVM's and clang's code (tens of MB) out of gotrace's memory once a probe
    program is compiled, the last compilation of an attach (the TCP program's comes first):
    only another compilation runs that code again, reading its pages back from the page
    cache (MADV_DONTNEED on unmodified file pages)."""
    libc = ctypes.CDLL(None)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    with contextlib.suppress(OSError):
        for address, length in _compiler_code():
            libc.madvise(address, length, _MADV_DONTNEED)
