"""Goroutine ancestry: work a request's goroutine hands to goroutines it starts stays in its
trace. Two hits per goroutine creation; none per request on a keep-alive connection.

Also the runtime's own events, attributed to spans by gotrace/runtime_facts.py:
stop-the-world pauses (three hits per pause) and GC cycle starts (one hit per cycle)."""

from __future__ import annotations

from gotrace.probes.base import Attachment, Probe

NEWPROC1 = "runtime.newproc1"
STOP_THE_WORLD = "runtime.stopTheWorldWithSema"
START_THE_WORLD = "runtime.startTheWorldWithSema"
GC_START = "runtime.(*gcControllerState).startCycle"

PROBE = Probe(
    library="runtime",
    attachments=(
        Attachment(NEWPROC1, "entry", "newproc_entry"),
        Attachment(NEWPROC1, "return", "newproc_return"),
        Attachment(STOP_THE_WORLD, "entry", "stw_begin"),
        Attachment(START_THE_WORLD, "entry", "stw_restart_called"),
        Attachment(START_THE_WORLD, "return", "stw_end"),
        Attachment(GC_START, "entry", "gc_cycle"),
    ),
    fields=("runtime.g.goid",),
)
