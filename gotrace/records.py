"""The span record from bpf/record.h, decoded in user space.

The ctypes mirror below must match the C struct byte for byte; tests/test_records.py compiles
the header with gcc and compares every field's offset and the total size.
"""

from __future__ import annotations

import ctypes
import ipaddress
from collections.abc import Iterable

# Runtime and network events, not spans: what gotrace/facts/runtime.py and
# gotrace/facts/network.py attribute to spans. Span kinds are numbered below them, from the
# probes' declarations (gotrace/probes).
EVENT_KIND_STW_PAUSE = 100  # a stop-the-world pause: start_ns..end_ns
EVENT_KIND_GC_CYCLE = 101  # a GC cycle began at start_ns
EVENT_KIND_TCP_RETRANSMIT = 102  # a segment of the connection resent, at start_ns
EVENT_KIND_TCP_CONNECT = 103  # the connection's handshake: start_ns..end_ns
EVENT_KINDS = {"STW_PAUSE": EVENT_KIND_STW_PAUSE, "GC_CYCLE": EVENT_KIND_GC_CYCLE,
               "TCP_RETRANSMIT": EVENT_KIND_TCP_RETRANSMIT, "TCP_CONNECT": EVENT_KIND_TCP_CONNECT}
FIRST_EVENT_KIND = min(EVENT_KINDS.values())

F_HAS_PARENT = 1  # parent_span_id is set
F_REMOTE_PARENT = 2  # the parent came from an incoming traceparent
F_TRANSPORT_ERROR = 4  # a client call ended with an error, no response
F_HAS_CONN = 8  # the addresses are known
F_HAS_QUERY = 16  # the URL had a query string (not exported by default)
F_SCHED = 32  # sched_ns holds the goroutine's scheduler waits (--sched-wait)
# The trace's sampling decision (bpf/sampling.h): kept; or left to gotrace, which learns the
# trace of a same-host caller only when it links the spans (gotrace/pipeline/sampling.py). A
# span with neither is a client call of an unsampled trace to this host, sent only so that its
# callee is linked (and dropped) alike.
F_SAMPLED = 64
F_DEFERRED = 128
# A Unix socket (bpf/conn.h): local_addr and peer_addr hold the kernel's struct sock address
# and the inode number (as `ss -x` shows it; 0 while unknown) of the span's socket and of its
# peer, 8 bytes each; the ports are 0.
F_UNIX = 256
# The sampler kept the trace but gotrace's overload policy sheds it (bpf/shedding.h): with
# F_SAMPLED, a span of a trace kept for an error or a slow request; alone, a client span to
# this host sent only so that its callee is decided with it.
F_SHED = 512
# The route field holds references to a router's template strings in the traced process,
# not text (bpf/route.h; gotrace/probes/http_routes.py reads them).
F_ROUTE_REFS = 1024
# The route field holds a router's tree (its root node, for the request's method) and the
# length of the path it routed: gotrace matches the path in the tree (httprouter, whose
# template exists nowhere else; gotrace/probes/route_tree.py).
F_ROUTE_TREE = 2048
# A server span whose connection the kernel found marked as having no traced client at its
# other end (bpf/sampling.h untraced_peers, the mark fresh): decided there, and released by the
# linker without looking for a calling span.
F_CALLER_UNTRACED = 4096
SPAN_FLAGS = {"HAS_PARENT": F_HAS_PARENT, "REMOTE_PARENT": F_REMOTE_PARENT,
              "TRANSPORT_ERROR": F_TRANSPORT_ERROR, "HAS_CONN": F_HAS_CONN,
              "HAS_QUERY": F_HAS_QUERY, "SCHED": F_SCHED, "SAMPLED": F_SAMPLED,
              "DEFERRED": F_DEFERRED, "UNIX": F_UNIX, "SHED": F_SHED,
              "ROUTE_REFS": F_ROUTE_REFS, "ROUTE_TREE": F_ROUTE_TREE,
              "CALLER_UNTRACED": F_CALLER_UNTRACED}

# The TCP connection's identity in a record's tcp_identity, {isn_client, isn_server, position,
# flags} (bpf/conn.h read_tcp_identity, compiled in with the tcp_identity option): the initial
# sequence numbers of the end that connected and of the end that accepted, which both ends
# compute alike, and for HTTP/1 the request's position in the stream (the bytes the server
# sent on the connection before the request's response). Flags: TCP_ID_<NAME>.
TCP_ID_KNOWN = 1  # isn_client and isn_server are known
TCP_ID_POSITION = 2  # position is known (HTTP/1)
TCP_ID_FLAGS = {"KNOWN": TCP_ID_KNOWN, "POSITION": TCP_ID_POSITION}

# sched_ns slots, in order: time runnable but not running, then blocked by reason
# (bpf/sched.h).
SCHED_SLOTS = ("runnable", "network", "channel", "lock", "sleep", "syscall", "other")

