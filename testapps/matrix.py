"""Build matrix of the Go test programs under testapps/.

Every program is built in GOPATH mode (``GO111MODULE=off``) with each Go toolchain
Debian installed under ``/usr/lib/go-1.NN`` and, for the gRPC programs, against each
grpc-go GOPATH found:

* ``/usr/share/gocode`` - the system GOPATH (grpc 1.33 from bookworm);
* ``${GOTRACE_CACHE:-/var/cache/gotrace}/gopath/grpc-X.Y/usr/share/gocode`` - made
  by ``scripts/grpc_gopaths.sh`` (grpc 1.64 from trixie, 1.79 from trixie-backports).

``wrapped`` also imports connection-wrapping libraries (cmux, go-conntrack with
Prometheus' client_golang, go-proxyproto, x/net/netutil) that only the system GOPATH
has (bookworm packages, ``scripts/setup.sh``): its GOPATH is the grpc GOPATH followed by
``/usr/share/gocode``, so grpc, protobuf and golang.org/x/* come from the grpc GOPATH and
only what it lacks from the system one (see :data:`SYSTEM_GOPATH_FALLBACK_APPS`).

``routers`` (one program serving gin, chi, gorilla/mux, httprouter and echo, each on its own
port) builds against those routers as bookworm packages them in the system GOPATH
(``scripts/setup.sh``; see :data:`SYSTEM_LIB_APPS` and :data:`ROUTER_GO`). chi 5 and echo 4
are imported by their GOPATH paths, ``github.com/go-chi/chi`` and ``github.com/labstack/echo``
(no ``/v5``, ``/v4``): that is where Debian installs them, and their own imports of
``.../v5`` or ``.../v4`` resolve there through GOPATH mode's minimal module compatibility
(their directories have a go.mod). So the symbols are ``github.com/go-chi/chi.(*Mux)...`` and
``github.com/labstack/echo.(*Echo)...``, not the module builds' ``.../v5.`` and ``.../v4.``.

A build is described by a :class:`Cell`; :func:`build` turns it into a binary under
``${GOTRACE_CACHE}/testapps/<key>/<app>``, reusing an existing one.

Variants and how they are linked (checked with ``readelf`` on binaries built here
with every Go from 1.19 to 1.26; the exact flags are in :data:`VARIANT_FLAGS`)::

    variant               PIE  -s -w  CGO_ENABLED  link      ELF type
    plain                 no   no     0            internal  EXEC, static
    stripped              no   yes    0            internal  EXEC, static
    pie                   yes  no     0            internal  DYN, with .interp
    pie-stripped          yes  yes    0            internal  DYN, with .interp
    extlink               no   no     1            external  EXEC, dynamic (libc)
    extlink-stripped      no   yes    1            external  EXEC, dynamic (libc)
    pie-extlink           yes  no     1            external  DYN, dynamic (libc)
    pie-extlink-stripped  yes  yes    1            external  DYN, dynamic (libc)

(``pie-extlink*`` are extra to the six variants first asked for: they are the only
builds without a ``.gopclntab`` section, the case Debian-style external PIE builds
need.) What the sections look like:

* internal, non-PIE: ``.gopclntab``, ``.typelink``; ``.text`` starts with Go code.
* internal PIE, Go 1.19-1.25: ``.data.rel.ro.gopclntab``, ``.data.rel.ro.typelink``.
  Go 1.26 moved the pclntab to a read-only section named plain ``.gopclntab``
  (``.data.rel.ro.typelink`` stays). Though ET_DYN, it is linked at 0x400000 (first
  PT_LOAD vaddr, ``.text`` at 0x401000); the loader adds its random base on top.
  External PIE is linked at 0.
* external, non-PIE: ``.gopclntab`` and ``.typelink`` exist; ``.text`` starts with
  C start-up code (``runtime.text`` is past the section start) and the entry point is
  ``_start`` from crt1.o.
* external PIE, Go 1.19-1.25: no ``.gopclntab`` and no ``.typelink`` section at all
  (find the pclntab by its magic). Go 1.26: ``.gopclntab`` exists again (read-only),
  still no ``.typelink``.
* Only externally linked binaries have a ``.comment`` section (``GCC: ...`` from the
  C objects), stripped or not: a cheap internal/external test.
* ``-s -w`` removes ``.symtab`` and all ``.debug_*``; the pclntab, type data and
  ``.go.buildinfo`` remain.

Non-external variants are built with ``CGO_ENABLED=0`` so the result does not depend
on whether a C compiler is installed (the external variants need gcc).

GOPATH mode has no go.mod, so binaries get Go 1.20's default GODEBUG settings whatever
the toolchain (``go version -m`` shows ``DefaultGODEBUG=...``), like Debian's own
packaged programs; e.g. ``httpmuxgo121=1``, which httpserver overrides with a
``//go:debug`` line to get the Go 1.22 ServeMux patterns.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import fcntl
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

TESTAPPS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTAPPS_DIR.parent
GRPC_GOPATHS_SCRIPT = REPO_DIR / "scripts" / "grpc_gopaths.sh"
SYSTEM_GOPATH = Path("/usr/share/gocode")
GO_ROOTS_GLOB = "/usr/lib/go-1.*"

APPS = ("httpserver", "httpclient", "grpcserver", "grpcclient", "httpgrpc", "hitloop",
        "loadgen", "schedwait", "wrapped", "kvwire",
        "grpchttp", "h2", "routers", "sqlclient", "pgxclient", "redisclient")
# Built on demand, not part of the cell sets: httpgrpc (an HTTP front end calling gRPC),
# schedwait (routes that wait in known ways) and wrapped (HTTP/gRPC/cmux over wrapped
# connections, calling a next hop) and kvwire (a key-value service, the library of the
# test-only probe in tests/probe_library) and grpchttp (gRPC through grpc.Server.ServeHTTP
# and plain HTTP on one net/http server, h2c or TLS) by the tests that need them; hitloop
# (uprobe cost calibration) and loadgen (HTTP and gRPC load generator) by the benchmark
# (bench/). h2 (HTTP/2 server and client: net/http's bundled HTTP/2, x/net's http2 and h2c)
# and routers (gin, chi, gorilla/mux, httprouter and echo, for route templates) are in the
# cell sets, and so are the database clients sqlclient (database/sql through lib/pq, pgx's
# stdlib, go-sql-driver/mysql and, in cgo builds only, go-sqlite3), pgxclient (pgx v4's own
# API) and redisclient (gopkg.in/redis.v5), which tests/databases.py's servers serve.
GRPC_APPS = frozenset({"grpcserver", "grpcclient", "grpchttp", "httpgrpc", "loadgen", "wrapped"})

# Apps whose GOPATH is the grpc GOPATH followed by the system GOPATH, for the libraries
# only the system GOPATH has. Checked: every package grpc imports still comes from the
# grpc GOPATH (Go takes an import path from the first GOPATH entry that has it), and the
# system's Prometheus client_golang 1.14 builds against trixie's protobuf 1.36.
SYSTEM_GOPATH_FALLBACK_APPS = frozenset({"wrapped"})

# Apps without grpc that import libraries from the system GOPATH (golang.org/x/net and
# x/text: bookworm's 0.7.0 and 0.7.0), with the Debian packages that hold them: their
# versions are part of the build key.
SYSTEM_LIB_APPS: dict[str, tuple[str, ...]] = {
    "h2": ("golang-golang-x-net-dev", "golang-golang-x-text-dev"),
    # The five router packages and every package that holds something the program compiles
    # (`go list -deps` with Go 1.19 and 1.26, each directory's owner from `dpkg -S`).
    "routers": (
        "golang-github-gin-gonic-gin-dev", "golang-github-go-chi-chi-dev",
        "golang-github-gorilla-mux-dev", "golang-github-julienschmidt-httprouter-dev",
        "golang-github-labstack-echo-dev",
        "golang-github-gin-contrib-sse-dev", "golang-github-go-playground-validator-v10-dev",
        "golang-github-go-playground-locales-dev",
        "golang-github-go-playground-universal-translator-dev", "golang-github-leodido-go-urn-dev",
        "golang-github-mattn-go-isatty-dev", "golang-github-mattn-go-colorable-dev",
        "golang-github-pelletier-go-toml.v2-dev", "golang-github-ugorji-go-codec-dev",
        "golang-gopkg-yaml.v2-dev", "golang-google-protobuf-dev",
        "golang-github-labstack-gommon-dev", "golang-github-dgrijalva-jwt-go-dev",
        "golang-github-valyala-fasttemplate-dev", "golang-github-valyala-bytebufferpool-dev",
        "golang-golang-x-crypto-dev", "golang-golang-x-net-dev", "golang-golang-x-sys-dev",
        "golang-golang-x-text-dev", "golang-golang-x-time-dev",
    ),
    # The database clients likewise (`go list -deps` with Go 1.19 and 1.26, CGO_ENABLED 0 and
    # 1, each directory's owner from `dpkg -S`), and for sqlclient libsqlite3-dev, whose
    # sqlite3.h and libsqlite3.so go-sqlite3 compiles and links against in cgo builds.
    "sqlclient": (
        "golang-github-lib-pq-dev", "golang-github-jackc-pgx-v4-dev",
        "golang-github-go-sql-driver-mysql-dev", "golang-github-mattn-go-sqlite3-dev",
        "libsqlite3-dev",
        "golang-github-jackc-pgconn-dev", "golang-github-jackc-pgtype-dev",
        "golang-github-jackc-pgproto3-v2-dev", "golang-github-jackc-chunkreader-v2-dev",
        "golang-github-jackc-pgio-dev", "golang-github-jackc-pgpassfile-dev",
        "golang-github-jackc-pgservicefile-dev",
        "golang-golang-x-crypto-dev", "golang-golang-x-text-dev",
    ),
    "pgxclient": (
        "golang-github-jackc-pgx-v4-dev",
        "golang-github-jackc-pgconn-dev", "golang-github-jackc-pgtype-dev",
        "golang-github-jackc-pgproto3-v2-dev", "golang-github-jackc-chunkreader-v2-dev",
        "golang-github-jackc-pgio-dev", "golang-github-jackc-pgpassfile-dev",
        "golang-github-jackc-pgservicefile-dev",
        "golang-golang-x-crypto-dev", "golang-golang-x-text-dev",
    ),
    "redisclient": ("golang-gopkg-redis.v5-dev",),
}

# Oldest and newest Go each router library of testapps/routers builds with in GOPATH mode,
# as bookworm packages it (gin 1.8.1, chi 5.0.7, gorilla/mux 1.8.0, httprouter 1.3.0, echo
# 4.2.1). Determined by building a program importing each (gin and gin.Recovery, chi and
# chi/middleware, echo and echo/middleware) and then testapps/routers itself with every
# installed Go (1.19, 1.21-1.26; there is no Debian Go 1.20 here): every library built with
# every one, so one binary serves all five and needs no build tags. The newest is the newest
# checked, not a limit: a newer toolchain is tried (and fails loudly) rather than skipped.
# Should a library stop building with some Go, routers must split it off by build tags.
ROUTER_GO: dict[str, tuple[str, str]] = {
    "gin": ("1.19", "1.26"),
    "chi": ("1.19", "1.26"),
    "gorilla": ("1.19", "1.26"),
    "httprouter": ("1.19", "1.26"),
    "echo": ("1.19", "1.26"),
}

# Oldest and newest Go each database client builds with in GOPATH mode, as bookworm packages
# its libraries (lib/pq 1.10.7, pgx 4.15.0 with pgconn 1.11.0 and pgtype 1.10.0,
# go-sql-driver/mysql 1.5.0, go-sqlite3 1.14.16 against libsqlite3 3.40.1, redis.v5 5.2.9).
# Determined by building each program with every installed Go (1.19, 1.21-1.26; there is no
# Debian Go 1.20 here) in every variant, so sqlclient with go-sqlite3 (the CGO_ENABLED=1,
# externally linked ones) and without: all 168 builds succeeded. As for ROUTER_GO, the newest
# is the newest checked, not a limit.
DB_CLIENT_GO: dict[str, tuple[str, str]] = {
    "sqlclient": ("1.19", "1.26"),
    "pgxclient": ("1.19", "1.26"),
    "redisclient": ("1.19", "1.26"),
}

# variant -> (extra `go build` arguments, CGO_ENABLED)
VARIANT_FLAGS: dict[str, tuple[tuple[str, ...], bool]] = {
    "plain": ((), False),
    "stripped": (("-ldflags=-s -w",), False),
    "pie": (("-buildmode=pie",), False),
    "pie-stripped": (("-buildmode=pie", "-ldflags=-s -w"), False),
    "extlink": (("-ldflags=-linkmode=external",), True),
    "extlink-stripped": (("-ldflags=-linkmode=external -s -w",), True),
    "pie-extlink": (("-buildmode=pie", "-ldflags=-linkmode=external"), True),
    "pie-extlink-stripped": (("-buildmode=pie", "-ldflags=-linkmode=external -s -w"), True),
}
VARIANTS = tuple(VARIANT_FLAGS)

# Arguments given to every build. -buildvcs=false: never stamp git state.
COMMON_BUILD_ARGS = ("-buildvcs=false",)

# Bump when the build recipe changes in a way the key would not notice.
RECIPE_VERSION = "1"

# Oldest Go (minor version) each grpc-go release compiles with, in GOPATH mode with
# the Debian packages scripts/grpc_gopaths.sh unpacks. Determined by building
# grpcserver and grpcclient with every installed Go (1.19, 1.21-1.26; there is no
# Debian Go 1.20 here) against each GOPATH; newer Go always worked:
#   1.33: builds with all of 1.19-1.26.
#   1.64: Go 1.19 fails - protobuf-go 1.36.5 (trixie) uses unsafe.StringData (Go 1.20).
#   1.79: Go 1.21 fails - no math/rand/v2 (Go 1.22); Go 1.22 and 1.23 fail - x/net
#         0.62 (trixie-backports) http2 uses http.HTTP2Config (Go 1.24).
# A grpc version not listed falls back to the `go` line of its go.mod.
GRPC_MIN_GO: dict[str, str] = {"1.33": "1.19", "1.64": "1.21", "1.79": "1.24"}


class BuildError(RuntimeError):
    """A test program failed to build; the message carries the compiler output."""


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


def _short(version: str) -> str:
    """'1.79.3' -> '1.79'."""
    m = re.match(r"(\d+)\.(\d+)", version)
    if not m:
        raise ValueError(f"not a version: {version!r}")
    return f"{m.group(1)}.{m.group(2)}"


@dataclasses.dataclass(frozen=True)
class Cell:
    """One binary of the matrix.

    ``go`` is "1.NN" (an installed toolchain), ``grpc`` is "1.NN" for the gRPC
    programs and None for the HTTP ones.
    """

    app: str
    go: str
    variant: str
    grpc: str | None = None

    def __post_init__(self) -> None:
        if self.app not in APPS:
            raise ValueError(f"unknown app {self.app!r}, want one of {APPS}")
        if self.variant not in VARIANT_FLAGS:
            raise ValueError(f"unknown variant {self.variant!r}, want one of {VARIANTS}")
        if (self.app in GRPC_APPS) != (self.grpc is not None):
            raise ValueError(f"{self.app}: grpc version must be given exactly for gRPC apps")

    @property
    def stripped(self) -> bool:
        return self.variant == "stripped" or self.variant.endswith("-stripped")

    @property
    def pie(self) -> bool:
        return self.variant.startswith("pie")

    @property
    def external_link(self) -> bool:
        return "extlink" in self.variant

    def twin(self) -> Cell:
        """The unstripped cell of the same build (itself when not stripped)."""
        if self.variant == "stripped":
            return dataclasses.replace(self, variant="plain")
        return dataclasses.replace(self, variant=self.variant.removesuffix("-stripped"))

    @property
    def name(self) -> str:
        grpc = f"-grpc{self.grpc}" if self.grpc else ""
        return f"{self.app}-go{self.go}{grpc}-{self.variant}"

    @classmethod
    def parse(cls, name: str) -> Cell:
        """Inverse of :attr:`name`."""
        m = re.fullmatch(r"([a-z][a-z0-9]*)-go(\d+\.\d+)(?:-grpc(\d+\.\d+))?-([a-z-]+)", name)
        if not m:
            raise ValueError(f"not a cell name: {name!r}")
        return cls(app=m[1], go=m[2], grpc=m[3], variant=m[4])

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True)
class GrpcPath:
    version: str  # "1.79"
    full_version: str  # "1.79.3"
    gopath: Path
    stamp: str  # exact package versions; part of the build key


# ---------------------------------------------------------------------------
# Discovery


def cache_dir() -> Path:
    return Path(os.environ.get("GOTRACE_CACHE", "/var/cache/gotrace"))


def go_versions() -> list[str]:
    """Installed Go toolchains as "1.NN", oldest first."""
    found = []
    for root in Path("/").glob(GO_ROOTS_GLOB.lstrip("/")):
        m = re.fullmatch(r"go-(\d+\.\d+)", root.name)
        if m and (root / "bin" / "go").is_file():
            found.append(m[1])
    return sorted(found, key=_vkey)


def go_binary(go: str) -> Path:
    return Path(f"/usr/lib/go-{go}/bin/go")


@functools.cache
def go_version_string(go: str) -> str:
    """Output of `go version`, e.g. 'go version go1.26.11 linux/amd64'."""
    try:
        out = subprocess.run(
            [str(go_binary(go)), "version"],
            env=_base_env(),
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        raise BuildError(f"Go {go} is not usable: {e}") from e
    return out.stdout.strip()


def _grpc_version_of(gopath: Path) -> str | None:
    vf = gopath / "src/google.golang.org/grpc/version.go"
    try:
        m = re.search(r'const Version = "([^"]+)"', vf.read_text())
    except OSError:
        return None
    return m[1] if m else None


# The system GOPATH's packages; their dpkg versions form its stamp.
_SYSTEM_GOPATH_PKGS = (
    "golang-google-grpc-dev",
    "golang-github-golang-protobuf-1-3-dev",
    "golang-golang-x-net-dev",
    "golang-golang-x-sys-dev",
    "golang-golang-x-text-dev",
    "golang-google-genproto-dev",
)


@functools.cache
def _system_stamp(full_version: str) -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", *_SYSTEM_GOPATH_PKGS], capture_output=True, text=True
        ).stdout
    except OSError:
        out = ""
    return f"{SYSTEM_GOPATH}\ngrpc_version={full_version}\n{out}"


@functools.cache
def _dpkg_stamp(packages: tuple[str, ...]) -> str:
    """'<package>\t<version>' lines of the given Debian packages, as dpkg-query -W prints."""
    try:
        return subprocess.run(
            ["dpkg-query", "-W", *packages], capture_output=True, text=True
        ).stdout
    except OSError:
        return ""


@functools.cache
def _system_dev_stamp() -> str:
    """Versions of every Debian Go library package installed (``golang-*-dev``, all of
    /usr/share/gocode): part of the key of the SYSTEM_GOPATH_FALLBACK_APPS builds, which may
    import any of them (cmux, go-conntrack, go-proxyproto, client_golang and its
    dependencies...)."""
    fmt = "${db:Status-Abbrev}${Package}=${Version}\n"
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", fmt, "golang-*-dev"],
            capture_output=True,
            text=True,
        ).stdout
    except OSError:
        out = ""
    return "".join(
        line[3:] + "\n" for line in sorted(out.splitlines()) if line.startswith("ii ")
    )


def grpc_gopaths() -> dict[str, GrpcPath]:
    """grpc GOPATHs found on this machine, keyed by grpc "major.minor", oldest first."""
    found: dict[str, GrpcPath] = {}
    full = _grpc_version_of(SYSTEM_GOPATH)
    if full:
        found[_short(full)] = GrpcPath(_short(full), full, SYSTEM_GOPATH, _system_stamp(full))
    for stamp_file in sorted((cache_dir() / "gopath").glob("grpc-*/STAMP")):
        stamp = stamp_file.read_text()
        m = re.search(r"^grpc_version=(\S+)$", stamp, re.M)
        gopath = stamp_file.parent / "usr/share/gocode"
        if m and gopath.is_dir():
            found.setdefault(_short(m[1]), GrpcPath(_short(m[1]), m[1], gopath, stamp))
    return dict(sorted(found.items(), key=lambda kv: _vkey(kv[0])))


def grpc_min_go(info: GrpcPath) -> str:
    if info.version in GRPC_MIN_GO:
        return GRPC_MIN_GO[info.version]
    try:
        gomod = (info.gopath / "src/google.golang.org/grpc/go.mod").read_text()
        m = re.search(r"^go (\d+\.\d+)", gomod, re.M)
    except OSError:
        m = None
    return m[1] if m else "1.0"


def routers_go(gos: Sequence[str] | None = None) -> list[str]:
    """Installed Go versions testapps/routers builds with: from the newest of the oldest Go
    versions in :data:`ROUTER_GO` on."""
    lo = max(_vkey(oldest) for oldest, _ in ROUTER_GO.values())
    return [g for g in (gos if gos is not None else go_versions()) if _vkey(g) >= lo]


def db_client_go(app: str, gos: Sequence[str] | None = None) -> list[str]:
    """Installed Go versions the database client app (a key of :data:`DB_CLIENT_GO`) builds
    with."""
    lo = _vkey(DB_CLIENT_GO[app][0])
    return [g for g in (gos if gos is not None else go_versions()) if _vkey(g) >= lo]


def supported_go(grpc: str, gos: Sequence[str] | None = None) -> list[str]:
    """Installed Go versions the given grpc version builds with."""
    info = grpc_gopaths().get(grpc)
    if info is None:
        return []
    lo = _vkey(grpc_min_go(info))
    return [g for g in (gos if gos is not None else go_versions()) if _vkey(g) >= lo]


def gopaths_current() -> bool:
    """True when grpc_gopaths.sh has run since the apt lists last changed."""
    stamps = list((cache_dir() / "gopath").glob("grpc-*/STAMP"))
    try:
        lists = Path("/var/lib/apt/lists").stat().st_mtime
        return bool(stamps) and all(s.stat().st_mtime > lists for s in stamps)
    except OSError:
        return False


def prepare_gopaths(quiet: bool = False) -> None:
    """Run scripts/grpc_gopaths.sh (needs root; about 2 s when everything is there)."""
    out = subprocess.run(["bash", str(GRPC_GOPATHS_SCRIPT)], capture_output=True, text=True)
    if out.returncode != 0:
        raise BuildError(f"{GRPC_GOPATHS_SCRIPT} failed:\n{out.stdout}{out.stderr}")
    if not quiet:
        sys.stderr.write(out.stdout)


# ---------------------------------------------------------------------------
# Cell sets


def _spread(items: Sequence[str], i: int, k: int) -> str:
    """Pick item number i of k spread evenly over items (first ... last)."""
    if k <= 1:
        return items[-1]
    return items[round(i * (len(items) - 1) / (k - 1))]


# The database clients' variants in the default cell set: (with the oldest Go, with the
# newest). sqlclient's are cgo builds, externally linked, so that both have go-sqlite3.
_DB_CLIENT_DEFAULT_VARIANTS: dict[str, tuple[str, str]] = {
    "sqlclient": ("extlink-stripped", "pie-extlink-stripped"),
    "pgxclient": ("stripped", "pie-stripped"),
    "redisclient": ("stripped", "pie-stripped"),
}


def default_cells() -> list[Cell]:
    """A small set for the default test run.

    Every Go version: httpserver plain + stripped, httpclient plain. Oldest and newest Go:
    httpserver in every PIE / external-link variant, h2 plain + stripped (the HTTP/2 tests
    build h2 for the Go versions between on demand). routers stripped with the oldest Go
    it builds with, pie-stripped with the newest; likewise pgxclient and redisclient, and
    sqlclient extlink-stripped and pie-extlink-stripped (cgo: with go-sqlite3). Every grpc
    version: grpcserver + grpcclient plain + stripped with one supported Go (oldest grpc with
    the oldest Go, newest with the newest, others in between).
    """
    gos = go_versions()
    cells: list[Cell] = []
    for go in gos:
        cells += [
            Cell("httpserver", go, "plain"),
            Cell("httpserver", go, "stripped"),
            Cell("httpclient", go, "plain"),
        ]
    for go in dict.fromkeys([gos[0], gos[-1]] if gos else []):
        cells += [Cell("httpserver", go, v) for v in VARIANTS if v not in ("plain", "stripped")]
        cells += [Cell("h2", go, "plain"), Cell("h2", go, "stripped")]
    rgos = routers_go(gos)
    if rgos:  # their unstripped twins are built on demand
        cells += [Cell("routers", rgos[0], "stripped"), Cell("routers", rgos[-1], "pie-stripped")]
    for app, (oldest, newest) in _DB_CLIENT_DEFAULT_VARIANTS.items():
        dgos = db_client_go(app, gos)
        if dgos:  # unstripped twins on demand, as for routers
            cells += [Cell(app, dgos[0], oldest), Cell(app, dgos[-1], newest)]
    grpcs = list(grpc_gopaths())
    for i, grpc in enumerate(grpcs):
        sup = supported_go(grpc, gos)
        if not sup:
            continue
        go = _spread(sup, i, len(grpcs))
        cells += [
            Cell(app, go, v, grpc)
            for app in ("grpcserver", "grpcclient")
            for v in ("plain", "stripped")
        ]
    return cells


def full_cells() -> list[Cell]:
    """httpserver, httpclient, h2, grpcserver and grpcclient, each x every Go x every
    variant (gRPC apps: every supported combination); routers and the database clients
    (sqlclient, pgxclient, redisclient) x every Go they build with x every variant (the
    CGO_ENABLED=0 ones of sqlclient have no go-sqlite3)."""
    gos = go_versions()
    cells = [
        Cell(app, go, v)
        for app in ("httpserver", "httpclient", "h2")
        for go in gos
        for v in VARIANTS
    ]
    cells += [Cell("routers", go, v) for go in routers_go(gos) for v in VARIANTS]
    cells += [Cell(app, go, v) for app in DB_CLIENT_GO for go in db_client_go(app, gos)
              for v in VARIANTS]
    for grpc in grpc_gopaths():
        cells += [
            Cell(app, go, v, grpc)
            for app in ("grpcserver", "grpcclient")
            for go in supported_go(grpc, gos)
            for v in VARIANTS
        ]
    return cells


# ---------------------------------------------------------------------------
# Building


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    # Nothing from the caller's Go setup may leak into the build.
    for var in (
        "GOROOT",
        "GOOS",
        "GOARCH",
        "GOAMD64",
        "GOEXPERIMENT",
        "GODEBUG",
        "GOBIN",
        "GOWORK",
        "GOTOOLCHAIN",
        "GOPATH",
        "GOFLAGS",
        "GO111MODULE",
        "CGO_ENABLED",
    ):
        env.pop(var, None)
    env.update(GOENV="off", GOTOOLCHAIN="local", GOFLAGS="", GO111MODULE="off")
    return env


def _sources(app: str) -> list[Path]:
    """The app's Go files, symlinks included: a file several apps share lives in one app's
    directory and is linked from the others' (e.g. httpserver/selfsigned.go), and
    :func:`cell_key` reads it through the link, so changing it changes every linking app's
    key."""
    return sorted((TESTAPPS_DIR / app).glob("*.go"))


def _gopath_for(cell: Cell) -> tuple[str, str]:
    """The cell's GOPATH value (one directory, or a list) and the stamp of what is in it."""
    if cell.grpc is None:
        if cell.app in SYSTEM_LIB_APPS:
            return str(SYSTEM_GOPATH), f"{SYSTEM_GOPATH}\n{_dpkg_stamp(SYSTEM_LIB_APPS[cell.app])}"
        return str(SYSTEM_GOPATH), "no-grpc"
    info = grpc_gopaths().get(cell.grpc)
    if info is None:
        raise BuildError(
            f"{cell}: no GOPATH with grpc {cell.grpc} found; run scripts/grpc_gopaths.sh "
            f"(found: {', '.join(grpc_gopaths()) or 'none'})"
        )
    if cell.app not in SYSTEM_GOPATH_FALLBACK_APPS:
        return str(info.gopath), info.stamp
    paths = list(dict.fromkeys([info.gopath, SYSTEM_GOPATH]))
    gopath = os.pathsep.join(str(p) for p in paths)
    return gopath, f"GOPATH={gopath}\n{info.stamp}\n{_system_dev_stamp()}"


