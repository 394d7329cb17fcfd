"""bpf/context.h's goroutine contexts, compiled into an ordinary program with BCC's maps
stubbed (tests/bpf_user), driven by random sequences of span begins, ends and look-ups of a
few goroutines of two processes over four slots, so that goroutines meet in a slot and take
the overflow map, and compared with what a context is: the last span a goroutine entered and
has not ended. The concurrent cases (a sequence lock, a compare-and-swap) the end-to-end
tests exercise; this one checks the bookkeeping every sequence of events must keep."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gotrace.kernel.c_source import BPF_DIR
from gotrace.kernel.plan import kernel_boundary_macros

SLOTS = 4
STUBS = Path(__file__).parent / "bpf_user"
DRIVER = r"""
#include <stdio.h>
#include "context.h"

/* One command per line: e TGID GOID T (the goroutine enters a span of trace T), x TGID GOID
 * (its span ends), g TGID GOID (print its context's trace, 0 for none), n (print the count of
 * overflow entries). */
int main(void) {
    char op;
    unsigned tgid, trace;
    unsigned long long goid;
    __u32 zero = 0;
    while (scanf(" %c", &op) == 1) {
        if (op == 'n') {
            printf("%lld\n", (long long)*overflow_entries.lookup(&zero));
            continue;
        }
        if (scanf("%u %llu", &tgid, &goid) != 2)
            return 2;
        current_tgid = tgid;
        if (op == 'e') {
            struct span_record rec = {0};
            if (scanf("%u", &trace) != 1)
                return 2;
            rec.goid = goid;
            rec.trace_id[0] = trace;
            enter_span_context(&rec);
        } else if (op == 'x') {
            end_span_context(goid);
        } else {
            struct go_key key = go_key(goid);
            struct trace_ctx out, *found = live_context(&key, &out);
            printf("%u\n", found ? found->trace_id[0] : 0);
        }
    }
    return 0;
}
"""

Key = tuple[int, int]
keys = st.tuples(st.sampled_from([101, 202]), st.integers(1, 4))
events = st.one_of(
    st.tuples(st.just("e"), keys, st.integers(1, 255)),
    st.tuples(st.just("x"), keys, st.just(0)),
    st.tuples(st.just("g"), keys, st.just(0)),
)


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("context")
    source = build / "driver.c"
    source.write_text(DRIVER)
    # goabi.h's readers of Go memory need some offsets; nothing here reads Go memory.
    macros = {**kernel_boundary_macros(), "MAX_GOROUTINES": SLOTS,
              "OFF_internal_abi_ITab_Hash": 0, "OFF_runtime_g_goid": 0}
    exe = build / "driver"
    subprocess.run(["gcc", "-Werror", f"-I{STUBS}", f"-I{BPF_DIR}",
                    *(f"-D{k}={v}" for k, v in macros.items()), "-o", str(exe), str(source)],
                   check=True)
    return exe


def _command(op: str, key: Key, trace: int) -> str:
    return f"{op} {key[0]} {key[1]}" + (f" {trace}" if op == "e" else "")


# Goroutines 1 and 5 of process 101 share a slot: 5 takes the overflow map, enters again
# (the first span's end unseen) once the slot is free, then ends.
@example([("e", (101, 1), 5), ("e", (101, 5), 7), ("x", (101, 1), 0), ("e", (101, 5), 9),
          ("x", (101, 5), 0), ("g", (101, 5), 0)])
@settings(max_examples=500, deadline=None)
@given(st.lists(events, max_size=80))
def test_a_goroutine_finds_the_span_it_entered_until_it_ends(driver, sequence):
    commands, expected = [], []
    live: dict[Key, int] = {}
    for op, key, trace in sequence:
        commands.append(_command(op, key, trace))
        if op == "e":
            live[key] = trace
        elif op == "x":
            live.pop(key, None)
        else:
            expected.append(live.get(key, 0))
    entered = sorted({key for op, key, _ in sequence if op == "e"})
    commands += [_command("x", key, 0) for key in entered]
    commands += [_command("g", key, 0) for key in entered]
    expected += [0] * len(entered)
    commands.append("n")
    expected.append(0)  # every overflow entry went with its span
    out = subprocess.run([str(driver)], input="\n".join(commands), capture_output=True,
                         text=True, check=True).stdout
    assert [int(v) for v in out.split()] == expected
