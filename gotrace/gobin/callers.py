"""Which functions call a function directly: the CALL rel32 instructions (E8) of the program's
text whose target is its entry, named by the function they lie in.

A byte scan, not a disassembly: an E8 byte inside another instruction whose next four bytes
happen to point exactly at the target is taken for a call. The answer is used to decide that a
function is called only from known places, so a false caller can only make gotrace attach
more, never less.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Collection, Sequence

from gotrace.gobin.elffile import ElfImage

_CALL = 0xE8
_REL32 = struct.Struct("<i")


def direct_callers(image: ElfImage, text_start: int, text_end: int,
                   functions: Sequence[tuple[int, str]], targets: Collection[int]
                   ) -> dict[int, set[str]]:
    """target address -> names of the functions with a direct call to it. functions: (address,
    name) of every function, sorted by address."""
    wanted = frozenset(targets)
    found: dict[int, set[str]] = {target: set() for target in wanted}
    if not wanted:
        return found
    text = image.read(text_start, text_end - text_start)
    starts = [address for address, _ in functions]
    end = len(text) - _REL32.size
    at = text.find(_CALL)
    while 0 <= at < end:
        target = text_start + at + 1 + _REL32.size + _REL32.unpack_from(text, at + 1)[0]
        if target in wanted:
            caller = bisect.bisect_right(starts, text_start + at) - 1
            if caller >= 0:
                found[target].add(functions[caller][1])
        at = text.find(_CALL, at + 1)
    return found
