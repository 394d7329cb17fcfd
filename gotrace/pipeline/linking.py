"""Same-host linking: a SERVER span joins the trace of the traced CLIENT span that sent its
request, found by the TCP connection seen from both ends (the 4-tuple, reversed). Nothing
is written into the programs.

Which request on a connection:
  - HTTP/2 (gRPC): the stream id, which both ends read and which is never reused on a
    connection;
  - HTTP/1: Go sends one request at a time per connection, and the next only after the
    previous call returned, so the server span that started while the client call was in
    progress is its request.
A start-time check applies to both, so a 4-tuple reused by a later connection cannot match.

Spans arrive bottom-up: a request's own client calls finish before it, and the CLIENT span
that sent it finishes after it. So spans are held per trace until the trace's local root (the
span without a parent in this process) has arrived and either linked or waited WAIT_NS for
its client; a linked trace takes the client's trace id and, when the client's trace is itself
still held, travels on with it (front -> middle -> back become one trace however the
spans interleave). Spans whose peer is not on this host are never held, nor those of a
connection on which a server span already waited in vain, while its requests keep coming,
nor those of a connection that a process gotrace does not trace was seen to open (no client
span can come: the kernel is told at once rather than after a wait).
"""

from __future__ import annotations

import collections
import functools
import ipaddress
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gotrace.addresses import is_unix_address
from gotrace.spans import Connection, Span

WAIT_NS = 1_000_000_000  # how long a same-host server span waits for its client span
MAX_HELD_SPANS = 200_000  # beyond this, the oldest held traces are released unlinked
MAX_REMEMBERED = 200_000  # released trace ids remembered for their late spans
MAX_UNTRACED_PEERS = 65_536  # connections known to have no traced client (bpf/sampling.h)
UNTRACED_PEER_IDLE_NS = 10_000_000_000  # ... trusted while their requests are this close
TELL_KERNEL_AGAIN_NS = 1_000_000_000  # a connection's mark is sent to the kernel this seldom

ConnKey = tuple[str, int, str, int]  # (local address, port, peer address, port)


