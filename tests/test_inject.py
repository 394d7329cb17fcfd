"""--inject-traceparent: untraced receivers see the CLIENT span's context in the request.

Writing into a process's memory from BPF is forbidden by kernel lockdown, and the machines
this project runs on boot locked down ('integrity', from the kernel configuration): there the
test checks the refusal, and the receiving side's checks cannot run. On a kernel without
lockdown, they run instead.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from tracing import REPO

from gotrace.errors import GotraceError
from gotrace.pipeline.session import LOCKDOWN, require_user_memory_writes
from testapps import matrix


def locked_down() -> bool:
    try:
        require_user_memory_writes()  # mounts securityfs to read the state, if needed
    except GotraceError:
        return True
    return False


LOCKED_DOWN = locked_down()

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")
OWN = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Recorder(BaseHTTPRequestHandler):
    """Records the traceparent headers of every request (an untraced Python server)."""

    seen: ClassVar[list[list[str]]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get_all("traceparent") or [])
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def recorder():
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_client(tmp_path, url: str, *client_args: str, go: str) -> list[dict] | None:
    """Spans of the client run under --inject-traceparent; None when refused (lockdown)."""
    client = matrix.build(matrix.Cell("httpclient", go, "stripped"))
    out = tmp_path / "spans.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "gotrace", "run", "--inject-traceparent", "--stats",
         "--jsonl", str(out), "--", str(client), "-url", url, *client_args],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    if LOCKED_DOWN:
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            "gotrace: --inject-traceparent is impossible here: kernel lockdown is "
            f"'{lockdown_mode()}', which forbids BPF writes into process memory"]
        assert Recorder.seen == []  # the program was not even started
        return None
    assert done.returncode == 0, done.stderr
    assert "not injected" not in done.stderr, done.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("go", [matrix.go_versions()[0], matrix.go_versions()[-1]])
def test_http_receiver_sees_the_client_span_as_parent(tmp_path, recorder, go):
    url = f"http://127.0.0.1:{recorder.server_port}/x"
    spans = run_client(tmp_path, url, "-n", "20", "-concurrency", "4", go=go)
    if spans is None:
        return  # refused: checked in run_client
    assert len(spans) == 20 and len(Recorder.seen) == 20
    sent = set()
    for headers in Recorder.seen:
        assert len(headers) == 1, headers
        match = TRACEPARENT.match(headers[0])
        assert match, headers
        sent.add(match.groups())
    assert sent == {(s["trace_id"], s["span_id"]) for s in spans if s["kind"] == "CLIENT"}


def test_a_request_with_its_own_traceparent_is_left_alone(tmp_path, recorder):
    url = f"http://127.0.0.1:{recorder.server_port}/x"
    if run_client(tmp_path, url, "-n", "3", "-header", f"Traceparent: {OWN}",
                  go=matrix.go_versions()[-1]) is not None:
        assert Recorder.seen == [[OWN]] * 3


def lockdown_mode() -> str:
    text = LOCKDOWN.read_text()
    return text[text.find("[") + 1: text.find("]")]
