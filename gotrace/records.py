"""The span record from bpf/record.h, decoded in user space.

The ctypes mirror below must match the C struct byte for byte; tests/test_records.py compiles
the header with gcc and compares every field's offset and the total size.
"""

from __future__ import annotations

import ctypes
import ipaddress

SPAN_KIND_HTTP_SERVER = 1
SPAN_KIND_HTTP_CLIENT = 2
SPAN_KIND_GRPC_SERVER = 3
SPAN_KIND_GRPC_CLIENT = 4
EVENT_KIND_STW_PAUSE = 100
EVENT_KIND_GC_CYCLE = 101
EVENT_KIND_TCP_RETRANSMIT = 102
EVENT_KIND_TCP_CONNECT = 103

F_HAS_PARENT = 1
F_REMOTE_PARENT = 2
F_TRANSPORT_ERROR = 4
F_HAS_CONN = 8
F_HAS_QUERY = 16
F_SCHED = 32
F_SAMPLED = 64  # the trace is kept (bpf/sampling.h)
F_DEFERRED = 128  # left to gotrace (gotrace/sampling.py); neither: sent only for linking
F_UNIX = 256  # a Unix socket: local_addr, peer_addr hold each end's struct sock and inode

# sched_ns slots (bpf/record.h SCHED_SLOT_*), in order.
SCHED_SLOTS = ("runnable", "network", "channel", "lock", "sleep", "syscall", "other")


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
        ("_pad", ctypes.c_uint16),
        ("stream_id", ctypes.c_uint32),
        ("method", ctypes.c_char * 16),
        ("scheme", ctypes.c_char * 8),
        ("host", ctypes.c_char * 64),
        ("path", ctypes.c_char * 128),
        ("route", ctypes.c_char * 64),
        ("query", ctypes.c_char * 128),
        ("sched_ns", ctypes.c_uint64 * len(SCHED_SLOTS)),
    ]


RECORD_SIZE = ctypes.sizeof(SpanRecord)


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
