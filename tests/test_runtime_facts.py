"""Go runtime facts on spans: stop-the-world pauses against the runtime's own account."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from tracing import get, gotrace, stop

from testapps import matrix

# GODEBUG=gctrace=1: "gc 12 @0.345s 3%: 0.021+1.2+0.034 ms clock, ..." -- the first and third
# clock figures are the two stop-the-world phases (sweep termination, mark termination).
GCTRACE = re.compile(r"^gc \d+ @[\d.]+s \d+%: ([\d.]+)\+[\d.]+\+([\d.]+) ms clock")
TOTALS = re.compile(r"runtime pid (\d+): (\d+) GC cycles, (\d+) stop-the-world pauses, "
                    r"([\d.]+) ms stopped")


class GcTraced:
    """An httpserver with a low GOGC, its gctrace lines collected as they come."""

    def __init__(self, cell: matrix.Cell) -> None:
        env = {**os.environ, "GOGC": "5", "GODEBUG": "gctrace=1"}
        self.proc = subprocess.Popen([str(matrix.build(cell)), "-addr", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        line = self.proc.stdout.readline()
        assert line.startswith("READY "), line
        self.addr = line.split()[1]
        self.pauses_ms: list[float] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            match = GCTRACE.match(line)
            if match:
                self.pauses_ms.append(float(match[1]) + float(match[2]))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def reader_done(self, timeout: float) -> None:
        self._reader.join(timeout)


@pytest.mark.parametrize("go", [matrix.go_versions()[0], matrix.go_versions()[-1]])
def test_stop_the_world_pauses_agree_with_gctrace(tmp_path, go):
    server = GcTraced(matrix.Cell("httpserver", go, "stripped"))
    jsonl = tmp_path / "spans.jsonl"
    try:
        with gotrace(tmp_path, "trace", "--pid", str(server.proc.pid), "--stats",
                     "--jsonl", str(jsonl)) as tracer:
            before = len(server.pauses_ms)
            with ThreadPoolExecutor(4) as pool:
                codes = list(pool.map(lambda i: get(server.addr, "/alloc?kb=2048" if i % 2
                                                    else "/hello"), range(200)))
            assert set(codes) == {200}
            time.sleep(0.5)
            _, err = stop(tracer)
    finally:
        server.close()
    server.reader_done(timeout=10)
    during = server.pauses_ms[before:]
    totals = {int(m[1]): (int(m[2]), int(m[3]), float(m[4])) for m in TOTALS.finditer(err)}
    cycles, pauses, stopped_ms = totals[server.proc.pid]
    runtime_ms = sum(during)
    assert len(during) >= 5, "the workload should have made the collector run"
    # A cycle under way as tracing starts or the server stops is seen by one side only.
    assert abs(cycles - len(during)) <= 1, err
    assert pauses > 0
    assert abs(stopped_ms - runtime_ms) <= max(0.1 * runtime_ms, 1.0), (stopped_ms, runtime_ms)
    import json

    spans = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(spans) == 200
    paused = [s for s in spans if s["attributes"]["go.gc.pause_ns"] > 0]
    assert paused and len(paused) < len(spans)
    for span in spans:
        attrs = span["attributes"]
        duration = span["end_time_unix_nano"] - span["start_time_unix_nano"]
        assert 0 <= attrs["go.gc.pause_ns"] <= duration
        assert attrs["go.gc.pause_ns"] <= stopped_ms * 1e6
    # A pause overlaps every span in flight at the time, so the spans' sum is at least the
    # pauses that happened during some request and at most the in-flight count times all.
    assert sum(s["attributes"]["go.gc.pause_ns"] for s in spans) <= 4 * stopped_ms * 1e6
