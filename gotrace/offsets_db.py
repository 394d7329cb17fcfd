"""symbols/offsets.json: field offsets recorded from the test-app matrix, the last resort.

Used only when neither the binary's type metadata nor its DWARF knows a type. Standard-library
fields are keyed by Go release ("1.22"); fields of a module by the module's version ("v1.64.0").
When the key is unknown (a GOPATH-mode binary has no module versions), an offset is used only
if every recorded version agrees on it: a guess between different layouts would be wrong.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from gotrace.manifest import SYMBOLS_DIR

DB_PATH = SYMBOLS_DIR / "offsets.json"


@cache
def _load(path: Path) -> dict[str, dict[str, int]]:
    try:
        return json.loads(path.read_text()).get("fields", {})
    except (OSError, ValueError):
        return {}


def lookup(field: str, key: str | None, path: Path = DB_PATH) -> int | None:
    """The recorded offset of `field` for version `key` (Go "1.22" or module "v1.64.0")."""
    recorded = _load(path).get(field)
    if not recorded:
        return None
    if key is not None and key in recorded:
        return recorded[key]
    values = set(recorded.values())
    return values.pop() if len(values) == 1 else None
