"""`make demo` end to end, shortened: it finishes, leaves nothing running, and its report
renders in Chromium."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter, defaultdict

from test_report import laid_out
from tracing import REPO

from gotrace.report import load_capture
from gotrace.report.spaninfo import service_of

CHAIN = ["httpgrpc", "httpgrpc", "grpcserver", "grpcserver", "httpserver"]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_demo_finishes_and_its_report_renders(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "testapps.demo", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, cwd=REPO,
                            env={**os.environ, "GOTRACE_DEMO_SECONDS": "5"})
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout

    # Nothing left running: the three services and gotrace (its PID is in its ready file).
    pids = [int(pid) for pid in re.findall(r"\(PID (\d+)\)", text)]
    pids.append(int((out / "ready").read_text()))
    assert len(pids) == 4 and not any(map(alive, pids)), text

    # Progress, then the slowest traces as trees: every service, bars, a failing request.
    assert re.search(r"demo: +\d+\.\d s of 5 s  \d+ requests  \d+ errors  \d+ req/s", text)
    trees = text.split("The 3 slowest traces", 1)[1]
    assert trees.count("\ntrace ") == 4, trees
    for service in ("httpgrpc SERVER GET /say", "httpgrpc CLIENT demo.Echo/Say",
                    "grpcserver SERVER demo.Echo/Say", "grpcserver CLIENT GET /slow",
                    "httpserver SERVER GET /slow", "httpserver SERVER GET /error"):
        assert service in trees, trees
    assert "|█" in trees and "502 ERROR" in trees and "grpc 14 ERROR" in trees
    assert f"HTML report: {out / 'report.html'}" in text

    # One trace of five spans per request, across the three services.
    spans = load_capture(out / "spans.jsonl")
    traces = defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    assert Counter(len(t) for t in traces.values()) == {5: len(traces)}
    for trace in traces.values():
        assert sorted(map(service_of, trace)) == sorted(CHAIN)
    backs = Counter(span.attributes["url.path"] for span in spans
                    if service_of(span) == "httpserver")
    assert backs["/hello"] > backs["/slow"] > 0 and backs["/error"] > 0

    # The report, rendered: the three services in one chain, waterfalls of five rows.
    probe = laid_out((out / "report.html").read_text(), tmp_path)
    assert {(e["from"], e["to"]) for e in probe["edges"]} == {
        ("httpgrpc", "grpcserver"), ("grpcserver", "httpserver")}
    assert all(e["path"]["w"] > 0 for e in probe["edges"])
    assert {n["name"] for n in probe["nodes"]} == {"httpgrpc", "grpcserver", "httpserver"}
    assert probe["traces"] and all(len(t["rows"]) == 5 for t in probe["traces"])
    assert all(row["bar"]["w"] > 0 for t in probe["traces"] for row in t["rows"])
    assert any(b[1] > 0 for r in probe["routes"] for b in r["buckets"])


def test_ctrl_c_stops_everything_the_demo_started(tmp_path):
    out = tmp_path / "demo"
    demo = subprocess.Popen([sys.executable, "-m", "testapps.demo", "--out", str(out),
                             "--seconds", "120"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert demo.stdout is not None
    lines = []
    try:
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("demo: sending GET /say"):
                break
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    text = "".join(lines) + rest
    assert demo.returncode == 130, text
    assert "demo: interrupted; everything it started is stopped" in text
    pids = [int(pid) for pid in re.findall(r"\(PID (\d+)\)", text)]
    pids.append(int((out / "ready").read_text()))
    assert len(pids) == 4 and not any(map(alive, pids)), text
