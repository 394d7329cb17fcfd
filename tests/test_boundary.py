"""Everything that crosses between the kernel and gotrace has one definition, in Python: the
record's kinds, flags, sched slots, drop and connection-miss reasons, text sizes and the
connection steps' constants reach the C as generated macros (gotrace/kernel/plan.py
kernel_boundary_macros). These tests fail when the C defines one of them by hand, uses a name
Python does not generate, or when a generated value is not the one Python decodes with."""

from __future__ import annotations

import re
import subprocess

from gotrace import records
from gotrace.gobin.conntypes import StepKind
from gotrace.kernel.c_source import BPF_DIR
from gotrace.kernel.plan import (
    CONN_MISS_REASONS,
    CONN_STEP_FLAGS,
    TUNABLES,
    kernel_boundary_macros,
)
from gotrace.probes import CLIENT_KINDS, SERVER_KINDS, SHAPES, SPAN_KINDS

BOUNDARY = re.compile(r"\b(?:SPAN_KIND_|EVENT_KIND_|SPAN_F_|SCHED_SLOT|DROP_|CONN_STEP_|"
                      r"CONN_MISS_|SPAN_[A-Z]+_LEN\b|SERVER_KINDS\b|CLIENT_KINDS\b|"
                      r"FIRST_EVENT_KIND\b)\w*")
DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)(.*)$", re.M)


def c_sources() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(BPF_DIR.glob("*.[ch]"))}


def test_the_c_defines_no_boundary_constant_by_hand():
    """A #define of a boundary name may only combine generated names (SPAN_F_DECISION)."""
    for name, text in c_sources().items():
        for macro, value in DEFINE.findall(text):
            if BOUNDARY.fullmatch(macro):
                assert not re.search(r"\b\d", value), f"{name}: #define {macro}{value}"


def test_every_boundary_name_the_c_uses_is_generated():
    generated = {**kernel_boundary_macros(), **TUNABLES}
    derived = {m for text in c_sources().values() for m, _ in DEFINE.findall(text)}
    for name, text in c_sources().items():
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)  # comments name families: SPAN_F_*
        for used in set(BOUNDARY.findall(text)):
            assert used in generated or used in derived, f"{name} uses {used}, not generated"


def test_generated_values_are_the_ones_python_decodes_with():
    macros = kernel_boundary_macros()
    flags = {n[2:]: v for n, v in vars(records).items() if re.fullmatch(r"F_[A-Z_]+", n)}
    assert flags == {n.removeprefix("SPAN_F_"): v for n, v in macros.items()
                     if n.startswith("SPAN_F_")}
    assert len(flags) == len(set(flags.values())) == 13
    # One bit each, within the record's __u16 flags.
    assert all(0 < v < 1 << 16 and v & (v - 1) == 0 for v in flags.values()), flags
    events = {n: v for n, v in vars(records).items() if n.startswith("EVENT_KIND_")}
    assert events == {n: v for n, v in macros.items() if n.startswith("EVENT_KIND_")}
    assert {f"SPAN_KIND_{k}": v for k, v in SPAN_KINDS.items()} == \
        {n: v for n, v in macros.items() if n.startswith("SPAN_KIND_")}
    assert max(SHAPES) < macros["FIRST_EVENT_KIND"] == min(events.values())
    assert [macros[f"SCHED_SLOT_{s.upper()}"] for s in records.SCHED_SLOTS] == \
        list(range(macros["SCHED_SLOTS"]))
    assert [macros[f"DROP_{r.upper()}"] for r in records.KERNEL_DROP_REASONS] == \
        list(range(macros["DROP_REASONS"]))
    assert [macros[f"CONN_MISS_{r.upper()}"] for r in CONN_MISS_REASONS] == \
        list(range(macros["CONN_MISS_REASONS"]))
    assert {f"CONN_STEP_{k.name}": k.value for k in StepKind}.items() <= macros.items()
    assert {f"CONN_STEP_F_{n.upper()}": v for n, v in CONN_STEP_FLAGS.items()}.items() \
        <= macros.items()
    assert macros["SERVER_KINDS"] == sum(1 << k for k in SERVER_KINDS)
    assert macros["CLIENT_KINDS"] == sum(1 << k for k in CLIENT_KINDS)


def test_roles_as_the_c_sees_them(tmp_path):
    """IS_SERVER_KIND / IS_CLIENT_KIND / IS_SPAN_KIND of bpf/record.h, compiled with the
    generated macros, agree with the declarations for every kind and event."""
    kinds = [*SHAPES, *(v for n, v in vars(records).items() if n.startswith("EVENT_KIND_"))]
    checks = "\n".join(
        f'    printf("{k} %d %d %d\\n", IS_SERVER_KIND({k}), IS_CLIENT_KIND({k}), '
        f'IS_SPAN_KIND({k}));' for k in kinds)
    source = tmp_path / "roles.c"
    source.write_text(f"#include <stdio.h>\n#include <linux/types.h>\n#include \"record.h\"\n"
                      f"int main(void) {{\n{checks}\n    return 0;\n}}\n")
    exe = tmp_path / "roles"
    macros = [f"-D{k}={v}" for k, v in kernel_boundary_macros().items()]
    subprocess.run(["gcc", "-Werror", f"-I{BPF_DIR}", *macros, "-o", str(exe), str(source)],
                   check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        kind, server, client, span = map(int, line.split())
        assert bool(server) == (kind in SERVER_KINDS), kind
        assert bool(client) == (kind in CLIENT_KINDS), kind
        assert bool(span) == (kind in SHAPES), kind
