"""Struct field offsets from the runtime's own type descriptors (works on stripped binaries).

Descriptors live between moduledata.types and moduledata.etypes; gobin/structs.py declares
their layouts (abi.Type, the structures of the struct, pointer and interface kinds that start
with it, uncommonType, struct fields, interface methods, itabs). A named type's str is usually
"*T" with the extra-star flag set, the string being shared with *T.

We never walk all types: for each wanted type we look for its name's bytes in the types region,
then for the descriptor whose str points at that name. From a descriptor, the graph is walked
only as far as a question needs (a pointer's element, a struct's fields, an interface's
methods): the connection types of gobin/conntypes.py, for instance.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Collection
from dataclasses import dataclass
from functools import cached_property

from gotrace.errors import CorruptBinaryError
from gotrace.gobin.elffile import ElfImage
from gotrace.gobin.moduledata import ModuleData
from gotrace.gobin.structs import (
    IMETHOD,
    INTERFACE_TYPE,
    ITAB,
    NAME_LENGTH_AT,
    NAME_MAX_HEADER,
    PTR_TYPE,
    STRUCT_FIELD,
    STRUCT_TYPE,
    TYPE,
    UNCOMMON_TYPE,
)
from gotrace.gobin.varint import encode_uvarint, uvarint

_KIND_MASK = 0x1F
KIND_INTERFACE = 20
KIND_PTR = 22
KIND_STRING = 24
KIND_STRUCT = 25
_KIND_DIRECT_IFACE = 0x20
_TFLAG_UNCOMMON = 1
_TFLAG_EXTRA_STAR = 2
# The uncommonType of a named type follows the structure of its kind.
_UNCOMMON_AT = {KIND_STRUCT: STRUCT_TYPE.size, KIND_INTERFACE: INTERFACE_TYPE.size,
                KIND_PTR: PTR_TYPE.size, KIND_STRING: TYPE.size}
_NAME_EMBEDDED = 8  # a struct field name's flag, Go 1.19+


@dataclass(frozen=True)
class StructField:
    name: str
    type: int  # the field type's descriptor address
    offset: int
    embedded: bool


def split_type_name(full: str) -> tuple[str, str]:
    """'net/http.Request' -> ('net/http', 'Request'); 'runtime.g' -> ('runtime', 'g')."""
    slash = full.rfind("/")
    dot = full.find(".", slash + 1)
    if dot >= 0 and _GOPKG_VERSION.match(full, dot):  # 'gopkg.in/redis.v5.Client'
        dot = full.find(".", dot + 1)
    if dot < 0:
        raise ValueError(f"not a qualified Go type name: {full!r}")
    return full[:dot], full[dot + 1:]


_MAJOR_VERSION = re.compile(r"v[0-9]+")
_GOPKG_VERSION = re.compile(r"\.v[0-9]+(?=\.|$)")


def package_names(path: str) -> list[str]:
    """The names a package at this import path may declare itself by, likeliest first: a
    type descriptor names its type by that name ('echo.context'), not by the path. The
    path's last element, unless it is a major version ('github.com/labstack/echo/v4': echo)
    or carries one ('gopkg.in/redis.v5': redis); then without a 'go-' prefix or a '-go'
    suffix ('github.com/mattn/go-sqlite3': sqlite3)."""
    elements = path.split("/")
    last = elements[-1]
    if _MAJOR_VERSION.fullmatch(last) and len(elements) > 1:
        last = elements[-2]
    last = _GOPKG_VERSION.sub("", last)
    names = [elements[-1], last, last.removeprefix("go-").removesuffix("-go")]
    names.append(names[-1].replace("-", "").replace(".", ""))
    return list(dict.fromkeys(names))


def package_matches(found: str, wanted: str) -> bool:
    """Same package, allowing a vendored copy (…/vendor/<wanted>)."""
    return found == wanted or found.endswith("/vendor/" + wanted)


class TypeInfo:
    """Looks up struct layouts by fully qualified type name."""

    def __init__(self, image: ElfImage, moduledata: ModuleData, go_minor: int) -> None:
        self.image = image
        self.md = moduledata
        self.embedded_bit_in_offset = go_minor <= 18

    @cached_property
    def _region(self) -> bytes:
        return self.image.read(self.md.types, self.md.etypes - self.md.types)

    def _name_at(self, vaddr: int) -> str:
        """Decode a name (flags, uvarint length, bytes) at an address."""
        off = vaddr - self.md.types
        region = self._region
        if 0 <= off < len(region) - 2:
            return self._decode_name(region, off)
        head = self.image.read(vaddr, NAME_MAX_HEADER)
        length, pos = uvarint(head, NAME_LENGTH_AT)
        return self.image.read(vaddr + pos, length).decode("utf-8", "replace")

    @staticmethod
    def _decode_name(region: bytes, off: int) -> str:
        length, pos = uvarint(region, off + NAME_LENGTH_AT)
        return region[pos: pos + length].decode("utf-8", "replace")

    def _name_offsets(self, text: str) -> list[int]:
        """Offsets (from types) of encoded names whose text is exactly `text`."""
        region = self._region
        raw = text.encode()
        needle = encode_uvarint(len(raw)) + raw
        out = []
        pos = region.find(needle, 1)
        while pos != -1:
            out.append(pos - NAME_LENGTH_AT)  # the flags byte
            pos = region.find(needle, pos + 1)
        return out

    def _descriptors(self, name_off: int, extra_star: bool, kind_wanted: int) -> list[int]:
        """Addresses of descriptors of this kind whose str is name_off."""
        region = self._region
        needle = struct.pack("<i", name_off)
        out = []
        pos = region.find(needle)
        while pos != -1:
            start = pos - TYPE.at.str
            if (start >= 0 and (self.md.types + start) % 8 == 0
                    and start + STRUCT_TYPE.at.fields_len <= len(region)):
                tflag, kind = region[start + TYPE.at.tflag], region[start + TYPE.at.kind_]
                if (kind & _KIND_MASK == kind_wanted
                        and bool(tflag & _TFLAG_EXTRA_STAR) == extra_star):
                    out.append(self.md.types + start)
            pos = region.find(needle, pos + 1)
        return out

    def _package_of(self, desc: int) -> str:
        """The package path of a named type (of a struct also when unnamed), else ''."""
        kind = self.kind(desc)
        if self._tflag(desc) & _TFLAG_UNCOMMON and kind in _UNCOMMON_AT:
            pkg_off = self.image.i32(desc + _UNCOMMON_AT[kind] + UNCOMMON_TYPE.at.pkg_path)
            if pkg_off:
                return self._name_at(self.md.types + pkg_off)
        if kind != KIND_STRUCT:
            return ""
        pkg_ptr = self.image.pointer(desc + STRUCT_TYPE.at.pkg_path)
        return self._name_at(pkg_ptr) if pkg_ptr else ""

    # --- one descriptor ----------------------------------------------------------------------

    def _tflag(self, desc: int) -> int:
        return self.image.u8(desc + TYPE.at.tflag)

    def kind(self, desc: int) -> int:
        return self.image.u8(desc + TYPE.at.kind_) & _KIND_MASK

    def stored_in_interface_word(self, desc: int) -> bool:
        """A pointer-shaped type: an interface's data word holds the value itself."""
        return bool(self.image.u8(desc + TYPE.at.kind_) & _KIND_DIRECT_IFACE)

    def hash_of(self, desc: int) -> int:
        return self.image.u32(desc + TYPE.at.hash)

    def name_of(self, desc: int) -> str:
        """The type as Go prints it, with the package's last element: '*tls.Conn'."""
        text = self._name_at(self.md.types + self.image.i32(desc + TYPE.at.str))
        return text[1:] if self._tflag(desc) & _TFLAG_EXTRA_STAR else text

    def qualified_name_of(self, desc: int) -> str:
        """'*crypto/tls.Conn' for a named type or a pointer to one; name_of otherwise."""
        stars = ""
        while self.kind(desc) == KIND_PTR and self.name_of(desc).startswith("*"):
            stars, desc = stars + "*", self.elem_of(desc)
        pkg, name = self._package_of(desc), self.name_of(desc)
        if pkg and "." in name:
            name = f"{pkg}.{name.split('.', 1)[1]}"
        return stars + name

    def elem_of(self, desc: int) -> int:
        """A pointer type's element type."""
        return self.image.pointer(desc + PTR_TYPE.at.elem)

    def fields_of(self, desc: int) -> list[StructField]:
        """A struct type's fields, in order."""
        fields_ptr = self.image.pointer(desc + STRUCT_TYPE.at.fields)
        count = self.image.u64(desc + STRUCT_TYPE.at.fields_len)
        if count > 10_000:
            raise CorruptBinaryError(f"{self.image.path}: malformed struct type at {desc:#x}")
        per_field = STRUCT_FIELD.size // 8  # all of a field's words are pointer-sized
        words = self.image.words(fields_ptr, per_field * count) if count else []
        out = []
        for i in range(count):
            name_ptr, typ, offset = words[per_field * i: per_field * (i + 1)]
            if self.embedded_bit_in_offset:
                embedded, offset = bool(offset & 1), offset >> 1
            else:
                embedded = bool(self.image.u8(name_ptr) & _NAME_EMBEDDED)
            out.append(StructField(self._name_at(name_ptr), typ, offset, embedded))
        return out

    def method_names_of(self, desc: int) -> frozenset[str]:
        """An interface type's method names."""
        methods_ptr = self.image.pointer(desc + INTERFACE_TYPE.at.methods)
        count = self.image.u64(desc + INTERFACE_TYPE.at.methods_len)
        if count > 10_000:
            raise CorruptBinaryError(f"{self.image.path}: malformed interface type at {desc:#x}")
        raw = self.image.read(methods_ptr, IMETHOD.size * count) if count else b""
        return frozenset(self._name_at(self.md.types + name_off)
                         for name_off, _typ in IMETHOD.struct.iter_unpack(raw))

    def itabs(self) -> list[tuple[int, int]]:
        """(interface type, concrete type) of every itab the linker laid out."""
        if not self.md.nitablinks:
            return []
        out = []
        for itab in self.image.words(self.md.itablinks, self.md.nitablinks):
            out.append((self.image.pointer(itab + ITAB.at.inter),
                        self.image.pointer(itab + ITAB.at.type)))
        return out

    def implementations(self, interfaces: Collection[str]) -> dict[int, str]:
        """Hash -> qualified name of every concrete type the program stores in one of these
        interfaces (qualified names; 'error' for the builtin), as far as its itabs say."""
        wanted = frozenset(interfaces)
        named: dict[int, bool] = {}  # interface descriptor -> whether it is wanted
        out = {}
        for inter, concrete in self.itabs():
            if inter not in named:
                named[inter] = self.qualified_name_of(inter) in wanted
            if named[inter]:
                out[self.hash_of(concrete)] = self.qualified_name_of(concrete)
        return out

    def find_struct(self, full_name: str, kind: int = KIND_STRUCT) -> int | None:
        """The descriptor address of a named struct type (or of another kind), or None if
        the binary has none."""
        pkg, name = split_type_name(full_name)
        for package_name in package_names(pkg):
            short = f"{package_name}.{name}"
            for text, extra_star in ((f"*{short}", True), (short, False)):
                for name_off in self._name_offsets(text):
                    for desc in self._descriptors(name_off, extra_star, kind):
                        if package_matches(self._package_of(desc), pkg):
                            return desc
        return None

    def type_hash(self, type_name: str) -> int | None:
        """The runtime's hash of a named struct type, or of a pointer to one ('*pkg.T'), or
        of a named string type (an error type such as Redis's RedisError).

        An itab stores its dynamic type's hash at the same offset as the type does, so a
        probe can tell the dynamic type of an interface value, or the key of a context value,
        by one comparison, with no per-process address (PIE) involved.
        """
        desc = self.find_struct(type_name.removeprefix("*"))
        if desc is None and not type_name.startswith("*"):
            desc = self.find_struct(type_name, KIND_STRING)
        if desc is None:
            return None
        if type_name.startswith("*"):
            ptr_to_this = self.image.i32(desc + TYPE.at.ptr_to_this)
            if ptr_to_this <= 0:  # *T is not linked into the program
                return None
            desc = self.md.types + ptr_to_this
            if self.kind(desc) != KIND_PTR:
                raise CorruptBinaryError(f"{self.image.path}: malformed type descriptor "
                                         f"{type_name}")
        return self.hash_of(desc)

    def struct_fields(self, full_name: str) -> dict[str, int] | None:
        """Field name -> byte offset for a named struct type, or None if absent."""
        desc = self.find_struct(full_name)
        if desc is None:
            return None
        return {f.name: f.offset for f in self.fields_of(desc)}

