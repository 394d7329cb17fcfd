"""runtime.firstmoduledata: where text and the runtime type descriptors are.

Its first word points at the pclntab header, so even a stripped binary gives it away: look for
that pointer in writable data (or, in a PIE, for a relocation whose addend is that address).
Where its fields are depends on the Go release (gobin/structs.py has the positions), which the
pclntab tells: its magic changed in 1.20, and 1.26 stopped storing textStart in its header.
"""

from __future__ import annotations

from dataclasses import dataclass

from gotrace.errors import CorruptBinaryError
from gotrace.gobin.elffile import ElfImage
from gotrace.gobin.pclntab import Pclntab
from gotrace.gobin.structs import (
    MODULEDATA_GO118,
    MODULEDATA_GO120,
    MODULEDATA_GO126,
    SLICE,
    ModuleDataWords,
)


@dataclass(frozen=True)
class ModuleData:
    vaddr: int
    text: int
    types: int
    etypes: int
    itablinks: int
    nitablinks: int


def _layout(pclntab: Pclntab) -> ModuleDataWords:
    if pclntab.go118_layout:
        return MODULEDATA_GO118
    if pclntab.header_text_start:
        return MODULEDATA_GO120
    return MODULEDATA_GO126


def find_moduledata(image: ElfImage, pclntab: Pclntab) -> ModuleData:
    at = _layout(pclntab)
    slice_words = SLICE.size // 8
    for vaddr in image.pointers_to(pclntab.vaddr):
        try:
            words = image.words(vaddr, at.count)
        except CorruptBinaryError:
            continue
        text, etext, minpc = words[at.text], words[at.etext], words[at.minpc]
        types, etypes = words[at.types], words[at.etypes]
        _typelinks, ntypelinks, captypelinks = words[at.typelinks: at.typelinks + slice_words]
        itablinks, nitablinks, capitablinks = words[at.itablinks: at.itablinks + slice_words]
        header_text = pclntab.header_text_start
        if header_text and text != header_text:
            continue
        if not (text <= minpc < etext and types < etypes and ntypelinks == captypelinks
                and nitablinks == capitablinks):
            continue
        seg = image.segment_of(types)
        if seg is None or image.segment_of(etypes - 1) is not seg:
            continue
        return ModuleData(vaddr, text, types, etypes, itablinks, nitablinks)
    raise CorruptBinaryError(f"{image.path}: cannot find runtime.firstmoduledata")
