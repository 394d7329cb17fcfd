"""A small reader for the kernel's own type information, BTF (Documentation/bpf/btf.rst).

BPF programs that read kernel structs (struct sock, tcp_sock, task_struct, ...) must use the
member offsets of the kernel that is running: they move between builds of the same release, and
headers from another build give garbage without any error. The running kernel describes its own
structs in /sys/kernel/btf/vmlinux; this module answers "at which byte of struct X lies member
a.b.c" from it, and nothing more.

Construction makes one pass over the type section, remembering where each type record starts
and which ids carry each struct, union and typedef name; members are decoded only for the
structs a lookup walks through.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from gotrace.errors import GotraceError

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

BTF_MAGIC = 0xEB9F
HEADER_MIN_LEN = 24  # magic..str_len; newer headers may be longer, hdr_len says by how much
TYPE_RECORD_LEN = 12  # struct btf_type: name_off, info, size/type
POINTER_SIZE = 8  # the 64-bit kernels gotrace runs on

(INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO,
 VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64) = range(1, 20)

KIND_NAMES = {
    INT: "int", PTR: "pointer", ARRAY: "array", STRUCT: "struct", UNION: "union", ENUM: "enum",
    FWD: "forward declaration", TYPEDEF: "typedef", VOLATILE: "volatile", CONST: "const",
    RESTRICT: "restrict", FUNC: "function", FUNC_PROTO: "function prototype", VAR: "variable",
    DATASEC: "data section", FLOAT: "float", DECL_TAG: "decl tag", TYPE_TAG: "type tag",
    ENUM64: "enum64",
}

# What follows each kind's 12-byte struct btf_type: (fixed bytes, bytes per vlen item).
# The kind field is 5 bits wide; kinds this table does not know cannot be skipped.
_TRAILER: tuple[tuple[int, int] | None, ...] = (
    None,      # 0: UNKN, never a real type
    (4, 0),    # INT: u32 encoding (bitfield offset and width, signedness)
    (0, 0),    # PTR
    (12, 0),   # ARRAY: struct btf_array {type, index_type, nelems}
    (0, 12),   # STRUCT: struct btf_member {name_off, type, offset} per member
    (0, 12),   # UNION: same
    (0, 8),    # ENUM: struct btf_enum {name_off, val} per value
    (0, 0),    # FWD
    (0, 0),    # TYPEDEF
    (0, 0),    # VOLATILE
    (0, 0),    # CONST
    (0, 0),    # RESTRICT
    (0, 0),    # FUNC
    (0, 8),    # FUNC_PROTO: struct btf_param {name_off, type} per parameter
    (4, 0),    # VAR: u32 linkage
    (0, 12),   # DATASEC: struct btf_var_secinfo {type, offset, size} per variable
    (0, 0),    # FLOAT
    (4, 0),    # DECL_TAG: s32 component_idx
    (0, 0),    # TYPE_TAG
    (0, 12),   # ENUM64: struct btf_enum64 {name_off, val_lo32, val_hi32} per value
) + (None,) * 12

_MODIFIERS = frozenset((TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG))
_COMPOSITES = frozenset((STRUCT, UNION))
_INDEXED = frozenset((STRUCT, UNION, TYPEDEF))
_SIZED = frozenset((INT, STRUCT, UNION, ENUM, DATASEC, FLOAT, ENUM64))
_MAX_CHAIN = 64  # typedef/modifier/array chains longer than this mean a cycle: corrupt data


class KernelBtfError(GotraceError):
    """The kernel's BTF is missing, unreadable, or lacks a struct member gotrace needs."""


class Member(NamedTuple):
    name: str  # "" for an anonymous struct/union member
    type_id: int
    bit_offset: int
    bitfield_size: int  # 0 unless the struct's kind_flag encodes a bitfield width


