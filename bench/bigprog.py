"""Generate a large Go program, for measuring `gotrace inspect` on a big binary.

Real services run to 100 MB and more (tens of thousands of functions and types). This writes
PACKAGES packages, each with TYPES struct types carrying METHODS methods, all reachable from
main so that the linker keeps their code and type descriptors.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("GOTRACE_CACHE", "/var/cache/gotrace")) / "bigprog"


def _package(index: int, types: int, methods: int) -> str:
    lines = [f"package p{index}", "", 'import "fmt"', ""]
    for t in range(types):
        lines.append(f"type T{t} struct {{ A int; B string; C []byte; D map[string]int; "
                     f"E *T{t}; F float64 }}")
        for m in range(methods):
            lines += [
                f"func (x *T{t}) M{m}(n int) string {{",
                "\tif x == nil { return \"\" }",
                f"\tx.A += n * {m + 1}",
                "\tif x.D == nil { x.D = map[string]int{} }",
                f"\tx.D[fmt.Sprint(n)] = x.A + {t}",
                f"\tx.C = append(x.C, byte(n+{m}))",
                "\treturn fmt.Sprintf(\"%d-%s-%d\", x.A, x.B, len(x.C))",
                "}",
            ]
    lines.append("func Run(n int) (out []interface{}) {")
    for t in range(types):
        calls = " + ".join(f"v.M{m}(n)" for m in range(methods))
        lines.append(f"\t{{ v := &T{t}{{B: \"x\"}}; out = append(out, v, {calls}) }}")
    lines.append("\treturn out\n}")
    return "\n".join(lines) + "\n"


def build_big_program(packages: int, types: int, methods: int, go: str) -> Path:
    """Build (once, cached by parameters) a stripped big program; returns its path."""
    key = hashlib.sha256(f"{packages}-{types}-{methods}-{go}".encode()).hexdigest()[:16]
    out = CACHE / key / "bigprog"
    if out.exists():
        return out
    src = CACHE / key / "src" / "bigprog"
    for p in range(packages):
        (src / f"p{p}").mkdir(parents=True, exist_ok=True)
        (src / f"p{p}" / "p.go").write_text(_package(p, types, methods))
    imports = "\n".join(f'\t"bigprog/p{p}"' for p in range(packages))
    runs = "\n".join(f"\tn += len(p{p}.Run(len(os.Args)))" for p in range(packages))
    (src / "main.go").write_text(
        f'package main\n\nimport (\n\t"fmt"\n\t"os"\n{imports}\n)\n\n'
        f"func main() {{\n\tn := 0\n{runs}\n\tfmt.Println(n)\n}}\n")
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(CACHE / key),
           "GOCACHE": str(CACHE / "gocache"), "GOFLAGS": ""}
    tmp = out.with_suffix(".tmp")
    subprocess.run([f"/usr/lib/go-{go}/bin/go", "build", "-ldflags=-s -w", "-o", str(tmp),
                    "bigprog"], cwd=src, env=env, check=True)
    tmp.rename(out)
    return out
