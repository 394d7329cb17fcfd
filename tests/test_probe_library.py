"""A library is its own files: kvwire, a test-only library (testapps/kvwire), is instrumented
by a manifest, a C program and a declaration in tests/probe_library alone, given to gotrace
with GOTRACE_PROBE_PATH; no shared file names it. Its calls get spans with their attributes,
same-host linking of client to server, the sampler's decisions, RED metrics and --stats hits,
like gotrace's own libraries."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tracing import (
    REPO,
    free_port,
    go_server,
    gotrace,
    linked_pairs,
    probe_hits,
    read_spans,
    stop,
)

from testapps import matrix

LIBRARY = REPO / "tests" / "probe_library"
CALLS = 20


@pytest.fixture(scope="module")
def kvwire() -> Path:
    return matrix.build(matrix.Cell("kvwire", matrix.go_versions()[-1], "plain"))


def with_library(**extra: str) -> dict[str, str]:
    return {**os.environ, "GOTRACE_PROBE_PATH": str(LIBRARY), **extra}


def call(kvwire: Path, addr: str, n: int, keys: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(kvwire), "-call", addr, "-n", str(n), "-keys", keys],
                          capture_output=True, text=True, timeout=60, check=True)


def test_a_library_of_its_own_files_gets_spans_links_metrics_and_hits(tmp_path, kvwire):
    capture, port = tmp_path / "spans.jsonl", free_port()
    with go_server(kvwire) as (server, addr), \
            gotrace(tmp_path, "trace", "--exe", str(kvwire), "--jsonl", str(capture), "--stats",
                    "--metrics-host", "127.0.0.1", "--metrics-port", str(port),
                    env=with_library()) as tracer:
        client = subprocess.Popen([str(kvwire), "-call", addr, "-n", str(CALLS),
                                   "-keys", "a,b,a,missing"], stdout=subprocess.PIPE, text=True)
        replies = client.communicate(timeout=60)[0].splitlines()
        assert replies.count("1 ") == CALLS // 4, replies
        time.sleep(1.5)  # a same-host server span waits up to a second for its client
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        _, err = stop(tracer)
    spans = read_spans(capture)
    assert len(spans) == 2 * CALLS, err
    pairs = linked_pairs(spans, server.pid, {client.pid})
    assert len(pairs) == CALLS
    for client_span, server_span in pairs:
        assert client_span["name"] == server_span["name"] == "kv GET"
        key = server_span["attributes"]["kv.key"]
        assert client_span["attributes"]["kv.key"] == key
        missing = key == "missing"
        assert server_span["attributes"]["kv.status"] == int(missing)
        assert server_span["status"] == client_span["status"] == ("ERROR" if missing else "UNSET")
        assert server_span["attributes"]["network.transport"] == "tcp"
    assert sorted(s["attributes"]["kv.key"] for _, s in pairs) == sorted(
        ["a", "b", "a", "missing"] * (CALLS // 4))
    hits = probe_hits(err)
    assert {hits[p] for p in ("kv_server_entry", "kv_server_return", "kv_client_entry",
                              "kv_client_return")} == {CALLS}, err
    assert ('kv_server_duration_seconds_count{service_name="kvwire",kv_operation="GET",'
            'kv_status="0"} 15') in metrics, metrics
    assert ('kv_client_duration_seconds_count{service_name="kvwire",kv_operation="GET",'
            'kv_status="1"} 5') in metrics, metrics


def test_the_sampler_decides_for_a_library_of_its_own_files(tmp_path, kvwire):
    """always_off: the kernel drops the spans of the new kinds like any other (and counts
    them), the client's to this host included once linking has dropped its server's."""
    capture = tmp_path / "spans.jsonl"
    with go_server(kvwire) as (_server, addr), \
            gotrace(tmp_path, "trace", "--exe", str(kvwire), "--jsonl", str(capture), "--stats",
                    "--sampler", "always_off", env=with_library()) as tracer:
        call(kvwire, addr, 8, "a")
        time.sleep(1.5)
        _, err = stop(tracer)
    assert read_spans(capture) == [], err
    hits = probe_hits(err)
    assert hits["kv_server_entry"] == hits["kv_client_entry"] == 8, err


def test_without_the_library_gotrace_does_not_know_it(tmp_path, kvwire):
    """The library comes from GOTRACE_PROBE_PATH and nowhere else: no shared file names it."""
    shared = [p for d in ("gotrace", "bpf", "symbols") for p in (REPO / d).rglob("*")
              if p.is_file() and p.suffix in (".py", ".c", ".h", ".toml")]
    assert [p for p in shared if "kvwire" in p.read_text()] == []
    env = {k: v for k, v in os.environ.items() if k != "GOTRACE_PROBE_PATH"}
    done = subprocess.run([sys.executable, "-m", "gotrace", "inspect", str(kvwire)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert "main.(*kvServer).handle" not in done.stdout
    done = subprocess.run([sys.executable, "-m", "gotrace", "inspect", str(kvwire)],
                          capture_output=True, text=True, cwd=REPO, env=with_library(),
                          timeout=120)
    assert "main.(*kvServer).handle" in done.stdout and "MISSING" not in done.stdout, done.stdout


@pytest.mark.parametrize(("declaration", "error"), [
    ("raise ValueError('boom')", "cannot load the probe declaration: boom"),
    ("from gotrace.probes.base import Probe\n"
     "PROBE = Probe(library='runtime', attachments=(), fields=())",
     "probe library 'runtime' is declared twice"),
    ("from gotrace.probes.base import Probe\n"
     "PROBE = Probe(library='x', attachments=(), fields=(), requires=('nothing',))",
     "probe x requires 'nothing', not declared"),
])
def test_a_bad_declaration_is_one_line_and_exit_2(tmp_path, declaration, error):
    (tmp_path / "x.py").write_text(declaration + "\n")
    done = subprocess.run([sys.executable, "-m", "gotrace", "trace", "--pid", "1"],
                          capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, "GOTRACE_PROBE_PATH": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"gotrace: {tmp_path / 'x.py'}: {error}"
                                                if "load" in error else f"gotrace: {error}"]
