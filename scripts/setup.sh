#!/usr/bin/env bash
# Sets up everything gotrace needs on a Debian bookworm machine, as root. Idempotent: a second
# run changes nothing and takes seconds.
#
#   - Debian suites bookworm-backports, trixie and trixie-backports, pinned below the base system
#     so that only what we ask for by name comes from them;
#   - BCC, kernel headers (with a fallback when none exist for the running kernel), binutils;
#   - bpftool: tests/test_btf.py checks gotrace's reading of the kernel's BTF against it;
#   - Prometheus: tests/test_metrics.py runs /usr/bin/prometheus itself (not the service);
#   - real Go services as Debian ships them, for tests/test_debian_programs.py (and
#     test_debian_cross_host.py): prometheus, etcd and etcdctl, alertmanager, node-exporter
#     (their services are left stopped);
#   - Chromium: tests/test_report.py renders `gotrace report` pages in it, headless;
#   - Go 1.19 and 1.21-1.26 side by side under /usr/lib/go-1.NN, grpc-go 1.33 (GOPATH) and the
#     GOPATHs for grpc-go 1.64 and 1.79 (scripts/grpc_gopaths.sh);
#   - the connection-wrapping Go libraries testapps/wrapped imports (cmux, go-conntrack,
#     go-proxyproto, x/net) from bookworm, in the system GOPATH (its builds against every
#     grpc take them from there, testapps/matrix.py);
#   - the HTTP routers testapps/routers serves (gin, chi, gorilla/mux, httprouter, echo) from
#     bookworm, in the system GOPATH, with the libraries they need;
#   - real Go database clients as Debian ships them, for tests/test_debian_databases.py:
#     prometheus-postgres-exporter (lib/pq) and prometheus-mysqld-exporter
#     (go-sql-driver/mysql) (their services are left stopped and disabled);
#   - database servers for the database client tests (tests/databases.py runs private instances
#     of them in temporary directories; their services are left stopped and disabled):
#     PostgreSQL 15, MariaDB, Redis;
#   - the database client libraries testapps/sqlclient, pgxclient and redisclient import
#     (lib/pq, pgx v4, go-sql-driver/mysql, go-sqlite3 with libsqlite3-dev, gopkg.in/redis.v5)
#     from bookworm, in the system GOPATH;
#   - tracefs mounted;
#   - the project's Python environment in .venv, with Debian's bcc module importable from it;
#   - gotrace's compiled hot paths (gotrace/native, scripts/build_native.sh) for that Python.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
export DEBIAN_FRONTEND=noninteractive

