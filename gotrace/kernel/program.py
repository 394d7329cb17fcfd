"""From a binary's Layout to a running BPF program: which probes can run, the C source with
the resolved offsets as macros, one compilation per distinct layout, uprobe attachment.

Attachment is always at function entries (on the stack check's branch where there is one: see
gobin/disasm.py) and at every RET site: never a uretprobe, which
crashes Go programs when their stacks move.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import ipaddress
import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gotrace.errors import GotraceError
from gotrace.gobin.conntypes import ConnStep, StepKind
from gotrace.kernel.btf import KernelBtfError, kernel_offsets
from gotrace.layout import Layout
from gotrace.linking import UNTRACED_PEER_IDLE_NS
from gotrace.probes import (
    ALL_PROBES,
    COMMON_FIELDS,
    OPT_IN_PROBES,
    runtime,
)
from gotrace.probes.base import Probe, macro_name, program_macro, type_hash_macro
from gotrace.ringbuf import RingBuffer
from gotrace.sampling import KEEP_ALL, SamplerConfig
from gotrace.sched_wait import wait_class_macros
from gotrace.spans import Connection
from gotrace.unix_sockets import address_bytes as unix_address_bytes
from gotrace.unix_sockets import is_unix_address

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"
ALL_PROGRAMS = [a.program for p in ALL_PROBES for a in p.attachments]
PROBE_IDS = {program: i for i, program in enumerate(dict.fromkeys(ALL_PROGRAMS))}

# The DROP_* indexes of bpf/common.h, in order.
KERNEL_DROP_REASONS = ("ringbuf_full", "inflight_full", "unsupported_writer", "end_not_seen",
                       "inject_skipped", "sampled_out")
# Why a span has no connection (bpf/conn.h): each reason's index is the C macro
# CONN_MISS_<REASON> (conn_macros).
CONN_MISS_REASONS = ("unknown_type", "nil", "too_deep", "unix")
CONN_STEP_FLAGS = {"tls": 1, "unix": 2}  # CONN_STEP_F_<NAME>


# Kernel struct members bpf/conn.h reads to name a Unix socket and its peer
# (KOFF_<struct>_<member>).
UNIX_KERNEL_MEMBERS = (("task_struct", "files"), ("files_struct", "fdt"),
                       ("fdtable", "max_fds"), ("fdtable", "fd"), ("file", "private_data"),
                       ("socket", "sk"), ("sock", "sk_socket"), ("unix_sock", "peer"),
                       ("socket_alloc", "socket"), ("socket_alloc", "vfs_inode"),
                       ("inode", "i_ino"))


def unix_socket_macros() -> dict[str, int] | str:
    """bpf/conn.h's kernel offsets for Unix sockets, from the running kernel's BTF, or why
    there are none."""
    try:
        offsets = kernel_offsets({f"KOFF_{struct}_{member}": (struct, member)
                                  for struct, member in UNIX_KERNEL_MEMBERS})
    except KernelBtfError as e:
        return str(e)
    return {**offsets, "KERNEL_UNIX": 1}


def conn_macros() -> dict[str, int]:
    """The values bpf/conn.h shares with this module and gobin/conntypes.py."""
    macros = {f"CONN_STEP_{k.name}": k.value for k in StepKind}
    macros.update({f"CONN_STEP_F_{n.upper()}": v for n, v in CONN_STEP_FLAGS.items()})
    macros.update({f"CONN_MISS_{r.upper()}": i for i, r in enumerate(CONN_MISS_REASONS)})
    macros["CONN_MISS_REASONS"] = len(CONN_MISS_REASONS)
    return macros

TUNABLES = {
    # 8 MiB of finished spans (about 13,000) between polls: several seconds of a busy
    # service, so a tracer briefly starved of CPU by its neighbours loses none of them.
    "RINGBUF_PAGES": 2048,
    "MAX_INFLIGHT": 16384,  # requests in progress at once, per probe
    "MAX_GOROUTINES": 65536,  # goroutines carrying a span context
    "MAX_GOROUTINE_DEPTH": 4,  # goroutine hops a context follows
    "UNTRACED_PEER_IDLE_NS": UNTRACED_PEER_IDLE_NS,  # how long bpf/sampling.h trusts a mark
    "CONN_STEP_TYPES": 1024,  # connection types of one layout (bpf/conn.h)
}


@dataclass
class Plan:
    """What runs for one layout: the probes, and the reason each other probe cannot."""

    probes: list[Probe]
    refused: dict[str, str]
    macros: dict[str, int]
    conn_steps: dict[int, ConnStep] = field(default_factory=dict)  # by type hash: bpf/conn.h

    @property
    def key(self) -> str:
        text = (repr(sorted(self.macros.items())) + repr([p.library for p in self.probes])
                + repr(sorted(self.conn_steps.items())))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_probes(layout: Layout, wanted: Iterable[Probe] = ALL_PROBES, *,
                opt_in: Collection[str] = (), sampler: SamplerConfig = KEEP_ALL
                ) -> Plan:
    """The probes that can run on the layout. Opt-in probes (OPT_IN_PROBES) run only when
    their library is in opt_in: nethttp_inject (--inject-traceparent), which also needs the
    HTTP client probe, and sched (--sched-wait). runtime.DEEP_ANCESTRY in opt_in
    (--goroutine-ancestry) chooses the runtime probe's ancestry (runtime.for_binary). The
    sampler's rules are compiled in (bpf/sampling.h)."""
    missing_common = [f for f in COMMON_FIELDS if f not in layout.fields]
    if missing_common:
        raise GotraceError(f"{layout.path}: cannot resolve {', '.join(missing_common)}; "
                           "see `gotrace inspect`")
    probes: list[Probe] = []
    refused: dict[str, str] = {}
    ancestry, ancestry_macros = runtime.for_binary(layout.fields, runtime.DEEP_ANCESTRY in opt_in)
    for probe in (ancestry if p is runtime.PROBE else p for p in wanted):
        if probe.library in layout.absent_libraries:
            continue
        if probe.library in OPT_IN_PROBES and probe.library not in opt_in:
            continue
        gaps = [a.function for a in probe.attachments
                if a.function not in layout.functions and not a.optional]
        gaps += [f for f in probe.fields if f not in layout.fields]
        gaps += [t for t in probe.types if t not in layout.type_hashes]
        if gaps:
            refused[probe.library] = "missing " + ", ".join(dict.fromkeys(gaps))
        else:
            probes.append(probe)
    if not probes:
        raise GotraceError(f"{layout.path}: no probe can run on this binary "
                           f"({'; '.join(f'{k}: {v}' for k, v in refused.items()) or 'no HTTP'})")
    names = {f for p in probes for f in (*p.fields, *p.optional_fields)} | set(COMMON_FIELDS)
    # A renamed field has a macro under the manifest's name and one under the name it was
    # found as: the C can use either, or tell the versions apart.
    macros = {}
    for name in sorted(names & layout.fields.keys()):
        resolved = layout.fields[name]
        macros[macro_name(name)] = macros[macro_name(resolved.found_as)] = resolved.offset
    types = {t for p in probes for t in (*p.types, *p.optional_types)}
    macros.update({type_hash_macro(t): layout.type_hashes[t]
                   for t in sorted(types & layout.type_hashes.keys())})
    macros.update({program_macro(p): i for p, i in PROBE_IDS.items()})
    macros["MAX_PROBES"] = len(PROBE_IDS)
    macros.update(TUNABLES)
    macros.update(conn_macros())
    unix = unix_socket_macros()
    if isinstance(unix, str):
        refused["unix sockets"] = unix
    else:
        macros.update(unix)
    macros.update(sampler.kernel_macros())
    if ancestry in probes:
        macros.update(ancestry_macros)
    libraries = {p.library for p in probes}
    if "nethttp_inject" in libraries and "nethttp_client" not in libraries:
        probes = [p for p in probes if p.library != "nethttp_inject"]
        refused["nethttp_inject"] = "the HTTP client probe cannot run"
    elif "nethttp_inject" in libraries:
        macros["INJECT_TRACEPARENT"] = 1
    if "sched" in libraries:
        classes = wait_class_macros(layout.wait_reasons)
        if classes:
            macros.update(classes, SCHED_WAIT=1)
        else:
            probes = [p for p in probes if p.library != "sched"]
            refused["sched"] = "runtime.waitReasonStrings not found"
    readers = [p.library for p in probes
               if p.library in ("nethttp_server", "grpc_server", "nethttp_inject")]
    if readers:
        macros.update(_traceparent_features(layout, readers, refused))
    if len(layout.conn_types.steps) > TUNABLES["CONN_STEP_TYPES"]:
        raise GotraceError(f"{layout.path}: {len(layout.conn_types.steps)} connection types, "
                           f"more than the {TUNABLES['CONN_STEP_TYPES']} gotrace keeps")
    return Plan(probes, refused, macros, dict(layout.conn_types.steps))


