"""The cost of one uprobe hit on this machine, at the two kinds of site: testapps/hitloop
calls a never-inlined function in a loop and times it, without and with an empty BPF program
(attached with BCC directly, at the address gotrace's own resolver finds).

- main.hit's first instruction, which the kernel single-steps after the trap: the classic
  measure, and the cost of gotrace's RET probes;
- the branch of main.checked's stack check, which the kernel emulates: where gotrace puts
  its entry probes (gotrace/gobin/disasm.py entry_probe_site).
"""

from __future__ import annotations

import json
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.rounds import alternation
from gotrace.gobin.binary import Function, GoBinary

EMPTY_PROGRAM = "int empty(void *ctx) { return 0; }"


@dataclass(frozen=True)
class SiteCost:
    """Runs of the loop without and with the probe, in ns per call."""

    plain_ns: list[float]
    probed_ns: list[float]

    @property
    def hit_us(self) -> float:
        """Cost of one hit: the median probed call less the median plain call."""
        return (statistics.median(self.probed_ns) - statistics.median(self.plain_ns)) / 1000


@dataclass(frozen=True)
class Calibration:
    calls: int  # per run
    stepped: SiteCost  # main.hit's first instruction
    emulated: SiteCost  # main.checked's stack-check branch

    @property
    def hit_us(self) -> float:
        """The classic cost of one hit (a probe on a function's first instruction)."""
        return self.stepped.hit_us


def _ns_per_call(hitloop: Path, function: str, calls: int) -> float:
    out = subprocess.run([str(hitloop), "-f", function, "-n", str(calls)], check=True,
                         capture_output=True, text=True, timeout=600)
    return float(json.loads(out.stdout)["ns_per_call"])


def _function(binary: GoBinary, name: str) -> Function:
    fn = binary.function(name, ("symtab", "pclntab"))
    if fn is None:
        raise RuntimeError(f"{binary.path}: no {name}")
    return fn


def _measure(bpf: object, hitloop: Path, function: str, address: int, *, calls: int,
             pairs: int) -> SiteCost:
    path = str(hitloop).encode()
    plain: list[float] = []
    probed: list[float] = []
    for traced in alternation(pairs):
        if not traced:
            plain.append(_ns_per_call(hitloop, function, calls))
            continue
        bpf.attach_uprobe(name=path, addr=address, fn_name=b"empty")  # type: ignore[attr-defined]
        try:
            probed.append(_ns_per_call(hitloop, function, calls))
        finally:
            bpf.detach_uprobe(name=path, addr=address)  # type: ignore[attr-defined]
    return SiteCost(plain, probed)


def calibrate(hitloop: Path, *, calls: int, pairs: int) -> Calibration:
    from bcc import BPF

    with GoBinary(hitloop) as binary:
        first = _function(binary, "main.hit").address
        checked = _function(binary, "main.checked")
        branch = binary.entry_probe(checked)
    if branch == checked.address:
        raise RuntimeError(f"{hitloop}: main.checked has no stack check to probe")
    bpf = BPF(text=EMPTY_PROGRAM.encode())
    try:
        stepped = _measure(bpf, hitloop, "hit", first, calls=calls, pairs=pairs)
        emulated = _measure(bpf, hitloop, "checked", branch, calls=calls, pairs=pairs)
    finally:
        bpf.cleanup()
    return Calibration(calls, stepped, emulated)