say() { echo "setup: $*" >&2; }
die() { echo "setup: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages and mounts tracefs)"
command -v apt-get >/dev/null || die "this set-up needs a Debian machine (apt-get not found)"

# --- Debian suites -------------------------------------------------------------------------
debian_mirror() {
    # The URI the machine already uses for the Debian base suite, reused for the extra suites.
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && /bookworm( |$)/ {print u; exit}' \
            /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || die "cannot find the Debian bookworm source in /etc/apt"
    echo "$uri"
}

SOURCES=/etc/apt/sources.list.d/gotrace-extra.sources
PINS=/etc/apt/preferences.d/gotrace-pin
sources_changed=0
want_sources="Types: deb
URIs: $(debian_mirror)
Suites: bookworm-backports trixie trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
if [ "$(cat "$SOURCES" 2>/dev/null)" != "$want_sources" ]; then
    echo "$want_sources" >"$SOURCES"
    sources_changed=1
fi
want_pins=""
for suite in bookworm-backports trixie trixie-backports; do
    want_pins+="Package: *
Pin: release n=$suite
Pin-Priority: 50

"
done
if [ "$(cat "$PINS" 2>/dev/null)" != "${want_pins%$'\n\n'}" ]; then
    printf '%s' "${want_pins%$'\n\n'}" >"$PINS"
    echo >>"$PINS"
    sources_changed=1
fi

# --- Debian packages -----------------------------------------------------------------------
# name[/suite]: the suite is where the package must come from; a name alone comes from bookworm
# with its security updates (the pins above keep the other suites below it). Naming
# "/bookworm" would exclude bookworm-security, whose newer versions of a package's siblings
# then break its installation (mariadb-server 10.11.18 against mariadb-common 10.11.19).
PACKAGES=(
    python3-bpfcc libbpfcc bpfcc-tools bpftool
    linux-headers-amd64
    binutils make gcc python3-venv python3-dev nftables iproute2 prometheus chromium curl openssl
    etcd-server etcd-client prometheus-alertmanager prometheus-node-exporter
    golang-1.19-go
    golang-1.21-go/bookworm-backports golang-1.22-go/bookworm-backports
    golang-1.23-go/bookworm-backports
    golang-1.24-go/trixie
    golang-1.25-go/trixie-backports golang-1.26-go/trixie-backports
    golang-google-grpc-dev
    golang-github-soheilhy-cmux-dev golang-github-mwitkow-go-conntrack-dev
    golang-github-pires-go-proxyproto-dev golang-golang-x-net-dev
    golang-github-gin-gonic-gin-dev golang-github-go-chi-chi-dev
    golang-github-gorilla-mux-dev golang-github-julienschmidt-httprouter-dev
    golang-github-labstack-echo-dev
    aptly docker-registry prometheus-pushgateway
    postgresql mariadb-server redis-server
    golang-github-lib-pq-dev golang-github-jackc-pgx-v4-dev
    golang-github-go-sql-driver-mysql-dev golang-github-mattn-go-sqlite3-dev
    libsqlite3-dev golang-gopkg-redis.v5-dev
    prometheus-postgres-exporter prometheus-mysqld-exporter
)
# Services the packages above start on installation (service=package): the tests run their own
# servers, so a service whose package this run installed is stopped and disabled.
SERVICES=(
    prometheus=prometheus etcd=etcd-server prometheus-alertmanager=prometheus-alertmanager
    prometheus-node-exporter=prometheus-node-exporter docker-registry=docker-registry
    prometheus-pushgateway=prometheus-pushgateway
    postgresql=postgresql mariadb=mariadb-server redis-server=redis-server
    prometheus-postgres-exporter=prometheus-postgres-exporter
    prometheus-mysqld-exporter=prometheus-mysqld-exporter
)
missing=()
for spec in "${PACKAGES[@]}"; do
    name=${spec%%/*}
    if ! dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$spec")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$sources_changed" = 1 ] || ! apt-cache policy golang-1.26-go 2>/dev/null | grep -q trixie-backports; then
        say "apt-get update"
        apt-get update -qq
    fi
    say "installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian's packages of the Go services and databases the tests run start services of their
    # own; the tests run their own servers. (Without systemd, through the init scripts.)
    installed=" ${missing[*]%%/*} "
    for pair in "${SERVICES[@]}"; do
        service=${pair%%=*}
        [[ "$installed" == *" ${pair#*=} "* ]] || continue
        if [ -d /run/systemd/system ]; then
            systemctl disable --now "$service" >/dev/null 2>&1 || true
        elif [ -x "/etc/init.d/$service" ]; then
            invoke-rc.d "$service" stop >/dev/null 2>&1 || true
            update-rc.d "$service" disable >/dev/null 2>&1 || true
        fi
    done
fi

# --- kernel headers ------------------------------------------------------------------------
# BCC compiles against /lib/modules/$(uname -r)/build. When Debian has no headers for the running
# kernel, bookworm's generic headers serve: our programs read no kernel structs.
KDIR=/lib/modules/$(uname -r)
if [ ! -e "$KDIR/build/include" ]; then
    build=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
    common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n 1)
    [ -n "$build" ] && [ -n "$common" ] || die "no kernel headers under /usr/src"
    mkdir -p "$KDIR"
    ln -sfn "$build" "$KDIR/build"
    ln -sfn "$common" "$KDIR/source"
    say "kernel headers: linked $build for $(uname -r)"
fi

# --- tracefs -------------------------------------------------------------------------------
if [ ! -e /sys/kernel/tracing/uprobe_events ]; then
    mount -t tracefs nodev /sys/kernel/tracing || die "cannot mount tracefs on /sys/kernel/tracing"
fi

# --- grpc-go GOPATHs -----------------------------------------------------------------------
bash "$ROOT/scripts/grpc_gopaths.sh"

# --- Python environment --------------------------------------------------------------------
PY=/usr/bin/python3
stamp="$VENV/.gotrace-installed"
want_stamp=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want_stamp" ]; then
    say "creating the Python environment in $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e "$ROOT[dev]"
    echo "$want_stamp" >"$stamp"
fi
# Debian's bcc module, and only it, on the environment's path.
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$VENV/debian-bcc"
ln -sfn /usr/lib/python3/dist-packages/bcc "$VENV/debian-bcc/bcc"
echo "$VENV/debian-bcc" >"$site/debian_bcc.pth"
"$VENV/bin/python" -c 'import bcc' || die "bcc is not importable from $VENV"

# --- compiled hot paths --------------------------------------------------------------------
bash "$ROOT/scripts/build_native.sh" "$VENV/bin/python"
say "ready"
