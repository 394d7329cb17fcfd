"""--config files, their precedence over the environment and under the flags, and --port."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tracing import REPO, get, go_server, gotrace, stop

from gotrace.cli.config import apply_config
from gotrace.cli.listeners import listening_pids
from gotrace.cli.main import build_parser
from gotrace.cli.trace import route_inference
from gotrace.errors import GotraceError
from gotrace.export import otlp_config
from gotrace.pipeline.routes import DEFAULT_MAX_ROUTES
from testapps import matrix


def parse(*argv: str, config: str | None = None, tmp_path: Path | None = None):
    """The namespace `gotrace ARGV` runs with, the file's text written to a --config."""
    parser, configurable = build_parser()
    if config is not None:
        assert tmp_path is not None
        path = tmp_path / "gotrace.yaml"
        path.write_text(config)
        argv = (argv[0], "--config", str(path), *argv[1:])
    args = parser.parse_args(argv)
    return apply_config(args, configurable[args.subcommand])


# --- precedence -------------------------------------------------------------------------------

FILE = """\
pid: [11, 12]
jsonl: /from/file.jsonl
otlp-endpoint: http://file-collector:4317
otlp_protocol: grpc          # underscores work too
metrics-port: 9464
stats: true
duration: 30
"""


def test_the_file_fills_what_the_flags_leave_out(tmp_path):
    args = parse("trace", "--pid", "7", "--jsonl", "/from/flag.jsonl", config=FILE,
                 tmp_path=tmp_path)
    assert args.pid == [7]  # a repeatable flag replaces the file's list, it does not add
    assert args.jsonl == "/from/flag.jsonl"
    assert args.otlp_endpoint == "http://file-collector:4317"
    assert args.otlp_protocol == "grpc"
    assert args.metrics_port == 9464
    assert args.stats is True and args.console is False
    assert args.duration == 30.0
    assert args.metrics_host is None  # not given anywhere: the default applies where used


def test_file_beats_environment_beats_defaults(tmp_path):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env-collector:4318",
           "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    from_file = parse("trace", "--pid", "1", config=FILE, tmp_path=tmp_path)
    assert otlp_config(from_file.otlp_endpoint, from_file.otlp_protocol, environ=env) == \
        otlp_config("http://file-collector:4317", "grpc", environ={})
    from_env = parse("trace", "--pid", "1", config="pid: 2\n", tmp_path=tmp_path)
    assert otlp_config(from_env.otlp_endpoint, from_env.otlp_protocol, environ=env).endpoint \
        == "http://env-collector:4318/v1/traces"
    flag = parse("trace", "--otlp-endpoint", "http://flag:4317", config=FILE, tmp_path=tmp_path)
    assert otlp_config(flag.otlp_endpoint, flag.otlp_protocol, environ=env).endpoint == \
        "http://flag:4317"
    assert otlp_config(None, None, environ={}).endpoint == "http://localhost:4318/v1/traces"


def test_a_file_and_the_equivalent_flags_parse_alike(tmp_path):
    flags = parse("trace", "--pid", "11", "--pid", "12", "--jsonl", "/from/file.jsonl",
                  "--otlp-endpoint", "http://file-collector:4317", "--otlp-protocol", "grpc",
                  "--metrics-port", "9464", "--stats", "--duration", "30")
    from_file = parse("trace", config=FILE, tmp_path=tmp_path)
    assert {**vars(from_file), "config": None} == vars(flags)
    run = parse("run", "--", "./server", "-x", config="console: true\n", tmp_path=tmp_path)
    assert run.console is True and run.command == ["--", "./server", "-x"]


def test_an_empty_file_changes_nothing(tmp_path):
    assert {**vars(parse("trace", "--pid", "3", config="", tmp_path=tmp_path)),
            "config": None} == vars(parse("trace", "--pid", "3"))


