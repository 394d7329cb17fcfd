"""RET sites of a function, found by a linear sweep (safe on Go code: no data in text).

capstone was chosen over iced-x86: it is the maintained, widely packaged x86 decoder with
wheels for every CPython, and its "lite" API decodes without building detail objects, which
is all a RET scan needs.
"""

from __future__ import annotations

from capstone import CS_ARCH_X86, CS_MODE_64, Cs

from gotrace.gobin.elffile import ElfImage

_decoder = Cs(CS_ARCH_X86, CS_MODE_64)
_decoder.skipdata = True  # never stop the sweep at a byte capstone cannot decode


def ret_sites(image: ElfImage, start: int, end: int) -> list[int]:
    """Virtual addresses of the RET instructions in [start, end)."""
    code = image.read(start, end - start)
    return [
        address
        for address, _size, mnemonic, _ops in _decoder.disasm_lite(code, start)
        if mnemonic in ("ret", "retq")
    ]
