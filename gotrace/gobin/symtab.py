"""Function symbols from the ELF symbol table of an unstripped binary.

Parsed straight from .symtab/.strtab with struct (pyelftools builds an object per symbol,
which is slow on the tens of thousands a Go binary has).
"""

from __future__ import annotations

import struct

from gotrace.gobin.elffile import ElfImage

_SYM = struct.Struct("<IBBHQQ")  # Elf64_Sym
_STT_FUNC = 2


def function_symbols(image: ElfImage) -> dict[str, tuple[int, int]]:
    """name -> (address, size) for every function symbol; empty when the binary is stripped."""
    symtab = image.section(".symtab")
    strtab = image.section(".strtab")
    if symtab is None or strtab is None:
        return {}
    raw = image.section_bytes(symtab)
    names = image.section_bytes(strtab)
    out: dict[str, tuple[int, int]] = {}
    for st_name, st_info, _other, _shndx, value, size in _SYM.iter_unpack(
        raw[: len(raw) // _SYM.size * _SYM.size]
    ):
        if st_info & 0xF != _STT_FUNC or not value:
            continue
        end = names.find(b"\0", st_name)
        if end < 0:
            continue
        out.setdefault(names[st_name:end].decode("utf-8", "replace"), (value, size))
    return out
