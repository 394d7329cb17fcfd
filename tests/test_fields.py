"""Struct field offsets: runtime type metadata against DWARF of the unstripped twin."""

from __future__ import annotations

import functools
from pathlib import Path

from gotrace.gobin.binary import GoBinary
from gotrace.layout import resolve
from gotrace.manifest import load_manifests


def manifest_types() -> frozenset[str]:
    return frozenset(spec.name.rpartition(".")[0] for m in load_manifests() for spec in m.fields)


@functools.cache
def dwarf_fields(path: Path) -> dict[str, dict[str, int]]:
    """DWARF's view of the manifest types (cached: a stripped cell and its twin share it)."""
    with GoBinary(path) as gb:
        return gb.dwarf_struct_fields(set(manifest_types()))


def test_typeinfo_offsets_equal_dwarf_of_unstripped_twin(binary, twin):
    dwarf = dwarf_fields(twin)
    with GoBinary(binary) as gb:
        compared = 0
        for type_name in manifest_types():
            fields = gb.typeinfo.struct_fields(type_name)
            if fields is None:
                continue
            # Every field of the type, not only those the manifests name.
            assert fields == dwarf[type_name], type_name
            compared += 1
    assert compared >= 5


def test_every_manifest_field_resolves_from_typeinfo(binary):
    with GoBinary(binary) as gb:
        layout = resolve(gb, field_sources=("typeinfo",))
    assert layout.fields
    assert all(f.source == "typeinfo" for f in layout.fields.values())
    assert layout.missing_fields == []
    assert "runtime.g.goid" in layout.fields


def test_offsets_db_is_right_or_silent(binary):
    """The recorded table never gives a wrong offset; where versions differ and the binary
    does not say its module version (GOPATH builds), it gives none."""
    with GoBinary(binary) as gb:
        truth = resolve(gb, field_sources=("typeinfo",)).fields
        recorded = resolve(gb, field_sources=("offsets-db",)).fields
    assert recorded, "the offsets table knows nothing of this binary"
    for name, field in recorded.items():
        assert field.offset == truth[name].offset, name
    std = {n for n in truth if not n.startswith("google.golang.org/")}
    assert std <= recorded.keys()