def _traceparent_features(layout: Layout, readers: list[str],
                          refused: dict[str, str]) -> dict[str, int]:
    """Macros for reading traceparents: net/http's from the request's header map (also to
    leave an outgoing request's own alone), grpc-go's from the metadata map found in the
    stream's context. What cannot be read is noted in refused as '<library>.traceparent'."""
    maps = _traceparent_macros(layout)
    if isinstance(maps, str):
        refused.update({f"{library}.traceparent": maps for library in readers})
        return {}
    if "grpc_server" in readers:
        context = _gocontext_macros(layout)
        if isinstance(context, str):
            refused["grpc_server.traceparent"] = context
        else:
            maps.update(context)
    return maps

GOCONTEXT_FIELDS = ("internal/abi.ITab.Hash", "internal/abi.Type.Hash",
                    "context.valueCtx.Context", "context.valueCtx.key", "context.valueCtx.val",
                    "context.cancelCtx.Context", "context.timerCtx.cancelCtx")
GOCONTEXT_TYPES = ("*context.valueCtx", "*context.cancelCtx", "*context.timerCtx")


def _gocontext_macros(layout: Layout) -> dict[str, int] | str:
    """Macros for bpf/gocontext.h (walking a context.Context chain), or what is missing."""
    gaps = [f for f in GOCONTEXT_FIELDS if f not in layout.fields]
    gaps += [t for t in GOCONTEXT_TYPES if t not in layout.type_hashes]
    if gaps:
        return "missing " + ", ".join(gaps)
    macros = {macro_name(f): layout.fields[f].offset for f in GOCONTEXT_FIELDS}
    macros.update({type_hash_macro(t): layout.type_hashes[t] for t in GOCONTEXT_TYPES})
    macros["HAS_GOCONTEXT"] = 1
    return macros


