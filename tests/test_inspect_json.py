"""`gotrace inspect --json` of stripped and unstripped twins, and of a running process."""

from __future__ import annotations

import json
import subprocess
import sys


def inspect_json(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "gotrace", "inspect", "--json", *args],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def facts(doc: dict) -> dict:
    """Everything but where each fact came from."""
    return {
        "go_version": doc["go_version"],
        "functions": {n: (f["address"], f["entry"], f["rets"])
                      for n, f in doc["functions"].items()},
        "fields": {n: f["offset"] for n, f in doc["fields"].items()},
        "missing": doc["missing"],
        "absent_libraries": doc["absent_libraries"],
    }


def test_stripped_and_unstripped_twins_agree(stripped_cell, build):
    stripped = inspect_json(str(build(stripped_cell)))
    unstripped = inspect_json(str(build(stripped_cell.twin())))
    assert facts(stripped) == facts(unstripped)
    assert {f["source"] for f in stripped["functions"].values()} == {"pclntab"}
    assert {f["source"] for f in unstripped["functions"].values()} == {"symtab"}


def test_json_shape(cell, binary):
    doc = inspect_json(str(binary))
    assert doc["go_version"].startswith(f"go{cell.go}")
    fn = doc["functions"]["runtime.newproc1"]
    assert isinstance(fn["address"], int) and isinstance(fn["entry"], int)
    assert fn["rets"] and all(isinstance(r, int) for r in fn["rets"])
    assert fn["source"] in ("symtab", "pclntab")
    assert doc["fields"]["runtime.g.goid"]["source"] in ("typeinfo", "dwarf", "offsets-db")


def test_inspect_pid_of_running_server(build):
    from testapps import matrix

    path = build(matrix.Cell("httpserver", matrix.go_versions()[-1], "stripped"))
    proc = subprocess.Popen([str(path), "-addr", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("READY")
        by_pid = inspect_json("--pid", str(proc.pid))
        by_path = inspect_json(str(path))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert facts(by_pid) == facts(by_path)
    assert by_pid["path"].startswith(str(path))
