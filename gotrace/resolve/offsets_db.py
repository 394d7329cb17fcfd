"""symbols/offsets.json: field offsets recorded from the test-app matrix, the last resort.

Used only when neither the binary's type metadata nor its DWARF knows a type. Standard-library
fields are keyed by Go release ("1.22"); fields of a module by the module's version ("v1.64.0").
When the key is unknown (a GOPATH-mode binary has no module versions), an offset is used only
if every recorded version agrees on it: a guess between different layouts would be wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from gotrace.resolve.manifest import SYMBOLS_DIR

DB_PATH = SYMBOLS_DIR / "offsets.json"


@cache
def _load(path: Path) -> dict[str, dict[str, int]]:
    try:
        return json.loads(path.read_text()).get("fields", {})
    except (OSError, ValueError):
        return {}


def lookup(names: Sequence[str], key: str | None,
           path: Path = DB_PATH) -> tuple[int, str] | None:
    """(offset, name found as) of a field for version `key` (Go "1.22" or module "v1.64.0").

    `names` are the field's names across versions (a renamed field has several): for an
    unrecorded or unknown version, every version recorded under any of them must agree.
    """
    fields = _load(path)
    recorded = [(name, fields[name]) for name in names if fields.get(name)]
    for name, versions in recorded:
        if key is not None and key in versions:
            return versions[key], name
    values = {(offset, name) for name, versions in recorded for offset in versions.values()}
    offsets = {offset for offset, _ in values}
    if len(offsets) != 1:
        return None
    return min(values, key=lambda v: names.index(v[1]))
