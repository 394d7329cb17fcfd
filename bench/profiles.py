"""What a profile written by bench.profiled says: where the CPU went, by function and by
package."""

from __future__ import annotations

import pstats
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench import REPO

# Where installed packages live; what follows is the package's own path.
_PACKAGE_ROOTS = ("site-packages/", "debian-bcc/", f"{REPO}/")


@dataclass(frozen=True)
class ProfileLine:
    function: str  # file:line(name), the file relative to its package root
    calls: int
    own_s: float  # CPU in the function itself
    total_s: float  # ... and in what it called


@dataclass(frozen=True)
class Summary:
    total_s: float  # CPU profiled, over all threads
    top: list[ProfileLine]  # the functions with the most own time
    packages: list[tuple[str, float]]  # own time by package, largest first

    def package_shares(self, n: int) -> str:
        """The n packages with the most own time, those of at least 1%."""
        return ", ".join(f"{name} {s / self.total_s:.0%}" for name, s in self.packages[:n]
                         if s >= 0.01 * self.total_s)


def _relative(file: str) -> tuple[str, str]:
    """(the package, the file relative to its root) of a profiled function's file."""
    if file == "~":
        return "built-ins", ""
    for root in _PACKAGE_ROOTS:
        if root in file:
            relative = file.split(root, 1)[1]
            return relative.split("/", 1)[0].removesuffix(".py"), relative
    return "stdlib", file.rsplit("/", 1)[-1]


def summarize(path: Path, top: int) -> Summary:
    stats = pstats.Stats(str(path))
    lines, packages = [], Counter[str]()
    for (file, line, name), (_, calls, own, total, _) in stats.stats.items():  # type: ignore[attr-defined]
        package, relative = _relative(file)
        packages[package] += own
        lines.append(ProfileLine(f"{relative}:{line}({name})" if relative else name, calls,
                                 own, total))
    lines.sort(key=lambda p: p.own_s, reverse=True)
    return Summary(stats.total_tt, lines[:top], packages.most_common())  # type: ignore[attr-defined]
