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

from collections.abc import Collection

from gotrace.addresses import inode_of
from gotrace.record_view import RecordFields
from gotrace.records import F_UNIX
from gotrace.spans import AttributeValue

MAX_UNNAMED = 65536  # inodes remembered as having no path, before they are all forgotten


class UnixSockets:
    """A fact source (gotrace/pipeline/decode.py): the transport and the path of Unix-socket
    spans."""

    latest_event_ns = -1  # no events, nothing per span: no span is asked about

    def __init__(self, server_kinds: Collection[int]) -> None:
        self._server_kinds = frozenset(server_kinds)  # record kinds of server spans
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
        server = rec.kind in self._server_kinds
        inode = inode_of(rec.local_addr if server else rec.peer_addr)
        path = self._path(rec.pid, inode) if inode else None
        attrs: dict[str, AttributeValue] = {"network.transport": "unix"}
        if path:
            attrs["network.local.address" if server else "network.peer.address"] = path
        return attrs

    def _path(self, pid: int, inode: int) -> str | None:
        """The path of the socket with this inode, read again from /proc for an inode not
        seen before (a new connection): once per connection, as the endpoint of its spans is
        worked out once (gotrace/pipeline/decode.py)."""
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
