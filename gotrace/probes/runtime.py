"""Goroutine ancestry: work a request's goroutine hands to goroutines it starts stays in its
trace. Two hits per goroutine creation; none per request on a keep-alive connection."""

from __future__ import annotations

from gotrace.probes.base import Attachment, Probe

NEWPROC1 = "runtime.newproc1"

PROBE = Probe(
    library="runtime",
    attachments=(
        Attachment(NEWPROC1, "entry", "newproc_entry"),
        Attachment(NEWPROC1, "return", "newproc_return"),
    ),
    fields=("runtime.g.goid",),
)
