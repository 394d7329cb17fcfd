"""gobin/conntypes.py: each connection type's way to its socket, from the type metadata of
stripped binaries, checked against the DWARF of their unstripped twins."""

from __future__ import annotations

import pytest

from gotrace.gobin.binary import GoBinary
from gotrace.gobin.conntypes import StepKind, connection_types
from testapps import matrix

# Wrapper type -> its field holding the connection below (an interface).
WRAPPERS = {
    "*crypto/tls.Conn": ("crypto/tls.Conn", "conn"),
    "*github.com/mwitkow/go-conntrack.clientConnTracker":
        ("github.com/mwitkow/go-conntrack.clientConnTracker", "Conn"),
    "*github.com/mwitkow/go-conntrack.serverConnTracker":
        ("github.com/mwitkow/go-conntrack.serverConnTracker", "Conn"),
    "*github.com/pires/go-proxyproto.Conn": ("github.com/pires/go-proxyproto.Conn", "conn"),
    "*github.com/soheilhy/cmux.MuxConn": ("github.com/soheilhy/cmux.MuxConn", "Conn"),
    "*golang.org/x/net/netutil.limitListenerConn":
        ("golang.org/x/net/netutil.limitListenerConn", "Conn"),
    "*main.meteredConn": ("main.meteredConn", "Conn"),
}


def _steps(path) -> dict[str, tuple]:
    with GoBinary(path) as binary:
        found = connection_types(binary.typeinfo)
    assert not found.refused
    return {s.type_name: (h, s) for h, s in found.steps.items()}


@pytest.mark.parametrize("go", ["oldest", "newest"])
def test_wrappers_of_a_stripped_binary_lead_to_the_socket(go):
    gos = matrix.go_versions()
    version = gos[0] if go == "oldest" else gos[-1]
    grpc = [g for g in matrix.grpc_gopaths() if version in matrix.supported_go(g)][-1]
    stripped = matrix.build(matrix.Cell("wrapped", version, "stripped", grpc))
    plain = matrix.build(matrix.Cell("wrapped", version, "plain", grpc))
    steps = _steps(stripped)
    assert steps == _steps(plain)
    assert steps["*net.TCPConn"][1].kind == StepKind.SOCKET
    assert not steps["*net.TCPConn"][1].unix
    assert steps["*net.UnixConn"][1].kind == StepKind.SOCKET and steps["*net.UnixConn"][1].unix
    with GoBinary(plain) as binary:
        dwarf = binary.dwarf_struct_fields({struct for struct, _ in WRAPPERS.values()})
    for name, (struct, field) in WRAPPERS.items():
        _, step = steps[name]
        assert step.kind == StepKind.INTERFACE, name
        assert step.offset == dwarf[struct][field], name
        assert step.tls == (name == "*crypto/tls.Conn"), name


def test_debian_prometheus_connection_types():
    """Debian's prometheus (Go 1.19, stripped, no module versions): its listener's and dialer's
    wrappers, and a wrapper that holds another wrapper by pointer (docker's client)."""
    steps = _steps("/usr/bin/prometheus")
    for name in ("*github.com/mwitkow/go-conntrack.clientConnTracker",
                 "*github.com/mwitkow/go-conntrack.serverConnTracker",
                 "*golang.org/x/net/netutil.limitListenerConn", "*crypto/tls.Conn"):
        assert steps[name][1].kind == StepKind.INTERFACE, name
    pointer = steps["*github.com/docker/docker/client.hijackedConnCloseWriter"][1]
    assert pointer.kind == StepKind.POINTER
    assert pointer.next_hash == steps["*github.com/docker/docker/client.hijackedConn"][0]
