"""Cross-host linking: which spans meet in the link store, under which key, with what value.

A TCP connection is named alike at both ends, whatever NAT did to its addresses, by its two
initial sequence numbers (the kernel reads them at the probes: bpf/conn.h), and a request on
it by its HTTP/2 stream id, or for HTTP/1 by the bytes the server had written on the
connection before the request's response, which are exactly the bytes the client had read
before sending the request (Go clients send the next request on a connection only once the
previous response is read). So the client's agent publishes its CLIENT span under
`gt1:<isn client><isn server>:<s stream | p position>` and the agent of the host that served
the request looks its SERVER span's key up.

The value is one flags byte, the trace id and the span id; once final, the flags also say
whether the caller's trace was kept, which a callee whose kernel left the decision to
gotrace (bpf/sampling.h) then follows, so that a trace is sampled alike on every host. A
client span is published when its trace is final here (it leaves the linker for export and
is sampled): before that the trace may still join a caller's trace on yet another host.
Meanwhile it is published as PENDING, which tells the server's agent that a
traced caller exists and is worth waiting for beyond the hold time: without that, a chain of
hosts would need ever longer holds from the back to the front. Keys expire in the store by
themselves; nothing but ids, sequence numbers and byte or stream counts is stored.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from gotrace.metrics.counters import CrossHostCounts
from gotrace.pipeline.link_store import LinkStore
from gotrace.records import TCP_ID_KNOWN, TCP_ID_POSITION
from gotrace.spans import Sampling, Span

DEFAULT_LINK_HOLD_S = 1.0
# A pending caller's trace becomes final once the hosts above it have linked it, each within
# its own hold: wait that many holds more (at least MIN_PENDING_S) for a pending caller.
PENDING_HOLDS = 4
MIN_PENDING_S = 5.0
MIN_TTL_S = 10.0
# A server span reaches its agent before its caller's span has even ended: its key is asked
# for from this much later on, when the caller's agent has usually written it.
FIRST_LOOKUP_S = 0.1
KEY_VERSION = b"gt1"
FINAL = 1  # the value names the client span's trace and span for good
PENDING = 2  # the client span's trace may still change: wait for FINAL
SAMPLED = 4  # with FINAL: the caller's trace was kept (its sampler's decision, for the callee)
VALUE_SIZE = 1 + 16 + 8
_IDENTITY = struct.Struct("<4I")  # isn_client, isn_server, position, flags


def link_key(span: Span) -> bytes | None:
    """The store key both ends of the span's request compute, or None when the kernel could
    not read the connection's identity (or, for HTTP/1, the request's position)."""
    identity = span.tcp_identity
    if len(identity) != _IDENTITY.size:
        return None
    isn_client, isn_server, position, flags = _IDENTITY.unpack(identity)
    if not flags & TCP_ID_KNOWN:
        return None
    if span.stream_id:
        return b"%s:%08x%08x:s%x" % (KEY_VERSION, isn_client, isn_server, span.stream_id)
    if flags & TCP_ID_POSITION:
        return b"%s:%08x%08x:p%x" % (KEY_VERSION, isn_client, isn_server, position)
    return None


def is_final(value: bytes) -> bool:
    """Whether a stored value is the last its key will have."""
    return value[:1] != bytes((PENDING,))


def link_value(flags: int, span: Span) -> bytes:
    return bytes((flags,)) + span.trace_id + span.span_id


def read_value(value: bytes) -> tuple[int, bytes, bytes] | None:
    """(flags, trace id, span id) of a stored value; None for one this version cannot read."""
    if len(value) != VALUE_SIZE or value[0] not in (FINAL, FINAL | SAMPLED, PENDING):
        return None
    return value[0], value[1:17], value[17:]


@dataclass(frozen=True)
class LinkTimes:
    hold_ns: int  # a server span's wait for its caller's key
    pending_ns: int  # ... more, once its caller's agent said the caller's trace is pending
    ttl_ms: int  # how long the store keeps a key: twice the longest a reader may ask for it

    @classmethod
    def for_hold(cls, hold_s: float) -> LinkTimes:
        hold_ns = int(hold_s * 1e9)
        pending_ns = max(PENDING_HOLDS * hold_ns, int(MIN_PENDING_S * 1e9))
        return cls(hold_ns, pending_ns,
                   max(int(MIN_TTL_S * 1000), 2 * (hold_ns + pending_ns) // 1_000_000))


@dataclass
class CrossHostStats:
    linked: int = 0  # server spans joined to a caller's trace on another host
    unlinked: dict[str, int] = field(default_factory=lambda: {
        "not_found": 0,  # no traced caller published the request in time
        "store_down": 0,  # the store was unavailable when the span came, or while it waited
        "no_identity": 0,  # the kernel could not name the connection or the request
    })

    def summary(self) -> str:
        return f"linked {self.linked}, unlinked " + ", ".join(
            f"{reason}={n}" for reason, n in self.unlinked.items())


class CrossHostLinks:
    """The linker's side of the store: which spans take part, and the keys' bookkeeping."""

    def __init__(self, store: LinkStore, hold_ns: int, pending_ns: int) -> None:
        """hold_ns: how long a server span waits for its caller's key to appear at all;
        pending_ns: how much longer, once the caller's agent said its trace is not final."""
        self.store = store
        self.hold_ns = hold_ns
        self.pending_ns = pending_ns
        self.stats = CrossHostStats()

    def server_key(self, span: Span) -> bytes | None:
        """The key of a root server span called from another host, when it is worth waiting
        for (the store is up); counts why not otherwise."""
        key = link_key(span)
        if key is None:
            self.stats.unlinked["no_identity"] += 1
        elif not self.store.up:
            self.stats.unlinked["store_down"] += 1
            return None
        return key

    def close(self) -> None:
        self.store.close()

    def counts(self) -> CrossHostCounts:
        store = self.store.stats
        return CrossHostCounts(self.stats.linked, dict(self.stats.unlinked), store.published,
                               dict(store.publish_dropped), store.round_trips, store.outages)

    def publish_pending(self, key: bytes, span: Span) -> None:
        self.store.publish(key, link_value(PENDING, span))

    def publish_final(self, key: bytes, span: Span, sampled: bool) -> None:
        self.store.publish(key, link_value(FINAL | (SAMPLED if sampled else 0), span))

    def want(self, key: bytes, wait_ns: int) -> None:
        """Ask the store for key for wait_ns from now, from FIRST_LOOKUP_S on."""
        self.store.want(key, wait_ns / 1e9, after=FIRST_LOOKUP_S)

    def forget(self, key: bytes) -> None:
        self.store.forget(key)

    def answers(self) -> list[tuple[bytes, Sampling | None, bytes, bytes]]:
        """(key, the caller's decision or None while it is pending, trace id, span id) of the
        keys found since the last call."""
        found = []
        for key, value in self.store.answers():
            read = read_value(value)
            if read is not None:
                flags, trace_id, span_id = read
                decision: Sampling | None = None
                if flags & FINAL:
                    decision = "sampled" if flags & SAMPLED else "link-only"
                found.append((key, decision, trace_id, span_id))
        return found
