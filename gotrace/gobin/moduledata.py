"""runtime.firstmoduledata: where text and the runtime type descriptors are.

Its first word points at the pclntab header, so even a stripped binary gives it away: look for
that pointer in writable data (or, in a PIE, for a relocation whose addend is that address).
Word positions (pointer-sized words) of the fields we read:

    field      1.18-1.19   1.20-1.25   1.26+
    text          22          22         22
    types         35          37         37
    etypes        36          38         38
    typelinks     42          44         45   (1.20 added covctrs/ecovctrs, 1.26 epclntab)
    itablinks     45          47         48   (right after typelinks: []*itab)

1.26 also stopped storing textStart in the pclntab header, which is how we tell it apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from gotrace.errors import CorruptBinaryError
from gotrace.gobin.elffile import ElfImage
from gotrace.gobin.pclntab import Pclntab

_TEXT = 22


@dataclass(frozen=True)
class ModuleData:
    vaddr: int
    text: int
    etext: int
    types: int
    etypes: int
    typelinks: int
    ntypelinks: int
    itablinks: int
    nitablinks: int


def _layout(pclntab: Pclntab) -> tuple[int, int]:
    """(types word, typelinks word) for this pclntab generation."""
    if pclntab.go118_layout:
        return 35, 42
    if pclntab.header_text_start:
        return 37, 44
    return 37, 45


def find_moduledata(image: ElfImage, pclntab: Pclntab) -> ModuleData:
    types_word, typelinks_word = _layout(pclntab)
    for vaddr in image.pointers_to(pclntab.vaddr):
        try:
            words = image.words(vaddr, typelinks_word + 6)
        except CorruptBinaryError:
            continue
        text, etext = words[_TEXT], words[_TEXT + 1]
        minpc = words[20]
        types, etypes = words[types_word], words[types_word + 1]
        typelinks, ntypelinks, captypelinks = words[typelinks_word: typelinks_word + 3]
        itablinks, nitablinks, capitablinks = words[typelinks_word + 3: typelinks_word + 6]
        header_text = pclntab.header_text_start
        if header_text and text != header_text:
            continue
        if not (text <= minpc < etext and types < etypes and ntypelinks == captypelinks
                and nitablinks == capitablinks):
            continue
        seg = image.segment_of(types)
        if seg is None or image.segment_of(etypes - 1) is not seg:
            continue
        return ModuleData(vaddr, text, etext, types, etypes, typelinks, ntypelinks, itablinks,
                          nitablinks)
    raise CorruptBinaryError(f"{image.path}: cannot find runtime.firstmoduledata")
