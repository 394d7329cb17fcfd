"""Every instrumented library is one probe declaration (gotrace/probes/base.py): gotrace's own
are the modules of this package that define PROBE; more are found in the directories that
GOTRACE_PROBE_PATH lists (separated by ':'), each library there as <library>.py beside its
<library>.c and <library>.toml.

From the declarations come what the rest of gotrace knows of record kinds: their numbers
(SPAN_KIND_<NAME> for the C), their roles, their spans' shapes and their RED metrics.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil
from pathlib import Path

from gotrace.errors import GotraceError
from gotrace.metrics.red import DurationMetric
from gotrace.probes.base import Probe, SpanShape
from gotrace.resolve.manifest import probe_directories

# Fields the shared C reads for every probe that reports a connection (bpf/conn.h) or keeps a
# goroutine's context (bpf/context.h): every program has them.
COMMON_FIELDS = (
    "runtime.g.goid", "internal/abi.ITab.Hash", "net.conn.fd", "net.netFD.laddr",
    "net.netFD.raddr", "net.TCPAddr.IP", "net.TCPAddr.Port", "net.netFD.pfd",
    "internal/poll.FD.Sysfd",
)


def _builtin() -> list[Probe]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if isinstance(getattr(module, "PROBE", None), Probe):
            found.append(module.PROBE)
    return found


def _from_directory(directory: Path) -> list[Probe]:
    """The libraries a GOTRACE_PROBE_PATH directory declares; their C is beside them."""
    found = []
    for path in sorted(directory.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"gotrace_probe_{path.stem}", path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # a user's file: say which, never a traceback
            raise GotraceError(f"{path}: cannot load the probe declaration: {e}") from None
        probe = getattr(module, "PROBE", None)
        if isinstance(probe, Probe):
            found.append(dataclasses.replace(probe, directory=directory.resolve()))
    return found


def _in_dependency_order(probes: list[Probe]) -> tuple[Probe, ...]:
    """Each probe after those it requires, otherwise as found; a library declared twice, or a
    requirement nobody declares, is an error."""
    by_library: dict[str, Probe] = {}
    for probe in probes:
        if probe.library in by_library:
            raise GotraceError(f"probe library {probe.library!r} is declared twice")
        by_library[probe.library] = probe
    ordered: dict[str, Probe] = {}

    def place(probe: Probe, chain: tuple[str, ...]) -> None:
        if probe.library in ordered:
            return
        if probe.library in chain:
            raise GotraceError(f"probes require each other: {' -> '.join(chain)}")
        for name in probe.requires:
            if name not in by_library:
                raise GotraceError(f"probe {probe.library} requires {name!r}, not declared")
            place(by_library[name], (*chain, probe.library))
        ordered[probe.library] = probe

    for probe in probes:
        place(probe, ())
    return tuple(ordered.values())


def _load() -> tuple[Probe, ...]:
    probes = _builtin()
    for directory in probe_directories():
        probes += _from_directory(directory)
    return _in_dependency_order(probes)


ALL_PROBES: tuple[Probe, ...] = _load()

# Record kinds, numbered from 1 in declaration order (events are numbered from 100).
SHAPES: dict[int, SpanShape] = {
    number: shape for number, shape in enumerate(
        (shape for probe in ALL_PROBES for shape in probe.record_kinds), start=1)}
SPAN_KINDS: dict[str, int] = {shape.record_kind: number for number, shape in SHAPES.items()}
if len(SPAN_KINDS) != len(SHAPES):
    raise GotraceError("two record kinds of the probes share a name")
SERVER_KINDS = frozenset(k for k, shape in SHAPES.items() if shape.kind == "SERVER")
CLIENT_KINDS = frozenset(k for k, shape in SHAPES.items() if shape.kind == "CLIENT")
DURATION_METRICS: tuple[DurationMetric, ...] = tuple(dict.fromkeys(
    shape.metric.metric for shape in SHAPES.values() if shape.metric is not None))


def span_kind(record_kind: str) -> int:
    """The number of a record kind by its name ('HTTP_SERVER')."""
    return SPAN_KINDS[record_kind]
