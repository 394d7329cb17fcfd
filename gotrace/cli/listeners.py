"""Which processes listen on a TCP port (`gotrace trace --port`).

The kernel lists TCP sockets per network namespace, in /proc/PID/net/tcp and tcp6: a row's
`local_address` ends in the port in hex, `st` 0A is LISTEN, and `inode` names the socket.
A process holds a socket when one of its /proc/PID/fd links reads `socket:[INODE]`.
Reading the tables through each process, rather than /proc/net, finds listeners in other
network namespaces (containers) too.
"""

from __future__ import annotations

import os

from gotrace.errors import GotraceError
from gotrace.procfs import process_ids

TCP_LISTEN = "0A"
_SOCKET_LINK = "socket:["


def listening_pids(port: int) -> list[int]:
    """PIDs of the processes holding a socket that listens on this TCP port, sorted."""
    listening: dict[int, set[int]] = {}  # network namespace inode -> listening socket inodes
    found = []
    for pid in process_ids():
        sockets = _socket_inodes(pid)
        if not sockets:
            continue
        try:
            namespace = os.stat(f"/proc/{pid}/ns/net").st_ino
        except OSError:
            continue
        if namespace not in listening:
            listening[namespace] = _listening_inodes(pid, port)
        if sockets & listening[namespace]:
            found.append(pid)
    return sorted(found)


def pids_on_port(port: int) -> list[int]:
    """listening_pids, or a GotraceError when there are none."""
    pids = listening_pids(port)
    if not pids:
        raise GotraceError(f"no process is listening on TCP port {port}")
    return pids


def _socket_inodes(pid: int) -> set[int]:
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:  # gone, or a kernel thread
        return set()
    inodes = set()
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith(_SOCKET_LINK):
            inodes.add(int(target[len(_SOCKET_LINK):-1]))
    return inodes


def _listening_inodes(pid: int, port: int) -> set[int]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:  # gone, or no IPv6
            continue
        for row in rows:
            fields = row.split()
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            if len(fields) > 9 and fields[3] == TCP_LISTEN \
                    and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(fields[9]))
    return inodes
