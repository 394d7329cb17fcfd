"""The BTF reader against bpftool's reading of the running kernel, and on hand-built BTF blobs.

The running-kernel tests need Debian's bpftool (scripts/setup.sh installs it); without it they
fail rather than skip, because they are the only check of the reader against the real kernel.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gotrace.errors import GotraceError
from gotrace.kernel import btf as btf_module
from gotrace.kernel.btf import (
    ARRAY,
    CONST,
    DATASEC,
    DECL_TAG,
    ENUM,
    ENUM64,
    FLOAT,
    FUNC,
    FUNC_PROTO,
    FWD,
    INT,
    PTR,
    RESTRICT,
    STRUCT,
    TYPE_TAG,
    TYPEDEF,
    UNION,
    VAR,
    VMLINUX_BTF,
    VOLATILE,
    KernelBtf,
    KernelBtfError,
    kernel_offsets,
    running_kernel_btf,
)

# What the tracer's BPF programs read, as (struct, member path).
NEEDED = [
    ("task_struct", "files"),
    ("task_struct", "thread.fsbase"),
    ("files_struct", "fdt"),
    ("fdtable", "fd"),
    ("file", "private_data"),
    ("file", "f_inode"),
    ("inode", "i_ino"),
    ("socket", "sk"),
    ("socket", "file"),
    ("sock", "sk_socket"),
    ("sock", "__sk_common.skc_daddr"),
    ("sock", "__sk_common.skc_rcv_saddr"),
    ("sock", "__sk_common.skc_dport"),
    ("sock", "__sk_common.skc_num"),
    ("sock", "__sk_common.skc_state"),
    ("sock", "__sk_common.skc_family"),
    ("sock", "__sk_common.skc_v6_daddr"),
    ("sock", "__sk_common.skc_v6_rcv_saddr"),
    ("sock_common", "skc_daddr"),
    ("unix_sock", "peer"),
    ("unix_sock", "addr"),
    ("tcp_sock", "write_seq"),
    ("tcp_sock", "snd_una"),
    ("tcp_sock", "rcv_nxt"),
    ("tcp_sock", "copied_seq"),
    ("tcp_sock", "bytes_acked"),
    ("tcp_sock", "bytes_received"),
]


# -- bpftool as the oracle -------------------------------------------------------------------

@dataclass
class RawType:
    kind: str
    name: str  # bpftool prints "(anon)" for nameless types and members
    attrs: dict[str, str]
    members: list[tuple[str, int, int, int]] = field(default_factory=list)  # name, type, bits, bf


TYPE_LINE = re.compile(r"^\[(\d+)\] (\w+) '([^']*)'(.*)$")
MEMBER_LINE = re.compile(r"^\t'([^']*)' type_id=(\d+) bits_offset=(\d+)(?: bitfield_size=(\d+))?$")


def find_bpftool() -> str:
    for candidate in (shutil.which("bpftool"), "/usr/sbin/bpftool", "/sbin/bpftool"):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("bpftool is not installed (Debian package bpftool; scripts/setup.sh installs it); "
                "the BTF reader is checked against it")


@pytest.fixture(scope="module")
def raw() -> dict[int, RawType]:
    """bpftool's decoding of the running kernel's BTF, by type id."""
    out = subprocess.run(
        [find_bpftool(), "btf", "dump", "file", str(VMLINUX_BTF), "format", "raw"],
        check=True, capture_output=True, text=True).stdout
    types: dict[int, RawType] = {}
    current: RawType | None = None
    for line in out.splitlines():
        if m := TYPE_LINE.match(line):
            attrs = dict(re.findall(r"(\w+)=(\S+)", m[4]))
            current = types[int(m[1])] = RawType(m[2], m[3], attrs)
        elif current and current.kind in ("STRUCT", "UNION") and (m := MEMBER_LINE.match(line)):
            current.members.append((m[1], int(m[2]), int(m[3]), int(m[4] or 0)))
    assert len(types) > 50_000, "bpftool's raw dump did not parse"
    return types


def raw_strip(types: dict[int, RawType], type_id: int) -> int:
    while type_id and types[type_id].kind in ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT",
                                              "TYPE_TAG"):
        type_id = int(types[type_id].attrs["type_id"])
    return type_id


def raw_size(types: dict[int, RawType], type_id: int) -> int:
    t = types[raw_strip(types, type_id)]
    if t.kind == "PTR":
        return 8
    if t.kind == "ARRAY":
        return int(t.attrs["nr_elems"]) * raw_size(types, int(t.attrs["type_id"]))
    return int(t.attrs["size"])


def raw_find(types: dict[int, RawType], type_id: int, name: str) -> tuple[int, int] | None:
    """(bit offset, type id) of a member, through anonymous struct/union members."""
    for member, member_type, bits, _ in types[type_id].members:
        if member == name:
            return bits, member_type
        if member == "(anon)":
            inner = raw_strip(types, member_type)
            if types[inner].kind in ("STRUCT", "UNION"):
                found = raw_find(types, inner, name)
                if found:
                    return bits + found[0], found[1]
    return None


def raw_member(types: dict[int, RawType], struct_name: str, path: str) -> tuple[int, int]:
    """(byte offset, size) of struct_name's member path, as bpftool's dump says."""
    (type_id,) = [i for i, t in types.items()
                  if t.kind in ("STRUCT", "UNION") and t.name == struct_name]
    bits = 0
    for part in path.split("."):
        found = raw_find(types, raw_strip(types, type_id), part)
        assert found, f"bpftool shows no {part} in {struct_name}.{path}"
        bits += found[0]
        type_id = found[1]
    assert bits % 8 == 0
    return bits // 8, raw_size(types, type_id)


@pytest.fixture(scope="module")
def kernel() -> KernelBtf:
    return KernelBtf()


@pytest.mark.parametrize(("struct_name", "path"), NEEDED, ids=[".".join(n) for n in NEEDED])
def test_needed_members_match_bpftool(raw, kernel, struct_name, path):
    offset, size = raw_member(raw, struct_name, path)
    assert kernel.member_offset(struct_name, path) == offset
    assert kernel.member_size(struct_name, path) == size


def test_anonymous_members_are_looked_through(kernel):
    # skc_daddr lies in an anonymous struct inside an anonymous union of struct sock_common,
    # which is struct sock's first member.
    assert kernel.member_offset("sock", "__sk_common.skc_daddr") == \
        kernel.member_offset("sock_common", "skc_daddr")
    assert kernel.member_offset("sock_common", "skc_rcv_saddr") == \
        kernel.member_offset("sock_common", "skc_daddr") + 4
    assert kernel.member_size("sock", "__sk_common.skc_v6_daddr") == 16


def test_every_member_of_every_struct_matches_bpftool(raw, kernel):
    """Each named, non-bitfield member of each uniquely named struct and union, and its size."""
    names: dict[str, list[int]] = {}
    for type_id, t in raw.items():
        if t.kind in ("STRUCT", "UNION") and t.name != "(anon)":
            names.setdefault(t.name, []).append(type_id)
    checked = 0
    for name, ids in names.items():
        if len(ids) > 1:
            continue
        t = raw[ids[0]]
        assert kernel.struct_size(name) == int(t.attrs["size"]), name
        for member, _, bits, bitfield in t.members:
            if member == "(anon)" or bitfield or bits % 8:
                continue
            assert kernel.member_offset(name, member) == bits // 8, f"{name}.{member}"
            checked += 1
    assert checked > 50_000


def test_reading_the_kernel_is_fast():
    start = time.perf_counter()
    btf = KernelBtf()
    btf.member_offset("tcp_sock", "write_seq")
    btf.member_offset("sock", "__sk_common.skc_v6_daddr")
    btf.struct_size("task_struct")
    assert time.perf_counter() - start < 1.0


def test_kernel_offsets_reads_the_running_kernel_once(kernel):
    wanted = {"TCP_WRITE_SEQ": ("tcp_sock", "write_seq"),
              "SK_DADDR": ("sock", "__sk_common.skc_daddr"),
              "TASK_FILES": ("task_struct", "files")}
    assert kernel_offsets(wanted) == {
        macro: kernel.member_offset(s, p) for macro, (s, p) in wanted.items()}
    assert running_kernel_btf() is running_kernel_btf()


def test_kernel_offsets_names_the_missing_member():
    with pytest.raises(KernelBtfError, match=r"struct tcp_sock has no member 'no_such_field'"):
        kernel_offsets({"X": ("tcp_sock", "no_such_field")})


def test_kernel_without_btf(monkeypatch, tmp_path):
    monkeypatch.setattr(btf_module, "VMLINUX_BTF", tmp_path / "vmlinux")
    running_kernel_btf.cache_clear()
    try:
        with pytest.raises(KernelBtfError) as e:
            kernel_offsets({"X": ("sock", "sk_socket")})
    finally:
        running_kernel_btf.cache_clear()
    assert "this kernel has no BTF (CONFIG_DEBUG_INFO_BTF)" in str(e.value)
    assert isinstance(e.value, GotraceError)


# -- hand-built blobs ------------------------------------------------------------------------

class Builder:
    """Writes BTF the way the kernel documents it, one type record at a time."""

    def __init__(self, order: str = "<") -> None:
        self.order = order
        self.types = bytearray()
        self.strings = bytearray(b"\0")
        self.count = 0

    def string(self, s: str) -> int:
        if not s:
            return 0
        off = len(self.strings)
        self.strings += s.encode() + b"\0"
        return off

    def add(self, kind: int, name: str = "", vlen: int = 0, size_or_type: int = 0,
            kind_flag: int = 0, trailer: bytes = b"") -> int:
        info = kind_flag << 31 | kind << 24 | vlen
        self.types += struct.pack(self.order + "III", self.string(name), info, size_or_type)
        self.types += trailer
        self.count += 1
        return self.count

    def u32s(self, *values: int) -> bytes:
        return struct.pack(f"{self.order}{len(values)}I", *values)

    def int_type(self, name: str, size: int, bits: int | None = None, bit_offset: int = 0) -> int:
        bits = size * 8 if bits is None else bits
        return self.add(INT, name, 0, size, trailer=self.u32s(bit_offset << 16 | bits))

    def composite(self, kind: int, name: str, size: int,
                  members: list[tuple[str, int, int, int]], kind_flag: int = 0) -> int:
        """members: (name, type id, bit offset, bitfield size)."""
        trailer = b"".join(
            self.u32s(self.string(m), t, (bf << 24 | bits) if kind_flag else bits)
            for m, t, bits, bf in members)
        return self.add(kind, name, len(members), size, kind_flag, trailer)

    def blob(self, hdr_len: int = 24) -> bytes:
        header = struct.pack(self.order + "HBBIIIII", 0xEB9F, 1, 0, hdr_len, 0, len(self.types),
                             len(self.types), len(self.strings))
        return header + bytes(hdr_len - 24) + bytes(self.types) + bytes(self.strings)


def sample(order: str = "<") -> Builder:
    """
    typedef unsigned int u32;  typedef const volatile u32 cu32;  (typedef -> const -> volatile)
    struct inner { u32 a; u32 b; };
    struct outer {
        unsigned long head;
        union { unsigned long pair; struct { cu32 lo; u32 hi; }; };
        unsigned int flag:3, rest:29;
        struct inner in;
        struct inner *ptr;
        char name[10];
    };
    typedef struct { int counter; } atomic_like;
    struct oldstyle { unsigned int x; unsigned int bits3 /* INT-encoded bitfield */; };
    with one record of every other kind in between, so a wrong skip shifts every later id.
    """
    b = Builder(order)
    uint = b.int_type("unsigned int", 4)
    ulong = b.int_type("unsigned long", 8)
    char = b.int_type("char", 1)
    sint = b.int_type("int", 4)
    # Kinds the reader only has to step over, each with trailing data where it has any.
    b.add(ENUM, "colour", 2, 4, trailer=b.u32s(b.string("RED"), 0, b.string("GREEN"), 1))
    b.add(ENUM64, "big", 1, 8, trailer=b.u32s(b.string("HUGE"), 1, 2))
    proto = b.add(FUNC_PROTO, "", 2, sint,
                  trailer=b.u32s(b.string("x"), uint, b.string("y"), ulong))
    b.add(FUNC, "f", 0, proto)
    var = b.add(VAR, "v", 0, uint, trailer=b.u32s(1))
    b.add(DATASEC, ".data", 1, 4, trailer=b.u32s(var, 0, 4))
    b.add(FLOAT, "double", 0, 8)
    b.add(FWD, "struct_declared_only", 0, 0)
    b.add(RESTRICT, "", 0, uint)
    b.add(TYPE_TAG, "user", 0, uint)
    index = b.add(ARRAY, "", 0, 0, trailer=b.u32s(char, sint, 10))
    u32 = b.add(TYPEDEF, "u32", 0, uint)
    volatile = b.add(VOLATILE, "", 0, u32)
    const = b.add(CONST, "", 0, volatile)
    cu32 = b.add(TYPEDEF, "cu32", 0, const)
    inner = b.composite(STRUCT, "inner", 8, [("a", u32, 0, 0), ("b", u32, 32, 0)])
    b.add(DECL_TAG, "tagged", 0, inner, trailer=b.u32s(0xFFFFFFFF))
    inner_ptr = b.add(PTR, "", 0, inner)
    anon_struct = b.composite(STRUCT, "", 8, [("lo", cu32, 0, 0), ("hi", u32, 32, 0)])
    anon_union = b.composite(UNION, "", 8, [("pair", ulong, 0, 0), ("", anon_struct, 0, 0)])
    b.composite(STRUCT, "outer", 48, [
        ("head", ulong, 0, 0),
        ("", anon_union, 64, 0),
        ("flag", uint, 128, 3),
        ("rest", uint, 131, 29),
        ("in", inner, 160, 0),
        ("ptr", inner_ptr, 256, 0),
        ("name", index, 320, 0),
    ], kind_flag=1)
    anon_atomic = b.composite(STRUCT, "", 4, [("counter", sint, 0, 0)])
    b.add(TYPEDEF, "atomic_like", 0, anon_atomic)
    three_bits = b.int_type("unsigned int", 4, bits=3)
    b.composite(STRUCT, "oldstyle", 8, [("x", uint, 0, 0), ("bits3", three_bits, 32, 0)])
    return b


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_synthetic_offsets(order):
    btf = KernelBtf(sample(order).blob())
    assert btf.member_offset("outer", "head") == 0
    assert btf.member_offset("outer", "pair") == 8  # inside the anonymous union
    assert btf.member_offset("outer", "lo") == 8  # anonymous union, then anonymous struct
    assert btf.member_offset("outer", "hi") == 12
    assert btf.member_offset("outer", "in") == 20
    assert btf.member_offset("outer", "in.b") == 24
    assert btf.member_offset("outer", "ptr") == 32
    assert btf.member_offset("outer", "name") == 40
    assert btf.member_offset("oldstyle", "x") == 0
    assert btf.struct_size("outer") == 48
    assert btf.struct_size("atomic_like") == 4  # a typedef of an anonymous struct
    assert btf.member_offset("atomic_like", "counter") == 0


def test_synthetic_sizes():
    btf = KernelBtf(sample().blob())
    assert btf.member_size("outer", "lo") == 4  # typedef -> const -> volatile -> typedef -> int
    assert btf.member_size("outer", "pair") == 8
    assert btf.member_size("outer", "in") == 8
    assert btf.member_size("outer", "ptr") == 8
    assert btf.member_size("outer", "name") == 10
    assert btf.struct_size("inner") == 8


def test_longer_header_is_skipped_by_its_length():
    # Newer kernels may append fields to struct btf_header; hdr_len covers them.
    btf = KernelBtf(sample().blob(hdr_len=32))
    assert btf.member_offset("outer", "hi") == 12


def test_from_a_path(tmp_path):
    path = tmp_path / "btf"
    path.write_bytes(sample().blob())
    assert KernelBtf(path).member_offset("outer", "in.b") == 24
    assert KernelBtf(str(path)).struct_size("inner") == 8


@pytest.mark.parametrize(("struct_name", "path", "message"), [
    ("outer", "nope", r"^BTF data: struct outer has no member 'nope'$"),
    ("outer", "in.c", r"^BTF data: struct outer has no member 'in.c' \(in has no 'c'\)$"),
    ("outer", "flag", r"^BTF data: struct outer member 'flag' is a bitfield"),
    ("outer", "rest", r"^BTF data: struct outer member 'rest' is a bitfield"),
    ("oldstyle", "bits3", r"^BTF data: struct oldstyle member 'bits3' is a bitfield"),
    ("outer", "ptr.a", r"^BTF data: struct outer: ptr has type pointer, not a struct or union"),
    ("outer", "head.x", r"^BTF data: struct outer: head has type int 'unsigned long', not a"),
    ("outer", "in..a", r"^BTF data: struct outer: malformed member path 'in..a'$"),
    ("outer", "", r"^BTF data: struct outer: malformed member path ''$"),
    ("missing", "x", r"^BTF data: no struct or union named 'missing'$"),
    ("struct_declared_only", "x", r"no struct or union named 'struct_declared_only'"),
])
def test_synthetic_errors(struct_name, path, message):
    btf = KernelBtf(sample().blob())
    with pytest.raises(KernelBtfError, match=message) as e:
        btf.member_offset(struct_name, path)
    assert "\n" not in str(e.value)


def test_duplicate_struct_names():
    b = sample()
    uint = 1
    # Two more definitions of "inner": one agreeing on a.b's place, one not; and a struct
    # "twin" defined twice identically.
    b.composite(STRUCT, "inner", 8, [("a", uint, 0, 0), ("b", uint, 32, 0)])
    b.composite(STRUCT, "inner", 12, [("z", uint, 0, 0), ("a", uint, 32, 0), ("b", uint, 64, 0)])
    b.composite(STRUCT, "twin", 4, [("t", uint, 0, 0)])
    b.composite(STRUCT, "twin", 4, [("t", uint, 0, 0)])
    btf = KernelBtf(b.blob())
    assert btf.member_offset("twin", "t") == 0
    assert btf.struct_size("twin") == 4
    assert btf.member_offset("inner", "z") == 0  # only one definition has it
    with pytest.raises(KernelBtfError, match=r"several different struct inner.*offset of b"):
        btf.member_offset("inner", "b")
    with pytest.raises(KernelBtfError, match=r"several different struct inner.*size"):
        btf.struct_size("inner")


@pytest.mark.parametrize(("mangle", "message"), [
    (lambda blob: b"\0\0" + blob[2:], r"bad magic"),
    (lambda blob: blob[:10], r"shorter than a BTF header"),
    (lambda blob: blob[:-8], r"outside the data"),
])
def test_corrupt_blobs(mangle, message):
    with pytest.raises(KernelBtfError, match=message):
        KernelBtf(mangle(sample().blob()))


def test_unknown_kind_cannot_be_skipped():
    b = Builder()
    b.int_type("int", 4)
    b.add(25, "future", 1, 0)
    with pytest.raises(KernelBtfError, match=r"type 2 has unknown kind 25"):
        KernelBtf(b.blob())


def test_record_running_past_the_type_section():
    b = Builder()
    b.add(STRUCT, "cut", 3, 12)  # claims three members, carries none
    with pytest.raises(KernelBtfError, match=r"malformed BTF"):
        KernelBtf(b.blob())


def test_missing_file(tmp_path):
    with pytest.raises(KernelBtfError, match=r"no such file"):
        KernelBtf(tmp_path / "nothing")
