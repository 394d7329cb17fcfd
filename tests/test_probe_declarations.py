"""Each probe's declaration agrees with its manifest and its C: a field is named in the
manifest, declared by the probe that reads it, and read by that probe's C; every manifest
entry is used; every attachment's program exists. What the shared C reads (COMMON_FIELDS and
the layout features) counts as used by the headers that read it."""

from __future__ import annotations

import re

import pytest

from gotrace.kernel.c_source import BPF_DIR, local_includes
from gotrace.probes import ALL_PROBES, COMMON_FIELDS
from gotrace.probes.base import Probe, macro_name, type_hash_macro
from gotrace.probes.features import GOCONTEXT_FIELDS, HMAP_FIELDS, SWISS_FIELDS
from gotrace.resolve.manifest import SYMBOLS_DIR, load_manifests

MANIFESTS = {m.library: m for m in load_manifests()}
SHARED_C_FIELDS = {*COMMON_FIELDS, *GOCONTEXT_FIELDS, *HMAP_FIELDS, *SWISS_FIELDS}
SHARED_C_TYPES = {"*context.valueCtx", "*context.cancelCtx", "*context.timerCtx"}


def manifest_names(kind: str) -> dict[str, tuple[str, ...]]:
    """Every field or type any manifest names, with its alternatives."""
    return {s.name: s.names for m in MANIFESTS.values() for s in getattr(m, kind)}


def probe_c(probe: Probe) -> str:
    """The probe's C and every header it includes."""
    return "".join(p.read_text() for p in (probe.source, *local_includes(probe.source)))


def shared_c() -> str:
    return "".join(p.read_text() for p in sorted(BPF_DIR.glob("*.h")))


@pytest.mark.parametrize("probe", ALL_PROBES, ids=lambda p: p.library)
def test_declared_fields_are_in_a_manifest_and_read_by_the_c(probe: Probe):
    fields, types = manifest_names("fields"), manifest_names("types")
    text = probe_c(probe)
    for name in (*probe.fields, *probe.optional_fields):
        assert name in fields, f"{probe.library}: {name} is in no manifest"
        macros = {macro_name(n) for n in fields[name]}
        assert any(m in text for m in macros), f"{probe.library}: its C never reads {name}"
    for name in (*probe.types, *probe.optional_types):
        assert name in types, f"{probe.library}: type {name} is in no manifest"
        assert type_hash_macro(name) in text, f"{probe.library}: its C never compares {name}"


@pytest.mark.parametrize("probe", ALL_PROBES, ids=lambda p: p.library)
def test_attachments_are_the_manifest_functions_and_c_programs(probe: Probe):
    manifest = MANIFESTS.get(probe.library)
    assert manifest is not None, f"no {probe.library}.toml"
    attached = {a.function for a in probe.attachments}
    assert attached == {s.name for s in manifest.functions}
    text = probe.source.read_text()
    for a in probe.attachments:
        assert re.search(rf"\bint {a.program}\(struct pt_regs \*ctx\)", text), a.program


@pytest.mark.parametrize("probe", ALL_PROBES, ids=lambda p: p.library)
def test_a_probe_declares_its_whole_manifest(probe: Probe):
    """Its own manifest names nothing the probe does not read."""
    manifest = MANIFESTS[probe.library]
    assert {s.name for s in manifest.fields} <= {*probe.fields, *probe.optional_fields}
    assert {s.name for s in manifest.types} <= {*probe.types, *probe.optional_types}


def test_every_manifest_entry_is_used():
    """A manifest entry nobody reads costs resolution time and misleads the reader."""
    declared = {f for p in ALL_PROBES for f in (*p.fields, *p.optional_fields)}
    declared_types = {t for p in ALL_PROBES for t in (*p.types, *p.optional_types)}
    unused = [f"{m.library}: {s.name}" for m in MANIFESTS.values() for s in m.fields
              if s.name not in declared | SHARED_C_FIELDS]
    unused += [f"{m.library}: {s.name}" for m in MANIFESTS.values() for s in m.types
               if s.name not in declared_types | SHARED_C_TYPES]
    assert not unused, unused


def test_the_shared_c_reads_what_it_is_given():
    text = shared_c()
    fields = manifest_names("fields")
    for name in SHARED_C_FIELDS:
        assert any(macro_name(n) in text for n in fields[name]), name


def test_manifests_are_where_the_probes_say():
    assert SYMBOLS_DIR.is_dir()
    for probe in ALL_PROBES:
        assert probe.source.is_file(), probe.source