def cell_key(cell: Cell) -> str:
    """Content hash deciding whether a cached binary is still valid."""
    flags, cgo = VARIANT_FLAGS[cell.variant]
    _, stamp = _gopath_for(cell)
    h = hashlib.sha256()

    def put(s: str | bytes) -> None:
        b = s.encode() if isinstance(s, str) else s
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)

    put(f"recipe {RECIPE_VERSION}")
    put(cell.app)
    for src in _sources(cell.app):
        put(src.name)
        put(src.read_bytes())
    put(go_version_string(cell.go))
    put(" ".join((*COMMON_BUILD_ARGS, *flags)))
    put(f"CGO_ENABLED={int(cgo)}")
    put(stamp)
    return h.hexdigest()[:32]


def output_path(cell: Cell) -> Path:
    """Where build(cell) puts (or has put) the binary."""
    return cache_dir() / "testapps" / cell_key(cell) / cell.app


def is_built(cell: Cell) -> bool:
    return output_path(cell).is_file()


def build(cell: Cell) -> Path:
    """Build cell (unless already built) and return the binary's path.

    Safe to call concurrently from several threads or processes: builds of one key
    are serialised by a lock file, and the binary appears by an atomic rename.
    """
    out = output_path(cell)
    if out.is_file():
        return out
    if not _sources(cell.app):
        raise BuildError(f"{cell}: no Go sources in {TESTAPPS_DIR / cell.app}")
    flags, cgo = VARIANT_FLAGS[cell.variant]
    if cgo and not (os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")):
        raise BuildError(f"{cell}: variant {cell.variant} links externally and needs gcc")
    gopath, _ = _gopath_for(cell)
    out.parent.mkdir(parents=True, exist_ok=True)
    gocache = cache_dir() / "gocache" / f"go{cell.go}"
    gocache.mkdir(parents=True, exist_ok=True)

    with open(out.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.is_file():  # somebody else built it while we waited
            return out
        for stale in out.parent.glob(f".{cell.app}.tmp*"):  # left by a crashed build
            stale.unlink(missing_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{cell.app}.tmp", dir=out.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        env = _base_env()
        env.update(GOPATH=str(gopath), GOCACHE=str(gocache), CGO_ENABLED="1" if cgo else "0")
        cmd = [str(go_binary(cell.go)), "build", *COMMON_BUILD_ARGS, *flags, "-o", str(tmp), "."]
        try:
            res = subprocess.run(
                cmd,
                cwd=TESTAPPS_DIR / cell.app,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            if res.returncode != 0:
                raise BuildError(
                    f"building {cell} failed (exit {res.returncode})\n"
                    f"  command: {' '.join(cmd)}\n"
                    f"  GOPATH={gopath} CGO_ENABLED={int(cgo)} in {TESTAPPS_DIR / cell.app}\n"
                    f"{res.stdout.rstrip()}"
                )
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise BuildError(f"building {cell}: go build produced no binary\n{res.stdout}")
            tmp.chmod(0o755)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return out


def build_many(cells: Iterable[Cell], jobs: int = 2) -> dict[Cell, Path | BuildError]:
    """Build cells in parallel; returns each cell's path or its BuildError."""
    return dict(iter_build(cells, jobs))


def _compile_groups(cell: Cell) -> tuple[tuple[object, ...], ...]:
    """What a build compiles that other builds can reuse from the Go build cache:
    the standard library per (Go, PIE, cgo), grpc per (Go, grpc, PIE, cgo), for the
    SYSTEM_GOPATH_FALLBACK_APPS the system GOPATH's libraries per (Go, grpc, PIE, cgo) and
    for the SYSTEM_LIB_APPS theirs per (Go, PIE, cgo). Stripping only changes the link
    step."""
    _, cgo = VARIANT_FLAGS[cell.variant]
    std = ("std", cell.go, cell.pie, cgo)
    if cell.grpc is None:
        if cell.app in SYSTEM_LIB_APPS:
            return (std, ("system-libs", cell.go, SYSTEM_LIB_APPS[cell.app], cell.pie, cgo))
        return (std,)
    grpc = ("grpc", cell.go, cell.grpc, cell.pie, cgo)
    if cell.app in SYSTEM_GOPATH_FALLBACK_APPS:
        return (std, grpc, ("system-libs", cell.go, cell.grpc, cell.pie, cgo))
    return (std, grpc)


def iter_build(cells: Iterable[Cell], jobs: int = 2) -> Iterator[tuple[Cell, Path | BuildError]]:
    """Build cells in parallel, yielding (cell, path or BuildError) in input order.

    Two `go build`s that need the same packages compiled would both compile them
    (the build cache does not share work in flight), so a cell only starts once
    every compile group it needs is warm or not being compiled by a running build.
    """
    cells = list(dict.fromkeys(cells))
    results: dict[Cell, Path | BuildError] = {}
    pending = []
    for c in cells:
        try:
            if is_built(c):
                results[c] = output_path(c)
                continue
        except BuildError as e:
            results[c] = e
            continue
        pending.append(c)

    def run(c: Cell) -> Path | BuildError:
        try:
            return build(c)
        except BuildError as e:
            return e

    warm: set[tuple[object, ...]] = set()
    busy: set[tuple[object, ...]] = set()
    next_out = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        running: dict[concurrent.futures.Future[Path | BuildError], Cell] = {}
        while pending or running:
            for c in list(pending):
                if len(running) >= max(1, jobs):
                    break
                groups = [g for g in _compile_groups(c) if g not in warm]
                if any(g in busy for g in groups):
                    continue
                busy.update(groups)
                pending.remove(c)
                running[pool.submit(run, c)] = c
            done, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for fut in done:
                c = running.pop(fut)
                results[c] = fut.result()
                for g in _compile_groups(c):
                    busy.discard(g)
                    warm.add(g)
            while next_out < len(cells) and cells[next_out] in results:
                yield cells[next_out], results[cells[next_out]]
                next_out += 1
    while next_out < len(cells):
        yield cells[next_out], results[cells[next_out]]
        next_out += 1


# ---------------------------------------------------------------------------
# CLI


def _select(args: argparse.Namespace) -> list[Cell]:
    if args.cells:
        return [Cell.parse(n) for n in args.cells]
    return full_cells() if args.full else default_cells()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python3 -m testapps.matrix", description="Build the Go test program matrix."
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in (("build", "build cells, print '<cell> <path>'"), ("list", "list cells")):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--full", action="store_true", help="the full matrix, not the default set")
        sp.add_argument("cells", nargs="*", metavar="CELL", help="cell names (default: a set)")
        if name == "build":
            sp.add_argument("--jobs", "-j", type=int, default=2, help="parallel builds (2)")
            sp.add_argument(
                "--no-prepare",
                action="store_true",
                help="do not run scripts/grpc_gopaths.sh first (it runs when root and"
                " the apt lists changed since it last ran)",
            )
    args = p.parse_args(argv)

    prepare = args.cmd == "build" and not args.no_prepare and os.geteuid() == 0
    if prepare and not gopaths_current():
        try:
            prepare_gopaths()
        except BuildError as e:
            print(f"warning: {e}\ncontinuing with the GOPATHs there are", file=sys.stderr)
    cells = _select(args)

    if args.cmd == "list":
        for c in cells:
            print(c.name)
        return 0

    t0 = time.monotonic()
    failed = 0
    for cell, res in iter_build(cells, jobs=args.jobs):
        if isinstance(res, BuildError):
            failed += 1
            print(f"{cell.name} FAILED", flush=True)
            print(res, file=sys.stderr)
        else:
            print(f"{cell.name} {res}", flush=True)
    print(
        f"{len(cells) - failed}/{len(cells)} built in {time.monotonic() - t0:.1f}s",
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
