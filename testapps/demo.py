"""The README's main job: three unmodified, stripped Go services traced as one system.

Builds three test programs with the newest Go installed (and the newest grpc-go it builds
with): a front end (httpgrpc: HTTP in, gRPC out), a middle tier (grpcserver -backend: gRPC
in, HTTP out) and a back end (httpserver). Starts them, traces all three with one
`gotrace trace` session, drives requests through the front for a while (some slow at the
back end, some failing there) while showing progress, then prints the slowest traces as
trees and writes the HTML report. Everything it starts is stopped before it returns, also
on Ctrl-C or SIGTERM.

    python -m testapps.demo [--seconds N] [--out DIR]     (GOTRACE_DEMO_SECONDS: default N)
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from gotrace.errors import GotraceError
from gotrace.report import load_capture, write_report
from gotrace.report.spaninfo import is_error
from gotrace.report.text import trace_lines
from gotrace.report.traces import TraceView, slowest_traces
from testapps import matrix

DEFAULT_SECONDS = 20.0
WORKERS = 4
REQUESTS_PER_SECOND = 80  # in all, so the demo leaves the machine usable
SLOW_SHARE, FAIL_SHARE = 0.1, 0.05  # of requests: "slow-N" and "fail" (grpcserver's paths)
SLOW_MS = (100, 400)
SHOWN_TRACES = 3
PROGRESS_INTERVAL_S = 0.25  # on a terminal; elsewhere a line every PLAIN_PROGRESS_S
PLAIN_PROGRESS_S = 5.0


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


# --- the services -------------------------------------------------------------------------

def demo_cells() -> tuple[matrix.Cell, matrix.Cell, matrix.Cell]:
    """front, middle, back: stripped, the newest Go, the newest grpc-go building with it."""
    gos = matrix.go_versions()
    if not gos:
        raise SystemExit("demo: no Go toolchain under /usr/lib/go-1.*: run scripts/setup.sh")
    go = gos[-1]
    grpcs = [grpc for grpc in matrix.grpc_gopaths() if go in matrix.supported_go(grpc)]
    if not grpcs:
        raise SystemExit(f"demo: no grpc-go builds with Go {go}: run scripts/setup.sh")
    return (matrix.Cell("httpgrpc", go, "stripped", grpcs[-1]),
            matrix.Cell("grpcserver", go, "stripped", grpcs[-1]),
            matrix.Cell("httpserver", go, "stripped"))


def build(cells: tuple[matrix.Cell, ...]) -> list[Path]:
    paths = []
    for _, result in matrix.iter_build(cells):
        if isinstance(result, matrix.BuildError):
            raise SystemExit(f"demo: {result}")
        paths.append(result)
    return paths


def _stop(proc: subprocess.Popen[bytes], how: signal.Signals, grace_s: float) -> None:
    if proc.poll() is None:
        proc.send_signal(how)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def service(path: Path, *args: str) -> Iterator[tuple[int, str]]:
    """Run a test program; yields (PID, its 'host:port'). Its own session, so a Ctrl-C
    reaches only the demo, which then stops everything in order."""
    proc = subprocess.Popen([str(path), "-addr", "127.0.0.1:0", *args],
                            stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("READY "):
            raise SystemExit(f"demo: {path.name} did not start")
        yield proc.pid, line.split()[1]
    finally:
        _stop(proc, signal.SIGTERM, 10)


@contextmanager
def tracing(pids: list[int], capture: Path, log: Path) -> Iterator[None]:
    """One `gotrace trace` session on every PID, until it is attached; stopped (SIGINT,
    which flushes every span) on the way out. Its status and --stats lines go to log."""
    ready = capture.with_name("ready")
    ready.unlink(missing_ok=True)
    targets = [arg for pid in pids for arg in ("--pid", str(pid))]
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gotrace", "trace", *targets, "--jsonl", str(capture),
             "--stats", "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True,
            cwd=matrix.REPO_DIR)
    try:
        while not ready.exists():
            if proc.poll() is not None:
                raise SystemExit(f"demo: gotrace trace failed:\n{log.read_text().strip()}")
            time.sleep(0.1)
        yield
    finally:
        _stop(proc, signal.SIGINT, 30)
    if proc.returncode != 0:
        raise SystemExit(f"demo: gotrace trace exited with {proc.returncode}:\n"
                         f"{log.read_text().strip()}")


# --- the traffic --------------------------------------------------------------------------

@dataclass
class Counts:
    done: int = 0
    errors: int = 0


class Traffic:
    """WORKERS threads sending GET /say to the front on keep-alive connections, paced to
    REQUESTS_PER_SECOND in all, until stopped."""

    def __init__(self, front: str, middle: str) -> None:
        self._front = front
        self._middle = middle
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.counts = Counts()
        self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True)
                         for i in range(WORKERS)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def snapshot(self) -> Counts:
        with self._lock:
            return Counts(self.counts.done, self.counts.errors)

    def _work(self, worker: int) -> None:
        rng = random.Random(worker)
        interval = WORKERS / REQUESTS_PER_SECOND
        host, port = self._front.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        next_at = time.monotonic()
        number = 0
        while not self._stop.is_set():
            number += 1
            status = self._request(conn, self._name(rng, f"w{worker}-{number}"))
            if status is None:  # the connection may be unusable; a new one opens on demand
                conn.close()
            ok = status == 200
            with self._lock:
                self.counts.done += 1
                self.counts.errors += not ok
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        conn.close()

    @staticmethod
    def _name(rng: random.Random, plain: str) -> str:
        draw = rng.random()
        if draw < FAIL_SHARE:
            return "fail"
        if draw < FAIL_SHARE + SLOW_SHARE:
            return f"slow-{rng.randint(*SLOW_MS)}"
        return plain

    def _request(self, conn: http.client.HTTPConnection, name: str) -> int | None:
        """The response's status; None when the request failed below HTTP."""
        query = urllib.parse.urlencode({"addr": self._middle, "name": name})
        try:
            conn.request("GET", f"/say?{query}")
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            return None
        return response.status


