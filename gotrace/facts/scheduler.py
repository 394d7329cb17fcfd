"""Scheduler wait (--sched-wait): what the goroutine serving a span waited for.

The kernel side (bpf/sched.h, bpf/sched.c) sums, per followed goroutine, the time it was
runnable but not running and the time it was blocked by class of reason; each span carries
the part that fell within it. This module builds the reason classes from the binary's own
names for its wait reasons, and names the sums on the span.

Attributes (documented in the README), all in nanoseconds during the span, for the goroutine
the span began on:
  go.sched.runnable_ns          ready to run, waiting for a processor (CPU contention,
                                GOMAXPROCS too low)
  go.sched.blocked.network_ns   waiting for the network poller (socket reads and writes)
  go.sched.blocked.channel_ns   channel send, receive or select
  go.sched.blocked.lock_ns      sync.Mutex, RWMutex, WaitGroup, Cond, semaphores
  go.sched.blocked.sleep_ns     time.Sleep
  go.sched.blocked.syscall_ns   in system calls
  go.sched.blocked.other_ns     any other reason (GC assist, ...)
"""

from __future__ import annotations

import struct

from gotrace.records import F_SCHED, SCHED_SLOTS, SpanRecord
from gotrace.spans import AttributeValue

WORD_BITS = 63  # mask bits per macro
_SLOTS = struct.Struct(f"={len(SCHED_SLOTS)}Q")  # SpanRecord.sched_ns, as the record holds it

BLOCKED_REASONS = SCHED_SLOTS[1:]  # SCHED_SLOTS[0] is the runnable time
ATTRIBUTE_NAMES = ("go.sched.runnable_ns",
                   *(f"go.sched.blocked.{reason}_ns" for reason in BLOCKED_REASONS))


def reason_class(name: str) -> str:
    """The class of a runtime wait reason, by its name in runtime.waitReasonStrings."""
    if name == "IO wait":
        return "network"
    if name.startswith(("chan ", "select")):
        return "channel"
    if name.startswith("sync.") or name == "semacquire":
        return "lock"
    if name == "sleep":
        return "sleep"
    return "other"


def wait_class_macros(reason_names: list[str]) -> dict[str, int]:
    """WAIT_CLASS_<CLASS>_LO/_HI bit masks of the waitReason values in each class that
    bpf/sched.c tells apart (LO: values 0-62, HI: 63-125, so that each fits a signed 64-bit
    literal); {} when the binary's wait reasons are unknown."""
    if not reason_names:
        return {}
    masks = dict.fromkeys(("network", "channel", "lock", "sleep"), 0)
    for value, name in enumerate(reason_names[:2 * WORD_BITS]):
        cls = reason_class(name)
        if cls in masks:
            masks[cls] |= 1 << value
    macros = {}
    for cls, mask in masks.items():
        macros[f"WAIT_CLASS_{cls.upper()}_LO"] = mask & (2**WORD_BITS - 1)
        macros[f"WAIT_CLASS_{cls.upper()}_HI"] = mask >> WORD_BITS
    return macros


class SchedWait:
    """The fact source of go.sched.* (see gotrace/pipeline/decode.py FactSource): the figures are in
    the span's own record, there are no separate events."""

    def __init__(self, on: bool) -> None:
        """on: the sched probe runs (--sched-wait); without it no record has the figures."""
        # None: every span is asked about; -1: none is (see FactSource).
        self.latest_event_ns: int | None = None if on else -1

    def record(self, rec: SpanRecord) -> bool:
        return False

    def usual(self, rec: SpanRecord) -> dict[str, AttributeValue]:
        return {}

    def attributes(self, rec: SpanRecord) -> dict[str, AttributeValue] | None:
        if not rec.flags & F_SCHED:
            return None
        return dict(zip(ATTRIBUTE_NAMES, _SLOTS.unpack(rec.sched_ns), strict=True))