HMAP_FIELDS = ("runtime.hmap.flags", "runtime.hmap.B", "runtime.hmap.buckets",
               "runtime.hmap.oldbuckets")
SWISS_FIELDS = ("internal/runtime/maps.Map.dirPtr", "internal/runtime/maps.Map.dirLen",
                "internal/runtime/maps.table.groups", "internal/runtime/maps.groupsReference.data",
                "internal/runtime/maps.groupsReference.lengthMask")
MAP_SLOTS = 8  # entries per bucket (abi.MapBucketCount) / group (abi.MapGroupSlots), 1.19-1.26


def _traceparent_macros(layout: Layout) -> dict[str, int] | str:
    """Macros for bpf/traceparent.h (reading a map[string][]string in place), or why the
    binary's incoming traceparents cannot be read."""
    if "swissmap" in layout.settings.get("GOEXPERIMENT", ""):
        # noswissmap (Go 1.24-1.25) keeps the old layout under a version the manifest says
        # is swiss: the resolved offsets would describe the wrong map.
        return "map layout changed by GOEXPERIMENT"
    fields = layout.fields
    swiss = SWISS_FIELDS[0] in fields
    needed = SWISS_FIELDS if swiss else HMAP_FIELDS
    gaps = [f for f in needed if f not in fields]
    if gaps:
        return "missing " + ", ".join(gaps)
    # The word size, from two consecutive pointer-sized fields: hmap.buckets/oldbuckets are
    # both unsafe.Pointer; groupsReference is {data unsafe.Pointer; lengthMask uint64}.
    if swiss:
        ptr = fields[SWISS_FIELDS[4]].offset - fields[SWISS_FIELDS[3]].offset
    else:
        ptr = fields[HMAP_FIELDS[3]].offset - fields[HMAP_FIELDS[2]].offset
    if ptr != 8:
        return f"unexpected map layout (pointer size {ptr})"
    string, slice_ = 2 * ptr, 3 * ptr  # key string {ptr, len}; value []string {ptr, len, cap}
    macros = {macro_name(f): fields[f].offset for f in needed}
    if swiss:
        # The compiler's group type (cmd/compile/internal/reflectdata, MapGroupType; named
        # SwissMapGroupType in 1.24-1.25): struct { ctrl uint64; slots [8]struct{key; elem} }.
        # Keys and values are stored inline (both are far below the 128-byte limit for that);
        # string and []string are word-aligned, so a slot has no padding.
        slot = string + slice_
        macros.update(GOMAP_SWISS=1, GOMAP_CHUNK_SIZE=8 + MAP_SLOTS * slot,
                      GOMAP_KEYS_OFF=8, GOMAP_KEY_STRIDE=slot,
                      GOMAP_ELEMS_OFF=8 + string, GOMAP_ELEM_STRIDE=slot)
    else:
        # The compiler's bucket type (reflectdata.MapBucketType): tophash [8]uint8, keys
        # [8]string, elems [8][]string, overflow pointer; all word-aligned, no padding.
        bucket = MAP_SLOTS + MAP_SLOTS * string + MAP_SLOTS * slice_ + ptr
        macros.update(GOMAP_SWISS=0, GOMAP_CHUNK_SIZE=bucket,
                      GOMAP_KEYS_OFF=MAP_SLOTS, GOMAP_KEY_STRIDE=string,
                      GOMAP_ELEMS_OFF=MAP_SLOTS + MAP_SLOTS * string, GOMAP_ELEM_STRIDE=slice_,
                      GOMAP_OVERFLOW_OFF=bucket - ptr)
    macros.update(GOMAP_PTR_SIZE=ptr, HAS_TRACEPARENT=1)
    return macros