def show_progress(traffic: Traffic, seconds: float) -> None:
    """Until the time is up: requests, errors and rate, redrawn in place on a terminal."""
    live = sys.stdout.isatty()
    start = time.monotonic()
    last_plain = start
    while (elapsed := time.monotonic() - start) < seconds:
        time.sleep(min(PROGRESS_INTERVAL_S, max(0.0, seconds - elapsed)))
        elapsed = time.monotonic() - start
        counts = traffic.snapshot()
        line = (f"demo: {elapsed:4.1f} s of {seconds:.0f} s  {counts.done} requests  "
                f"{counts.errors} errors  {counts.done / max(elapsed, 1e-9):.0f} req/s")
        if live:
            print(f"\r\x1b[K{line}", end="", flush=True)
        elif elapsed - (last_plain - start) >= PLAIN_PROGRESS_S or elapsed >= seconds:
            last_plain = time.monotonic()
            print(line, flush=True)
    if live:
        print(flush=True)


# --- the results --------------------------------------------------------------------------

def traces_to_show(capture: Path) -> list[TraceView]:
    """The slowest traces, and the slowest failing one when none of those failed."""
    spans = load_capture(capture)
    everything = slowest_traces(spans, len(spans))
    shown = everything[:SHOWN_TRACES]
    failing = [t for t in everything if any(is_error(span) for span, _ in t.rows)]
    if failing and failing[0].trace_id not in {t.trace_id for t in shown}:
        shown.append(failing[0])
    return shown


def print_results(capture: Path, log: Path) -> None:
    traces = traces_to_show(capture)
    print(f"\nThe {SHOWN_TRACES} slowest traces, and the slowest that failed: service, kind, "
          "span, duration,\nand when it ran within the trace.\n")
    for trace in traces:
        print("\n".join(trace_lines(trace)) + "\n")
    for line in log.read_text().splitlines():
        if line.startswith("gotrace: "):  # the --stats lines, not the JSON status records
            say(line)


# --- main ---------------------------------------------------------------------------------

def _interrupted(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(seconds: float, out: Path) -> Path:
    """The whole demo; returns the report's path."""
    cells = demo_cells()
    say(f"building {', '.join(c.app for c in cells)} (Go {cells[0].go}, grpc-go "
        f"{cells[0].grpc}, stripped) from testapps/")
    front_bin, middle_bin, back_bin = build(cells)
    capture, log = out / "spans.jsonl", out / "gotrace.log"
    with ExitStack() as stack:
        back_pid, back = stack.enter_context(service(back_bin))
        middle_pid, middle = stack.enter_context(
            service(middle_bin, "-backend", f"http://{back}/hello"))
        front_pid, front = stack.enter_context(service(front_bin))
        say(f"front httpgrpc {front} (PID {front_pid}) -> middle grpcserver {middle} "
            f"(PID {middle_pid}) -> back httpserver {back} (PID {back_pid})")
        say("attaching one gotrace trace session to all three (compiling the probes takes "
            "a few seconds)")
        stack.enter_context(tracing([front_pid, middle_pid, back_pid], capture, log))
        say(f"sending GET /say through the front for {seconds:.0f} s; "
            f"{SLOW_SHARE:.0%} slow at the back end, {FAIL_SHARE:.0%} failing there")
        with Traffic(front, middle) as traffic:
            show_progress(traffic, seconds)
        say("stopping gotrace (it flushes every span) and the services")
    print_results(capture, log)
    report = write_report(capture, out / "report.html")
    say(f"spans in {capture}")
    say(f"HTML report: {report}")
    say("nothing left running")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testapps.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float,  # argparse converts a string default too
                        default=os.environ.get("GOTRACE_DEMO_SECONDS", str(DEFAULT_SECONDS)),
                        help="how long to send traffic (default: %(default)s)")
    parser.add_argument("--out", type=Path,
                        help="directory for the capture and the report (default: a new one "
                        "under /tmp)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="gotrace-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupted)
    # Also when started with SIGINT ignored (a background job of a non-interactive shell),
    # which Python would otherwise leave so.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run(args.seconds, out.resolve())
    except KeyboardInterrupt:
        print(file=sys.stderr)
        say("interrupted; everything it started is stopped")
        return 130
    except GotraceError as e:
        say(str(e))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
