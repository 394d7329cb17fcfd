"""The function table in .gopclntab (Go 1.18+ layout).

Every Go binary keeps it, stripped or not. It starts with a header (pcHeader) whose offsets
lead to the function-name table and to the function table (functab entries), which the _func
records follow; gobin/structs.py declares the three.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

from gotrace.errors import CorruptBinaryError, NotGoBinaryError, UnsupportedGoError
from gotrace.gobin.elffile import ElfImage
from gotrace.gobin.structs import FUNC, FUNCTAB, PCLNTAB_HEADER

MAGIC_GO118 = 0xFFFFFFF0
MAGIC_GO120 = 0xFFFFFFF1
_OLD_MAGICS = {0xFFFFFFFB: "1.2-1.15", 0xFFFFFFFA: "1.16-1.17"}
_AFTER_MAGIC = (0, 0, 1, 8)  # the header's pad1, pad2, min_lc (x86) and ptr_size


@dataclass(frozen=True)
class FuncEntry:
    name: str
    address: int
    end: int  # the next function's entry: where a linear sweep for RETs stops


class Pclntab:
    """Reader of one binary's pclntab; names are decoded lazily, once."""

    def __init__(self, image: ElfImage) -> None:
        self.image = image
        self.vaddr, self.magic = self._locate()
        hdr = PCLNTAB_HEADER.unpack(image.read(self.vaddr, PCLNTAB_HEADER.size))
        if (hdr.pad1, hdr.pad2, hdr.min_lc, hdr.ptr_size) != _AFTER_MAGIC:
            raise CorruptBinaryError(f"{image.path}: malformed pclntab header")
        self.nfunc = hdr.nfunc
        self.funcname_off = hdr.funcname_offset
        self._cu_off = hdr.cu_offset  # where the function-name table ends
        self.functab_off = hdr.pcln_offset
        # textStart is an absolute address (relocated in PIE binaries). Go 1.26 stopped storing
        # it (the word is 0): there only moduledata.text knows where text starts.
        self.header_text_start = image.pointer(self.vaddr + PCLNTAB_HEADER.at.text_start)
        if not 0 < self.nfunc < 10_000_000:
            raise CorruptBinaryError(f"{image.path}: implausible function count {self.nfunc}")

    def _locate(self) -> tuple[int, int]:
        image = self.image
        sec = image.section(".gopclntab", ".data.rel.ro.gopclntab")
        if sec is not None:
            magic = image.u32(sec.addr)
            self._check_magic(magic)
            return sec.addr, magic
        # Externally linked PIE: no section of its own; find the header by its magic bytes.
        for magic in (MAGIC_GO120, MAGIC_GO118, *_OLD_MAGICS):
            needle = struct.pack("<I4B", magic, *_AFTER_MAGIC)
            for vaddr in image.find_aligned(needle, 8, skip_executable=True):
                if self._plausible_header(vaddr):
                    self._check_magic(magic)
                    return vaddr, magic
        raise NotGoBinaryError(f"{image.path}: no Go function table (.gopclntab); not a Go binary")

    def _plausible_header(self, vaddr: int) -> bool:
        try:
            nfunc, nfiles = struct.unpack(
                "<2Q", self.image.read(vaddr + PCLNTAB_HEADER.at.nfunc, 16))
        except CorruptBinaryError:
            return False
        return 0 < nfunc < 10_000_000 and 0 < nfiles < 10_000_000

    def _check_magic(self, magic: int) -> None:
        if magic in _OLD_MAGICS:
            raise UnsupportedGoError(self.image.path, f"Go {_OLD_MAGICS[magic]}")
        if magic not in (MAGIC_GO118, MAGIC_GO120):
            raise CorruptBinaryError(f"{self.image.path}: unknown pclntab magic {magic:#x}")

    @cached_property
    def _functab(self) -> list[tuple[int, int]]:
        """(entryoff, funcoff) of each function, then of the end of text."""
        raw = self.image.read(self.vaddr + self.functab_off, (self.nfunc + 1) * FUNCTAB.size)
        return list(FUNCTAB.struct.iter_unpack(raw))

    @cached_property
    def _funcnames(self) -> bytes:
        # The name table ends where the compilation-unit table begins.
        size = self._cu_off - self.funcname_off
        if not 0 < size < 1 << 31:
            raise CorruptBinaryError(f"{self.image.path}: malformed pclntab name table")
        return self.image.read(self.vaddr + self.funcname_off, size)

    @cached_property
    def _func_records(self) -> bytes:
        """The function table followed by the _func records (offsets are relative to it)."""
        start = self.vaddr + self.functab_off
        seg = self.image.segment_of(start)
        if seg is None:
            raise CorruptBinaryError(f"{self.image.path}: pclntab outside the image")
        return self.image.read(start, seg.vaddr + seg.filesz - start)

    def functions(self, text_start: int) -> list[FuncEntry]:
        """Every function with an entry, in address order; entries are relative to text_start."""
        tab, records, names = self._functab, self._func_records, self._funcnames
        out: list[FuncEntry] = []
        for i in range(self.nfunc):
            entry_off, func_off = tab[i]
            next_entry = tab[i + 1][0]
            try:
                _entry_off, name_off = FUNC.struct.unpack_from(records, func_off)
            except struct.error:
                raise CorruptBinaryError(f"{self.image.path}: malformed pclntab record") from None
            end = names.find(b"\0", name_off)
            if name_off < 0 or end < 0:
                raise CorruptBinaryError(f"{self.image.path}: malformed pclntab function name")
            name = names[name_off:end].decode("utf-8", "replace")
            out.append(FuncEntry(name, text_start + entry_off, text_start + next_entry))
        return out

    @property
    def go118_layout(self) -> bool:
        """True for the 1.18-1.19 format, False for 1.20+."""
        return self.magic == MAGIC_GO118
