"""The BPF program text: includes expanded by gotrace (BCC compiles maps only in the main
text), every header once after preprocessing, compiler errors pointing at the real file and
line, cycles refused."""

from __future__ import annotations

import subprocess

import pytest

from gotrace.errors import GotraceError
from gotrace.kernel.c_source import BPF_DIR, local_includes, program_text


def test_includes_are_expanded_with_their_lines(tmp_path):
    (tmp_path / "a.h").write_text('#ifndef A_H\n#define A_H\n#include "b.h"\nint a;\n#endif\n')
    (tmp_path / "b.h").write_text("#ifndef B_H\n#define B_H\nint b;\n#endif\n")
    (tmp_path / "p.c").write_text('#include "a.h"\n#include "b.h"\nint c = x;\n')
    text = program_text([tmp_path / "p.c"], search=())
    assert '#include "' not in text
    # The preprocessor keeps one copy of each header and reports p.c's own line 3.
    source = tmp_path / "out.c"
    source.write_text(text)
    done = subprocess.run(["gcc", "-fsyntax-only", str(source)], capture_output=True,
                          text=True)
    assert f"{tmp_path / 'p.c'}:3" in done.stderr, done.stderr
    assert "redefinition" not in done.stderr


def test_a_cycle_is_refused(tmp_path):
    (tmp_path / "a.h").write_text('#include "b.h"\n')
    (tmp_path / "b.h").write_text('#include "a.h"\n')
    with pytest.raises(GotraceError, match="include cycle"):
        program_text([tmp_path / "a.h"], search=())


def test_a_missing_header_is_named(tmp_path):
    (tmp_path / "p.c").write_text('#include "nowhere.h"\n')
    with pytest.raises(GotraceError, match=r"nowhere\.h"):
        program_text([tmp_path / "p.c"], search=())


def test_the_shared_headers_form_a_tree():
    """Every header of bpf/ expands without a cycle, and span.h brings what a span needs."""
    for header in BPF_DIR.glob("*.h"):
        program_text([header])
    assert {p.name for p in local_includes(BPF_DIR / "span.h")} == {
        "goabi.h", "record.h", "counters.h", "context.h", "sampling.h", "shedding.h", "sched.h"}
