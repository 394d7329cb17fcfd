"""The status output: a live line on a terminal, JSON lines elsewhere, --stats unchanged."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tracing import REPO, get, go_server, gotrace, stop

from gotrace.cli.status import JsonLog, LiveLine, Snapshot, open_status
from gotrace.export import ExportPipeline
from gotrace.spans import Resource, Span
from testapps import matrix

CLEAR = "\r\x1b[K"


def snapshot(spans: int = 0, dropped: int = 0, errors: int = 0, processes: int = 2,
             exported: dict[str, int] | None = None) -> Snapshot:
    """dropped: that many spans lost to a full ring buffer."""
    return Snapshot(processes=processes, spans=spans, exported=exported or {"otlp": spans},
                    dropped_by={"ringbuf_full": dropped} if dropped else {}, errors=errors)


def record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("gotrace.export.lane", level, __file__, 1, message, None, None)


# --- the terminal line ------------------------------------------------------------------------

def test_live_line_redraws_in_place_with_the_rate():
    out = io.StringIO()
    line = LiveLine(out)
    line.started(snapshot(), 100.0)
    line.tick(snapshot(spans=500, dropped=3, errors=1), 102.0)
    frames = out.getvalue().split(CLEAR)[1:]
    assert frames == [
        "gotrace: 2 processes, 0 spans/s, exported 0, dropped 0, errors 0",
        "gotrace: 2 processes, 250 spans/s, exported 500, dropped 3, errors 1",
    ]
    assert "\n" not in out.getvalue()


def test_live_line_prints_messages_above_itself_and_stays_when_stopped():
    out = io.StringIO()
    line = LiveLine(out)
    line.tick(snapshot(processes=1, spans=7, exported={"jsonl": 7, "otlp": 5}), 1.0)
    line.log(record("otlp: export failed; retrying"))
    line.stopped(snapshot(spans=9, exported={"jsonl": 9, "otlp": 9}))
    line.log(record("late"))
    drawn = "gotrace: 1 process, 0 spans/s, exported jsonl=7 otlp=5, dropped 0, errors 0"
    assert out.getvalue() == (
        f"{CLEAR}{drawn}"
        f"{CLEAR}gotrace: otlp: export failed; retrying\n{drawn}"
        f"{CLEAR}gotrace: stopped, 9 spans, exported jsonl=9 otlp=9, dropped 0, errors 0\n"
        "gotrace: late\n")


def test_live_line_fits_the_terminal_width():
    out = io.StringIO()  # no terminal behind it: 80 columns assumed
    LiveLine(out).tick(snapshot(exported={f"exporter{i}": i for i in range(10)}), 1.0)
    assert len(out.getvalue().removeprefix(CLEAR)) == 79


def test_no_line_while_the_console_prints_trees_on_the_terminal():
    out = io.StringIO()
    line = LiveLine(out, live=False)
    line.started(snapshot(), 1.0)
    line.tick(snapshot(spans=5), 2.0)
    line.log(record("metrics: 2000 series reached"))
    line.stopped(snapshot(spans=5))
    assert out.getvalue() == "gotrace: metrics: 2000 series reached\n"


# --- JSON lines -------------------------------------------------------------------------------

def test_json_log_records():
    out = io.StringIO()
    log = JsonLog(out, ["jsonl", "otlp"], interval_s=10)
    log.started(snapshot(), 100.0)
    assert not log.due(105.0)  # so no snapshot is taken
    log.tick(snapshot(spans=10), 105.0)  # before the interval: nothing
    assert log.due(110.0)
    log.tick(snapshot(spans=200), 110.0)
    log.log(record("otlp: export failed"))
    log.tick(snapshot(spans=300, dropped=4, errors=2), 120.0)
    log.stopped(snapshot(spans=310, exported={"jsonl": 310, "otlp": 306}, errors=2))
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    for r in records:
        assert r.pop("time").endswith("Z")
    assert records == [
        {"level": "info", "msg": "tracing", "processes": 2, "exporters": ["jsonl", "otlp"]},
        {"level": "info", "msg": "status", "processes": 2, "spans_per_s": 20.0, "spans": 200,
         "exported": {"otlp": 200}},
        {"level": "warning", "msg": "otlp: export failed", "logger": "gotrace.export.lane"},
        {"level": "info", "msg": "status", "processes": 2, "spans_per_s": 10.0, "spans": 300,
         "exported": {"otlp": 300}, "dropped": 4, "dropped_by": {"ringbuf_full": 4},
         "errors": 2},
        {"level": "info", "msg": "stopped", "spans": 310,
         "exported": {"jsonl": 310, "otlp": 306}, "errors": 2},
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def gotrace_logger() -> Iterator[logging.Logger]:
    """open_status configures the package's logger; other tests must get it back as it was."""
    logger = logging.getLogger("gotrace")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved


