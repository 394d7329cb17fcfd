"""The Go runtime structures gobin reads, each declared once (amd64: little-endian, 8-byte
pointers).

As pyelftools does for ELF, a structure is declared as its fields in order, each with a code
of the struct module; offsets and sizes are derived from that, not written by hand. Fields
after the last one gotrace reads are left out, unless the structure's size matters (an
uncommonType follows the structure of its type's kind). These layouts are the same in every Go
release gotrace supports (1.18 on); runtime.moduledata, which gains fields between releases,
is a table of word positions per release range instead.
"""

from __future__ import annotations

import struct
from collections import namedtuple
from dataclasses import dataclass


class Layout:
    """A structure's fields: `at.<field>` is a field's offset, `size` the declared size,
    `unpack` reads every field into a tuple with the same names."""

    def __init__(self, go_name: str, fields: str) -> None:
        self.go_name = go_name
        self.fields = [tuple(f.split(":")) for f in fields.split()]
        codes = "<"
        offsets = []
        for name, code in self.fields:
            offset = struct.calcsize(codes)
            # Go aligns each field to its size; "<" adds no padding, so a field declared at an
            # offset Go would not use is a mistake in the declaration.
            if code[-1] != "s" and offset % struct.calcsize(code):
                raise ValueError(f"{go_name}.{name} is misaligned at {offset}")
            offsets.append(offset)
            codes += code
        self.struct = struct.Struct(codes)
        self.size = self.struct.size
        self._tuple = namedtuple(go_name.rsplit(".", 1)[-1], [n for n, _ in self.fields])
        self.at = self._tuple(*offsets)

    def extend(self, go_name: str, fields: str) -> Layout:
        """A structure that starts with this one (Go's embedding of abi.Type, for instance)."""
        own = " ".join(f"{name}:{code}" for name, code in self.fields)
        return Layout(go_name, f"{own} {fields}")

    def unpack(self, data: bytes, offset: int = 0):
        return self._tuple(*self.struct.unpack_from(data, offset))


# A string header; waitReasonStrings is an array of them, old build info pointed at two.
STRING = Layout("string", "ptr:Q len:Q")
SLICE = Layout("slice", "data:Q len:Q cap:Q")

# --- .go.buildinfo ---------------------------------------------------------------------------

# With flags & 2 (Go 1.18+) the version and module text follow the header inline; before,
# `version` and `mod` pointed at string headers.
BUILDINFO_HEADER = Layout("buildinfo", "magic:14s ptr_size:B flags:B version:Q mod:Q")

# --- .gopclntab ------------------------------------------------------------------------------

# The offsets are from the header's start. textStart is an absolute address (relocated in a
# PIE); Go 1.26 leaves it 0.
PCLNTAB_HEADER = Layout("runtime.pcHeader", """
    magic:I pad1:B pad2:B min_lc:B ptr_size:B nfunc:Q nfiles:Q text_start:Q
    funcname_offset:Q cu_offset:Q filetab_offset:Q pctab_offset:Q pcln_offset:Q""")
# At pcln_offset: nfunc+1 of these, the last one's entryoff being the end of text. entryoff is
# from textStart, funcoff from the table's start.
FUNCTAB = Layout("runtime.functab", "entryoff:I funcoff:I")
# A function's record, at funcoff; name_off is into the function-name table.
FUNC = Layout("runtime._func", "entry_off:I name_off:i")

# --- type descriptors (internal/abi since Go 1.21, runtime before; the same bytes) ------------

# str and ptr_to_this are offsets from moduledata.types.
TYPE = Layout("abi.Type", """
    size_:Q ptr_bytes:Q hash:I tflag:B align_:B field_align_:B kind_:B
    equal:Q gc_data:Q str:i ptr_to_this:i""")
# What follows the header for the kinds gobin looks into; pkg_path is a name pointer.
STRUCT_TYPE = TYPE.extend("abi.StructType", "pkg_path:Q fields:Q fields_len:Q fields_cap:Q")
PTR_TYPE = TYPE.extend("abi.PtrType", "elem:Q")
INTERFACE_TYPE = TYPE.extend("abi.InterfaceType",
                             "pkg_path:Q methods:Q methods_len:Q methods_cap:Q")
# Right after the kind's structure when tflag has the uncommon bit: the structure's size above
# is where it starts. pkg_path is an offset from moduledata.types.
UNCOMMON_TYPE = Layout("abi.UncommonType", "pkg_path:i")
# A struct type's field. Go 1.18 stored offset<<1 | embedded; later the name's flags tell.
STRUCT_FIELD = Layout("abi.StructField", "name:Q typ:Q offset:Q")
# An interface type's method: offsets from moduledata.types.
IMETHOD = Layout("abi.Imethod", "name:i typ:i")
# itablinks points at these. The probes read hash, at the same offset as in TYPE.
ITAB = Layout("abi.ITab", "inter:Q type:Q hash:I")

# An abi.Name is a flags byte, the length as a uvarint, then the bytes.
NAME_LENGTH_AT = 1
NAME_MAX_HEADER = 12  # enough for the flags and a 10-byte uvarint

# --- runtime.moduledata ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleDataWords:
    """Positions, in pointer-sized words, of the runtime.moduledata fields gobin reads.

    typelinks and itablinks are slice headers; itablinks always follows typelinks. Go 1.20
    added two words (covctrs, ecovctrs) before types, Go 1.26 one (epclntab) between etypes
    and typelinks.
    """

    minpc: int
    text: int
    etext: int
    types: int
    etypes: int
    typelinks: int
    itablinks: int

    @property
    def count(self) -> int:
        """How many words to read to have all of these."""
        return self.itablinks + SLICE.size // 8


MODULEDATA_GO118 = ModuleDataWords(minpc=20, text=22, etext=23, types=35, etypes=36,
                                   typelinks=42, itablinks=45)
MODULEDATA_GO120 = ModuleDataWords(minpc=20, text=22, etext=23, types=37, etypes=38,
                                   typelinks=44, itablinks=47)
MODULEDATA_GO126 = ModuleDataWords(minpc=20, text=22, etext=23, types=37, etypes=38,
                                   typelinks=45, itablinks=48)
