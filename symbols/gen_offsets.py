"""Regenerate symbols/offsets.json from the test-app matrix.

For every unstripped build in the matrix (and the unstripped twin of each stripped one: field
offsets do not depend on how a program is linked), the offsets of every manifest field are read from
the type metadata, else DWARF (the tests hold the two equal), and recorded: standard-library
fields under the Go release ("1.22"), fields of grpc-go under its version ("v1.64.0"); other
modules' fields (golang.org/x/net's) are not recorded, the builds not telling their version.
The resolver uses this table only when a binary's type metadata and DWARF both lack a type.

    .venv/bin/python symbols/gen_offsets.py [--full]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gotrace.gobin.binary import GoBinary
from gotrace.resolve.layout import resolve
from gotrace.resolve.manifest import load_manifests
from testapps import matrix

OUT = Path(__file__).resolve().parent / "offsets.json"
GRPC_MODULE = "google.golang.org/grpc"  # the one module whose version a matrix cell knows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="use the whole matrix")
    args = parser.parse_args()
    manifests = load_manifests()
    module_of = {s.name: s.module for m in manifests for s in m.fields}
    table: dict[str, dict[str, int]] = defaultdict(dict)
    chosen = matrix.full_cells() if args.full else matrix.default_cells()
    # Unstripped builds: the plain ones, and the unstripped twins of stripped ones (the
    # database clients' default cells are stripped cgo builds).
    cells = dict.fromkeys(cell if not cell.stripped else cell.twin() for cell in chosen)
    for cell in cells:
        if cell.stripped:
            continue
        with GoBinary(matrix.build(cell)) as binary:
            layout = resolve(binary, manifests, field_sources=("typeinfo", "dwarf"))
        for spec_name, field in layout.fields.items():
            # Recorded under the field's own name: a renamed field's alternatives differ.
            name = field.found_as
            if module := module_of.get(spec_name):
                if module != GRPC_MODULE or cell.grpc is None:
                    continue  # a version the GOPATH build does not tell (x/net's)
                key = "v" + matrix.grpc_gopaths()[cell.grpc].full_version
            else:
                key = f"{binary.go_version[0]}.{binary.go_version[1]}"
            previous = table[name].setdefault(key, field.offset)
            if previous != field.offset:
                raise SystemExit(f"{name}: {key} has offsets {previous} and {field.offset}")
    doc = {
        "generated_by": "symbols/gen_offsets.py",
        "fields": {name: dict(sorted(v.items())) for name, v in sorted(table.items())},
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT}: {len(table)} fields")


if __name__ == "__main__":
    main()
