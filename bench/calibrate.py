"""The cost of one uprobe hit on this machine: testapps/hitloop calls a never-inlined
function in a loop and times it, without and with an empty BPF program on the function's
entry (attached with BCC directly, at the address gotrace's own resolver finds)."""

from __future__ import annotations

import json
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.rounds import alternation
from gotrace.gobin.binary import GoBinary

EMPTY_PROGRAM = "int empty(void *ctx) { return 0; }"
FUNCTION = "main.hit"


@dataclass(frozen=True)
class Calibration:
    calls: int  # per run
    plain_ns: list[float]  # ns per call of each run without the probe
    probed_ns: list[float]  # ... and with it

    @property
    def hit_us(self) -> float:
        """Cost of one hit: the median probed call less the median plain call."""
        return (statistics.median(self.probed_ns) - statistics.median(self.plain_ns)) / 1000


def _ns_per_call(hitloop: Path, calls: int) -> float:
    out = subprocess.run([str(hitloop), "-n", str(calls)], check=True, capture_output=True,
                         text=True, timeout=600)
    return float(json.loads(out.stdout)["ns_per_call"])


def calibrate(hitloop: Path, *, calls: int, pairs: int) -> Calibration:
    from bcc import BPF

    with GoBinary(hitloop) as binary:
        fn = binary.function(FUNCTION, ("symtab", "pclntab"))
    if fn is None:
        raise RuntimeError(f"{hitloop}: no {FUNCTION}")
    bpf = BPF(text=EMPTY_PROGRAM.encode())
    path = str(hitloop).encode()
    plain: list[float] = []
    probed: list[float] = []
    try:
        for traced in alternation(pairs):
            if not traced:
                plain.append(_ns_per_call(hitloop, calls))
                continue
            bpf.attach_uprobe(name=path, addr=fn.address, fn_name=b"empty")
            try:
                probed.append(_ns_per_call(hitloop, calls))
            finally:
                bpf.detach_uprobe(name=path, addr=fn.address)
    finally:
        bpf.cleanup()
    return Calibration(calls, plain, probed)