def _source(plan: Plan) -> str:
    """The program text. BCC makes BPF programs only of functions in the main text (not of
    included files), so the shared code and each probe's C are concatenated."""
    parts = ["common.h", "conn.h", "sampling.h",
             *(["sched.h"] if "SCHED_WAIT" in plan.macros else []),
             *(["traceparent.h"] if "HAS_TRACEPARENT" in plan.macros else []),
             *(["gocontext.h"] if "HAS_GOCONTEXT" in plan.macros else []),
             *dict.fromkeys(h for p in plan.probes for h in p.headers),
             *(p.source_file for p in plan.probes)]
    return "\n".join((BPF_DIR / name).read_text() for name in parts)


def address_bytes(address: str) -> bytes:
    """An address as the kernel records it: 16 bytes, IPv4 mapped into IPv6, or a Unix
    socket's end as bpf/sampling.h keys it (gotrace/unix_sockets.py)."""
    if is_unix_address(address):
        return unix_address_bytes(address)
    ip = ipaddress.ip_address(address)
    return ip.packed if ip.version == 6 else b"\0" * 10 + b"\xff\xff" + ip.packed


RecordsCallback = Callable[[list[bytes]], None]


@dataclass
class Program:
    """One compiled BPF object, shared by every process whose binary has the same layout."""

    plan: Plan
    bpf: object  # bcc.BPF
    attached: list[tuple[str, int, int]] = field(default_factory=list)  # (path, addr, pid)
    _ring: RingBuffer | None = None
    _on_records: RecordsCallback | None = None

    def attach(self, path: str, layout: Layout, pid: int = -1) -> int:
        """Attach every probe of the plan to the binary at path; returns the uprobe count."""
        count = 0
        for probe in self.plan.probes:
            for a in probe.attachments:
                fn = layout.functions.get(a.function)
                if fn is None:  # an optional one (plan_probes)
                    continue
                addrs = [fn.entry_probe] if a.where == "entry" else list(fn.ret_addresses)
                if not addrs:
                    raise GotraceError(f"{path}: {a.function} has no RET instruction to probe")
                for addr in addrs:
                    try:
                        self.bpf.attach_uprobe(name=path, addr=addr, fn_name=a.program,
                                               pid=pid)
                    except Exception as e:  # BCC raises bare Exception
                        raise GotraceError(f"cannot attach a uprobe to {path} at {addr:#x} "
                                           f"({a.function}): {e}") from None
                    self.attached.append((path, addr, pid))
                    count += 1
        return count

    def detach(self, path: str, pid: int = -1) -> None:
        keep = []
        for entry in self.attached:
            if entry[0] == path and entry[2] == pid:
                # The process may be gone already: then there is nothing to undo.
                with contextlib.suppress(Exception):
                    self.bpf.detach_uprobe(name=path, addr=entry[1], pid=pid)
            else:
                keep.append(entry)
        self.attached = keep

    def open_ring_buffer(self, on_records: RecordsCallback) -> None:
        """on_records gets the spans' records, a batch (maybe empty) per poll."""
        self._ring = open_ring(self.bpf, "spans")
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

    def poll(self, timeout_ms: int) -> None:
        """Wait up to timeout_ms for a wakeup, then take every record: the probes wake
        gotrace only now and then (bpf/common.h emit), so a wait can end with records that
        announced nothing."""
        self._ring.wait(timeout_ms)
        self._on_records(self._ring.take())

    def hits(self) -> dict[str, int]:
        """Hits per BPF program."""
        hits_table = self.bpf["probe_hits"]
        return {prog: sum(hits_table[ctypes.c_int(i)]) for prog, i in PROBE_IDS.items()}

    def run_ns(self) -> dict[str, int]:
        """Nanoseconds each BPF program loaded so far has run, as the kernel counts them
        while the sysctl kernel.bpf_stats_enabled is 1 (zero while it is 0)."""
        return {name.decode(): _run_time_ns(fn.fd)
                for name, fn in self.bpf.funcs.items()}  # type: ignore[attr-defined]

    def drops(self) -> dict[str, int]:
        """Spans not sent by the kernel, by reason (KERNEL_DROP_REASONS)."""
        return self._per_cpu_counts("kernel_drops", KERNEL_DROP_REASONS)

    def conn_misses(self) -> dict[str, int]:
        """Spans whose connection was not found, by reason (CONN_MISS_REASONS)."""
        return self._per_cpu_counts("conn_misses", CONN_MISS_REASONS)

    def _per_cpu_counts(self, name: str, reasons: tuple[str, ...]) -> dict[str, int]:
        table = self.bpf[name]
        return {reason: sum(table[ctypes.c_int(i)]) for i, reason in enumerate(reasons)}

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        self.bpf.cleanup()


