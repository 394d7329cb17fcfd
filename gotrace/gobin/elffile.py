"""The ELF view gotrace needs: sections, loadable segments, reads by virtual address.

The whole file is memory-mapped once; every reader slices that map. PIE binaries keep absolute
pointers as R_X86_64_RELATIVE relocations (the file holds 0 or a stale value and the addend is
the real address), so pointer reads consult the relocation table first.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from gotrace.errors import CorruptBinaryError, GotraceError, NotGoBinaryError

_R_X86_64_RELATIVE = 8
_EM_X86_64 = 62
_ET_DYN = 3
_PT_LOAD = 1
_SHT_RELA = 4
_SHT_NOBITS = 8
_EI_NIDENT = 16
# The ELF64 structures read here.
_EHDR = struct.Struct("<HHIQQQIHHHHHH")  # Elf64_Ehdr after e_ident
_PHDR = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr
_SHDR = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr
_RELA = struct.Struct("<QQq")  # Elf64_Rela


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD segment."""

    vaddr: int
    offset: int
    filesz: int
    memsz: int
    flags: int

    @property
    def writable(self) -> bool:
        return bool(self.flags & 2)

    @property
    def executable(self) -> bool:
        return bool(self.flags & 1)


@dataclass(frozen=True)
class Section:
    name: str
    addr: int
    offset: int
    size: int
    nobits: bool


