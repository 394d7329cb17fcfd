"""The probe modules. Each instruments one library; see gotrace/probes/base.py."""

from gotrace.probes import (
    grpc_client,
    grpc_server,
    nethttp_client,
    nethttp_inject,
    nethttp_server,
    runtime,
    sched,
)
from gotrace.probes.base import Probe

# runtime first: the others need the goroutine context it maintains. nethttp_inject after
# nethttp_client, whose C declares the map it reads. Opt-in probes run only when asked for.
ALL_PROBES: tuple[Probe, ...] = (
    runtime.PROBE, nethttp_server.PROBE, nethttp_client.PROBE, nethttp_inject.PROBE,
    grpc_server.PROBE, grpc_client.PROBE, sched.PROBE,
)
OPT_IN_PROBES = frozenset({nethttp_inject.PROBE.library, sched.PROBE.library})

# Fields the shared C (bpf/common.h, bpf/conn.h) reads for every probe that reports a
# connection: the connection's dynamic type tells how to reach its socket.
COMMON_FIELDS = (
    "runtime.g.goid", "internal/abi.ITab.Hash", "net.conn.fd", "net.netFD.laddr",
    "net.netFD.raddr", "net.TCPAddr.IP", "net.TCPAddr.Port", "net.netFD.pfd",
    "internal/poll.FD.Sysfd",
)
