"""The README's main job: trace the bundled demo services, unmodified and stripped.

Builds the demo programs with the newest Go installed, starts two HTTP services (a front that
calls a back end), attaches `gotrace trace` to both, drives a little traffic through the front
(plain, slow, failing and fanned-out requests), and prints the traces as trees. Everything it
starts is stopped before it returns.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from testapps import matrix

REQUESTS = [
    "/hello?name=demo",
    "/users/7",
    "/slow?ms=120",
    "/error",
    "/proxy?url=http://{back}/hello",
    "/proxy-async?url=http://{back}/slow?ms=40",
    "/proxy?url=http://{back}/notfound",
]


def _start(path: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([str(path), "-addr", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise SystemExit(f"demo: {path} did not start")
    return proc, line.split()[1]


def _fetch(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def main() -> None:
    server = matrix.build(matrix.Cell("httpserver", matrix.go_versions()[-1], "stripped"))
    print(f"demo: services built from testapps/httpserver ({matrix.go_versions()[-1]}, "
          "stripped)", flush=True)
    subprocess.run([sys.executable, "-m", "gotrace", "inspect", str(server)], check=True,
                   stdout=subprocess.DEVNULL)
    front, front_addr = _start(server)
    back, back_addr = _start(server)
    work = Path(tempfile.mkdtemp(prefix="gotrace-demo-"))
    ready = work / "ready"
    tracer = subprocess.Popen(
        [sys.executable, "-m", "gotrace", "trace", "--pid", str(front.pid), "--pid",
         str(back.pid), "--console", "--jsonl", str(work / "spans.jsonl"), "--stats",
         "--ready-file", str(ready)])
    try:
        while not ready.exists():
            if tracer.poll() is not None:
                raise SystemExit("demo: gotrace trace failed to attach")
            time.sleep(0.1)
        print(f"demo: tracing front {front_addr} (PID {front.pid}) and back {back_addr} "
              f"(PID {back.pid})\n", flush=True)
        for request in REQUESTS:
            url = f"http://{front_addr}{request.format(back=back_addr)}"
            print(f"demo: GET {url} -> {_fetch(url)}", flush=True)
        time.sleep(0.5)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
        for proc in (front, back):
            proc.terminate()
            proc.wait(timeout=10)
    print(f"\ndemo: spans also written to {work / 'spans.jsonl'}; nothing left running")
    if tracer.returncode != 0:
        raise SystemExit(tracer.returncode)


if __name__ == "__main__":
    main()