class ElfImage:
    """A read-only, memory-mapped ELF executable for x86-64."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_size == 0:
                    raise NotGoBinaryError(f"{self.path}: empty file, not an ELF executable")
                self.data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except IsADirectoryError:
            raise GotraceError(f"{self.path}: is a directory, not an executable") from None
        except FileNotFoundError:
            raise GotraceError(f"{self.path}: no such file") from None
        except PermissionError:
            raise GotraceError(f"{self.path}: permission denied") from None
        if self.data[:4] != b"\x7fELF":
            raise NotGoBinaryError(f"{self.path}: not an ELF executable")
        try:
            self._parse_headers()
        except (struct.error, IndexError, ValueError) as e:
            raise CorruptBinaryError(f"{self.path}: malformed ELF headers ({e})") from None
        if not self.segments:
            raise NotGoBinaryError(f"{self.path}: ELF file with no loadable segments")
        described = max(s.offset + s.filesz for s in self.segments)
        if described > len(self.data):
            raise CorruptBinaryError(f"{self.path}: truncated file ({len(self.data)} bytes, "
                                     f"its headers describe {described})")

    def _parse_headers(self) -> None:
        data = self.data
        if data[4] != 2 or data[5] != 1:
            raise NotGoBinaryError(f"{self.path}: not a 64-bit little-endian ELF file")
        (e_type, e_machine, _version, _entry, e_phoff, e_shoff, _flags, _ehsize, e_phentsize,
         e_phnum, e_shentsize, e_shnum, e_shstrndx) = _EHDR.unpack_from(data, _EI_NIDENT)
        if e_machine != _EM_X86_64:
            raise NotGoBinaryError(f"{self.path}: not an x86-64 executable "
                                   f"(ELF machine {e_machine})")
        self.is_pie = e_type == _ET_DYN
        self.segments = []
        for i in range(e_phnum):
            (p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz,
             _align) = _PHDR.unpack_from(data, e_phoff + i * e_phentsize)
            if p_type == _PT_LOAD:
                self.segments.append(Segment(p_vaddr, p_offset, p_filesz, p_memsz, p_flags))
        raw_sections = [_SHDR.unpack_from(data, e_shoff + i * e_shentsize)
                        for i in range(e_shnum if e_shoff else 0)]
        names = b""
        if 0 < e_shstrndx < len(raw_sections):
            _, _, _, _, str_off, str_size, *_ = raw_sections[e_shstrndx]
            names = data[str_off: str_off + str_size]
        self.sections = {}
        for sh_name, sh_type, _flags, sh_addr, sh_offset, sh_size, *_ in raw_sections:
            end = names.find(b"\0", sh_name)
            name = names[sh_name:end].decode("ascii", "replace") if end >= 0 else ""
            self.sections.setdefault(
                name, Section(name, sh_addr, sh_offset, sh_size, sh_type == _SHT_NOBITS))
        self.rela_sections = [
            (sh_offset, sh_size) for _n, sh_type, _f, _a, sh_offset, sh_size, *_ in raw_sections
            if sh_type == _SHT_RELA
        ]

    def close(self) -> None:
        self.data.close()

    # --- addresses --------------------------------------------------------------------------

    def segment_of(self, vaddr: int) -> Segment | None:
        for seg in self.segments:
            if seg.vaddr <= vaddr < seg.vaddr + seg.memsz:
                return seg
        return None

    def file_offset(self, vaddr: int) -> int:
        """The file offset of a virtual address: what a uprobe is attached at."""
        seg = self.segment_of(vaddr)
        if seg is None or vaddr - seg.vaddr >= seg.filesz:
            raise CorruptBinaryError(f"{self.path}: address {vaddr:#x} is not backed by the file")
        return vaddr - seg.vaddr + seg.offset

    def read(self, vaddr: int, size: int) -> bytes:
        """Bytes at a virtual address; bytes past the file-backed part read as zero (bss)."""
        seg = self.segment_of(vaddr)
        if seg is None or vaddr + size > seg.vaddr + seg.memsz:
            raise CorruptBinaryError(f"{self.path}: read of {size} bytes at {vaddr:#x} "
                                     "is outside the loaded image")
        start = vaddr - seg.vaddr
        backed = max(0, min(size, seg.filesz - start))
        out = self.data[seg.offset + start: seg.offset + start + backed]
        if len(out) != backed:
            raise CorruptBinaryError(f"{self.path}: truncated file")
        return out + bytes(size - backed)

    def u8(self, vaddr: int) -> int:
        return self.read(vaddr, 1)[0]

    def u32(self, vaddr: int) -> int:
        return struct.unpack("<I", self.read(vaddr, 4))[0]

    def i32(self, vaddr: int) -> int:
        return struct.unpack("<i", self.read(vaddr, 4))[0]

    def u64(self, vaddr: int) -> int:
        return struct.unpack("<Q", self.read(vaddr, 8))[0]

    def pointer(self, vaddr: int) -> int:
        """A pointer-sized word as the loaded program sees it (relocations applied)."""
        reloc = self.relative_relocations.get(vaddr)
        return reloc if reloc is not None else self.u64(vaddr)

    def words(self, vaddr: int, count: int) -> list[int]:
        """`count` pointer-sized words starting at vaddr, relocations applied."""
        raw = struct.unpack(f"<{count}Q", self.read(vaddr, 8 * count))
        relocs = self.relative_relocations
        if not relocs:
            return list(raw)
        return [relocs.get(vaddr + 8 * i, w) for i, w in enumerate(raw)]

    @cached_property
    def relative_relocations(self) -> dict[int, int]:
        """R_X86_64_RELATIVE relocations: address -> the value the loader writes there."""
        if not self.is_pie:
            return {}
        out: dict[int, int] = {}
        for offset, size in self.rela_sections:
            raw = self.data[offset: offset + size // _RELA.size * _RELA.size]
            for r_offset, r_info, r_addend in _RELA.iter_unpack(raw):
                if r_info & 0xFFFFFFFF == _R_X86_64_RELATIVE:
                    out[r_offset] = r_addend
        return out

    # --- sections and symbols ---------------------------------------------------------------

    def section(self, *names: str) -> Section | None:
        """The first present section among `names`."""
        for name in names:
            sec = self.sections.get(name)
            if sec is not None and not sec.nobits and sec.size:
                return sec
        return None

    def section_bytes(self, sec: Section) -> bytes:
        out = self.data[sec.offset: sec.offset + sec.size]
        if len(out) != sec.size:
            raise CorruptBinaryError(f"{self.path}: section {sec.name} runs past the end of file")
        return out

    @property
    def has_dwarf(self) -> bool:
        return self.section(".debug_info", ".zdebug_info") is not None

    @cached_property
    def pyelftools(self) -> ELFFile:
        """A pyelftools view of the file, for DWARF."""
        try:
            return ELFFile(self.data)
        except ELFError as e:
            raise CorruptBinaryError(f"{self.path}: malformed ELF ({e})") from None

    def pointers_to(self, target: int) -> list[int]:
        """Addresses of pointer-aligned words in writable data that hold `target` once the
        program is loaded (in a position-independent binary, by a relocation)."""
        out = [addr for addr, value in self.relative_relocations.items() if value == target]
        out += self.find_aligned(struct.pack("<Q", target), 8, writable_only=True)
        return sorted(set(out))

    def find_aligned(self, needle: bytes, align: int, *, writable_only: bool = False,
                     skip_executable: bool = False) -> Iterator[int]:
        """Virtual addresses, multiples of `align`, where `needle` is in the file-backed image."""
        for seg in self.segments:
            if (writable_only and not seg.writable) or (skip_executable and seg.executable):
                continue
            start, end = seg.offset, seg.offset + seg.filesz
            pos = self.data.find(needle, start, end)
            while pos != -1:
                vaddr = seg.vaddr + pos - start
                if vaddr % align == 0:
                    yield vaddr
                pos = self.data.find(needle, pos + 1, end)
