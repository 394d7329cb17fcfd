"""How each connection type of a program leads to its socket, from the runtime's type metadata.

Real services rarely hand net/http or grpc-go a bare *net.TCPConn: listeners that count or
limit (go-conntrack, netutil.LimitListener), PROXY-protocol listeners, cmux's MuxConn, TLS,
grpc-go's credential wrappers and types the program defines itself each wrap the connection
below in a struct of their own, often several deep. A probe holding a net.Conn interface value
knows only its dynamic type (by hash, from the itab); this module works out, once per binary,
what to do with each dynamic type a connection interface can hold:

- SOCKET: the value is a *net.TCPConn or *net.UnixConn, whose net.conn leads to the netFD.
- INTERFACE: the connection below is an interface value (net.Conn or any interface with
  Read, Write and RemoteAddr) stored at `offset` in the struct the value points at.
- POINTER: the connection below is a pointer, of the known type `next_hash`, stored at
  `offset`.

The candidates are the concrete types of every itab whose interface looks like a connection,
and the types their pointer fields lead to. A struct field is followed through inline (also
embedded) struct fields. A type with exactly one field that leads to a connection gets a
step; with several, the embedded ones are preferred; a type whose choice stays ambiguous gets
none, since wrong addresses are worse than none. The types are identified by hash alone: two
candidate types with one hash both lose their steps.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import IntEnum

from gotrace.gobin.typeinfo import KIND_INTERFACE, KIND_PTR, KIND_STRUCT, TypeInfo

CONN_METHODS = frozenset({"Read", "Write", "RemoteAddr"})
MAX_INLINE_DEPTH = 3  # struct fields within struct fields searched for the connection
MAX_POINTER_DEPTH = 4  # pointer types followed when deciding whether a field leads anywhere

SOCKET_TYPES = {"*net.TCPConn": False, "*net.UnixConn": True}  # name -> is a Unix socket
TLS_TYPES = frozenset({"*crypto/tls.Conn"})


class StepKind(IntEnum):
    """The values of bpf/conn.h's CONN_STEP_* macros."""

    SOCKET = 1
    INTERFACE = 2
    POINTER = 3


@dataclass(frozen=True)
class ConnStep:
    type_name: str  # for `gotrace inspect`
    kind: StepKind
    offset: int = 0
    next_hash: int = 0
    tls: bool = False
    unix: bool = False


@dataclass
class ConnTypes:
    steps: dict[int, ConnStep]  # by the type's hash
    refused: dict[str, str]  # type name -> why it has no step


def _conn_like(info: TypeInfo, desc: int) -> bool:
    return info.kind(desc) == KIND_INTERFACE and info.method_names_of(desc) >= CONN_METHODS


class _Finder:
    def __init__(self, info: TypeInfo, connection_fields: Collection[str] = ()) -> None:
        self.info = info
        # 'pkg.Type.field': where a type has several fields holding a connection, its own.
        self.connection_fields = frozenset(connection_fields)
        self.steps: dict[int, ConnStep] = {}
        self.refused: dict[str, str] = {}
        self._decided: dict[int, ConnStep | None] = {}  # by descriptor address
        self._hashes: dict[int, set[int]] = {}  # hash -> descriptors with a step

    def step(self, desc: int, depth: int = 0) -> ConnStep | None:
        """The step of the type at desc, or None when it leads to no socket."""
        if desc in self._decided:
            return self._decided[desc]
        self._decided[desc] = None  # a type that contains itself leads nowhere through itself
        found = self._work_out(desc, depth)
        self._decided[desc] = found
        if found is not None:
            self._hashes.setdefault(self.info.hash_of(desc), set()).add(desc)
            self.steps[self.info.hash_of(desc)] = found
        return found

    def _work_out(self, desc: int, depth: int) -> ConnStep | None:
        info = self.info
        name = info.qualified_name_of(desc)
        if name in SOCKET_TYPES:
            return ConnStep(name, StepKind.SOCKET, unix=SOCKET_TYPES[name])
        if info.kind(desc) == KIND_PTR:
            target = info.elem_of(desc)
        elif info.kind(desc) == KIND_STRUCT and not info.stored_in_interface_word(desc):
            target = desc  # the interface's data word points at a copy of the struct
        else:
            return None
        if info.kind(target) != KIND_STRUCT or depth > MAX_POINTER_DEPTH:
            return None
        candidates = list(self._fields_leading_on(target, 0, depth, 0))
        if not candidates:
            return None
        if len(candidates) > 1:
            candidates = (self._declared(target, candidates)
                          or [c for c in candidates if c[1]])
        if len(candidates) != 1:
            self.refused[name] = "several fields hold a connection"
            return None
        step = candidates[0][0]
        return ConnStep(name, step.kind, step.offset, step.next_hash, tls=name in TLS_TYPES)

    def _declared(self, struct_desc: int, candidates: list[tuple[ConnStep, bool]]
                  ) -> list[tuple[ConnStep, bool]]:
        """Of the candidates, the one a manifest declares the struct's connection."""
        struct_name = self.info.qualified_name_of(struct_desc)
        offsets = {f.offset for f in self.info.fields_of(struct_desc)
                   if f"{struct_name}.{f.name}" in self.connection_fields}
        return [c for c in candidates if c[0].offset in offsets]

    def _fields_leading_on(self, struct_desc: int, base: int, depth: int, inline: int):
        """(step, embedded) for each field of the struct that leads to a connection."""
        info = self.info
        for f in info.fields_of(struct_desc):
            kind = info.kind(f.type)
            if kind == KIND_INTERFACE and _conn_like(info, f.type):
                yield ConnStep("", StepKind.INTERFACE, base + f.offset), f.embedded
            elif kind == KIND_PTR and self.step(f.type, depth + 1) is not None:
                yield (ConnStep("", StepKind.POINTER, base + f.offset, info.hash_of(f.type)),
                       f.embedded)
            elif kind == KIND_STRUCT and inline < MAX_INLINE_DEPTH:
                yield from self._fields_leading_on(f.type, base + f.offset, depth, inline + 1)

    def result(self) -> ConnTypes:
        for h, descs in self._hashes.items():
            if len(descs) > 1:
                del self.steps[h]
                for desc in descs:
                    self.refused[self.info.qualified_name_of(desc)] = \
                        "its type hash is shared with another type"
        return ConnTypes(self.steps, self.refused)


def connection_types(info: TypeInfo, holders: Collection[str] = (),
                     connection_fields: Collection[str] = ()) -> ConnTypes:
    """The step of every concrete type the program stores in a connection-like interface or
    in one of the holders (interfaces named by qualified name, such as a database driver's
    connection), and of the types those lead through. connection_fields ('pkg.Type.field')
    settle the types where several fields hold a connection."""
    finder = _Finder(info, connection_fields)
    wanted = frozenset(holders)
    holding: dict[int, bool] = {}  # interface descriptor -> whether its values lead on
    for inter, concrete in info.itabs():
        if inter not in holding:
            holding[inter] = (_conn_like(info, inter)
                              or (bool(wanted) and info.qualified_name_of(inter) in wanted))
        if holding[inter]:
            finder.step(concrete)
    return finder.result()
