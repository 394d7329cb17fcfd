"""`gotrace inspect`: what gotrace knows about a Go binary, and where each fact came from."""

from __future__ import annotations

import json
import os
from pathlib import Path

from gotrace.errors import GotraceError, malformed_input_is_corrupt
from gotrace.gobin.binary import GoBinary
from gotrace.gobin.conntypes import ConnStep, StepKind
from gotrace.resolve.layout import Layout, resolve
from gotrace.resolve.manifest import Manifest, load_manifests


def executable_of_pid(pid: int) -> tuple[Path, str]:
    """(a path that opens the process's executable, the name to show for it).

    /proc/PID/exe opens the very file the process runs, also inside another mount namespace
    (a container) and after the file was replaced on disk.
    """
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        raise GotraceError(f"no process with PID {pid}")
    exe = proc / "exe"
    try:
        shown = os.readlink(exe)
    except PermissionError:
        raise GotraceError(f"cannot read {exe}: permission denied (run as root)") from None
    except FileNotFoundError:
        raise GotraceError(f"process {pid} has exited or is a kernel thread") from None
    if not os.access(exe, os.R_OK):
        raise GotraceError(f"cannot read {exe}: permission denied (run as root)")
    root = os.readlink(proc / "root") if (proc / "root").exists() else "/"
    if root != "/":
        shown = f"{shown} (in the container rooted at {root})"
    return exe, shown


def inspect_binary(path: Path) -> Layout:
    manifests = load_manifests()
    with malformed_input_is_corrupt(path), GoBinary(path) as binary:
        return resolve(binary, manifests)


def _hexes(values: list[int] | tuple[int, ...]) -> str:
    return " ".join(f"{v:#x}" for v in values) or "-"


def _unresolved(name: str, layout: Layout) -> str:
    return "n/a for this version" if name in layout.not_applicable else "MISSING"


def render_text(layout: Layout, shown_path: str, manifests: list[Manifest]) -> str:
    lines = [shown_path]
    s = layout.settings
    lines.append(f"  go version   {layout.go_version}")
    if s:
        lines.append("  build        " + " ".join(
            f"{k}={v}" for k, v in s.items() if k != "DefaultGODEBUG"))
    if layout.modules:
        for path, version in sorted(layout.modules.items()):
            lines.append(f"  module       {path} {version}")
    else:
        lines.append("  modules      none recorded (GOPATH-mode build)")
    for manifest in manifests:
        lines.append("")
        title = f"{manifest.library}: {manifest.description}"
        if manifest.library in layout.absent_libraries:
            lines.append(f"{title}: not linked into this binary")
            continue
        lines.append(title)
        for spec in manifest.functions:
            fn = layout.functions.get(spec.name)
            if fn is None:
                lines.append(f"  func  {spec.name}  {_unresolved(spec.name, layout)}")
                continue
            alias = f" (as {fn.found_as})" if fn.found_as != spec.name else ""
            probe = f" (probe +{fn.entry_probe - fn.address:#x})" \
                if fn.entry_probe != fn.address else ""
            lines.append(f"  func  {spec.name}{alias}  addr {fn.address:#x}  entry "
                         f"{fn.entry:#x}{probe}  rets {_hexes(fn.rets)}  [{fn.source}]")
            if spec.callers:
                lines.append(f"        called from outside {spec.callers} by: "
                             f"{', '.join(sorted(fn.callers)) or 'nothing'}")
        for spec in manifest.fields:
            fld = layout.fields.get(spec.name)
            if fld is None:
                lines.append(f"  field {spec.name}  {_unresolved(spec.name, layout)}")
            else:
                lines.append(f"  field {spec.name}  offset {fld.offset}  [{fld.source}]")
        for spec in manifest.types:
            found = layout.type_hashes.get(spec.name)
            shown = _unresolved(spec.name, layout) if found is None else \
                f"hash {found:#010x}  [typeinfo]"
            lines.append(f"  type  {spec.name}  {shown}")
    lines += ["", "connection types: how each reaches its socket"]
    lines += [f"  {_describe_step(step, layout)}" for step in sorted(
        layout.conn_types.steps.values(), key=lambda s: s.type_name)]
    lines += [f"  {name}  no step: {why}"
              for name, why in sorted(layout.conn_types.refused.items())]
    return "\n".join(lines)


def _describe_step(step: ConnStep, layout: Layout) -> str:
    tls = "  (TLS)" if step.tls else ""
    if step.kind == StepKind.SOCKET:
        return f"{step.type_name}  {'Unix' if step.unix else 'TCP'} socket  [typeinfo]"
    if step.kind == StepKind.INTERFACE:
        return f"{step.type_name}  connection at +{step.offset}{tls}  [typeinfo]"
    below = next((s.type_name for h, s in layout.conn_types.steps.items()
                  if h == step.next_hash), f"{step.next_hash:#010x}")
    return f"{step.type_name}  {below} at +{step.offset}{tls}  [typeinfo]"


def run_inspect(binary: str | None, pid: int | None, as_json: bool) -> str:
    if pid is not None:
        path, shown = executable_of_pid(pid)
    else:
        assert binary is not None
        path, shown = Path(binary), binary
    layout = inspect_binary(path)
    if as_json:
        doc = layout.to_json()
        doc["path"] = shown
        return json.dumps(doc, indent=2)
    return render_text(layout, shown, load_manifests())
