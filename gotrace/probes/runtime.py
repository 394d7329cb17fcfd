"""Goroutine ancestry: work a request's goroutine hands to goroutines it starts stays in its
trace. Contexts are kept by goroutine id (bpf/context.h); how a goroutine finds its creator's
depends on the binary and on --goroutine-ancestry (see for_binary):
  - Go >= 1.21 by default: no probe at all. The runtime records each goroutine's creator
    (g.parentGoid); a span begun on a goroutine without a context of its own is a child of
    the span its creator works for at that moment. One hop.
  - Go < 1.21, or --goroutine-ancestry: one hit per goroutine creation (runtime.newproc1's
    RETs, bpf/runtime.c) copies the creator's context to the new goroutine then, up to
    MAX_GOROUTINE_DEPTH hops.

Also the runtime's own events, attributed to spans by gotrace/facts/runtime.py:
stop-the-world pauses (three hits per pause) and GC cycle starts (one hit per cycle)."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from gotrace.probes.base import Attachment, Probe
from gotrace.resolve.layout import Layout

NEWPROC1 = "runtime.newproc1"
STOP_THE_WORLD = "runtime.stopTheWorldWithSema"
START_THE_WORLD = "runtime.startTheWorldWithSema"
GC_START = "runtime.(*gcControllerState).startCycle"
PARENT_GOID = "runtime.g.parentGoid"
NEWPROC_FIELDS = ("runtime.g.m", "runtime.m.curg")  # g0.m.curg: newproc1's caller
DEEP_ANCESTRY = "goroutine_ancestry"  # the opt-in of --goroutine-ancestry (for_binary)

NEWPROC_RETURN = Attachment(NEWPROC1, "return", "newproc_return")



def for_binary(probe: Probe, layout: Layout,
               opt_in: Collection[str]) -> tuple[Probe, dict[str, int]]:
    """The runtime probe for a binary, and the macro that tells the C which ancestry it gets:
    ANCESTRY_PARENT_GOID (no newproc1 probe) where the runtime has g.parentGoid and deeper
    ancestry was not asked for, else ANCESTRY_NEWPROC."""
    if DEEP_ANCESTRY in opt_in or PARENT_GOID not in layout.fields:
        return probe, {"ANCESTRY_NEWPROC": 1}
    lazy = dataclasses.replace(
        probe, attachments=tuple(a for a in probe.attachments if a is not NEWPROC_RETURN),
        fields=("runtime.g.goid", PARENT_GOID), optional_fields=(), variant=None)
    return lazy, {"ANCESTRY_PARENT_GOID": 1}


# Every attachment the runtime probe may have; for_binary says which run on a binary.
PROBE = Probe(
    library="runtime",
    attachments=(
        NEWPROC_RETURN,
        Attachment(STOP_THE_WORLD, "entry", "stw_begin"),
        Attachment(START_THE_WORLD, "entry", "stw_restart_called"),
        Attachment(START_THE_WORLD, "return", "stw_end"),
        Attachment(GC_START, "entry", "gc_cycle"),
    ),
    fields=("runtime.g.goid", *NEWPROC_FIELDS),
    optional_fields=(PARENT_GOID,),  # read by bpf/context.h with ANCESTRY_PARENT_GOID
    variant=for_binary,
)