# Requests not turned into spans in the kernel, by reason: the index of each in the
# kernel_drops counters (bpf/counters.h) is the macro DROP_<REASON>.
KERNEL_DROP_REASONS = (
    "ringbuf_full",
    "inflight_full",
    "unsupported_writer",  # not a response the HTTP server probe knows how to end
    "end_not_seen",  # a call began again before its end was seen
    "inject_skipped",  # --inject-traceparent: no room, or not a buffered writer
    "sampled_out",  # not lost: the sampler said no (bpf/sampling.h)
    "shed",  # not lost: the overload policy said no (bpf/shedding.h)
)
# Of those, the decisions: spans not sent on purpose, not lost.
SAMPLING_REASONS = frozenset({"sampled_out", "shed"})

# The record's text fields and their sizes (SPAN_<NAME>_LEN). path, query and then sched_ns
# end the record: the probes send it without its trailing zeros (bpf/span.h sent_size), and
# most spans have no query, no scheduler's accounting and a path of a few words.
TEXT_FIELDS = {"method": 16, "scheme": 8, "host": 64, "route": 64, "path": 128, "query": 128}


class SpanRecord(ctypes.Structure):
    _fields_ = [
        ("start_ns", ctypes.c_uint64),
        ("end_ns", ctypes.c_uint64),
        ("trace_id", ctypes.c_uint8 * 16),
        ("span_id", ctypes.c_uint8 * 8),
        ("parent_span_id", ctypes.c_uint8 * 8),
        ("goid", ctypes.c_uint64),
        ("request_body_size", ctypes.c_int64),
        ("response_body_size", ctypes.c_int64),
        ("pid", ctypes.c_uint32),
        ("kind", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("status", ctypes.c_uint32),
        ("local_port", ctypes.c_uint16),
        ("peer_port", ctypes.c_uint16),
        ("local_addr", ctypes.c_uint8 * 16),
        ("peer_addr", ctypes.c_uint8 * 16),
        ("proto_major", ctypes.c_uint8),
        ("proto_minor", ctypes.c_uint8),
        ("parked", ctypes.c_uint16),
        ("stream_id", ctypes.c_uint32),
        ("tcp_identity", ctypes.c_uint32 * 4),
        *((name, ctypes.c_char * size) for name, size in TEXT_FIELDS.items()),
        ("sched_ns", ctypes.c_uint64 * len(SCHED_SLOTS)),
    ]


RECORD_SIZE = ctypes.sizeof(SpanRecord)


def boundary_macros(span_kinds: dict[str, int], server_kinds: Iterable[int],
                    client_kinds: Iterable[int]) -> dict[str, int]:
    """The C macros of everything above that the kernel's side uses (bpf/record.h), with the
    span kinds numbered by the probes' declarations and their roles as bit masks."""
    macros = {f"SPAN_KIND_{name}": kind for name, kind in span_kinds.items()}
    macros.update({f"EVENT_KIND_{name}": kind for name, kind in EVENT_KINDS.items()})
    macros["FIRST_EVENT_KIND"] = FIRST_EVENT_KIND
    macros.update({f"SPAN_F_{name}": bit for name, bit in SPAN_FLAGS.items()})
    macros.update({f"TCP_ID_{name}": bit for name, bit in TCP_ID_FLAGS.items()})
    macros.update({f"SCHED_SLOT_{name.upper()}": i for i, name in enumerate(SCHED_SLOTS)})
    macros["SCHED_SLOTS"] = len(SCHED_SLOTS)
    macros.update({f"DROP_{reason.upper()}": i for i, reason in enumerate(KERNEL_DROP_REASONS)})
    macros["DROP_REASONS"] = len(KERNEL_DROP_REASONS)
    macros.update({f"SPAN_{name.upper()}_LEN": size for name, size in TEXT_FIELDS.items()})
    macros["SERVER_KINDS"] = _mask(server_kinds)
    macros["CLIENT_KINDS"] = _mask(client_kinds)
    return macros


def _mask(kinds: Iterable[int]) -> int:
    mask = 0
    for kind in kinds:
        if not 0 < kind < 64:
            raise ValueError(f"span kind {kind} outside 1-63")
        mask |= 1 << kind
    return mask


def char_field(rec: object, name: str) -> bytes:
    """A char field's whole bytes, NUL padding included: a ctypes SpanRecord gives them only
    up to the first NUL, a RecordFields (gotrace/record_view.py) as they are."""
    if isinstance(rec, ctypes.Structure):
        return ctypes.string_at(ctypes.addressof(rec) + getattr(type(rec), name).offset,
                                TEXT_FIELDS[name])
    value: bytes = getattr(rec, name)
    return value


def text(value: bytes) -> str:
    """A char field as text: up to its first NUL (a ctypes field has none; a RecordFields
    one keeps its padding)."""
    return value.partition(b"\0")[0].decode("utf-8", "replace")


_IP_TEXTS: dict[bytes, str] = {}
_MAX_IP_TEXTS = 4096  # distinct addresses remembered; then forgotten all at once


def ip_text(raw: bytes | ctypes.Array) -> str:
    """An address stored as 16 bytes (IPv4 mapped into IPv6) as people write it.

    Remembered per address: a span needs its connection's addresses several times over, and
    a tracer sees few distinct ones.
    """
    key = bytes(raw)
    found = _IP_TEXTS.get(key)
    if found is None:
        if len(_IP_TEXTS) >= _MAX_IP_TEXTS:
            _IP_TEXTS.clear()
        addr = ipaddress.IPv6Address(key)
        found = _IP_TEXTS[key] = str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)
    return found
