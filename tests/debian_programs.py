"""Real Go programs from Debian's archive, run as installed (stripped, built by Debian, no module
versions), for the end-to-end tests: how to start each on loopback and know it is ready. Those
the cross-host tests need also run at a place (tracing.Place: a tests/hosts.py Host), listening
on its address, ready once this process reaches them there."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tracing import HERE, Place, free_port, free_port_at, terminate

# The test programs' HTTPS certificates are self-signed.
UNVERIFIED = ssl._create_unverified_context()


def installed(program: str) -> str:
    """program (a path), failing in one line unless it is there: through a place's prefix a
    missing program would only be nsenter's complaint in a log."""
    assert Path(program).is_file(), f"{program} is not installed: run scripts/setup.sh"
    return program


def wait_http(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    """Until url answers 200; fails, with the end of the program's log, when the process exits
    first or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, (f"{' '.join(proc.args)} exited with {proc.returncode}: "
                                     f"{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2, context=UNVERIFIED) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer in {timeout} s"
        time.sleep(0.2)


@contextlib.contextmanager
def running(command: list[str], ready_url: str, log: Path, timeout: float = 60,
            env: dict[str, str] | None = None, place: Place = HERE
            ) -> Iterator[subprocess.Popen]:
    """A Debian program started at place (with env, else this process's environment) with its
    output in log, once ready_url answers. The process is the program's own (a place's prefix
    execs it)."""
    with log.open("w") as out:
        proc = subprocess.Popen([*place.prefix, installed(command[0]), *command[1:]], stdout=out,
                                stderr=subprocess.STDOUT, env=env)
    try:
        wait_http(ready_url, timeout, proc, log)
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
               alertmanager: str | None = None, https: bool = False, place: Place = HERE
               ) -> Iterator[tuple[subprocess.Popen, str]]:
    """/usr/bin/prometheus on a free port of place's address (loopback), scraping each
    host:port of scrape every interval, and with alertmanager (host:port), sending it an alert
    that always fires, every second (its HTTP clients dial through go-conntrack; its web
    server's listener is go-conntrack's inside netutil.LimitListener). With https, it serves
    over TLS (where Go's server offers HTTP/2) and scrapes its targets over HTTPS with HTTP/2
    enabled. Yields (process, its host:port)."""
    port = free_port_at(place)
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
               f"--web.listen-address={place.address}:{port}", "--rules.alert.resend-delay=1s"]
    if https:
        cert, key = self_signed_certificate(workdir)
        web = workdir / f"{name}-web.yml"
        web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
        command.append(f"--web.config.file={web}")
    scheme = "https" if https else "http"
    with running(command, f"{scheme}://{place.address}:{port}/-/ready",
                 workdir / f"{name}.log", place=place) as proc:
        yield proc, f"{place.address}:{port}"


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
def etcd(workdir: Path, place: Place = HERE) -> Iterator[tuple[subprocess.Popen, str]]:
    """/usr/bin/etcd, one member on free ports of place's address (loopback): its client port
    serves gRPC and HTTP through cmux (each connection a *cmux.MuxConn). Yields (process,
    client host:port)."""
    client, peer = (f"{place.address}:{free_port_at(place)}" for _ in range(2))
    command = ["/usr/bin/etcd", "--data-dir", str(workdir / "etcd-data"),
               "--listen-client-urls", f"http://{client}",
               "--advertise-client-urls", f"http://{client}",
               "--listen-peer-urls", f"http://{peer}",
               "--initial-advertise-peer-urls", f"http://{peer}",
               "--initial-cluster", f"default=http://{peer}"]
    with running(command, f"http://{client}/health", workdir / "etcd.log",
                 place=place) as proc:
        yield proc, client


def etcdctl(endpoint: str, *args: str, place: Place = HERE) -> int:
    """One /usr/bin/etcdctl command (gRPC, API v3) against endpoint, run at place to its
    successful end; its process id (a place's prefix execs it: the pid is etcdctl's)."""
    proc = subprocess.Popen([*place.prefix, installed("/usr/bin/etcdctl"),
                             f"--endpoints={endpoint}",
                             *args], env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, f"etcdctl {' '.join(args)} exited {proc.returncode}: {err}"
    return proc.pid


# --- Programs whose HTTP API is served by a third-party router (http.route templates) ---------
#
# Each table below lists requests in the order they must be sent to a freshly started server
# (some create what later ones read), with the template the program's router matched for each:
# None where no route matched (the router's own 404, 405 or redirect before matching).


@dataclass(frozen=True)
class RoutedRequest:
    """One request to a routed server and what must come of it."""
    method: str
    target: str  # path and query, as sent (percent-escapes kept)
    route: str | None  # the router's template for it, None when no route matched
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def path(self) -> str:
        """The target's path, still escaped (url.path is its unescaped form)."""
        return urllib.parse.urlsplit(self.target).path


def send(addr: str, request: RoutedRequest) -> http.client.HTTPResponse:
    """The request sent to host:port on a connection of its own, redirects not followed; fails
    unless the response has the expected status. Returns the response, body read."""
    conn = http.client.HTTPConnection(addr, timeout=10)
    try:
        conn.request(request.method, request.target, body=request.body or None,
                     headers=dict(request.headers))
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == request.status, (
        f"{request.method} {request.target}: {response.status} {body[:300]!r}")
    return response


def send_all(addr: str, requests: Iterable[RoutedRequest]) -> list[RoutedRequest]:
    """Each request sent in turn (see send); returns them."""
    sent = list(requests)
    for request in sent:
        send(addr, request)
    return sent


# aptly 1.5.0 `aptly api serve`: gin 1.8.1 (Debian's golang-github-gin-gonic-gin), every route
# under the group /api; with UseRawPath, so an escaped slash stays inside one parameter. Its
# templates are those gin prints at start-up (debug mode: the log lists every route).
APTLY_REQUESTS = (
    RoutedRequest("GET", "/api/version", "/api/version", 200),
    RoutedRequest("GET", "/api/repos", "/api/repos", 200),
    RoutedRequest("POST", "/api/repos", "/api/repos", 201, b'{"Name": "main"}',
                  (("Content-Type", "application/json"),)),
    RoutedRequest("GET", "/api/repos/main", "/api/repos/:name", 200),
    RoutedRequest("PUT", "/api/repos/main", "/api/repos/:name", 200, b'{"Comment": "edited"}',
                  (("Content-Type", "application/json"),)),
    RoutedRequest("GET", "/api/repos/main/packages", "/api/repos/:name/packages", 200),
    RoutedRequest("GET", "/api/repos/a%2Fb", "/api/repos/:name", 404),  # the repo "a/b"
    RoutedRequest("GET", "/api/snapshots/one/diff/two", "/api/snapshots/:name/diff/:withSnapshot",
                  404),
    RoutedRequest("GET", "/api/files/nodir", "/api/files/:dir", 404),
    RoutedRequest("GET", "/api/tasks/7", "/api/tasks/:id", 404),
    RoutedRequest("GET", "/api/tasks/7/output", "/api/tasks/:id/output", 404),
    RoutedRequest("DELETE", "/api/repos/main", "/api/repos/:name", 200),
    RoutedRequest("GET", "/api/repos/", None, 301),  # gin's trailing-slash redirect
    RoutedRequest("POST", "/api/version", None, 404),  # HandleMethodNotAllowed is off
    RoutedRequest("GET", "/api/nosuch", None, 404),
)


@contextlib.contextmanager
def aptly(workdir: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """/usr/bin/aptly's REST API (`aptly api serve`, gin) on a free loopback port, its database
    and pool under workdir (a config file of its own, no lock held between requests). Yields
    (process, its host:port)."""
    port = free_port()
    config = workdir / "aptly.conf"
    config.write_text(json.dumps({"rootDir": str(workdir / "aptly-root")}))
    command = ["/usr/bin/aptly", f"-config={config}", "api", "serve",
               f"-listen=127.0.0.1:{port}", "-no-lock"]
    with running(command, f"http://127.0.0.1:{port}/api/version", workdir / "aptly.log") as proc:
        yield proc, f"127.0.0.1:{port}"


# prometheus-pushgateway 1.5.1: prometheus/common 0.39 route.Router over julienschmidt/httprouter
# 1.3.0 (which keeps no template at run time: a matched request carries only its parameters).
# Templates from main.go at upstream v1.5.1 (Debian's patches change only where the static files
# come from), all present as strings in the binary.
PUSHGATEWAY_REQUESTS = (
    RoutedRequest("GET", "/-/healthy", "/-/healthy", 200),
    RoutedRequest("GET", "/-/ready", "/-/ready", 200),
    RoutedRequest("PUT", "/metrics/job/batch", "/metrics/job/:job", 200, b"done 1\n"),
    RoutedRequest("POST", "/metrics/job/batch/instance/host1", "/metrics/job/:job/*labels", 200,
                  b"done 2\n"),
    RoutedRequest("PUT", "/metrics/job@base64/YmF0Y2g", "/metrics/job@base64/:job", 200,
                  b"done 3\n"),  # the job "batch", base64url-encoded
    RoutedRequest("POST", "/metrics/job@base64/YmF0Y2g/instance@base64/aG9zdDI",
                  "/metrics/job@base64/:job/*labels", 200, b"done 4\n"),
    RoutedRequest("GET", "/metrics", "/metrics", 200),
    RoutedRequest("GET", "/static/functions.js", "/static/*filepath", 200),
    RoutedRequest("GET", "/debug/pprof/cmdline", "/debug/pprof/*pprof", 200),
    RoutedRequest("GET", "/status", "/status", 200),
    RoutedRequest("GET", "/", "/", 200),
    RoutedRequest("DELETE", "/metrics/job/batch/instance/host1", "/metrics/job/:job/*labels",
                  202),
    RoutedRequest("DELETE", "/metrics/job/batch", "/metrics/job/:job", 202),
    RoutedRequest("PUT", "/-/quit", "/-/quit", 403),  # the lifecycle API is off
    RoutedRequest("GET", "/metrics/job/batch", None, 405),  # httprouter's Method Not Allowed
    RoutedRequest("GET", "/nosuch", None, 404),
)

# Its /api/v1 routes sit on a second route.Router behind http.StripPrefix("/api/v1"): that
# router registered, and matched, "/status"; the route is the whole path's, the prefix it lost
# included (gotrace/probes/http_routes.py).
PUSHGATEWAY_STRIPPED_REQUESTS = (
    RoutedRequest("GET", "/api/v1/status", "/api/v1/status", 200),
    RoutedRequest("GET", "/api/v1/metrics", "/api/v1/metrics", 200),
)


@contextlib.contextmanager
def pushgateway(workdir: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """/usr/bin/prometheus-pushgateway on a free loopback port, metrics kept in memory only.
    Yields (process, its host:port)."""
    port = free_port()
    command = ["/usr/bin/prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}"]
    with running(command, f"http://127.0.0.1:{port}/-/ready",
                 workdir / "pushgateway.log") as proc:
        yield proc, f"127.0.0.1:{port}"


# docker-registry 2.8.2 (docker/distribution): gorilla/mux 1.8.0, StrictSlash on. Its templates
# are regexp templates; these are what (*mux.Route).GetPathTemplate returns for each route, from
# registry/api/v2 of Debian's source built against Debian's gorilla/mux 1.8.0 and go-digest
# 1.0.0 (the name's and the digest's expressions are those of reference and go-digest).
_REGISTRY_HOST = (r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
                  r"(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?"
                  r"(?::[0-9]+)?/)?")
_REGISTRY_COMPONENT = r"[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?"
_REGISTRY_NAME = f"{_REGISTRY_HOST}{_REGISTRY_COMPONENT}(?:(?:/{_REGISTRY_COMPONENT})+)?"
_REGISTRY_DIGEST = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
REGISTRY_BASE = "/v2/"
REGISTRY_CATALOG = "/v2/_catalog"
REGISTRY_TAGS = f"/v2/{{name:{_REGISTRY_NAME}}}/tags/list"
REGISTRY_MANIFEST = (f"/v2/{{name:{_REGISTRY_NAME}}}/manifests/"
                     rf"{{reference:[\w][\w.-]{{0,127}}|{_REGISTRY_DIGEST}}}")
REGISTRY_BLOB = f"/v2/{{name:{_REGISTRY_NAME}}}/blobs/{{digest:{_REGISTRY_DIGEST}}}"
REGISTRY_BLOB_UPLOAD = f"/v2/{{name:{_REGISTRY_NAME}}}/blobs/uploads/"
REGISTRY_BLOB_UPLOAD_CHUNK = (f"/v2/{{name:{_REGISTRY_NAME}}}/blobs/uploads/"
                              "{uuid:[a-zA-Z0-9-_.=]+}")

_NO_BLOB = "sha256:" + "0" * 64
_NO_UPLOAD = "0a1b2c3d-0000-4000-8000-000000000000"

# On a fresh registry (nothing pushed yet).
REGISTRY_REQUESTS = (
    RoutedRequest("GET", "/v2/", REGISTRY_BASE, 200),
    RoutedRequest("GET", "/v2", REGISTRY_BASE, 301),  # matched, then StrictSlash's redirect
    RoutedRequest("GET", "/v2/_catalog", REGISTRY_CATALOG, 200),
    RoutedRequest("GET", "/v2/library/alpine/tags/list", REGISTRY_TAGS, 404),
    RoutedRequest("GET", "/v2/library/alpine/manifests/latest", REGISTRY_MANIFEST, 404),
    RoutedRequest("HEAD", f"/v2/library/alpine/blobs/{_NO_BLOB}", REGISTRY_BLOB, 404),
    RoutedRequest("GET", f"/v2/library/alpine/blobs/uploads/{_NO_UPLOAD}",
                  REGISTRY_BLOB_UPLOAD_CHUNK, 404),
    RoutedRequest("GET", "/v2/library//alpine/tags/list", None, 301),  # mux's path cleaning
    # "Library/" matches the name's optional registry-host part: the tags route matched, and
    # the registry's handler answers that no such repository exists.
    RoutedRequest("GET", "/v2/Library/alpine/tags/list", REGISTRY_TAGS, 404),
)


def registry_push(addr: str, name: str = "library/alpine", tag: str = "v1"
                  ) -> list[RoutedRequest]:
    """An image of one layer pushed to the registry at host:port as name:tag (each blob a
    POST then a PUT to the upload's location), read back, then its manifest deleted: every
    route of the registry's API answering 2xx. Returns the requests sent, in order."""
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = b"a layer's bytes"
    sent: list[RoutedRequest] = []

    def step(request: RoutedRequest) -> http.client.HTTPResponse:
        sent.append(request)
        return send(addr, request)

    def digest(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    octets = (("Content-Type", "application/octet-stream"),)
    for blob in (config, layer):
        started = step(RoutedRequest("POST", f"/v2/{name}/blobs/uploads/", REGISTRY_BLOB_UPLOAD,
                                     202))
        location = urllib.parse.urlsplit(started.headers["Location"])
        query = f"{location.query}&digest={urllib.parse.quote(digest(blob))}"
        step(RoutedRequest("PUT", f"{location.path}?{query}", REGISTRY_BLOB_UPLOAD_CHUNK, 201,
                           blob, octets))
    media = "application/vnd.docker.distribution.manifest.v2+json"
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": media,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": digest(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer), "digest": digest(layer)}],
    }).encode()
    step(RoutedRequest("PUT", f"/v2/{name}/manifests/{tag}", REGISTRY_MANIFEST, 201, manifest,
                       (("Content-Type", media),)))
    step(RoutedRequest("GET", f"/v2/{name}/manifests/{tag}", REGISTRY_MANIFEST, 200,
                       headers=(("Accept", media),)))
    step(RoutedRequest("HEAD", f"/v2/{name}/blobs/{digest(layer)}", REGISTRY_BLOB, 200))
    step(RoutedRequest("GET", f"/v2/{name}/blobs/{digest(layer)}", REGISTRY_BLOB, 200))
    step(RoutedRequest("GET", f"/v2/{name}/tags/list", REGISTRY_TAGS, 200))
    step(RoutedRequest("GET", "/v2/_catalog", REGISTRY_CATALOG, 200))
    step(RoutedRequest("DELETE", f"/v2/{name}/manifests/{digest(manifest)}", REGISTRY_MANIFEST,
                       202))
    return sent


@contextlib.contextmanager
def registry(workdir: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """/usr/bin/docker-registry on a free loopback port, storing blobs under workdir (deletes
    allowed, no auth). Yields (process, its host:port)."""
    port = free_port()
    config = workdir / "registry.yml"
    config.write_text("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {workdir / 'registry-data'}\n"
                      "  delete:\n    enabled: true\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n  secret: gotrace-tests\n")
    command = ["/usr/bin/docker-registry", "serve", str(config)]
    with running(command, f"http://127.0.0.1:{port}/v2/", workdir / "registry.log") as proc:
        yield proc, f"127.0.0.1:{port}"


# --- Programs that query a database on every scrape (database CLIENT spans) -----------------
#
# Each is given its database by a DSN in DATA_SOURCE_NAME (the Server.dsn of tests/databases.py)
# and nothing else of this process's environment (no PG* or MYSQL* variable reaches the
# driver). Both are ready once their landing page answers: neither runs a query before the
# first scrape of /metrics.


def _dsn_env(dsn: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "DATA_SOURCE_NAME": dsn}


@contextlib.contextmanager
def postgres_exporter(workdir: Path, dsn: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """/usr/bin/prometheus-postgres-exporter 0.11 (lib/pq through database/sql) on a free
    loopback port, monitoring the PostgreSQL at dsn (postgres://...?sslmode=disable), default
    collectors. Yields (process, its host:port)."""
    port = free_port()
    command = ["/usr/bin/prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{port}"]
    with running(command, f"http://127.0.0.1:{port}/", workdir / "postgres-exporter.log",
                 env=_dsn_env(dsn)) as proc:
        yield proc, f"127.0.0.1:{port}"


@contextlib.contextmanager
def mysqld_exporter(workdir: Path, dsn: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """/usr/bin/prometheus-mysqld-exporter 0.14 (go-sql-driver/mysql through database/sql) on a
    free loopback port, monitoring the MySQL or MariaDB at dsn (user:password@tcp(host:port)/db;
    with DATA_SOURCE_NAME set it reads no .my.cnf), default scrapers. Yields (process, its
    host:port)."""
    port = free_port()
    command = ["/usr/bin/prometheus-mysqld-exporter", f"--web.listen-address=127.0.0.1:{port}"]
    with running(command, f"http://127.0.0.1:{port}/", workdir / "mysqld-exporter.log",
                 env=_dsn_env(dsn)) as proc:
        yield proc, f"127.0.0.1:{port}"