@pytest.mark.parametrize(("text", "message"), [
    ("pid: 1\nverbose: true\n", "unknown setting 'verbose'"),
    ("pid: [1, 2\n", "not valid YAML (line 2"),
    ("- pid\n", "expected a mapping of settings, got list"),
    ("1: 2\n", "setting names are strings"),
    ("pid: 1\nconsole: yes please\n", "console: expected true or false"),
    ("pid: one\n", "pid: invalid int value: 'one'"),
    ("pid: []\n", "pid: empty list"),
    ("pid: 1\njsonl: {a: 1}\n", "jsonl: expected a single value"),
    ("pid: 1\nmetrics-port: 70000\n", "metrics-port: not a TCP port (1-65535): '70000'"),
    ("pid: 1\notlp-protocol: thrift\n", "otlp-protocol: 'thrift' is not one of grpc"),
    ("pid: 1\nduration:\n", "duration: expected a single value, got None"),
    ("pid: 1\nconfig: other.yaml\n", "unknown setting 'config'"),
    ("pid: 1\nmax-inferred-routes: 0\n",
     "max-inferred-routes: not a number of routes (1 or more): '0'"),
])
def test_bad_files_are_one_line_errors(tmp_path, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert_one_line_error(run_gotrace("trace", "--config", str(config)), f"{config}: {message}")


def test_settings_of_another_command_and_missing_files(tmp_path):
    config = tmp_path / "trace-only.yaml"
    config.write_text("pid: 4\n")
    assert_one_line_error(run_gotrace("run", "--config", str(config), "--", "true"),
                          "unknown setting 'pid'")
    assert_one_line_error(run_gotrace("trace", "--config", str(tmp_path / "nope.yaml")),
                          "cannot read config")
    with pytest.raises(GotraceError, match="unknown setting 'exe'"):
        parse("run", "--", "true", config="exe: /bin/true\n", tmp_path=tmp_path)


def test_route_inference_from_flags_and_files(tmp_path):
    assert route_inference(parse("trace", "--pid", "1")) is None  # off by default
    flag = route_inference(parse("trace", "--pid", "1", "--infer-routes"))
    assert flag is not None and flag.max_routes == DEFAULT_MAX_ROUTES
    flags = parse("trace", "--pid", "1", "--infer-routes", "--max-inferred-routes", "250")
    from_file = parse("trace", config="pid: 1\ninfer-routes: true\nmax-inferred-routes: 250\n",
                      tmp_path=tmp_path)
    assert {**vars(from_file), "config": None} == vars(flags)
    inference = route_inference(from_file)
    assert inference is not None and inference.max_routes == 250
    assert_one_line_error(run_gotrace("trace", "--pid", "1", "--max-inferred-routes", "5"),
                          "--max-inferred-routes goes with --infer-routes")


def run_gotrace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gotrace", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


def assert_one_line_error(result: subprocess.CompletedProcess[str], expect: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gotrace: "), result.stderr
    assert expect in lines[0], lines[0]


# --- --port -----------------------------------------------------------------------------------

LISTENER = """
import socket, sys, time
s = socket.socket(socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET)
s.bind(("::" if sys.argv[1] == "6" else "0.0.0.0", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("family", ["4", "6"])
def test_port_finds_listeners_also_in_other_network_namespaces(family):
    """One listener here, one in a network namespace of its own: both are found by port,
    a process connected to the port (not listening) is not."""
    procs = [subprocess.Popen([*prefix, sys.executable, "-c", LISTENER, family],
                              stdout=subprocess.PIPE, text=True)
             for prefix in ([], ["unshare", "--net"])]
    try:
        ports = [int(p.stdout.readline()) for p in procs if p.stdout]
        assert listening_pids(ports[0]) == [procs[0].pid]
        assert listening_pids(ports[1]) == [procs[1].pid]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert listening_pids(ports[0]) == []


def test_nobody_on_the_port_is_a_one_line_error():
    with subprocess.Popen([sys.executable, "-c", LISTENER, "4"], stdout=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        proc.kill()
    assert_one_line_error(run_gotrace("trace", "--port", port),
                          f"no process is listening on TCP port {port}")
    bad = run_gotrace("trace", "--port", "0")  # argparse's own error, after its usage lines
    assert bad.returncode == 2 and "argument --port: not a TCP port" in bad.stderr


# --- a file run and the flag run behave the same ----------------------------------------------

REQUESTS = [("/hello?name=config", 200), ("/users/7", 200), ("/error", 500),
            ("/slow?ms=5", 200), ("/notfound", 404)]
VOLATILE = {"go.goroutine.id", "client.port", "network.peer.port"}


def traced_session(tmp_path: Path, addr: str, *args: str) -> tuple[list[dict], str]:
    """Trace with these arguments, send REQUESTS, stop; the spans and gotrace's stderr."""
    with gotrace(tmp_path, "trace", *args) as tracer:
        for path, status in REQUESTS:
            assert get(addr, path) == status
        time.sleep(1.5)  # server spans from an untraced local client are held for 1 s
        _, err = stop(tracer)
    spans = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    return spans, err


def comparable(spans: list[dict]) -> list[tuple]:
    return sorted((s["name"], s["kind"], s["status"], s["parent_span_id"] is None,
                   json.dumps({k: v for k, v in s["attributes"].items() if k not in VOLATILE},
                              sort_keys=True),
                   json.dumps(s["resource"], sort_keys=True)) for s in spans)


def test_config_file_run_equals_flag_run(tmp_path):
    server = matrix.build(matrix.Cell("httpserver", matrix.go_versions()[-1], "stripped"))
    flag_dir, file_dir = tmp_path / "flags", tmp_path / "file"
    flag_dir.mkdir()
    file_dir.mkdir()
    with go_server(server) as (_, addr):
        port = addr.rsplit(":", 1)[1]
        by_flags, flag_err = traced_session(
            flag_dir, addr, "--port", port, "--jsonl", str(flag_dir / "spans.jsonl"),
            "--include-query", "--stats")
        config = file_dir / "gotrace.yaml"
        config.write_text(f"port: {port}\njsonl: {file_dir / 'spans.jsonl'}\n"
                          "include-query: true\nstats: true\n")
        by_file, file_err = traced_session(file_dir, addr, "--config", str(config))
    assert len(by_flags) == len(REQUESTS)
    assert comparable(by_file) == comparable(by_flags)
    assert any(s["attributes"].get("url.query") == "name=config" for s in by_file)
    for err in (flag_err, file_err):  # --stats from the flag and from the file
        assert f"gotrace: {len(REQUESTS)} spans; jsonl: exported {len(REQUESTS)}" in err
        assert "gotrace: probe hits " in err
