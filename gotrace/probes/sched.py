"""Scheduler wait (opt-in, --sched-wait): for the goroutine a span runs on, the time it was
runnable but not running and the time it was blocked, by reason, while the span ran.

One hit per goroutine state change in the whole process (runtime.casgstatus): several per
request, which is why it is opt-in; `make bench` reports the cost. The sums travel in the
span's own record (sched_ns); gotrace/facts/scheduler.py names them.
"""

from __future__ import annotations

from gotrace.facts.scheduler import wait_class_macros
from gotrace.probes.base import Attachment, Feature, Probe
from gotrace.resolve.layout import Layout

CASGSTATUS = "runtime.casgstatus"


def wait_reason_macros(layout: Layout) -> dict[str, int] | str:
    """The binary's wait reasons by class (bpf/sched.c), and SCHED_WAIT, which turns on the
    accounting every span does (bpf/sched.h)."""
    classes = wait_class_macros(layout.wait_reasons)
    return {**classes, "SCHED_WAIT": 1} if classes else "runtime.waitReasonStrings not found"


PROBE = Probe(
    library="sched",
    attachments=(Attachment(CASGSTATUS, "entry", "sched_casgstatus"),),
    fields=("runtime.g.goid", "runtime.g.waitreason"),
    opt_in=True,
    features=(Feature("wait reasons", wait_reason_macros, required=True),),
)
