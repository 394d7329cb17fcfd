"""Real Go programs from Debian's archive, run as installed (stripped, built by Debian, no module
versions), for the end-to-end tests: how to start each on loopback and know it is ready."""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tracing import free_port, terminate

# The test programs' HTTPS certificates are self-signed.
UNVERIFIED = ssl._create_unverified_context()


def wait_http(url: str, timeout: float, proc: subprocess.Popen) -> None:
    """Until url answers 200; fails when the process exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"{proc.args[0]} exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2, context=UNVERIFIED) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer in {timeout} s"
        time.sleep(0.2)


@contextlib.contextmanager
def running(command: list[str], ready_url: str, log: Path, timeout: float = 60
            ) -> Iterator[subprocess.Popen]:
    """A Debian program started with its output in log, once ready_url answers."""
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(ready_url, timeout, proc)
        yield proc
    finally:
        terminate(proc, timeout=20)


ALWAYS_FIRING_RULES = """\
groups:
  - name: always
    interval: 1s
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
"""


def self_signed_certificate(workdir: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for localhost and 127.0.0.1, made by openssl."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
    return cert, key


@contextlib.contextmanager
def prometheus(workdir: Path, name: str, scrape: list[str] = (), interval: str = "1s",
               alertmanager: str | None = None, https: bool = False
               ) -> Iterator[tuple[subprocess.Popen, str]]:
    """/usr/bin/prometheus on a free loopback port, scraping each host:port of scrape every
    interval, and with alertmanager (host:port), sending it an alert that always fires, every
    second (its HTTP clients dial through go-conntrack; its web server's listener is
    go-conntrack's inside netutil.LimitListener). With https, it serves over TLS (where Go's
    server offers HTTP/2) and scrapes its targets over HTTPS with HTTP/2 enabled. Yields
    (process, its host:port)."""
    port = free_port()
    config = [f"global:\n  scrape_interval: {interval}\n  evaluation_interval: 1s\n"]
    if scrape:
        targets = ", ".join(f'"{t}"' for t in scrape)
        config.append(f"scrape_configs:\n  - job_name: {name}\n    static_configs:\n"
                      f"      - targets: [{targets}]\n")
        if https:
            config.append("    scheme: https\n    enable_http2: true\n"
                          "    tls_config:\n      insecure_skip_verify: true\n")
    if alertmanager:
        rules = workdir / f"{name}-rules.yml"
        rules.write_text(ALWAYS_FIRING_RULES)
        config.append(f"rule_files: [{rules}]\nalerting:\n  alertmanagers:\n"
                      f"    - static_configs:\n        - targets: [\"{alertmanager}\"]\n")
    config_file = workdir / f"{name}.yml"
    config_file.write_text("".join(config))
    command = ["/usr/bin/prometheus", f"--config.file={config_file}",
               f"--storage.tsdb.path={workdir / (name + '-data')}",
               f"--web.listen-address=127.0.0.1:{port}", "--rules.alert.resend-delay=1s"]
    if https:
        cert, key = self_signed_certificate(workdir)
        web = workdir / f"{name}-web.yml"
        web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
        command.append(f"--web.config.file={web}")
    scheme = "https" if https else "http"
    with running(command, f"{scheme}://127.0.0.1:{port}/-/ready",
                 workdir / f"{name}.log") as proc:
        yield proc, f"127.0.0.1:{port}"


@contextlib.contextmanager
def alertmanager(workdir: Path, webhook: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """/usr/bin/prometheus-alertmanager, no cluster, notifying the webhook URL of every alert
    group every few seconds (its HTTP client dials through go-conntrack)."""
    port = free_port()
    config = workdir / "alertmanager.yml"
    config.write_text("route:\n  receiver: hook\n  group_wait: 1s\n  group_interval: 1s\n"
                      "  repeat_interval: 2s\nreceivers:\n  - name: hook\n"
                      f"    webhook_configs:\n      - url: {webhook}\n")
    command = ["/usr/bin/prometheus-alertmanager", f"--config.file={config}",
               f"--storage.path={workdir / 'alertmanager-data'}",
               f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
    with running(command, f"http://127.0.0.1:{port}/-/ready",
                 workdir / "alertmanager.log") as proc:
        yield proc, f"127.0.0.1:{port}"


@contextlib.contextmanager
def node_exporter(workdir: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """/usr/bin/prometheus-node-exporter on a free loopback port."""
    port = free_port()
    command = ["/usr/bin/prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}"]
    with running(command, f"http://127.0.0.1:{port}/metrics",
                 workdir / "node-exporter.log") as proc:
        yield proc, f"127.0.0.1:{port}"


@contextlib.contextmanager
def etcd(workdir: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """/usr/bin/etcd, one member on free loopback ports: its client port serves gRPC and HTTP
    through cmux (each connection a *cmux.MuxConn). Yields (process, client host:port)."""
    client, peer = free_port(), free_port()
    command = ["/usr/bin/etcd", "--data-dir", str(workdir / "etcd-data"),
               "--listen-client-urls", f"http://127.0.0.1:{client}",
               "--advertise-client-urls", f"http://127.0.0.1:{client}",
               "--listen-peer-urls", f"http://127.0.0.1:{peer}",
               "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
               "--initial-cluster", f"default=http://127.0.0.1:{peer}"]
    with running(command, f"http://127.0.0.1:{client}/health", workdir / "etcd.log") as proc:
        yield proc, f"127.0.0.1:{client}"


def etcdctl(endpoint: str, *args: str) -> None:
    """One /usr/bin/etcdctl command (gRPC, API v3) against endpoint."""
    subprocess.run(["/usr/bin/etcdctl", f"--endpoints={endpoint}", *args], check=True,
                   env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL)
