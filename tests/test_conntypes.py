"""gobin/conntypes.py: each connection type's way to its socket, from the type metadata of
stripped binaries, checked against the DWARF of their unstripped twins."""

from __future__ import annotations

import zlib

import pytest

from gotrace.gobin.binary import GoBinary
from gotrace.gobin.conntypes import StepKind, connection_types
from gotrace.gobin.typeinfo import KIND_INTERFACE, KIND_PTR, KIND_STRUCT, StructField
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


class FakeTypes:
    """Just enough of gobin.typeinfo.TypeInfo for conntypes: descriptors are names here."""

    CONN_METHODS = frozenset({"Read", "Write", "RemoteAddr", "LocalAddr", "Close"})

    def __init__(self, structs: dict[str, list[tuple[str, str, int, bool]]],
                 itabs: list[str], hashes: dict[str, int] | None = None) -> None:
        self.structs = structs  # name -> [(field, type, offset, embedded)]
        self._itabs = itabs
        self.hashes = hashes or {}

    def kind(self, desc: str) -> int:
        if desc in ("net.Conn", "io.Reader"):
            return KIND_INTERFACE
        return KIND_PTR if desc.startswith("*") else KIND_STRUCT

    def method_names_of(self, desc: str) -> frozenset[str]:
        return self.CONN_METHODS if desc == "net.Conn" else frozenset({"Read"})

    def qualified_name_of(self, desc: str) -> str:
        return desc

    def elem_of(self, desc: str) -> str:
        return desc[1:]

    def fields_of(self, desc: str) -> list[StructField]:
        return [StructField(*f) for f in self.structs.get(desc, [])]

    def hash_of(self, desc: str) -> int:
        return self.hashes.get(desc, zlib.crc32(desc.encode()))

    def stored_in_interface_word(self, desc: str) -> bool:
        return desc.startswith("*")

    def itabs(self) -> list[tuple[str, str]]:
        return [("net.Conn", c) for c in self._itabs]


def test_one_field_leads_on_and_ambiguity_gives_no_step():
    types = FakeTypes({
        "net.TCPConn": [("conn", "net.conn", 0, True)],
        "main.pair": [("a", "net.Conn", 0, False), ("b", "net.Conn", 16, False)],
        "main.logged": [("Conn", "net.Conn", 0, True), ("mirror", "net.Conn", 16, False)],
        "main.counted": [("r", "io.Reader", 0, False), ("inner", "main.inline", 16, False)],
        "main.inline": [("n", "int", 0, False), ("c", "net.Conn", 8, False)],
        "main.holder": [("next", "*main.holder", 0, False), ("w", "*main.counted", 8, False)],
    }, itabs=["*net.TCPConn", "*main.pair", "*main.logged", "*main.holder"])
    found = connection_types(types)
    steps = {s.type_name: s for s in found.steps.values()}
    assert found.refused == {"*main.pair": "several fields hold a connection"}
    assert steps["*main.logged"].kind == StepKind.INTERFACE and steps["*main.logged"].offset == 0
    counted = steps["*main.counted"]  # through an inline struct, past an io.Reader
    assert counted.kind == StepKind.INTERFACE and counted.offset == 24
    holder = steps["*main.holder"]  # through a pointer, past a pointer to itself
    assert holder.kind == StepKind.POINTER and holder.offset == 8
    assert holder.next_hash == types.hash_of("*main.counted")


def test_types_sharing_a_hash_lose_their_steps():
    types = FakeTypes({
        "main.a": [("Conn", "net.Conn", 0, True)],
        "main.b": [("x", "int", 0, False), ("Conn", "net.Conn", 8, True)],
    }, itabs=["*net.TCPConn", "*main.a", "*main.b"], hashes={"*main.a": 7, "*main.b": 7})
    found = connection_types(types)
    assert {s.type_name for s in found.steps.values()} == {"*net.TCPConn"}
    assert found.refused == {"*main.a": "its type hash is shared with another type",
                             "*main.b": "its type hash is shared with another type"}
