"""Spans over Unix sockets: their connection as linking sees it, and their attributes.

The kernel side (bpf/conn.h) names each end of a Unix socket connection by the address of
its struct sock in the kernel, followed by its inode number: both ends see the same two socks,
reversed, from the moment the client connected, so same-host linking pairs a client span with
its server span exactly as it pairs TCP 4-tuples. The socket's path is not in the record: the
server's end of an accepted connection is listed with the listener's path in
/proc/PID/net/unix, so it is found by the inode of the server's end (its own for a server span,
its peer's for a client span, unknown to a client span that comes before the accept).
"""

from __future__ import annotations

import time

from gotrace.record_view import RecordFields
from gotrace.records import F_UNIX, SPAN_KIND_GRPC_SERVER, SPAN_KIND_HTTP_SERVER
from gotrace.spans import AttributeValue

UNIX_PREFIX = "unix:"
REFRESH_INTERVAL_S = 0.1  # /proc/PID/net/unix is read again on a miss at most this often
_SERVER_KINDS = frozenset({SPAN_KIND_HTTP_SERVER, SPAN_KIND_GRPC_SERVER})


def inode_of(addr: bytes) -> int:
    """The inode number in a Unix span's local_addr or peer_addr (0 when unknown)."""
    return int.from_bytes(addr[8:16], "little")


def connection_address(addr: bytes) -> str:
    """How linking names one end of a Unix socket connection: 'unix:<struct sock address>'."""
    return f"{UNIX_PREFIX}{int.from_bytes(addr[:8], 'little'):x}"


def is_unix_address(address: str) -> bool:
    return address.startswith(UNIX_PREFIX)


def address_bytes(address: str) -> bytes:
    """A 'unix:<sock>' end as bpf/sampling.h keys it: the sock's address, the inode (which
    the server's end may gain only later) left zero."""
    return int(address.removeprefix(UNIX_PREFIX), 16).to_bytes(8, "little") + bytes(8)


class UnixSockets:
    """A fact source (gotrace/decode.py): the transport and the path of Unix-socket spans."""

    def __init__(self) -> None:
        self._paths: dict[int, dict[int, str]] = {}  # pid -> inode -> path
        self._read_at: dict[int, float] = {}

    def record(self, rec: RecordFields) -> bool:
        return False  # no events of its own

    def attributes(self, rec: RecordFields) -> dict[str, AttributeValue] | None:
        return None  # nothing per span

    def usual(self, rec: RecordFields) -> dict[str, AttributeValue]:
        if not rec.flags & F_UNIX:
            return {}
        server = rec.kind in _SERVER_KINDS
        inode = inode_of(rec.local_addr if server else rec.peer_addr)
        path = self._path(rec.pid, inode) if inode else None
        attrs: dict[str, AttributeValue] = {"network.transport": "unix"}
        if path:
            attrs["network.local.address" if server else "network.peer.address"] = path
        return attrs

    def _path(self, pid: int, inode: int) -> str | None:
        paths = self._paths.get(pid)
        now = time.monotonic()
        if (paths is None or inode not in paths) and \
                now - self._read_at.get(pid, 0.0) >= REFRESH_INTERVAL_S:
            self._read_at[pid] = now
            paths = self._paths[pid] = _read_unix_table(pid)
        return (paths or {}).get(inode)


def _read_unix_table(pid: int) -> dict[int, str]:
    """inode -> path of the Unix sockets with a path in the process's network namespace."""
    out: dict[int, str] = {}
    try:
        with open(f"/proc/{pid}/net/unix") as table:
            next(table, None)  # the header
            for line in table:
                fields = line.split(None, 7)
                if len(fields) == 8:
                    out[int(fields[6])] = fields[7].rstrip("\n")
    except (OSError, ValueError):
        pass
    return out
