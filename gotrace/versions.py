"""Version numbers and the small constraint language of the symbols/ manifests.

A constraint is a comma-separated list of comparisons, all of which must hold:
">=1.21", ">=1.22,<1.26", "<1.69". Versions compare numerically part by part; "go1.22.12",
"v1.64.0" and "1.22" are all understood.
"""

from __future__ import annotations

import operator
import re

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "==": operator.eq, "!=": operator.ne}
_CONSTRAINT = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*v?(\d+(?:\.\d+)*)\s*$")

Version = tuple[int, ...]


def parse_version(text: str) -> Version | None:
    """'go1.22.12' -> (1, 22, 12); 'v1.64.0-dev' -> (1, 64, 0); None if there is no number."""
    m = re.search(r"(\d+(?:\.\d+)*)", text)
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def check_constraint(constraint: str) -> None:
    """Raise ValueError when a constraint does not parse."""
    for part in constraint.split(","):
        if not _CONSTRAINT.match(part):
            raise ValueError(f"bad version constraint {constraint!r}")


def satisfies(version: Version, constraint: str) -> bool:
    """Whether `version` meets every comparison; compares only as many parts as the bound has."""
    for part in constraint.split(","):
        m = _CONSTRAINT.match(part)
        if m is None:
            raise ValueError(f"bad version constraint {constraint!r}")
        bound = tuple(int(p) for p in m.group(2).split("."))
        if not _OPS[m.group(1)](version[: len(bound)], bound):
            return False
    return True
