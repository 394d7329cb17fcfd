"""`gotrace trace` as an operator meets it: discovery, errors, attach/detach under load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

from conftest import FULL
from otlp_receiver import OtlpReceiver
from tracing import REPO, get, go_server, gotrace, otlp_args, stop

from testapps import matrix


def newest_server():
    return matrix.build(matrix.Cell("httpserver", matrix.go_versions()[-1], "stripped"))


def run_gotrace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gotrace", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


def assert_one_line_error(result: subprocess.CompletedProcess[str], expect: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gotrace: "), result.stderr
    assert expect in lines[0]


def test_vanished_pid_is_a_one_line_error():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert_one_line_error(run_gotrace("trace", "--pid", str(proc.pid)), "no process with PID")


def test_non_go_pid_is_a_one_line_error():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert_one_line_error(run_gotrace("trace", "--pid", str(proc.pid)), "not a Go binary")
    finally:
        proc.kill()
        proc.wait()


def test_not_root_is_a_one_line_error():
    # As nobody in a user namespace of its own: no privilege, yet the checkout stays readable
    # (its files' owner is still who runs this), wherever it is and whatever its mode.
    result = subprocess.run(
        ["unshare", "--user", "--map-user=65534", "--map-group=65534",
         sys.executable, "-m", "gotrace", "trace", "--pid", "1"],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert_one_line_error(result, "needs root")


def test_exe_traces_processes_started_later_and_survives_their_exit(tmp_path):
    # A private copy: --exe traces every process of the file, and no other test runs this one.
    binary = tmp_path / "httpserver"
    shutil.copy(newest_server(), binary)
    out = tmp_path / "spans.jsonl"
    with gotrace(tmp_path, "trace", "--exe", str(binary), "--jsonl", str(out)) as tracer:
        for round_ in range(2):  # the second process starts after the first one has exited
            with go_server(binary) as (_, addr):
                assert get(addr, f"/hello?name=round{round_}") == 200
        time.sleep(1.0)
        assert tracer.poll() is None, "the tracer stopped when its target exited"
        stop(tracer)
    spans = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(spans) == 2
    assert len({s["resource"]["process.pid"] for s in spans}) == 2


# Each cycle is a full attach (a BPF compile, seconds) and detach while four clients keep the
# server busy; every cycle is another chance to catch a detach racing a probe mid-request.
# The default run does three, GOTRACE_MATRIX=full the twenty this test was written with.
ATTACH_CYCLES = 20 if FULL else 3


def test_attach_and_detach_repeatedly_under_load(tmp_path):
    failures: list[str] = []
    done = threading.Event()
    with go_server(newest_server()) as (server, addr):
        def load() -> None:
            while not done.is_set():
                try:
                    if get(addr, "/hello") != 200:
                        failures.append("status")
                except OSError as e:
                    failures.append(repr(e))
        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        try:
            for _ in range(ATTACH_CYCLES):
                with gotrace(tmp_path, "trace", "--pid", str(server.pid), "--jsonl",
                             str(tmp_path / "spans.jsonl")) as tracer:
                    time.sleep(0.2)
                    stop(tracer)
        finally:
            done.set()
            for w in workers:
                w.join()
        assert server.poll() is None, "the target died"
        assert get(addr, "/hello") == 200
    assert failures == []


def test_otlp_endpoint_down_counts_drops_and_recovers(tmp_path):
    with OtlpReceiver() as receiver, go_server(newest_server()) as (server, addr):
        receiver.stop()
        with gotrace(tmp_path, "trace", "--pid", str(server.pid), "--stats",
                     *otlp_args(receiver)) as tracer:
            for _ in range(50):
                assert get(addr, "/hello") == 200
            time.sleep(1.0)
            receiver.start()
            for _ in range(20):
                assert get(addr, "/") == 200
            receiver.wait_for(20, timeout=30)
            assert tracer.poll() is None
            _, err = stop(tracer)
    paths = [s["attributes"]["url.path"] for s in receiver.spans]
    assert paths.count("/") == 20
    assert "otlp: exported" in err


def test_missing_kernel_headers_is_a_one_line_error(tmp_path):
    with go_server(newest_server()) as (server, _):
        result = subprocess.run(
            [sys.executable, "-m", "gotrace", "trace", "--pid", str(server.pid)],
            capture_output=True, text=True, timeout=60, cwd=REPO,
            env={**os.environ, "BCC_KERNEL_SOURCE": str(tmp_path / "no-headers")})
    assert_one_line_error(result, "no kernel headers")
    assert "scripts/setup.sh" in result.stderr
