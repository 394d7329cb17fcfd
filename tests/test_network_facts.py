"""TCP facts on spans: retransmits on lossy connections, handshake time on new ones.

Loss is induced only on the test's own connections: both servers and the clients run in a
network namespace the test creates, where nftables drops a random quarter of the large
data packets arriving for one server's port (`numgen random`; on input, so that the sender
believes them sent and resends them). gotrace itself runs outside it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from tracing import gotrace, stop

from testapps import matrix

BODY_KB = 512


@pytest.fixture
def netns():
    name = f"gotrace-loss-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        # No tail-loss probes: on a loaded machine a late ACK makes one resend a segment of a
        # clean connection, and the kernel reports it as a retransmit.
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw",
                        "net.ipv4.tcp_early_retrans=0"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def start_in(ns: str, binary) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(["ip", "netns", "exec", ns, str(binary), "-addr", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("READY "), line
    return proc, int(line.split()[1].rsplit(":", 1)[1])


def drop_sixth(ns: str, port: int) -> None:
    rules = textwrap.dedent(f"""
        table inet gotrace_loss {{
            chain in {{
                type filter hook input priority 0; policy accept;
                tcp dport {port} meta length > 10000 numgen random mod 4 == 0 drop
            }}
        }}
    """)
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True,
                   check=True)


# Posts n bodies on one keep-alive connection, then prints the segments the kernel says both
# its ends resent (ss's "retrans:now/total" per socket, shown only when not zero). Even a clean
# loopback connection may resend: a VM that stalls past the 200 ms minimum retransmit timeout.
POSTER = textwrap.dedent("""
    import http.client, re, subprocess, sys
    port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = b"x" * size
    for _ in range(n):
        conn.request("POST", "/echo", body)
        response = conn.getresponse()
        assert response.status == 200 and len(response.read()) == size
    sockets = subprocess.run(["ss", "-tinH", "state", "established",
                              f"( sport = :{port} or dport = :{port} )"],
                             capture_output=True, text=True, check=True).stdout
    print(sum(int(total) for total in re.findall(r"retrans:\\d+/(\\d+)", sockets)))
""")


def post(ns: str, port: int) -> int:
    """Twenty bodies to a server on one connection; the segments the kernel resent on it."""
    done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", POSTER, str(port),
                           "20", str(BODY_KB * 1024)],
                          check=True, timeout=300, capture_output=True, text=True)
    return int(done.stdout)


def test_retransmits_only_on_lossy_connections_and_connect_time(tmp_path, netns):
    go = matrix.go_versions()[-1]
    server = matrix.build(matrix.Cell("httpserver", go, "stripped"))
    client = matrix.build(matrix.Cell("httpclient", go, "stripped"))
    lossy, lossy_port = start_in(netns, server)
    clean, clean_port = start_in(netns, server)
    jsonl = tmp_path / "spans.jsonl"
    try:
        drop_sixth(netns, lossy_port)
        with gotrace(tmp_path, "trace", "--pid", str(lossy.pid), "--pid", str(clean.pid),
                     "--exe", str(client), "--jsonl", str(jsonl), "--stats") as tracer:
            resent_on_lossy = post(netns, lossy_port)
            resent_on_clean = post(netns, clean_port)
            subprocess.run(["ip", "netns", "exec", netns, str(client), "-url",
                            f"http://127.0.0.1:{lossy_port}/hello", "-n", "10"],
                           check=True, timeout=300, capture_output=True)
            _, err = stop(tracer)
    finally:
        for proc in (lossy, clean):
            proc.terminate()
            proc.wait(timeout=10)
    spans = [json.loads(line) for line in jsonl.read_text().splitlines()]
    servers = [s for s in spans if s["kind"] == "SERVER" and s["name"] == "POST /echo"]
    on_lossy = [s for s in servers if s["attributes"]["server.port"] == lossy_port]
    on_clean = [s for s in servers if s["attributes"]["server.port"] == clean_port]
    assert len(on_lossy) == len(on_clean) == 20, err
    seen_on_lossy = [s["attributes"]["network.tcp.retransmits"] for s in on_lossy]
    seen_on_clean = [s["attributes"]["network.tcp.retransmits"] for s in on_clean]
    # Each connection's spans show no more resends than the kernel made on it (a resend may
    # fall between spans; one event may resend several segments), so none leak across, and
    # the clean one shows none unless it really resent.
    assert 0 < sum(seen_on_lossy) <= resent_on_lossy, (err, seen_on_lossy, resent_on_lossy)
    assert sum(seen_on_clean) <= resent_on_clean, (err, seen_on_clean, resent_on_clean)
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    assert len(clients) == 10
    opened = [s for s in clients if "network.tcp.connect_ns" in s["attributes"]]
    assert len(opened) >= 1  # the first request opened the keep-alive connection
    for span in opened:
        duration = span["end_time_unix_nano"] - span["start_time_unix_nano"]
        assert 0 < span["attributes"]["network.tcp.connect_ns"] < duration
