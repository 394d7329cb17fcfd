"""Resolve what the manifests name against one binary: the Layout the probes are built from.

Functions come from the ELF symbol table when there is one, else from .gopclntab. Field
offsets come from the runtime type metadata, then DWARF, then symbols/offsets.json. Type hashes
come from the runtime type metadata only (nothing else records them). Every fact records where
it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gotrace.gobin.binary import GoBinary
from gotrace.gobin.conntypes import ConnTypes, connection_types
from gotrace.gobin.typeinfo import split_type_name
from gotrace.gobin.waitreasons import wait_reason_names
from gotrace.resolve import offsets_db
from gotrace.resolve.manifest import Manifest, Spec, load_manifests

FUNCTION_SOURCES = ("symtab", "pclntab")
FIELD_SOURCES = ("typeinfo", "dwarf", "offsets-db")


@dataclass(frozen=True)
class ResolvedFunction:
    name: str  # the manifest's name
    found_as: str  # the name in the binary (an alternative, for renamed functions)
    address: int
    entry: int  # file offset of the entry: where the uprobe goes
    rets: tuple[int, ...]  # file offsets of every RET
    source: str
    ret_addresses: tuple[int, ...] = ()  # virtual addresses of the same RETs
    entry_probe: int = 0  # virtual address of the entry uprobe (gobin.disasm.entry_probe_site)
    # The functions outside a package calling it, when the manifest asks (Spec.callers).
    callers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ResolvedField:
    name: str  # the manifest's name
    offset: int
    source: str
    found_as: str  # the field in the binary (an alternative, for renamed fields)


@dataclass
class Layout:
    path: str
    go_version: str
    settings: dict[str, str]
    modules: dict[str, str]
    functions: dict[str, ResolvedFunction] = field(default_factory=dict)
    fields: dict[str, ResolvedField] = field(default_factory=dict)
    type_hashes: dict[str, int] = field(default_factory=dict)
    missing_functions: list[str] = field(default_factory=list)
    missing_fields: list[str] = field(default_factory=list)
    missing_types: list[str] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)
    absent_libraries: list[str] = field(default_factory=list)
    wait_reasons: list[str] = field(default_factory=list)  # runtime.waitReasonStrings
    # How each type a connection interface may hold leads to its socket.
    conn_types: ConnTypes = field(default_factory=lambda: ConnTypes({}, {}))
    # Hash -> qualified name of the types the manifests' implementations interfaces hold.
    type_names: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "go_version": self.go_version,
            "settings": self.settings,
            "modules": self.modules,
            "functions": {
                n: {"address": f.address, "entry": f.entry, "rets": list(f.rets),
                    "entry_probe": f.entry_probe, "source": f.source,
                    **({"callers": sorted(f.callers)} if f.callers else {}),
                    **({"found_as": f.found_as} if f.found_as != n else {})}
                for n, f in self.functions.items()
            },
            "fields": {
                n: {"offset": f.offset, "source": f.source,
                    **({"found_as": f.found_as} if f.found_as != n else {})}
                for n, f in self.fields.items()
            },
            "types": {n: {"hash": h, "source": "typeinfo"} for n, h in self.type_hashes.items()},
            "missing": {"functions": self.missing_functions, "fields": self.missing_fields,
                        "types": self.missing_types},
            "not_applicable": self.not_applicable,
            "absent_libraries": self.absent_libraries,
            "wait_reasons": self.wait_reasons,
            "connection_types": {
                step.type_name: {"hash": h, "step": step.kind.name.lower(), "offset": step.offset,
                                 "next_hash": step.next_hash, "tls": step.tls, "unix": step.unix,
                                 "source": "typeinfo"}
                for h, step in sorted(self.conn_types.steps.items(),
                                      key=lambda kv: kv[1].type_name)},
            "connection_types_refused": self.conn_types.refused,
        }


def _applicable(binary: GoBinary, specs: list[Spec], layout: Layout) -> list[Spec]:
    out = []
    for spec in specs:
        if spec.applies_to(binary.go_version, binary.module_version(spec.module)):
            out.append(spec)
        else:
            layout.not_applicable.append(spec.name)
    return out


def _resolve_functions(binary: GoBinary, specs: list[Spec], sources: Sequence[str],
                       layout: Layout) -> None:
    image = binary.image
    found = {spec: next((f for n in spec.names if (f := binary.function(n, tuple(sources)))),
                        None) for spec in specs}
    callers: dict[str, set[str]] = {}
    for package in {spec.callers for spec in specs if spec.callers}:
        callers.update(binary.callers_from_outside(
            [fn for spec, fn in found.items() if fn is not None and spec.callers == package],
            package))
    for spec, fn in found.items():
        if fn is None:
            layout.missing_functions.append(spec.name)
            continue
        rets = binary.rets(fn)
        layout.functions[spec.name] = ResolvedFunction(
            name=spec.name,
            found_as=fn.name,
            address=fn.address,
            entry=image.file_offset(fn.address),
            rets=tuple(image.file_offset(r) for r in rets),
            source=fn.source,
            ret_addresses=tuple(rets),
            entry_probe=binary.entry_probe(fn),
            callers=frozenset(callers.get(fn.name, ())),
        )


def _offsets_db_key(binary: GoBinary, spec: Spec) -> str | None:
    if spec.module:
        return binary.buildinfo.module_version(spec.module)
    return f"{binary.go_version[0]}.{binary.go_version[1]}"


def _resolve_fields(binary: GoBinary, specs: list[Spec], sources: Sequence[str],
                    layout: Layout) -> None:
    """Each spec's names (the first, then alternatives for renamed fields) are tried in
    order, source by source; one look-up per struct type and source."""
    for spec in specs:
        for name in spec.names:
            split_type_name(name.rpartition(".")[0])  # validates the manifest's names
    pending = list(specs)
    for source in sources:
        if not pending:
            break
        if source == "offsets-db":
            pending = _resolve_from_offsets_db(binary, pending, layout)
            continue
        types = {name.rpartition(".")[0] for spec in pending for name in spec.names}
        if source == "typeinfo":
            found = {t: binary.typeinfo.struct_fields(t) for t in types}
        elif source == "dwarf":
            # Parsing DWARF is slow; skip types the program does not use (no methods linked).
            found = binary.dwarf_struct_fields({t for t in types if binary.has_methods(t)})
        still = []
        for spec in pending:
            for name in spec.names:
                type_name, _, field_name = name.rpartition(".")
                offset = (found.get(type_name) or {}).get(field_name)
                if offset is not None:
                    layout.fields[spec.name] = ResolvedField(spec.name, offset, source, name)
                    break
            else:
                still.append(spec)
        pending = still
    layout.missing_fields.extend(spec.name for spec in pending)


def _resolve_from_offsets_db(binary: GoBinary, specs: list[Spec], layout: Layout) -> list[Spec]:
    """Resolve what the recorded table knows; returns the specs still unresolved."""
    still = []
    for spec in specs:
        found = offsets_db.lookup(spec.names, _offsets_db_key(binary, spec))
        if found is None:
            still.append(spec)
        else:
            layout.fields[spec.name] = ResolvedField(spec.name, found[0], "offsets-db", found[1])
    return still


def _resolve_types(binary: GoBinary, specs: list[Spec], layout: Layout) -> None:
    for spec in specs:
        found = next((h for n in spec.names if (h := binary.typeinfo.type_hash(n)) is not None),
                     None)
        if found is None:
            layout.missing_types.append(spec.name)
        else:
            layout.type_hashes[spec.name] = found


def resolve(binary: GoBinary, manifests: list[Manifest] | None = None, *,
            function_sources: Sequence[str] = FUNCTION_SOURCES,
            field_sources: Sequence[str] = FIELD_SOURCES) -> Layout:
    """Resolve every function and field the manifests name."""
    if manifests is None:
        manifests = load_manifests()
    info = binary.buildinfo
    layout = Layout(
        path=str(binary.path),
        go_version=info.go_version,
        settings=dict(info.settings),
        modules={m.path: (m.replaced_by or m).version
                 for m in ([info.main] if info.main else []) + info.deps},
    )
    fields: list[Spec] = []
    types: list[Spec] = []
    present: list[Manifest] = []
    for manifest in manifests:
        before = len(layout.functions)
        _resolve_functions(binary, _applicable(binary, manifest.functions, layout),
                           function_sources, layout)
        if manifest.functions and len(layout.functions) == before:
            # None of the library's functions is linked in: the library is not used here, and
            # its probes are simply not needed.
            layout.absent_libraries.append(manifest.library)
            absent = {s.name for s in manifest.functions}
            layout.missing_functions = [n for n in layout.missing_functions if n not in absent]
            continue
        present.append(manifest)
        fields.extend(f for f in manifest.fields if f.name not in {x.name for x in fields})
        types.extend(t for t in manifest.types if t.name not in {x.name for x in types})
    _resolve_fields(binary, _applicable(binary, fields, layout), field_sources, layout)
    _resolve_types(binary, _applicable(binary, types, layout), layout)
    layout.wait_reasons = wait_reason_names(binary.image)
    layout.conn_types = connection_types(
        binary.typeinfo, [h for m in present for h in m.connection_holders],
        [f for m in present for f in m.connection_fields])
    if interfaces := [i for m in present for i in m.implementations]:
        layout.type_names = binary.typeinfo.implementations(interfaces)
    return layout
