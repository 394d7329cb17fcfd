"""Which probes run on a binary, and the macros their C is compiled with.

Generic over the probes' declarations (gotrace/probes): a probe runs when its library is in
the binary, it is not an opt-in left out, its functions, fields, types and required features
resolve, and the probes it requires run too. The macros are the resolved offsets and type
hashes, the probes' features and variants, the boundary constants (gotrace/records.py), the
connection steps' constants and the kernel's own offsets for Unix sockets.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gotrace.errors import GotraceError
from gotrace.gobin.conntypes import ConnStep, StepKind
from gotrace.kernel.btf import KernelBtfError, kernel_offsets
from gotrace.kernel.c_source import BPF_DIR, program_text
from gotrace.probes import ALL_PROBES, CLIENT_KINDS, COMMON_FIELDS, SERVER_KINDS, SPAN_KINDS
from gotrace.probes.base import (
    Probe,
    library_macro,
    macro_name,
    program_macro,
    type_hash_macro,
)
from gotrace.records import boundary_macros
from gotrace.resolve.layout import Layout

ALL_PROGRAMS = [a.program for p in ALL_PROBES for a in p.attachments]
PROBE_IDS = {program: i for i, program in enumerate(dict.fromkeys(ALL_PROGRAMS))}

# Why a span has no connection (bpf/conn.h): each reason's index is the C macro
# CONN_MISS_<REASON> (conn_macros).
CONN_MISS_REASONS = ("unknown_type", "nil", "too_deep", "unix")
CONN_STEP_FLAGS = {"tls": 1, "unix": 2}  # CONN_STEP_F_<NAME>

# Every program has the span machinery and the connection lookup, whose maps gotrace reads
# (counters, sampling marks, connection steps) whichever probes run.
PRELUDE = (BPF_DIR / "span.h", BPF_DIR / "conn.h")

# Kernel struct members bpf/conn.h reads (KOFF_<struct>_<member's last name>): from a netFD's
# file descriptor to the kernel's socket, in the process's file table; then, to name a Unix
# socket and its peer, or a TCP connection as both its ends name it (tcp_identity).
FD_TABLE_MEMBERS = (("task_struct", "files"), ("files_struct", "fdt"), ("fdtable", "max_fds"),
                    ("fdtable", "fd"), ("file", "private_data"), ("socket", "sk"))
UNIX_KERNEL_MEMBERS = (*FD_TABLE_MEMBERS, ("sock", "sk_socket"), ("unix_sock", "peer"),
                       ("socket_alloc", "socket"), ("socket_alloc", "vfs_inode"),
                       ("inode", "i_ino"))
TCP_IDENTITY_KERNEL_MEMBERS = (*FD_TABLE_MEMBERS, ("sock", "__sk_common.skc_state"),
                               ("sock", "__sk_common.skc_num"),
                               *(("tcp_sock", m) for m in ("copied_seq", "write_seq", "rcv_nxt",
                                                           "snd_una", "bytes_received",
                                                           "bytes_acked")))

TUNABLES = {
    # 8 MiB of finished spans (about 13,000) between polls: several seconds of a busy
    # service, so a tracer briefly starved of CPU by its neighbours loses none of them.
    "RINGBUF_PAGES": 2048,
    "MAX_INFLIGHT": 16384,  # requests in progress at once, per probe
    "MAX_GOROUTINES": 65536,  # goroutines carrying a span context
    "MAX_GOROUTINE_DEPTH": 4,  # goroutine hops a context follows
    "CONN_STEP_TYPES": 1024,  # connection types of one layout (bpf/conn.h)
}


def _kernel_member_macros(members: Iterable[tuple[str, str]]) -> dict[str, int]:
    """KOFF_<struct>_<member> for each (struct, member path), from the running kernel's BTF."""
    return kernel_offsets({f"KOFF_{struct}_{path.rsplit('.', 1)[-1]}": (struct, path)
                           for struct, path in members})


def unix_socket_macros() -> dict[str, int] | str:
    """bpf/conn.h's kernel offsets for Unix sockets, from the running kernel's BTF, or why
    there are none."""
    try:
        offsets = _kernel_member_macros(UNIX_KERNEL_MEMBERS)
    except KernelBtfError as e:
        return str(e)
    return {**offsets, "KERNEL_UNIX": 1}


def tcp_identity_macros() -> dict[str, int]:
    """bpf/conn.h's kernel offsets for the TCP identity of HTTP and gRPC spans
    (KERNEL_TCP_IDENTITY), from the running kernel's BTF. Asked for, so a kernel that lacks
    them is an error (one line), not a probe left out."""
    try:
        offsets = _kernel_member_macros(TCP_IDENTITY_KERNEL_MEMBERS)
    except KernelBtfError as e:
        raise GotraceError(f"cannot read TCP connections' identity: {e}") from None
    return {**offsets, "KERNEL_TCP_IDENTITY": 1}


def conn_macros() -> dict[str, int]:
    """The values bpf/conn.h shares with gotrace/kernel/program.py and gobin/conntypes.py."""
    macros = {f"CONN_STEP_{k.name}": k.value for k in StepKind}
    macros.update({f"CONN_STEP_F_{n.upper()}": v for n, v in CONN_STEP_FLAGS.items()})
    macros.update({f"CONN_MISS_{r.upper()}": i for i, r in enumerate(CONN_MISS_REASONS)})
    macros["CONN_MISS_REASONS"] = len(CONN_MISS_REASONS)
    return macros


