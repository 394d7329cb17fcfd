"""Struct field offsets: runtime type metadata against DWARF of the unstripped twin."""

from __future__ import annotations

import functools
from pathlib import Path

from gotrace.gobin.binary import GoBinary
from gotrace.resolve.layout import resolve
from gotrace.resolve.manifest import load_manifests


def manifest_types() -> frozenset[str]:
    return frozenset(spec.name.rpartition(".")[0] for m in load_manifests() for spec in m.fields)


@functools.cache
def dwarf_fields(path: Path) -> dict[str, dict[str, int]]:
    """DWARF's view of the types the manifests' fields name, alternatives included (cached:
    a stripped cell and its twin share it, and reading DWARF takes seconds)."""
    types = {name.rpartition(".")[0] for m in load_manifests() for spec in m.fields
             for name in spec.names}
    with GoBinary(path) as gb:
        return gb.dwarf_struct_fields(types)


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
        # A struct the program never uses has no descriptor (database/sql's Conn, in a
        # program that calls no method of it): its fields are not there to resolve.
        unused = {name for name in layout.missing_fields
                  if not gb.has_methods(name.rpartition(".")[0])}
    assert layout.fields
    assert all(f.source == "typeinfo" for f in layout.fields.values())
    without = {s.name for m in load_manifests() for s in m.fields if s.no_type_descriptor}
    assert set(layout.missing_fields) - unused <= without
    assert "runtime.g.goid" in layout.fields


def dwarf_offsets(path: Path) -> dict[str, int]:
    """Each manifest field's offset by DWARF, its names tried in order as resolve() does."""
    fields = dwarf_fields(path)
    offsets = {}
    for spec in (spec for m in load_manifests() for spec in m.fields):
        for name in spec.names:
            type_name, _, field_name = name.rpartition(".")
            offset = fields.get(type_name, {}).get(field_name)
            if offset is not None:
                offsets[spec.name] = offset
                break
    return offsets


def test_offsets_db_is_right_or_silent(binary, twin):
    """The recorded table never gives a wrong offset; where versions differ and the binary
    does not say its module version (GOPATH builds), it gives none. Fields of structs
    without a type descriptor are checked against DWARF of the unstripped twin."""
    with GoBinary(binary) as gb:
        truth = {n: f.offset for n, f in resolve(gb, field_sources=("typeinfo",)).fields.items()}
        recorded = resolve(gb, field_sources=("offsets-db",)).fields
    dwarf = dwarf_offsets(twin)
    assert recorded, "the offsets table knows nothing of this binary"
    for name, field in recorded.items():
        known = truth.get(name, dwarf.get(name))
        # Neither knows a struct the program does not use: nothing to be wrong about.
        assert known is None or field.offset == known, name
    with_module = {s.name for m in load_manifests() for s in m.fields if s.module}
    assert truth.keys() - with_module <= recorded.keys()  # the standard library's


def manifest_type_names() -> frozenset[str]:
    return frozenset(spec.name for m in load_manifests() for spec in m.types)


@functools.cache
def dwarf_type_hashes(path: Path) -> dict[str, int]:
    """The hash in each manifest type's runtime descriptor, found through DWARF: the linker
    gives every Go type's DIE the descriptor's place (DW_AT_go_runtime_type), as an offset
    from moduledata.types or, in older toolchains, as an address."""
    go_runtime_type = 0x2904
    wanted = set(manifest_type_names())
    out: dict[str, int] = {}
    with GoBinary(path) as gb:
        types = gb.moduledata.types
        info = gb.image.pyelftools.get_dwarf_info(relocate_dwarf_sections=False)
        for cu in info.iter_CUs():
            for die in cu.get_top_DIE().iter_children():
                name = die.attributes.get("DW_AT_name")
                where = die.attributes.get(go_runtime_type)
                if name is None or where is None:
                    continue
                text = name.value.decode()
                if text in wanted and text not in out:
                    addr = where.value if where.value >= types else types + where.value
                    out[text] = gb.image.u32(addr + 16)
            if len(out) == len(wanted):
                break
    return out


def test_type_hashes_equal_dwarf_runtime_types(stripped_cell, build):
    with GoBinary(build(stripped_cell)) as gb:
        layout = resolve(gb)
    truth = dwarf_type_hashes(build(stripped_cell.twin()))
    # Go 1.19 writes no DWARF for some zero-size types (metadata.mdIncomingKey).
    compared = truth.keys() & layout.type_hashes.keys()
    assert len(compared) >= 3, (truth, layout.type_hashes)
    for name in compared:
        assert layout.type_hashes[name] == truth[name], name
    # Absent only where the program has no such type at all.
    assert not set(layout.missing_types) & truth.keys()
