"""Where a function's uprobes go: its RET sites, found by a linear sweep (safe on Go code: no
data in text), and the cheapest site for its entry probe.

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


# The prologue of a Go function (amd64, Go 1.17+) that checks its stack: it may put its future
# stack pointer in R12 (LEAQ -n(SP), R12, or MOVQ SP, R12 and SUBQ $n, R12), compares it or SP
# with the goroutine's stack guard at 16(R14), then branches to morestack when short.
_PROLOGUE_WRITES_R12 = ("lea", "mov", "sub")
_STACK_GUARD = "[r14 + 0x10]"


def entry_probe_site(image: ElfImage, start: int, end: int) -> int:
    """The address for an entry uprobe: the branch of the function's stack check when its
    prologue is the usual one, else the function's first instruction.

    The kernel emulates a conditional branch under a uprobe but single-steps most other
    instructions, at a second trap: a hit on the branch costs several times less than one on
    a function's first instruction (bench/calibrate.py measures both; bench/REPORT.md). At
    the branch every register but R12 and the flags is as the function received it, and no
    probe reads those.
    When the stack must grow, morestack restarts the function and the probe runs twice, as it
    does at the first instruction.
    """
    code = image.read(start, min(end - start, 32))
    compared = False
    for address, _size, mnemonic, ops in _decoder.disasm_lite(code, start):
        if mnemonic in _PROLOGUE_WRITES_R12 and ops.startswith("r12,") and not compared:
            continue
        if mnemonic == "cmp" and _STACK_GUARD in ops and not compared:
            compared = True
            continue
        if compared and mnemonic.startswith("j") and mnemonic != "jmp":
            return address
        break
    return start
