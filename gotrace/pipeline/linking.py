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
span can come: the kernel is told at once rather than after a wait). The kernel, once told,
flags such a connection's server spans (Span.caller_untraced), which leave at once; gotrace's
own record of the connection then ages, and is renewed if the kernel forgets its mark.

With a link store (gotrace/pipeline/cross_host.py), a root server span called from another
host is held likewise until its caller's agent has published the calling span, or for the
hold time; client spans to other hosts are published as they leave for export.
"""

from __future__ import annotations

import collections
import functools
import ipaddress
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gotrace.addresses import is_unix_address
from gotrace.pipeline.cross_host import link_key
from gotrace.spans import Connection, Span

if TYPE_CHECKING:
    from gotrace.pipeline.cross_host import CrossHostLinks

WAIT_NS = 1_000_000_000  # how long a same-host server span waits for its client span
MAX_HELD_SPANS = 200_000  # beyond this, the oldest held traces are released unlinked
MAX_ADDRESS_PAIRS = 4096  # connections' address pairs remembered as local or not, then forgotten
MAX_REMEMBERED = 200_000  # released trace ids remembered for their late spans
MAX_UNTRACED_PEERS = 65_536  # connections known to have no traced client (bpf/sampling.h)
UNTRACED_PEER_REFRESH_NS = 1_000_000_000  # ... their latest request's time kept this fresh
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
    remote_key: bytes | None = None  # the root's link store key, while it waits there
    extended: bool = False  # its wait was extended once: the remote caller is pending


@dataclass
class LinkStats:
    linked: int = 0  # server spans joined to their client's trace
    unmatched: int = 0  # same-host server spans whose client span never came (untraced)
    overflow: int = 0  # traces released unlinked because too many spans were held


class Linker:
    """Feed it decoded spans in any order; it returns the spans ready for export."""

    def __init__(self, local_addresses: frozenset[str] | None = None,
                 wait_ns: int = WAIT_NS,
                 opened_untraced: Callable[[Connection], bool] = lambda _conn: False,
                 cross_host: CrossHostLinks | None = None) -> None:
        """opened_untraced: whether a server span's connection is known to have been opened
        by a process that gotrace does not trace. cross_host: the link store's side, when
        calls between hosts are linked."""
        self.local = host_addresses() if local_addresses is None else local_addresses
        self.wait_ns = wait_ns
        self._opened_untraced = opened_untraced
        self.stats = LinkStats()
        self._held: dict[bytes, _HeldTrace] = {}
        self._held_count = 0
        # Deadlines in the order they fall, one queue per length of wait: same-host, the
        # link store's hold, and its extension for a pending caller.
        self._deadlines: collections.deque[tuple[int, bytes]] = collections.deque()
        self._remote_deadlines: collections.deque[tuple[int, bytes]] = collections.deque()
        self._extended_deadlines: collections.deque[tuple[int, bytes]] = collections.deque()
        self.cross_host = cross_host
        self._remote_waiting: dict[bytes, Span] = {}  # link store key -> server root
        # Client spans to other hosts still held here (by id: one leaves in O(1)), and those
        # of them that came in the batch being added: published pending, then final.
        self._remote_clients: dict[int, tuple[bytes, Span]] = {}
        self._new_remote_clients: list[tuple[bytes, Span]] = []
        # Released traces' ids, oldest first, with the id each has now (its own, or its
        # caller's once linked): their late spans leave at once, and join the trace they did.
        self._renamed: dict[bytes, bytes] = {}
        self._local_peers: dict[tuple[str, str], bool] = {}  # (peer, local address) -> local
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
            # Most spans of a busy service are roots the kernel knew to have no traced caller:
            # released at once, without _add's renaming, which only a trace id from an
            # incoming traceparent can need (one linking renamed here, back through a
            # program gotrace does not trace).
            if span.caller_untraced and not span.remote_parent:
                self._release_root(span)
            else:
                self._add(span, now_ns)
        ready = self.expire(now_ns)
        if self._new_remote_clients:
            assert self.cross_host is not None
            for key, span in self._new_remote_clients:
                if span.trace_id in self._held:  # its trace may still change
                    self.cross_host.publish_pending(key, span)  # (released: final, sampled)
            self._new_remote_clients.clear()
        return ready

    def expire(self, now_ns: int) -> list[Span]:
        """Release what waited long enough; forget client spans too old to be matched."""
        if self.cross_host is not None:
            self._take_answers(now_ns)
        for deadlines in (self._deadlines, self._remote_deadlines, self._extended_deadlines):
            while deadlines and deadlines[0][0] <= now_ns:
                deadline, trace_id = deadlines.popleft()
                held = self._held.get(trace_id)
                if held is not None and held.deadline_ns == deadline:
                    self._give_up(held)
                    self._release(trace_id)
        while self._client_ages and self._client_ages[0][0] <= now_ns - 2 * self.wait_ns:
            _, key, client = self._client_ages.popleft()
            self._forget_client(key, client)
        while self._held_count > MAX_HELD_SPANS and self._held:
            self.stats.overflow += 1
            self._release(next(iter(self._held)))  # the oldest
        self._forget_oldest_released()
        return self._take_ready()

    def flush(self) -> list[Span]:
        """Everything still held, unlinked (the session ends)."""
        for trace_id in list(self._held):
            self._release(trace_id)
        return self._take_ready()

    def _take_ready(self) -> list[Span]:
        ready, self._ready = self._ready, []
        return ready

    def publish_released(self, released: list[Span], kept: list[Span]) -> None:
        """Publish the client spans to other hosts among those released, which the sampler
        has kept or not: their traces are final here."""
        if not self._remote_clients:
            return
        assert self.cross_host is not None
        kept_ids = None if len(kept) == len(released) else {id(span) for span in kept}
        for span in released:
            published = self._remote_clients.pop(id(span), None)
            if published is not None:
                self.cross_host.publish_final(published[0], span,
                                              kept_ids is None or id(span) in kept_ids)

    def _give_up(self, held: _HeldTrace) -> None:
        """A held trace's time is up: count why its root, if waiting, found no caller."""
        if held.root is None:
            return
        if held.remote_key is None:
            self.stats.unmatched += 1
            self._mark_untraced(held.root)
        else:
            assert self.cross_host is not None
            self.cross_host.stats.unlinked["not_found"] += 1

    @property
    def held(self) -> int:
        return self._held_count

    # --- mechanics -------------------------------------------------------------------------

    def _local_peer(self, conn: Connection) -> bool:
        """is_local_peer, remembered by the pair of addresses (a handful, asked per span)."""
        pair = (conn.peer_address, conn.local_address)
        local = self._local_peers.get(pair)
        if local is None:
            if len(self._local_peers) >= MAX_ADDRESS_PAIRS:
                self._local_peers.clear()
            local = self._local_peers[pair] = is_local_peer(conn, self.local)
        return local

    def _current_id(self, trace_id: bytes) -> bytes:
        for _ in range(8):  # linked traces chain: back -> middle -> front
            renamed = self._renamed.get(trace_id, trace_id)
            if renamed == trace_id:
                break
            trace_id = renamed
        return trace_id

    def _add(self, span: Span, now_ns: int) -> None:
        renamed = self._renamed.get(span.trace_id)
        if renamed is not None and renamed != span.trace_id:
            span.trace_id = self._current_id(renamed)
        self._place(span, now_ns)
        # After placing: a server span linked to this client joins the client's trace where
        # the client now is (held with it, or released).
        if span.kind == "CLIENT" and span.connection is not None:
            if self._local_peer(span.connection):  # a server here may be its callee
                self._index_client(span, now_ns)
            elif self.cross_host is not None:
                key = link_key(span)
                if key is not None:
                    self._remote_clients[id(span)] = (key, span)
                    self._new_remote_clients.append((key, span))

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
        if span.caller_untraced:  # the kernel knew: no traced client on its connection
            self._release_root(span)
            return
        # The connection a traced caller may have sent this root's request on.
        called_on = span.connection if span.kind == "SERVER" and not span.remote_parent \
            else None
        local = called_on is not None and self._local_peer(called_on)
        if not (local and self._linkable(span)):
            key = self.cross_host.server_key(span) if called_on is not None and not local and \
                self.cross_host is not None else None
            if key is not None:  # called from another host, whose agent may have published
                self._wait_remote(span, key, now_ns)
            else:
                self._release_root(span)
            return
        held = self._hold(span.trace_id, span, now_ns)
        client = self._find_client(span)
        if client is not None:
            self._link(span, client)
            return
        held.root = span
        self._waiting.setdefault(self._server_key(span), {})[id(span)] = span

    def _release_root(self, root: Span) -> None:
        """A root with no caller to wait for leaves with its trace's spans held so far."""
        held = self._held.get(root.trace_id)
        if held is not None:  # with its children that came first
            held.spans.append(root)
            self._held_count += 1
            self._release(root.trace_id)
        else:
            self._remember(root.trace_id, root.trace_id)
            self._ready.append(root)

    def _wait_remote(self, server: Span, key: bytes, now_ns: int) -> None:
        """Hold a root called from another host until its caller is found in the store."""
        assert self.cross_host is not None
        held = self._hold(server.trace_id, server, now_ns)
        held.root = server
        held.remote_key = key
        self._set_deadline(held, server.trace_id, now_ns + self.cross_host.hold_ns,
                           self._remote_deadlines)
        self._remote_waiting[key] = server
        self.cross_host.want(key, self.cross_host.hold_ns + self.cross_host.pending_ns)

    def _set_deadline(self, held: _HeldTrace, trace_id: bytes, deadline_ns: int,
                      deadlines: collections.deque[tuple[int, bytes]]) -> None:
        """A new deadline for a held trace (its entries in other queues become stale)."""
        held.deadline_ns = deadline_ns
        deadlines.append((deadline_ns, trace_id))

    def _take_answers(self, now_ns: int) -> None:
        """Link the roots whose callers the store has found; wait longer for pending ones;
        release them all when the store is down."""
        assert self.cross_host is not None
        for key, decision, trace_id, span_id in self.cross_host.answers():
            server = self._remote_waiting.get(key)
            if server is None:
                continue
            if decision is not None:
                if server.sampling == "deferred":  # the caller's decides for its trace
                    server.sampling = decision
                self._join(server, trace_id, span_id)
                self.cross_host.stats.linked += 1
                continue
            held = self._held[server.trace_id]
            if not held.extended:
                held.extended = True
                self._set_deadline(held, server.trace_id, now_ns + self.cross_host.pending_ns,
                                   self._extended_deadlines)
        if self._remote_waiting and not self.cross_host.store.up:
            for server in list(self._remote_waiting.values()):
                self.cross_host.stats.unlinked["store_down"] += 1
                self._release(server.trace_id)

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
        if held.remote_key is not None:
            if self._remote_waiting.get(held.remote_key) is held.root:
                del self._remote_waiting[held.remote_key]
                assert self.cross_host is not None
                self.cross_host.forget(held.remote_key)
        elif held.root is not None:
            self._unwait(held.root)
        return held

    def _release(self, trace_id: bytes) -> None:
        held = self._unhold(trace_id)
        self._remember(trace_id, trace_id)
        self._ready.extend(held.spans)

    def _remember(self, old: bytes, new: bytes) -> None:
        self._renamed[old] = new  # (expire keeps them within MAX_REMEMBERED)

    def _forget_oldest_released(self) -> None:
        """Past MAX_REMEMBERED released traces, the oldest quarter at once: O(1) a span."""
        renamed = self._renamed
        if len(renamed) > MAX_REMEMBERED:
            for trace_id in list(itertools.islice(renamed, MAX_REMEMBERED // 4)):
                del renamed[trace_id]

    def _linkable(self, span: Span) -> bool:
        """Whether a server span called from this host may have a traced caller."""
        key = self._server_key(span)[0]
        known = self._untraced.get(key)
        start = span.monotonic_start_ns
        if known is None or start - known[0] > UNTRACED_PEER_IDLE_NS:
            if known is not None:
                del self._untraced[key]
            if self._opened_untraced(span.connection):
                self._mark_untraced(span)
                return False
            return True
        told = known[1]
        if span.sampling == "deferred":  # the kernel has not heard, or has forgotten
            told = self._tell_kernel(span, told)
        # The newest last, moved there now and then rather than for every request.
        if told != known[1] or start - known[0] > UNTRACED_PEER_REFRESH_NS:
            del self._untraced[key]
            self._untraced[key] = (start, told)
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
        self._join(server, client.trace_id, client.span_id)
        self.stats.linked += 1

    def _join(self, server: Span, trace_id: bytes, parent_span_id: bytes) -> None:
        """The server's trace becomes the caller's: in it, the server span is the calling
        span's child."""
        old = server.trace_id
        held = self._unhold(old)
        new = self._current_id(trace_id)
        for span in held.spans:
            span.trace_id = new
        server.parent_span_id = parent_span_id
        self._remember(old, new)
        target = self._held.get(new)
        if target is None:
            self._ready.extend(held.spans)
        else:
            target.spans.extend(held.spans)
            self._held_count += len(held.spans)