class KernelBtf:
    """The types of one BTF blob: the running kernel's by default, or given bytes or a path."""

    def __init__(self, source: bytes | str | os.PathLike[str] | None = None) -> None:
        if isinstance(source, bytes | bytearray | memoryview):
            self.origin = "BTF data"
            data = bytes(source)
        else:
            path = Path(source) if source is not None else VMLINUX_BTF
            self.origin = str(path)
            data = _read(path)
        self._data = data
        self._parse_header()
        self._index_types()
        self._members_cache: dict[int, list[Member]] = {}

    # -- parsing ----------------------------------------------------------------------------

    def _corrupt(self, what: str) -> KernelBtfError:
        return KernelBtfError(f"{self.origin}: malformed BTF ({what})")

    def _parse_header(self) -> None:
        data = self._data
        if len(data) < HEADER_MIN_LEN:
            raise self._corrupt(f"{len(data)} bytes, shorter than a BTF header")
        # The magic is stored in the writer's byte order, which is how a reader learns it.
        if struct.unpack_from("<H", data)[0] == BTF_MAGIC:
            order = "<"
        elif struct.unpack_from(">H", data)[0] == BTF_MAGIC:
            order = ">"
        else:
            raise self._corrupt("bad magic; not BTF")
        self._u32x3 = struct.Struct(order + "III").unpack_from
        self._u32 = struct.Struct(order + "I").unpack_from
        _, version, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            order + "HBBIIIII", data)
        if version != 1:
            raise self._corrupt(f"version {version}, expected 1")
        if hdr_len < HEADER_MIN_LEN or hdr_len > len(data):
            raise self._corrupt(f"header length {hdr_len}")
        body = len(data) - hdr_len  # section offsets count from the end of the header
        if type_off + type_len > body or str_off + str_len > body or type_len % 4:
            raise self._corrupt("type or string section outside the data")
        self._types_start = hdr_len + type_off
        self._types_end = self._types_start + type_len
        self._strs_start = hdr_len + str_off
        self._strs_end = self._strs_start + str_len

    def _index_types(self) -> None:
        """One pass over the type section: where each record starts, and the named structs,
        unions and typedefs (ids are implicit: the n-th record is type n; 0 is void)."""
        data, head, trailer = self._data, self._u32x3, _TRAILER
        starts = [0]
        by_name_off: dict[int, list[int]] = {}
        pos, end = self._types_start, self._types_end
        while pos < end:
            if pos + TYPE_RECORD_LEN > end:
                raise self._corrupt(f"type {len(starts)} truncated")
            name_off, info, _ = head(data, pos)
            kind = info >> 24 & 0x1F
            layout = trailer[kind]
            if layout is None:
                raise self._corrupt(f"type {len(starts)} has unknown kind {kind}")
            if name_off and kind in _INDEXED:
                by_name_off.setdefault(name_off, []).append(len(starts))
            starts.append(pos)
            pos += TYPE_RECORD_LEN + layout[0] + (info & 0xFFFF) * layout[1]
        if pos != end:
            raise self._corrupt("last type runs past the type section")
        self._starts = starts
        # Strings need not be deduplicated, so one name can sit at several offsets.
        by_name: dict[str, list[int]] = {}
        for off, ids in by_name_off.items():
            by_name.setdefault(self._string(off), []).extend(ids)
        self._by_name = by_name

    def _string(self, off: int) -> str:
        start = self._strs_start + off
        stop = self._data.find(b"\0", start, self._strs_end) if start < self._strs_end else -1
        if stop < 0:
            raise self._corrupt(f"string offset {off} outside the string section")
        return self._data[start:stop].decode("utf-8", "replace")

    def _head(self, type_id: int) -> tuple[int, int, int]:
        """(name_off, info, size_or_type) of a type record."""
        if not 0 < type_id < len(self._starts):
            raise self._corrupt(f"type id {type_id} out of range")
        return self._u32x3(self._data, self._starts[type_id])

    def _kind(self, type_id: int) -> int:
        return self._head(type_id)[1] >> 24 & 0x1F if type_id else 0

    def _members(self, type_id: int) -> list[Member]:
        members = self._members_cache.get(type_id)
        if members is None:
            _, info, _ = self._head(type_id)
            bitfield_encoded = info >> 31  # kind_flag: offset = bitfield size << 24 | bit offset
            pos = self._starts[type_id] + TYPE_RECORD_LEN
            members = []
            for i in range(info & 0xFFFF):
                name_off, member_type, offset = self._u32x3(self._data, pos + 12 * i)
                name = self._string(name_off) if name_off else ""
                if bitfield_encoded:
                    members.append(Member(name, member_type, offset & 0xFFFFFF, offset >> 24))
                else:
                    members.append(Member(name, member_type, offset, 0))
            self._members_cache[type_id] = members
        return members

    # -- type helpers -----------------------------------------------------------------------

    def _strip(self, type_id: int) -> int:
        """Follow typedefs and const/volatile/restrict/type-tag modifiers to the real type."""
        for _ in range(_MAX_CHAIN):
            if not type_id:
                return 0
            _, info, target = self._head(type_id)
            if info >> 24 & 0x1F not in _MODIFIERS:
                return type_id
            type_id = target
        raise self._corrupt(f"typedef/modifier chain through type {type_id} does not end")

    def _type_size(self, type_id: int, depth: int = 0) -> int:
        if depth > _MAX_CHAIN:
            raise self._corrupt(f"type {type_id} nests too deeply")
        type_id = self._strip(type_id)
        kind = self._kind(type_id)
        if kind in _SIZED:
            return self._head(type_id)[2]
        if kind == PTR:
            return POINTER_SIZE
        if kind == ARRAY:
            elem, _, nelems = self._u32x3(self._data, self._starts[type_id] + TYPE_RECORD_LEN)
            return nelems * self._type_size(elem, depth + 1)
        raise KernelBtfError(f"{self.origin}: type {type_id} "
                             f"({KIND_NAMES.get(kind, 'void')}) has no size")

    def _is_int_bitfield(self, type_id: int) -> bool:
        """Without kind_flag, BTF marks a bitfield by its INT type being narrower than its size
        or starting at a bit offset."""
        type_id = self._strip(type_id)
        if self._kind(type_id) != INT:
            return False
        size = self._head(type_id)[2]
        encoding = self._u32(self._data, self._starts[type_id] + TYPE_RECORD_LEN)[0]
        return bool(encoding >> 16 & 0xFF) or (encoding & 0xFF) != size * 8

    def _describe(self, type_id: int) -> str:
        kind = self._kind(type_id)
        name_off = self._head(type_id)[0] if type_id else 0
        kind_name = KIND_NAMES.get(kind, "void")
        return f"{kind_name} {self._string(name_off)!r}" if name_off else kind_name

    def _find_member(self, type_id: int, name: str) -> Member | None:
        """The member called name, looking through anonymous struct/union members as C does;
        its bit offset is relative to type_id."""
        for member in self._members(type_id):
            if member.name == name:
                return member
            if not member.name:
                inner = self._strip(member.type_id)
                if self._kind(inner) in _COMPOSITES:
                    found = self._find_member(inner, name)
                    if found is not None:
                        return found._replace(bit_offset=member.bit_offset + found.bit_offset)
        return None

    # -- lookups ----------------------------------------------------------------------------

    def _struct_ids(self, name: str) -> list[int]:
        """Structs and unions called name; failing those, typedefs of one (e.g. atomic_t).

        vmlinux BTF can hold several different structs of one name (static types of separate
        compilation units); callers check that the ones they use agree."""
        ids = self._by_name.get(name, [])
        composites = [i for i in ids if self._kind(i) in _COMPOSITES]
        if not composites:
            composites = [s for s in map(self._strip, ids) if self._kind(s) in _COMPOSITES]
        if not composites:
            raise KernelBtfError(f"{self.origin}: no struct or union named {name!r}")
        return composites

    def _walk(self, struct_name: str, type_id: int, path: str) -> tuple[int, int]:
        """(byte offset, type id) of the member at path inside type_id."""
        parts = path.split(".")
        if not all(parts):  # "" would match the first anonymous member
            raise KernelBtfError(f"{self.origin}: struct {struct_name}: malformed member path "
                                 f"{path!r}")
        bits = 0
        current = type_id
        member: Member | None = None
        for i, part in enumerate(parts):
            so_far = ".".join(parts[:i + 1])
            if i:
                current = self._strip(member.type_id)
                if self._kind(current) not in _COMPOSITES:
                    raise KernelBtfError(
                        f"{self.origin}: struct {struct_name}: {'.'.join(parts[:i])} has type "
                        f"{self._describe(current)}, not a struct or union, so it has no "
                        f"member {part!r} (offsets never follow pointers)")
            member = self._find_member(current, part)
            if member is None:
                inside = f" ({'.'.join(parts[:i])} has no {part!r})" if i else ""
                raise KernelBtfError(
                    f"{self.origin}: struct {struct_name} has no member {path!r}{inside}")
            if member.bitfield_size or member.bit_offset % 8 or \
                    self._is_int_bitfield(member.type_id):
                raise KernelBtfError(
                    f"{self.origin}: struct {struct_name} member {so_far!r} is a bitfield, "
                    "which has no byte offset")
            bits += member.bit_offset
        assert member is not None  # path.split always yields at least one part
        return bits // 8, member.type_id

    def _locate(self, struct_name: str, path: str) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        first_error: KernelBtfError | None = None
        for type_id in self._struct_ids(struct_name):
            try:
                found.append(self._walk(struct_name, type_id, path))
            except KernelBtfError as e:
                first_error = first_error or e
        if not found:
            assert first_error is not None
            raise first_error
        return found

    def _only(self, values: set[int], struct_name: str, what: str) -> int:
        if len(values) > 1:
            raise KernelBtfError(
                f"{self.origin}: the kernel has several different struct {struct_name}, "
                f"disagreeing on {what}: {sorted(values)}")
        return values.pop()

    def member_offset(self, struct_name: str, path: str) -> int:
        """Byte offset of a member path such as "__sk_common.skc_daddr" inside struct_name."""
        offsets = {offset for offset, _ in self._locate(struct_name, path)}
        return self._only(offsets, struct_name, f"the offset of {path}")

    def member_size(self, struct_name: str, path: str) -> int:
        """Size in bytes of the member at path (a pointer member is 8)."""
        sizes = {self._type_size(type_id) for _, type_id in self._locate(struct_name, path)}
        return self._only(sizes, struct_name, f"the size of {path}")

    def struct_size(self, name: str) -> int:
        sizes = {self._head(type_id)[2] for type_id in self._struct_ids(name)}
        return self._only(sizes, name, "its size")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if path == VMLINUX_BTF:
            raise KernelBtfError(f"this kernel has no BTF (CONFIG_DEBUG_INFO_BTF): {path} "
                                 "is missing") from None
        raise KernelBtfError(f"{path}: no such file") from None
    except OSError as e:
        raise KernelBtfError(f"{path}: cannot read BTF ({e.strerror or e})") from None


@functools.cache
def running_kernel_btf() -> KernelBtf:
    """The running kernel's BTF, read once per process."""
    return KernelBtf(VMLINUX_BTF)


def kernel_offsets(wanted: Mapping[str, tuple[str, str]]) -> dict[str, int]:
    """{macro name: byte offset} for {macro name: (struct name, member path)}, from the running
    kernel's BTF."""
    btf = running_kernel_btf()
    return {macro: btf.member_offset(struct_name, path)
            for macro, (struct_name, path) in wanted.items()}