def test_open_status_chooses_by_stream_and_routes_gotrace_logs(gotrace_logger):
    logger = logging.getLogger("gotrace.export.lane")
    plain, terminal = io.StringIO(), Terminal()
    assert isinstance(open_status(plain, ["jsonl"], console_on_terminal=False), JsonLog)
    assert isinstance(open_status(terminal, ["jsonl"], console_on_terminal=False), LiveLine)
    logger.info("recovered")  # only the last reporter opened gets the messages
    assert plain.getvalue() == "" and terminal.getvalue() == "gotrace: recovered\n"


def test_pipeline_counts_failed_export_attempts():
    class Failing:
        def export(self, spans):
            return False

        def shutdown(self):
            pass

    span = Span(trace_id=b"\1" * 16, span_id=b"\2" * 8, parent_span_id=None, name="op",
                kind="SERVER", start_time_unix_nano=1, end_time_unix_nano=2, status="UNSET",
                resource=Resource({}), own_attributes={})
    pipeline = ExportPipeline({"down": Failing()}, max_attempts=3, min_backoff_s=0.01,
                              max_backoff_s=0.01)
    pipeline.submit([span])
    pipeline.flush(timeout_s=5)
    pipeline.shutdown()
    assert pipeline.stats().errors == 3


# --- end to end -------------------------------------------------------------------------------

def newest_server() -> Path:
    return matrix.build(matrix.Cell("httpserver", matrix.go_versions()[-1], "stripped"))


def test_json_lines_on_a_pipe_and_stats_unchanged(tmp_path):
    """Two processes of one file traced with --exe: the records count them."""
    binary = tmp_path / "httpserver"
    shutil.copy(newest_server(), binary)
    out = tmp_path / "spans.jsonl"
    with go_server(binary) as (_, first), go_server(binary) as (_, second), \
            gotrace(tmp_path, "trace", "--exe", str(binary), "--jsonl", str(out),
                    "--stats") as tracer:
        for addr in (first, second, first):
            assert get(addr, "/hello") == 200
        time.sleep(1.5)
        _, err = stop(tracer)
    plain = [line for line in err.splitlines() if line.startswith("gotrace: ")]
    records = [json.loads(line) for line in err.splitlines() if not line.startswith("gotrace: ")]
    assert [r["msg"] for r in records] == ["tracing", "stopped"]
    assert records[0]["processes"] == 2 and records[0]["exporters"] == ["jsonl"]
    assert records[1]["spans"] == 3 and records[1]["exported"] == {"jsonl": 3}
    assert "dropped" not in records[1] and "errors" not in records[1]
    assert plain[0] == "gotrace: 3 spans; jsonl: exported 3"
    assert any(line.startswith("gotrace: probe hits ") for line in plain)


def read_until(fd: int, wanted: bytes | None, timeout: float) -> bytes:
    """What the terminal shows until wanted appears, the time is up, or its last writer
    closed it (then reading fails with EIO)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while (wanted is None or wanted not in seen) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_live_line_on_a_terminal(tmp_path):
    controller, terminal = pty.openpty()
    out = tmp_path / "spans.jsonl"
    with go_server(newest_server()) as (server, addr):
        tracer = subprocess.Popen(
            [sys.executable, "-m", "gotrace", "trace", "--pid", str(server.pid), "--jsonl",
             str(out)], stdout=subprocess.DEVNULL, stderr=terminal, cwd=REPO)
        os.close(terminal)
        try:
            seen = read_until(controller, b"gotrace: 1 process, ", 60)
            for _ in range(5):
                assert get(addr, "/hello") == 200
            seen += read_until(controller, b"exported 5,", 30)
        finally:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(timeout=30)
            seen += read_until(controller, None, 5)
            os.close(controller)
    text = seen.decode()
    assert tracer.returncode == 0, text
    assert CLEAR + "gotrace: 1 process, 0 spans/s, exported 0, dropped 0, errors 0" in text
    assert "exported 5, dropped 0, errors 0" in text
    assert text.rstrip().endswith("gotrace: stopped, 5 spans, exported 5, dropped 0, errors 0")
