"""What the Go runtime and the network did to a span, in a few words, for the console tree,
the terminal trees and the HTML report: the go.gc.*, go.sched.* and network.tcp.* attributes
side by side, flagged when they explain most of the span's duration."""

from __future__ import annotations

from gotrace.facts.scheduler import BLOCKED_REASONS
from gotrace.spans import Span

MOST = 0.5  # share of the duration above which a cause is said to explain the span


def slowdown(span: Span) -> str:
    """'' when nothing stands out; else e.g. 'GC pause 63%', '2 TCP retransmits'."""
    attrs = span.attributes
    duration = max(span.duration_ns, 1)
    notes = []
    pause = int(attrs.get("go.gc.pause_ns", 0))
    if pause > MOST * duration:
        notes.append(f"GC pause {100 * pause // duration}%")
    runnable = int(attrs.get("go.sched.runnable_ns", 0))
    if runnable > MOST * duration:
        notes.append(f"waiting for CPU {100 * runnable // duration}%")
    for reason in BLOCKED_REASONS:
        blocked = int(attrs.get(f"go.sched.blocked.{reason}_ns", 0))
        if blocked > MOST * duration:
            notes.append(f"blocked on {reason} {100 * blocked // duration}%")
    connect = int(attrs.get("network.tcp.connect_ns", 0))
    if connect > MOST * duration:
        notes.append(f"TCP connect {100 * connect // duration}%")
    retransmits = int(attrs.get("network.tcp.retransmits", 0))
    if retransmits:  # a resend waits 200 ms or more: it dominates any fast request
        notes.append(f"{retransmits} TCP retransmit{'s' if retransmits > 1 else ''}")
    return ", ".join(notes)
