"""TCP trouble on a span's connection, from kernel tracepoints (bpf/tcp_events.c).

Attributes (documented in the README):
  network.tcp.retransmits   segments of the span's connection resent, by either end on this
                            host, while the span ran
  network.tcp.connect_ns    client spans whose connection was opened while they ran: the
                            TCP handshake's duration (SYN sent to established)

It also remembers which process opened each connection (the connecting end's PID), which
same-host linking asks when a server span's caller is on this host.

The events come from one BPF program for the whole tracer (gotrace/kernel/tcp_events.py),
polled after the probes' ring buffers and decoded before their spans, so that every event
that happened before a span ended is known when the span is decoded.
"""

from __future__ import annotations

import collections
from collections.abc import Collection

from gotrace.addresses import address_bytes
from gotrace.facts.runtime import count_between
from gotrace.records import (
    EVENT_KIND_TCP_CONNECT,
    EVENT_KIND_TCP_RETRANSMIT,
    F_HAS_CONN,
    SpanRecord,
)
from gotrace.spans import AttributeValue, Connection

EVENT_KINDS = frozenset({EVENT_KIND_TCP_RETRANSMIT, EVENT_KIND_TCP_CONNECT})
KEEP_PER_CONNECTION = 1024
MAX_CONNECTIONS = 65536
NO_RETRANSMITS: dict[str, AttributeValue] = {"network.tcp.retransmits": 0}

Endpoint = tuple[bytes, int]


def _endpoints(rec: SpanRecord) -> tuple[Endpoint, Endpoint]:
    return (bytes(rec.local_addr), rec.local_port), (bytes(rec.peer_addr), rec.peer_port)


def _connection(rec: SpanRecord) -> tuple[Endpoint, Endpoint]:
    """The connection whichever end looks at it."""
    a, b = _endpoints(rec)
    return (a, b) if a <= b else (b, a)


class NetworkFacts:
    """Recent retransmits per connection; handshakes, with the connecting process, per
    (local, peer) endpoint pair of the connecting end."""

    def __init__(self, client_kinds: Collection[int]) -> None:
        self._client_kinds = frozenset(client_kinds)  # record kinds of client spans
        self._retransmits: collections.OrderedDict[tuple, collections.deque[int]] = \
            collections.OrderedDict()
        # (local, peer) endpoint pair of the connecting end -> (SYN sent, established, PID)
        self._connects: collections.OrderedDict[tuple, tuple[int, int, int]] = \
            collections.OrderedDict()
        self.retransmits = 0
        self.events = 0
        # The newest retransmit or handshake end (a FactSource's latest_event_ns).
        self.latest_event_ns = -1

    def record(self, rec: SpanRecord) -> bool:
        """Take a TCP event; False when the record is not one."""
        if rec.kind not in EVENT_KINDS:
            return False
        self.events += 1
        if rec.kind == EVENT_KIND_TCP_RETRANSMIT:
            key = _connection(rec)
            times = self._retransmits.get(key)
            if times is None:
                times = self._retransmits[key] = collections.deque(maxlen=KEEP_PER_CONNECTION)
                if len(self._retransmits) > MAX_CONNECTIONS:
                    self._retransmits.popitem(last=False)
            times.append(rec.start_ns)
            self.latest_event_ns = max(self.latest_event_ns, rec.start_ns)
            self.retransmits += 1
        else:
            key = _endpoints(rec)
            self._connects.pop(key, None)  # a reused 4-tuple: the newest last
            self._connects[key] = (rec.start_ns, rec.end_ns, rec.pid)
            self.latest_event_ns = max(self.latest_event_ns, rec.end_ns)
            if len(self._connects) > MAX_CONNECTIONS:
                self._connects.popitem(last=False)
        return True

    def opener(self, accepted: Connection) -> int | None:
        """The PID of the process that opened a connection, given as its accepting end sees
        it; None when its opening was not seen (before gotrace started, or another host)."""
        connecting_end = (address_bytes(accepted.peer_address), accepted.peer_port)
        accepting_end = (address_bytes(accepted.local_address), accepted.local_port)
        connect = self._connects.get((connecting_end, accepting_end))
        return connect[2] if connect else None

    def usual(self, rec: SpanRecord) -> dict[str, AttributeValue]:
        return NO_RETRANSMITS if rec.flags & F_HAS_CONN else {}

    def attributes(self, rec: SpanRecord) -> dict[str, AttributeValue] | None:
        """None: no connection, or no retransmit and no handshake during the span."""
        if not rec.flags & F_HAS_CONN:
            return None
        start, end = rec.start_ns, rec.end_ns
        count = count_between(self._retransmits.get(_connection(rec), ()), start, end) \
            if self._retransmits else 0  # none seen: the common case, without a key to build
        connect_ns = None
        if self._connects and rec.kind in self._client_kinds:
            handshake = self._connects.get(_endpoints(rec))
            if handshake and start <= handshake[1] <= end:
                connect_ns = handshake[1] - handshake[0]
        if not count and connect_ns is None:
            return None
        attrs: dict[str, AttributeValue] = {"network.tcp.retransmits": count}
        if connect_ns is not None:
            attrs["network.tcp.connect_ns"] = connect_ns
        return attrs
