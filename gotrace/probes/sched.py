"""Scheduler wait (opt-in, --sched-wait): for the goroutine a span runs on, the time it was
runnable but not running and the time it was blocked, by reason, while the span ran.

One hit per goroutine state change in the whole process (runtime.casgstatus): several per
request, which is why it is opt-in; `make bench` reports the cost. The sums travel in the
span's own record (sched_ns); gotrace/sched_wait.py names them.
"""

from __future__ import annotations

from gotrace.probes.base import Attachment, Probe

CASGSTATUS = "runtime.casgstatus"

PROBE = Probe(
    library="sched",
    attachments=(Attachment(CASGSTATUS, "entry", "sched_casgstatus"),),
    fields=("runtime.g.goid", "runtime.g.waitreason"),
)
