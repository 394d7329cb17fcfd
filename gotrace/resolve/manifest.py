"""The symbols/ manifests: per instrumented library, the functions and fields its probes need.

Looking up only what the manifests name keeps resolution fast on large binaries.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from gotrace.errors import GotraceError
from gotrace.versions import Version, check_constraint, satisfies

SYMBOLS_DIR = Path(os.environ.get("GOTRACE_SYMBOLS_DIR",
                                  Path(__file__).resolve().parent.parent.parent / "symbols"))
# Directories of more libraries, each as <library>.toml, .c and .py (gotrace/probes).
PROBE_PATH_ENV = "GOTRACE_PROBE_PATH"


def probe_directories() -> list[Path]:
    """The directories GOTRACE_PROBE_PATH lists (separated by ':'), in order."""
    return [Path(d) for d in os.environ.get(PROBE_PATH_ENV, "").split(os.pathsep) if d]


@dataclass(frozen=True)
class Spec:
    """One function, struct field or type (whose runtime hash a probe compares) a probe
    needs."""

    name: str
    library: str
    alternatives: tuple[str, ...] = ()
    go: str | None = None  # Go versions in which it exists
    module: str | None = None
    module_version: str | None = None
    why: str = ""
    # A struct never converted to an interface has no runtime type descriptor: its fields
    # come from DWARF or symbols/offsets.json only.
    no_type_descriptor: bool = False
    # (functions) a package: the functions outside it that call this one, directly or
    # through the package's own, are wanted (a probe's variant decides from them whether it
    # is needed).
    callers: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.alternatives)

    def applies_to(self, go: Version | None, module_version: Version | None) -> bool:
        """False when the binary's versions say this cannot exist in it."""
        if self.go and go is not None and not satisfies(go, self.go):
            return False
        return not (self.module_version and module_version is not None
                    and not satisfies(module_version, self.module_version))


@dataclass
class Manifest:
    library: str
    description: str = ""
    functions: list[Spec] = field(default_factory=list)
    fields: list[Spec] = field(default_factory=list)
    types: list[Spec] = field(default_factory=list)
    # Interfaces whose dynamic types' names gotrace learns (a driver's connection names the
    # database; an error's type is error.type), by qualified name ('error' for the builtin).
    implementations: list[str] = field(default_factory=list)
    # Interfaces whose dynamic types lead to a connection, like net.Conn's do (a database
    # driver's connection): their concrete types get connection steps (gobin/conntypes.py).
    connection_holders: list[str] = field(default_factory=list)
    # Fields that are their struct's connection where several fields hold one.
    connection_fields: list[str] = field(default_factory=list)


def _spec(entry: dict, library: str, module: str | None, where: Path) -> Spec:
    try:
        spec = Spec(
            name=entry["name"],
            library=library,
            alternatives=tuple(entry.get("alternatives", ())),
            go=entry.get("go"),
            module=entry.get("module", module),
            module_version=entry.get("module_version"),
            why=entry.get("why", ""),
            no_type_descriptor=bool(entry.get("no_type_descriptor", False)),
            callers=entry.get("callers"),
        )
        for constraint in (spec.go, spec.module_version):
            if constraint:
                check_constraint(constraint)
    except (KeyError, TypeError, ValueError) as e:
        raise GotraceError(f"{where}: bad manifest entry {entry!r}: {e}") from None
    return spec


def load_manifest(path: Path) -> Manifest:
    try:
        data = tomllib.loads(path.read_text())
        lib = data["library"]
        name, module = lib["name"], lib.get("module")
    except (OSError, tomllib.TOMLDecodeError, KeyError) as e:
        raise GotraceError(f"{path}: cannot read manifest: {e}") from None
    return Manifest(
        library=name,
        description=lib.get("description", ""),
        functions=[_spec(e, name, module, path) for e in data.get("function", [])],
        fields=[_spec(e, name, module, path) for e in data.get("field", [])],
        types=[_spec(e, name, module, path) for e in data.get("type", [])],
        implementations=[_name(e, path) for e in data.get("implementations", [])],
        connection_holders=[_name(e, path) for e in data.get("connection_holder", [])],
        connection_fields=[_name(e, path) for e in data.get("connection_field", [])],
    )


def _name(entry: dict, where: Path) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, str):
        raise GotraceError(f"{where}: bad manifest entry {entry!r}: no name")
    return name


def load_manifests(directory: Path | None = None) -> list[Manifest]:
    """The manifests of directory; by default gotrace's own (symbols/) and those of the
    GOTRACE_PROBE_PATH directories."""
    if directory is not None:
        paths = sorted(directory.glob("*.toml"))
        if not paths:
            raise GotraceError(f"no symbol manifests in {directory}")
        return [load_manifest(p) for p in paths]
    manifests = load_manifests(SYMBOLS_DIR)
    for extra in probe_directories():
        manifests += [load_manifest(p) for p in sorted(extra.glob("*.toml"))]
    return manifests
