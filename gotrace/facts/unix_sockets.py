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

from gotrace.record_view import RecordFields
from gotrace.records import F_UNIX, SPAN_KIND_GRPC_SERVER, SPAN_KIND_HTTP_SERVER
from gotrace.spans import AttributeValue

UNIX_PREFIX = "unix:"
MAX_UNNAMED = 65536  # inodes remembered as having no path, before they are all forgotten
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
        # (pid, inode) found without a path when the table was read (a socketpair's, say):
        # not read again for each of its spans.
        self._unnamed: set[tuple[int, int]] = set()

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
        """The path of the socket with this inode, read again from /proc for an inode not
        seen before (a new connection): once per connection, as the endpoint of its spans is
        worked out once (gotrace/decode.py)."""
        path = self._paths.get(pid, {}).get(inode)
        if path is not None or (pid, inode) in self._unnamed:
            return path
        paths = self._paths[pid] = _read_unix_table(pid)
        path = paths.get(inode)
        if path is None:
            if len(self._unnamed) >= MAX_UNNAMED:
                self._unnamed.clear()
            self._unnamed.add((pid, inode))
        return path


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
