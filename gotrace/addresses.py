"""How a record names the ends of its connection, and the text gotrace names them by.

A TCP end is an IP address, 16 bytes in the record (IPv4 mapped into IPv6). A Unix socket's
end (bpf/conn.h) is the address of its struct sock in the kernel followed by its inode number:
both ends see the same two socks, reversed, from the moment the client connected, so linking
names it 'unix:<struct sock address>'.
"""

from __future__ import annotations

import ipaddress

UNIX_PREFIX = "unix:"


def inode_of(addr: bytes) -> int:
    """The inode number in a Unix span's local_addr or peer_addr (0 when unknown)."""
    return int.from_bytes(addr[8:16], "little")


def unix_address(addr: bytes) -> str:
    """How linking names one end of a Unix socket connection: 'unix:<struct sock address>'."""
    return f"{UNIX_PREFIX}{int.from_bytes(addr[:8], 'little'):x}"


def is_unix_address(address: str) -> bool:
    return address.startswith(UNIX_PREFIX)


def address_bytes(address: str) -> bytes:
    """An address as the kernel records it: 16 bytes, IPv4 mapped into IPv6; or a
    'unix:<sock>' end as bpf/sampling.h keys it: the sock's address, the inode (which the
    server's end may gain only later) left zero."""
    if is_unix_address(address):
        return int(address.removeprefix(UNIX_PREFIX), 16).to_bytes(8, "little") + bytes(8)
    ip = ipaddress.ip_address(address)
    return ip.packed if ip.version == 6 else b"\0" * 10 + b"\xff\xff" + ip.packed