def kernel_boundary_macros() -> dict[str, int]:
    """Every constant the kernel and gotrace share about records and connections."""
    return {**boundary_macros(SPAN_KINDS, SERVER_KINDS, CLIENT_KINDS), **conn_macros()}


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

    @property
    def sources(self) -> list[Path]:
        return [*PRELUDE, *(p.source for p in self.probes)]

    def text(self) -> str:
        """The program's C, its includes expanded (gotrace/kernel/c_source.py)."""
        return program_text(self.sources)


def _gaps(probe: Probe, layout: Layout) -> list[str]:
    gaps = [a.function for a in probe.attachments
            if a.function not in layout.functions and not a.optional and not a.feature]
    gaps += [f for f in probe.fields if f not in layout.fields]
    gaps += [t for t in probe.types if t not in layout.type_hashes]
    return list(dict.fromkeys(gaps))


def _with_features(probe: Probe, layout: Layout, refused: dict[str, str]
                   ) -> tuple[Probe, dict[str, int]] | None:
    """The probe without the attachments of its features that cannot be, and its features'
    macros; None when a required feature cannot be (refused)."""
    found: dict[str, int] = {}
    lacking: set[str] = set()
    for feature in probe.features:
        result = feature.macros(layout)
        if isinstance(result, str):
            if feature.required:
                refused[probe.library] = result
                return None
            refused[f"{probe.library}.{feature.name}"] = result
            lacking.add(feature.name)
        else:
            found.update(result)
    attachments = tuple(a for a in probe.attachments if a.feature not in lacking)
    return dataclasses.replace(probe, attachments=attachments), found


def plan_probes(layout: Layout, settings: Mapping[str, int], wanted: Iterable[Probe] = ALL_PROBES,
                *, opt_in: Collection[str] = (), tcp_identity: bool = False) -> Plan:
    """The probes that can run on the layout. Opt-in probes run only when their library is
    in opt_in (which may also name what a probe's variant looks for). settings are the
    pipeline's macros for the kernel (the sampler's, bpf/sampling.h). tcp_identity: HTTP and
    gRPC spans carry their TCP connection's identity (bpf/conn.h), for linking across hosts."""
    missing_common = [f for f in COMMON_FIELDS if f not in layout.fields]
    if missing_common:
        raise GotraceError(f"{layout.path}: cannot resolve {', '.join(missing_common)}; "
                           "see `gotrace inspect`")
    refused: dict[str, str] = {}
    candidates: dict[Probe, dict[str, int]] = {}  # each with its variant's and features' macros
    for declared in wanted:
        if declared.library in layout.absent_libraries:
            continue
        if declared.opt_in and declared.library not in opt_in:
            continue
        probe, variant_macros = declared.for_binary(layout, opt_in)
        if probe is None:
            continue  # its variant says the binary does not need it
        if gaps := _gaps(probe, layout):
            refused[probe.library] = "missing " + ", ".join(gaps)
            continue
        with_features = _with_features(probe, layout, refused)
        if with_features is not None:
            probe, features = with_features
            candidates[probe] = {**variant_macros, **features}
    probes = _with_requirements(list(candidates), refused)
    if not probes:
        raise GotraceError(f"{layout.path}: no probe can run on this binary "
                           f"({'; '.join(f'{k}: {v}' for k, v in refused.items()) or 'no HTTP'})")
    if len(layout.conn_types.steps) > TUNABLES["CONN_STEP_TYPES"]:
        raise GotraceError(f"{layout.path}: {len(layout.conn_types.steps)} connection types, "
                           f"more than the {TUNABLES['CONN_STEP_TYPES']} gotrace keeps")
    macros = _layout_macros(layout, probes)
    for probe in probes:  # not those a missing requirement dropped
        macros.update(candidates[probe])
    macros.update({library_macro(p.library): 1 for p in probes})
    macros.update({program_macro(p): i for p, i in PROBE_IDS.items()})
    macros["MAX_PROBES"] = len(PROBE_IDS)
    macros.update(TUNABLES)
    macros.update(kernel_boundary_macros())
    unix = unix_socket_macros()
    if isinstance(unix, str):
        refused["unix sockets"] = unix
    else:
        macros.update(unix)
    if tcp_identity:
        macros.update(tcp_identity_macros())
    macros.update(settings)
    return Plan(probes, refused, macros, dict(layout.conn_types.steps))


def _with_requirements(candidates: list[Probe], refused: dict[str, str]) -> list[Probe]:
    """The candidates whose required probes run too (a refusal can cascade)."""
    probes = list(candidates)
    while True:
        running = {p.library for p in probes}
        blocked = [p for p in probes if any(r not in running for r in p.requires)]
        if not blocked:
            return probes
        for probe in blocked:
            missing = [r for r in probe.requires if r not in running]
            refused[probe.library] = f"needs the {', '.join(missing)} probe, which cannot run"
        probes = [p for p in probes if p not in blocked]


def _layout_macros(layout: Layout, probes: list[Probe]) -> dict[str, int]:
    """The resolved offsets of the fields and hashes of the types the probes name."""
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
    return macros
