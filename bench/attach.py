"""Attach time (the command's start to --ready-file) and the tracer's peak memory, on a
service-sized binary traced by path (`--exe`, no process needed), plus the memory of a bare
BCC compile for comparison and a profile of one attach."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import REPO
from bench.calibrate import EMPTY_PROGRAM
from bench.session import Gotrace

# A process that only compiles an empty BPF program with BCC, then prints its VmHWM.
_BARE_BCC = ("import os, sys; from bcc import BPF; from bench.procstat import memory_mb; "
             "BPF(text=sys.argv[1]); print(memory_mb(os.getpid(), 'VmHWM'))")


@dataclass(frozen=True)
class AttachResult:
    binary: str  # what it is
    size_mb: float
    seconds: list[float]  # one per run
    peak_rss_mb: list[float]  # VmHWM once attached, per run
    bare_bcc_mb: float  # VmHWM of a Python process that only compiled an empty BPF program
    profile: Path  # of one more attach, run under bench.profiled


def bare_bcc_mb() -> float:
    out = subprocess.run([sys.executable, "-c", _BARE_BCC, EMPTY_PROGRAM], cwd=REPO,
                         check=True, capture_output=True, text=True)
    return float(out.stdout)


def measure(binary: Path, label: str, runs: int, profile: Path) -> AttachResult:
    args = ["trace", "--exe", str(binary), "--jsonl", "/dev/null"]
    seconds, peaks = [], []
    for _ in range(runs):
        with Gotrace(args) as session:
            seconds.append(session.ready())
            peaks.append(session.memory("VmHWM"))
            session.stop()
    with Gotrace([*args, "--duration", "0"], profile=profile) as session:
        session.wait()
    return AttachResult(label, binary.stat().st_size / 1e6, seconds, peaks, bare_bcc_mb(),
                        profile)
