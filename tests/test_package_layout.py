"""The package layout shows the pipeline, and every import points down it: a module may
import only from its own package or from one of a lower layer (imports for type checking
alone, which never run, aside)."""

from __future__ import annotations

import ast
from pathlib import Path

import gotrace

PACKAGE = Path(gotrace.__file__).resolve().parent

# Bottom to top: what the kernel and gotrace share, the compiled hot paths, the readers of a
# binary, what the manifests resolve to, facts and outputs, the probe declarations, the kernel
# side, the session and its pipeline, the commands.
LAYERS = (
    {"errors", "versions", "records", "addresses", "procfs", "spans"},
    {"record_view"},
    {"native"},
    {"gobin"},
    {"resolve"},
    {"facts"},
    {"export", "report"},
    {"metrics"},
    {"probes"},
    {"kernel"},
    {"pipeline"},
    {"cli"},
    {"__main__"},
)
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def unit_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def runtime_imports(tree: ast.Module) -> list[str]:
    """The gotrace units a module imports when it runs (not under `if TYPE_CHECKING:`)."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = node.module.split(".")
            if names[0] == "gotrace":
                found.extend([names[1]] if len(names) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.extend(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("gotrace."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_every_unit_has_a_layer():
    units = {unit_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert units <= RANK.keys(), units - RANK.keys()


def test_every_import_points_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = unit_of(path)
        if unit == "__init__":
            continue
        for imported in runtime_imports(ast.parse(path.read_text())):
            if imported != unit and RANK[imported] >= RANK[unit]:
                upward.append(f"{path.relative_to(PACKAGE)} imports gotrace.{imported}")
    assert not upward, upward


def test_few_loose_modules():
    """The top level holds only what every layer shares."""
    loose = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert loose == LAYERS[0] | LAYERS[1], loose
