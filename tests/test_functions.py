"""Functions and RET sites against the Go toolchain's and binutils' own view."""

from __future__ import annotations

import re
import subprocess

from conftest import go_tool

from gotrace.gobin.binary import GoBinary
from gotrace.resolve.layout import resolve


def elide_type_arguments(name: str) -> str:
    """Go 1.19's pclntab writes every bracketed part of a name as "[...]"; so do we here."""
    out, depth = [], 0
    for ch in name:
        if ch == "[":
            if depth == 0:
                out.append("[...]")
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def nm_functions(cell, path) -> set[tuple[str, int]]:
    """(name, address) of text symbols per `go tool nm`; assembly's .abi0 suffix dropped."""
    out = subprocess.run([go_tool(cell), "tool", "nm", str(path)], check=True,
                         capture_output=True, text=True).stdout
    result = set()
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] in ("T", "t"):
            result.add((parts[2].removesuffix(".abi0"), int(parts[0], 16)))
    return result


def test_pclntab_functions_equal_go_tool_nm_of_unstripped_twin(cell, binary, twin):
    with GoBinary(binary) as gb:
        pclntab = {(f.name, f.address) for f in gb.pclntab.functions(gb.moduledata.text)}
    nm = nm_functions(cell, twin)
    assert len(pclntab) > 1000
    # The ELF symbol table spells the middle dot of Go 1.19's internal names as ".".
    unmatched = {(n, a) for n, a in pclntab - nm if (n.replace("·", "."), a) not in nm}
    if cell.go == "1.19":
        nm_elided = {(elide_type_arguments(n), a) for n, a in nm}
        unmatched = {(n, a) for n, a in unmatched if (n, a) not in nm_elided}
    assert unmatched == set()


def test_symtab_and_pclntab_agree_on_manifest_functions(cell, twin):
    with GoBinary(twin) as gb:
        by_symtab = resolve(gb, function_sources=("symtab",))
        by_pclntab = resolve(gb, function_sources=("pclntab",))
    assert by_symtab.functions.keys() == by_pclntab.functions.keys()
    assert by_pclntab.functions, "no manifest function resolved"
    for name, fn in by_pclntab.functions.items():
        other = by_symtab.functions[name]
        assert (fn.address, fn.entry, fn.rets) == (other.address, other.entry, other.rets), name


_RET = re.compile(r"^\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*ret", re.MULTILINE)


def objdump_rets(path, start: int, end: int) -> list[int]:
    out = subprocess.run(
        ["objdump", "-d", "-w", f"--start-address={start:#x}",
         f"--stop-address={end:#x}", str(path)],
        check=True, capture_output=True, text=True).stdout
    return [int(m.group(1), 16) for m in _RET.finditer(out)]


def test_ret_offsets_equal_objdump(cell, binary):
    with GoBinary(binary) as gb:
        layout = resolve(gb)
        assert layout.functions
        for name, fn in layout.functions.items():
            f = gb.function(fn.found_as)
            expected = [gb.image.file_offset(a) for a in objdump_rets(binary, f.address, f.end)]
            assert list(fn.rets) == expected, name
            assert fn.rets, f"{name}: no RET found"


_INSTRUCTION = re.compile(r"^\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*(\S+)\s*(.*)$", re.MULTILINE)


def objdump_prologue(path, start: int) -> list[tuple[int, str, str]]:
    """(address, mnemonic, operands) of a function's first instructions, in AT&T syntax."""
    out = subprocess.run(
        ["objdump", "-d", "-w", f"--start-address={start:#x}",
         f"--stop-address={start + 32:#x}", str(path)],
        check=True, capture_output=True, text=True).stdout
    return [(int(a, 16), m, ops) for a, m, ops in _INSTRUCTION.findall(out)]


def stack_check_branch(instructions: list[tuple[int, str, str]]) -> int | None:
    """binutils' reading of the usual prologue: R12 set from SP, compared with (or SP
    compared with) the stack guard at 16(R14), then a conditional branch."""
    compared = False
    for address, mnemonic, ops in instructions:
        if not compared and mnemonic in ("lea", "mov", "sub") and ops.endswith(",%r12"):
            continue
        if not compared and mnemonic == "cmp" and "0x10(%r14)" in ops:
            compared = True
            continue
        if compared and mnemonic.startswith("j") and mnemonic != "jmp":
            return address
        return None
    return None


def test_entry_probes_sit_on_the_stack_check_branch_per_objdump(cell, binary):
    """The entry uprobe goes on the prologue's conditional branch, which the kernel emulates,
    wherever binutils sees the usual prologue; elsewhere on the first instruction."""
    moved = 0
    with GoBinary(binary) as gb:
        layout = resolve(gb)
        for name, fn in layout.functions.items():
            branch = stack_check_branch(objdump_prologue(binary, fn.address))
            assert fn.entry_probe == (branch if branch is not None else fn.address), name
            moved += branch is not None
    assert moved >= len(layout.functions) // 2, "most probed functions check their stack"
