"""A BPF program's C text from its files, with their #include "..." directives expanded.

BCC turns only the main text into programs and rewrites map calls (`table.lookup(...)`) only
there, not in included files; so gotrace expands the includes itself. Every header includes
what it uses and has an include guard, which keeps one copy of each after preprocessing; an
include cycle is an error. #line directives keep compiler errors pointing at the real file and
line. System headers (#include <...>) are left to the compiler.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from gotrace.errors import GotraceError

BPF_DIR = Path(__file__).resolve().parent.parent.parent / "bpf"
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"', re.MULTILINE)


def program_text(files: Iterable[Path], search: Sequence[Path] = (BPF_DIR,)) -> str:
    """The files' text, one after the other, each with its local includes expanded (found
    beside the including file, then in `search`)."""
    return "".join(_expand(path, search, ()) for path in files)


def local_includes(path: Path, search: Sequence[Path] = (BPF_DIR,)) -> list[Path]:
    """Every file path includes, directly or through others (each once)."""
    found: dict[Path, None] = {}

    def walk(current: Path, stack: tuple[Path, ...]) -> None:
        for name in _INCLUDE.findall(_read(current)):
            included = _find(name, current, search, stack)
            if included not in found:
                found[included] = None
                walk(included, (*stack, current))

    walk(path, ())
    return list(found)


def _expand(path: Path, search: Sequence[Path], stack: tuple[Path, ...]) -> str:
    text = _read(path)
    out = [f'#line 1 "{path}"\n']
    last = 0
    for match in _INCLUDE.finditer(text):
        included = _find(match.group(1), path, search, stack)
        out.append(text[last:match.start()])
        out.append(_expand(included, search, (*stack, path)))
        line = text.count("\n", 0, match.end()) + 2  # the line after the directive
        out.append(f'#line {line} "{path}"')
        last = match.end()
    out.append(text[last:])
    if not out[-1].endswith("\n"):
        out.append("\n")
    return "".join(out)


def _find(name: str, including: Path, search: Sequence[Path], stack: tuple[Path, ...]) -> Path:
    for directory in (including.parent, *search):
        candidate = (directory / name).resolve()
        if candidate.is_file():
            if candidate in stack or candidate == including.resolve():
                cycle = " -> ".join(p.name for p in (*stack, including, candidate))
                raise GotraceError(f"include cycle in the BPF sources: {cycle}")
            return candidate
    raise GotraceError(f"{including}: included file {name!r} not found")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise GotraceError(f"cannot read BPF source {path}: {e}") from None