def host_addresses() -> frozenset[str]:
    """This host's own addresses (its network namespace): IPv4 from the kernel's local
    routes, IPv6 from the interface list."""
    found: set[str] = set()
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        lines = []
    for prev, line in itertools.pairwise(lines):
        if "/32 host LOCAL" in line and "|--" in prev:
            found.add(prev.split("|--")[1].strip())
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            raw = line.split()[0]
            found.add(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
    except (OSError, ValueError, IndexError):
        pass
    return frozenset(found)


@functools.lru_cache(maxsize=4096)
def _loopback(address: str) -> bool | None:
    """Whether an address is a loopback one; None when it is no address. Remembered: every
    server span asks, about the same few addresses."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return None


def is_local_peer(conn: Connection, local: frozenset[str]) -> bool:
    if is_unix_address(conn.peer_address):
        return True
    loopback = _loopback(conn.peer_address)
    if loopback is None:
        return False
    return loopback or conn.peer_address == conn.local_address or conn.peer_address in local


@dataclass
class _HeldTrace:
    deadline_ns: int
    spans: list[Span] = field(default_factory=list)
    root: Span | None = None  # set while the root waits for its client


@dataclass
class LinkStats:
    linked: int = 0  # server spans joined to their client's trace
    unmatched: int = 0  # same-host server spans whose client span never came (untraced)
    overflow: int = 0  # traces released unlinked because too many spans were held


class SameHostLinker:
    """Feed it decoded spans in any order; it returns the spans ready for export."""

    def __init__(self, local_addresses: frozenset[str] | None = None,
                 wait_ns: int = WAIT_NS,
                 opened_untraced: Callable[[Connection], bool] = lambda _conn: False) -> None:
        """opened_untraced: whether a server span's connection is known to have been opened
        by a process that gotrace does not trace."""
        self.local = host_addresses() if local_addresses is None else local_addresses
        self.wait_ns = wait_ns
        self._opened_untraced = opened_untraced
        self.stats = LinkStats()
        self._held: dict[bytes, _HeldTrace] = {}
        self._held_count = 0
        self._deadlines: collections.deque[tuple[int, bytes]] = collections.deque()
        self._renamed: collections.OrderedDict[bytes, bytes] = collections.OrderedDict()
        self._clients: dict[tuple[ConnKey, int], collections.deque[Span]] = {}
        self._client_ages: collections.deque[tuple[int, tuple[ConnKey, int], Span]] = \
            collections.deque()
        # Server spans waiting for their client, by id() so one leaves in O(1) (a busy
        # keep-alive connection from an untraced client has thousands waiting).
        self._waiting: dict[tuple[ConnKey, int], dict[int, Span]] = {}
        self._ready: list[Span] = []
        # Connections on which a server span waited for a client span in vain: no traced
        # client at the other end. The tracer tells the kernel (bpf/sampling.h), then clears.
        self.untraced_peers: list[tuple[Connection, int]] = []  # (connection, monotonic ns)
        # The same, remembered here with the times of their latest request and of the latest
        # mark sent to the kernel: their spans are released at once while requests keep
        # coming (bpf/sampling.h tells why not longer).
        self._untraced: dict[ConnKey, tuple[int, int]] = {}

    # --- the interface ---------------------------------------------------------------------

    def add(self, spans: Iterable[Span], now_ns: int) -> list[Span]:
        for span in spans:
            self._add(span, now_ns)
        return self.expire(now_ns)

    def expire(self, now_ns: int) -> list[Span]:
        """Release what waited long enough; forget client spans too old to be matched."""
        while self._deadlines and self._deadlines[0][0] <= now_ns:
            deadline, trace_id = self._deadlines.popleft()
            held = self._held.get(trace_id)
            if held is not None and held.deadline_ns == deadline:
                if held.root is not None:
                    self.stats.unmatched += 1
                    self._mark_untraced(held.root)
                self._release(trace_id)
        while self._client_ages and self._client_ages[0][0] <= now_ns - 2 * self.wait_ns:
            _, key, client = self._client_ages.popleft()
            self._forget_client(key, client)
        while self._held_count > MAX_HELD_SPANS and self._deadlines:
            _, trace_id = self._deadlines.popleft()
            if trace_id in self._held:
                self.stats.overflow += 1
                self._release(trace_id)
        ready, self._ready = self._ready, []
        return ready

    def flush(self) -> list[Span]:
        """Everything still held, unlinked (the session ends)."""
        for trace_id in list(self._held):
            self._release(trace_id)
        ready, self._ready = self._ready, []
        return ready

    @property
    def held(self) -> int:
        return self._held_count

    # --- mechanics -------------------------------------------------------------------------

    def _current_id(self, trace_id: bytes) -> bytes:
        for _ in range(8):  # linked traces chain: back -> middle -> front
            renamed = self._renamed.get(trace_id, trace_id)
            if renamed == trace_id:
                break
            trace_id = renamed
        return trace_id

    def _add(self, span: Span, now_ns: int) -> None:
        span.trace_id = self._current_id(span.trace_id)
        self._place(span, now_ns)
        # After placing: a server span linked to this client joins the client's trace where
        # the client now is (held with it, or released).
        if span.kind == "CLIENT" and span.connection is not None:
            self._index_client(span, now_ns)

    def _place(self, span: Span, now_ns: int) -> None:
        """Hold the span with its trace, or release it (and the trace) when that is final."""
        is_root = span.parent_span_id is None or span.remote_parent
        if not is_root:
            if span.trace_id in self._held:
                self._hold(span.trace_id, span, now_ns)
            elif span.trace_id in self._renamed:  # its trace was released already
                self._ready.append(span)
            else:  # its root has not arrived
                self._hold(span.trace_id, span, now_ns)
            return
        if not self._linkable(span):
            if span.trace_id in self._held:  # with its children that came first
                self._hold(span.trace_id, span, now_ns)
                self._release(span.trace_id)
            else:
                self._remember(span.trace_id, span.trace_id)
                self._ready.append(span)
            return
        held = self._hold(span.trace_id, span, now_ns)
        client = self._find_client(span)
        if client is not None:
            self._link(span, client)
            return
        held.root = span
        self._waiting.setdefault(self._server_key(span), {})[id(span)] = span

    def _hold(self, trace_id: bytes, span: Span, now_ns: int) -> _HeldTrace:
        held = self._held.get(trace_id)
        if held is None:
            held = self._held[trace_id] = _HeldTrace(now_ns + self.wait_ns)
            self._deadlines.append((held.deadline_ns, trace_id))
        held.spans.append(span)
        self._held_count += 1
        return held

    def _unhold(self, trace_id: bytes) -> _HeldTrace:
        """Take a trace out of the held ones (and its root out of the waiting ones)."""
        held = self._held.pop(trace_id)
        self._held_count -= len(held.spans)
        if held.root is not None:
            self._unwait(held.root)
        return held

    def _release(self, trace_id: bytes) -> None:
        held = self._unhold(trace_id)
        self._remember(trace_id, trace_id)
        self._ready.extend(held.spans)

    def _remember(self, old: bytes, new: bytes) -> None:
        self._renamed[old] = new
        if len(self._renamed) > MAX_REMEMBERED:
            self._renamed.popitem(last=False)

    def _linkable(self, span: Span) -> bool:
        if span.kind != "SERVER" or span.remote_parent or span.connection is None or \
                not is_local_peer(span.connection, self.local):
            return False
        key = self._server_key(span)[0]
        known = self._untraced.pop(key, None)
        if known is None or span.monotonic_start_ns - known[0] > UNTRACED_PEER_IDLE_NS:
            if self._opened_untraced(span.connection):
                self._mark_untraced(span)
                return False
            return True
        told = known[1]
        if span.sampling == "deferred":  # the kernel has not heard, or has forgotten
            told = self._tell_kernel(span, told)
        self._untraced[key] = (span.monotonic_start_ns, told)  # the newest last
        return False

    def _mark_untraced(self, server: Span) -> None:
        assert server.connection is not None
        key = self._server_key(server)[0]
        known = self._untraced.pop(key, None)
        # Roots of one connection expire in a row: the kernel is told once, not per span.
        told = self._tell_kernel(server, known[1] if known else None)
        self._untraced[key] = (server.monotonic_start_ns, told)
        if len(self._untraced) > MAX_UNTRACED_PEERS:
            del self._untraced[next(iter(self._untraced))]

    def _tell_kernel(self, server: Span, told_ns: int | None) -> int:
        """Queue the connection's mark for the kernel unless it went lately; when it went."""
        assert server.connection is not None
        now = server.monotonic_start_ns
        if told_ns is not None and now - told_ns < TELL_KERNEL_AGAIN_NS:
            return told_ns
        self.untraced_peers.append((server.connection, now))
        return now

    @staticmethod
    def _client_key(span: Span) -> tuple[ConnKey, int]:
        c = span.connection
        assert c is not None
        return (c.local_address, c.local_port, c.peer_address, c.peer_port), span.stream_id

    @staticmethod
    def _server_key(span: Span) -> tuple[ConnKey, int]:
        """The key the client's end of this server span's connection has."""
        c = span.connection
        assert c is not None
        return (c.peer_address, c.peer_port, c.local_address, c.local_port), span.stream_id

    @staticmethod
    def _sent(client: Span, server: Span) -> bool:
        return client.monotonic_start_ns <= server.monotonic_start_ns <= \
            client.monotonic_end_ns

    def _index_client(self, client: Span, now_ns: int) -> None:
        key = self._client_key(client)
        for server in self._waiting.get(key, {}).values():
            if self._sent(client, server):
                self._link(server, client)
                break
        self._clients.setdefault(key, collections.deque()).append(client)
        self._client_ages.append((now_ns, key, client))

    def _forget_client(self, key: tuple[ConnKey, int], client: Span) -> None:
        """A client span too old to be matched leaves its connection's. They leave in the
        order they came (the ages' order), so it is the oldest there: O(1), also for a
        keep-alive connection with thousands of calls to a server nobody traces (a
        database's)."""
        clients = self._clients.get(key)
        if clients is None:
            return
        if clients and clients[0] is client:
            clients.popleft()
        else:
            kept = collections.deque(c for c in clients if c is not client)
            clients.clear()
            clients.extend(kept)
        if not clients:
            del self._clients[key]

    def _find_client(self, server: Span) -> Span | None:
        return next((c for c in self._clients.get(self._server_key(server), ())
                     if self._sent(c, server)), None)

    def _unwait(self, server: Span) -> None:
        key = self._server_key(server)
        waiting = self._waiting.get(key)
        if waiting is not None:
            waiting.pop(id(server), None)
            if not waiting:
                del self._waiting[key]

    def _link(self, server: Span, client: Span) -> None:
        """The server's trace becomes the client's: in it, the server span is the client
        span's child."""
        old = server.trace_id
        held = self._unhold(old)
        new = self._current_id(client.trace_id)
        for span in held.spans:
            span.trace_id = new
        server.parent_span_id = client.span_id
        self.stats.linked += 1
        self._remember(old, new)
        target = self._held.get(new)
        if target is None:
            self._ready.extend(held.spans)
        else:
            target.spans.extend(held.spans)
            self._held_count += len(held.spans)