def _run_time_ns(prog_fd: int) -> int:
    with open(f"/proc/self/fdinfo/{prog_fd}") as info:
        for line in info:
            if line.startswith("run_time_ns:"):
                return int(line.split()[1])
    return 0  # a kernel without BPF run-time statistics


def open_ring(bpf: object, name: str) -> RingBuffer:
    """The reader of a BPF_RINGBUF_OUTPUT map of a compiled program."""
    table = bpf[name]  # type: ignore[index]
    return RingBuffer(table.map_fd, table.max_entries)


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
# not, it would substitute bpf_probe_read): about 85 ms per call site here, most of a probe
# program's compile time. The kernels gotrace runs on have it (the ring buffers need 5.8, the
# helper 5.5), so the programs call it under another name, declared as BCC's helpers.h
# declares it (a pointer holding the helper's number), which BCC does not look into. #line
# keeps the line numbers of compiler errors those of the program's own text.
_READ_USER_UNCHECKED = """\
static long (*const gotrace_read_user)(void *dst, __u32 size, const void *src) =
    (void *)BPF_FUNC_probe_read_user;
#define bpf_probe_read_user gotrace_read_user
#line 1
"""


def compile_bpf(text: str, macros: dict[str, int], what: str) -> object:
    """A loaded bcc.BPF module of the C text (which may include files of bpf/), with macros
    as -D flags; a failure is a GotraceError naming what was being compiled."""
    BPF = bcc_compiler()
    cflags = [f"-I{BPF_DIR}", "-Wno-unused-function", *(f"-D{k}={v}" for k, v in macros.items())]
    try:
        return BPF(text=_READ_USER_UNCHECKED + text, cflags=cflags)
    except Exception as e:  # BCC raises bare Exception
        raise GotraceError(f"cannot load {what}: {e}") from None
    finally:
        _trim_heap()


def compile_program(plan: Plan) -> Program:
    program = Program(plan, compile_bpf(_source(plan), plan.macros, "the BPF program"))
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
    """Return to the system what LLVM and clang freed (some 40 MB a compilation), which
    glibc's malloc otherwise keeps in its heaps, one per thread that compiled."""
    libc = ctypes.CDLL(None)
    if hasattr(libc, "malloc_trim"):  # glibc only
        libc.malloc_trim(0)


def _drop_compiler_code() -> None:
    """Take the pages of LLVM's and clang's code (80 MB) out of gotrace's memory once a probe
    program is compiled, the last compilation of an attach (the TCP program's comes first):
    only another compilation runs that code again, reading its pages back from the page
    cache (MADV_DONTNEED on unmodified file pages)."""
    libc = ctypes.CDLL(None)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    with contextlib.suppress(OSError):
        for address, length in _compiler_code():
            libc.madvise(address, length, _MADV_DONTNEED)
