"""deploy/: the manifests parse and ask for what BCC needs, the Dockerfile copies files that
exist, the documented YAML parses, and the entry point finds kernel headers both ways."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tracing import REPO, go_server

from gotrace.cli.config import apply_config
from gotrace.cli.main import build_parser
from gotrace.pipeline.link_store import parse_store_url
from testapps import matrix

DEPLOY = REPO / "deploy"
MOUNTS = {"/sys/kernel/tracing": "/sys/kernel/tracing", "/sys/kernel/debug": "/sys/kernel/debug",
          "/lib/modules": "/host/lib/modules", "/usr/src": "/host/usr/src"}  # node -> pod


def documents() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((DEPLOY / "daemonset.yaml").read_text()))
    return {doc["kind"]: doc for doc in docs}


def trace_settings(text: str, tmp_path: Path) -> argparse.Namespace:
    """What `gotrace trace --config FILE` makes of a config text (errors raise)."""
    config = tmp_path / "config.yaml"
    config.write_text(text)
    parser, configurable = build_parser()
    return apply_config(parser.parse_args(["trace", "--config", str(config)]),
                        configurable["trace"])


def test_daemonset_asks_for_what_bcc_needs(tmp_path):
    docs = documents()
    assert set(docs) == {"Namespace", "ConfigMap", "DaemonSet"}
    daemonset = docs["DaemonSet"]
    assert daemonset["apiVersion"] == "apps/v1"
    spec = daemonset["spec"]
    assert spec["selector"]["matchLabels"].items() <= \
        spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["hostPID"] is True
    [container] = pod["containers"]
    assert container["securityContext"]["privileged"] is True

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted = {}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "hostPath" in volume:
            mounted[volume["hostPath"]["path"]] = mount["mountPath"]
            assert mount.get("readOnly", False) == mount["mountPath"].startswith("/host/")
    assert mounted == MOUNTS

    # The container reads its settings from the ConfigMap, and they are gotrace's.
    assert container["args"] == ["trace", "--config", "/etc/gotrace/config.yaml"]
    [config_mount] = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/gotrace"]
    assert volumes[config_mount["name"]]["configMap"]["name"] == docs["ConfigMap"]["metadata"][
        "name"]
    settings = trace_settings(docs["ConfigMap"]["data"]["config.yaml"], tmp_path)
    assert settings.port == [8080] and settings.metrics_port == 9464
    assert container["ports"] == [{"name": "metrics", "containerPort": settings.metrics_port}]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4317")
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    namespace = docs["Namespace"]["metadata"]["name"]
    assert docs["ConfigMap"]["metadata"]["namespace"] == daemonset["metadata"]["namespace"] == \
        namespace


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_copies_files_that_exist_and_the_context_keeps_them():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "debian:bookworm-slim")
    installs = " ".join(arg for op, arg in instructions if op == "RUN")
    for package in ("python3-bpfcc", "python3-venv", "linux-headers-amd64"):
        assert package in installs
    workdir = next(arg for op, arg in instructions if op == "WORKDIR")
    copied = []
    for op, arg in instructions:
        if op == "COPY":
            *sources, _destination = shlex.split(arg)
            copied += sources
    assert {"pyproject.toml", "gotrace/", "bpf/", "symbols/", "deploy/entrypoint.sh",
            "scripts/build_native.sh"} <= set(copied)
    assert "scripts/build_native.sh venv/bin/python" in installs  # gotrace.native compiled
    for source in copied:
        assert (REPO / source).exists(), source
    # What pyproject.toml itself names must be there for the install to work.
    assert "README.md" in copied
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1:] and all(f"!{s}" in ignore for s in copied)

    entrypoint = json.loads(next(arg for op, arg in instructions if op == "ENTRYPOINT"))
    assert entrypoint == [f"{workdir}/deploy/entrypoint.sh"]
    assert os.access(DEPLOY / "entrypoint.sh", os.X_OK)
    assert subprocess.run(["sh", "-n", str(DEPLOY / "entrypoint.sh")]).returncode == 0


def yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", markdown, re.S)


def test_link_store_manifest_gives_the_daemonset_its_url():
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(
        (DEPLOY / "link-store.yaml").read_text())}
    assert set(docs) == {"Secret", "Deployment", "Service"}
    secret = docs["Secret"]["stringData"]
    [container] = documents()["DaemonSet"]["spec"]["template"]["spec"]["containers"]
    [link_store] = [env for env in container["env"] if env["name"] == "GOTRACE_LINK_STORE"]
    ref = link_store["valueFrom"]["secretKeyRef"]
    assert ref["name"] == docs["Secret"]["metadata"]["name"] and ref["key"] in secret
    assert ref["optional"] is True  # without the store, the DaemonSet runs as before
    url = parse_store_url(secret[ref["key"]])
    service = docs["Service"]
    assert url.host == f"{service['metadata']['name']}.{service['metadata']['namespace']}" \
        ".svc.cluster.local"
    assert url.port == service["spec"]["ports"][0]["port"] and url.password == secret["password"]
    [redis] = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert "--requirepass" in redis["args"]


def test_documented_yaml_parses_and_gotrace_settings_are_valid(tmp_path):
    blocks = yaml_blocks((DEPLOY / "README.md").read_text())
    assert len(blocks) >= 6
    kinds = []
    gotrace_configs = 0
    for block in blocks:
        docs = [doc for doc in yaml.safe_load_all(block) if doc is not None]
        assert docs, block
        kinds += [doc.get("kind") for doc in docs]
        if "port" in docs[0]:  # a gotrace config
            trace_settings(block, tmp_path)
            gotrace_configs += 1
    assert {"Deployment", "Service", "ConfigMap"} <= set(kinds)
    assert gotrace_configs == 2
    headings = " | ".join(re.findall(r"^### (.*)$", (DEPLOY / "README.md").read_text(), re.M))
    for backend in ("OpenTelemetry Collector", "Jaeger", "Tempo"):
        assert backend in headings


# --- the entry point, without Docker ----------------------------------------------------------

def run_entrypoint(tmp_path: Path, host: Path, *args: str) -> tuple[str, dict[str, str]]:
    """Run deploy/entrypoint.sh in a mount namespace of its own, with an empty /lib/modules
    (as in the image) and `host` as the node's root; returns its stderr and where
    /lib/modules/RELEASE/{build,source} pointed."""
    script = f"""
        mount --make-rprivate /
        mount -t tmpfs none /lib/modules
        sh {DEPLOY / 'entrypoint.sh'} {shlex.join(args)}
        status=$?
        cd /lib/modules/$(uname -r) && for link in *; do echo "$link=$(readlink $link)"; done
        exit $status
    """
    result = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True,
        timeout=120, cwd=tmp_path,
        env={**os.environ, "GOTRACE_HOST_ROOT": str(host),
             "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    links = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return result.stderr, links


@pytest.mark.parametrize("node_has_headers", [True, False])
def test_entrypoint_finds_kernel_headers_and_traces(tmp_path, node_has_headers):
    """A node with Debian's split headers (build and source links naming /usr/src paths of
    the node), and a node without: either way BCC compiles and gotrace traces."""
    release = os.uname().release
    host = tmp_path / "node"
    (host / "lib" / "modules" / release).mkdir(parents=True)
    headers = sorted(Path("/usr/src").glob("linux-headers-*"))
    build = next(h for h in headers if h.name.endswith("-amd64"))
    common = next(h for h in headers if h.name.endswith("-common"))
    if node_has_headers:
        (host / "usr").mkdir()
        (host / "usr" / "src").symlink_to("/usr/src")  # the node's /usr/src, seen from here
        for name, target in (("build", build), ("source", common)):
            (host / "lib" / "modules" / release / name).symlink_to(target)
    server = matrix.build(matrix.Cell("httpserver", matrix.go_versions()[-1], "stripped"))
    with go_server(server) as (proc, _):
        err, links = run_entrypoint(tmp_path, host, "trace", "--pid", str(proc.pid),
                                    "--duration", "0.5", "--jsonl", "-")
    prefix = str(host) if node_has_headers else ""
    assert links == {"build": f"{prefix}{build}", "source": f"{prefix}{common}"}
    assert '"msg": "tracing"' in err and '"msg": "stopped"' in err
