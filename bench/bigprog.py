"""Generate a large Go program, for measuring `gotrace inspect` on a big binary.

Real services run to 100 MB and more (tens of thousands of functions and types). This writes
PACKAGES packages, each with TYPES struct types carrying METHODS methods, all reachable from
main so that the linker keeps their code and type descriptors. Given a grpc-go GOPATH, the
program also links an HTTP server and client and a gRPC server and client (run with the
argument `serve`; never run by the benchmarks), so that every gotrace probe has something to
attach to: a service-sized binary for measuring attach time.
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


# main's imports and code when the program also serves HTTP and gRPC.
_SERVE_IMPORTS = ["context", "net", "net/http", "google.golang.org/grpc"]
_SERVE_CODE = """
func serve() {
\tln, err := net.Listen("tcp", "127.0.0.1:0")
\tif err != nil {
\t\tpanic(err)
\t}
\tgo grpc.NewServer().Serve(ln)
\tconn, err := grpc.Dial(ln.Addr().String(), grpc.WithInsecure())
\tif err == nil {
\t\tconn.Invoke(context.Background(), "/none/None", nil, nil)
\t\tconn.NewStream(context.Background(), &grpc.StreamDesc{}, "/none/None")
\t}
\thttp.Get("http://" + ln.Addr().String())
\thttp.ListenAndServe("127.0.0.1:0", nil)
}
"""


def _main(packages: int, serves: bool) -> str:
    imports = ["fmt", "os", *(_SERVE_IMPORTS if serves else []),
               *(f"bigprog/p{p}" for p in range(packages))]
    runs = "\n".join(f"\tn += len(p{p}.Run(len(os.Args)))" for p in range(packages))
    serve = '\tif len(os.Args) > 1 && os.Args[1] == "serve" {\n\t\tserve()\n\t}\n'
    return ("package main\n\nimport (\n" + "".join(f'\t"{i}"\n' for i in imports) + ")\n\n"
            f"func main() {{\n{serve if serves else ''}\tn := 0\n{runs}\n\tfmt.Println(n)\n}}\n"
            + (_SERVE_CODE if serves else ""))


def build_big_program(packages: int, types: int, methods: int, go: str,
                      grpc_gopath: Path | None = None) -> Path:
    """Build (once, cached by parameters) a stripped big program; returns its path. With
    grpc_gopath (a GOPATH holding grpc-go that builds with this Go), it also serves."""
    params = f"{packages}-{types}-{methods}-{go}" + (f"-{grpc_gopath}" if grpc_gopath else "")
    key = hashlib.sha256(params.encode()).hexdigest()[:16]
    out = CACHE / key / "bigprog"
    if out.exists():
        return out
    src = CACHE / key / "src" / "bigprog"
    for p in range(packages):
        (src / f"p{p}").mkdir(parents=True, exist_ok=True)
        (src / f"p{p}" / "p.go").write_text(_package(p, types, methods))
    (src / "main.go").write_text(_main(packages, grpc_gopath is not None))
    gopath = os.pathsep.join([str(CACHE / key), *([str(grpc_gopath)] if grpc_gopath else [])])
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": gopath,
           "GOCACHE": str(CACHE / "gocache"), "GOFLAGS": ""}
    tmp = out.with_suffix(".tmp")
    subprocess.run([f"/usr/lib/go-{go}/bin/go", "build", "-ldflags=-s -w", "-o", str(tmp),
                    "bigprog"], cwd=src, env=env, check=True)
    tmp.rename(out)
    return out
