"""The names of the Go types that probes report by their runtime hash (a database driver's
connection, an error's dynamic type), learnt from each traced binary's itabs when gotrace
attaches to it (gotrace/gobin/typeinfo.py implementations).

One table for every binary: Go's hash of a type is a hash of its name, so a type has the same
hash in every program that links it.
"""

from __future__ import annotations

from collections.abc import Mapping

_NAMES: dict[int, str] = {}


def learn(names: Mapping[int, str]) -> None:
    _NAMES.update(names)


def type_name(type_hash: int) -> str | None:
    """The qualified name of the type with this hash ('*github.com/lib/pq.Error'), if known."""
    return _NAMES.get(type_hash) if type_hash else None


def package_of(type_name: str) -> str:
    """'*github.com/lib/pq.conn' -> 'github.com/lib/pq'; 'gopkg.in/redis.v5.Cmd' ->
    'gopkg.in/redis.v5' (a type's own name has no dot; a generic one's arguments may)."""
    name = type_name.lstrip("*").partition("[")[0]
    return name.rpartition(".")[0]
