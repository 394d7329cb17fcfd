#!/bin/bash
# Prepare extra GOPATHs holding newer grpc-go releases from Debian, next to the
# system GOPATH (/usr/share/gocode, grpc 1.33 from bookworm).
#
#   grpc from trixie            -> ${GOTRACE_CACHE:-/var/cache/gotrace}/gopath/grpc-1.64
#   grpc from trixie-backports  -> ${GOTRACE_CACHE:-/var/cache/gotrace}/gopath/grpc-1.79
#
# (The directory name is <major>.<minor> of the grpc version the suite offers.)
# Each directory is the root of a `dpkg -x` extraction of a handful of -dev
# packages; the GOPATH itself is <dir>/usr/share/gocode. The file <dir>/STAMP lists
# the exact package versions and is written last, so a directory with a STAMP is
# complete. Re-running is cheap: when the STAMP matches what the apt lists offer,
# nothing is downloaded. Run as root (apt-get download + dpkg -x need no root, but
# the default cache dir is under /var/cache).
#
# Output on success: one summary line per GOPATH. Anything else goes to stderr,
# and only on failure.
set -euo pipefail

CACHE="${GOTRACE_CACHE:-/var/cache/gotrace}"
GOPATHS="$CACHE/gopath"

# The packages a GOPATH-mode build of grpc core + testapps/grpc{server,client}
# needs. grpc-dev itself Depends on far more (xds, envoy, opentelemetry, cel, ...),
# but only these are imported by the core `google.golang.org/grpc` package tree our
# programs link (checked by building with exactly this set).
PKGS=(
    golang-google-grpc-dev
    golang-google-protobuf-dev
    golang-github-golang-protobuf-1-5-dev
    golang-golang-x-net-dev
    golang-golang-x-sys-dev
    golang-golang-x-text-dev
    golang-google-genproto-dev
)
# Packages that must come from trixie even for the trixie-backports GOPATH:
# trixie-backports has no protobuf packages and bookworm's are too old.
TRIXIE_ONLY=" golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev "

die() { echo "grpc_gopaths.sh: $*" >&2; exit 1; }

# apt-cache rebuilds its cache on every call on this machine (docker-clean sets
# Dir::Cache::pkgcache ""), ~2 s each: ask once for all packages and parse that.
MADISON=""
load_madison() { MADISON=$(apt-cache madison "${PKGS[@]}" 2>/dev/null || true); }

# version_in_suite PKG SUITE -> prints the version SUITE offers, or nothing.
version_in_suite() {
    awk -F'|' -v p="$1" -v s=" $2/" '
        { gsub(/ /, "", $1) }
        $1 == p && index($3, s) { gsub(/ /, "", $2); print $2; exit }' <<<"$MADISON"
}

# pick_suite PKG MAINSUITE -> suite to take PKG from (MAINSUITE, else trixie).
pick_suite() {
    local pkg=$1 main=$2
    if [[ "$TRIXIE_ONLY" == *" $pkg "* ]]; then
        echo trixie
    elif [[ -n "$(version_in_suite "$pkg" "$main")" ]]; then
        echo "$main"
    else
        echo trixie
    fi
}

updated=0
# Make sure apt knows every package of the set in SUITE (or its fallback); run
# `apt-get update` once, only if something is missing.
ensure_lists() {
    local main=$1 pkg
    for pkg in "${PKGS[@]}"; do
        if [[ -z "$(version_in_suite "$pkg" "$(pick_suite "$pkg" "$main")")" ]]; then
            if [[ $updated == 0 ]]; then
                updated=1
                apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed"
                load_madison
                ensure_lists "$main"
                return
            fi
            die "package $pkg not found in $main (nor trixie); are the apt sources set up?"
        fi
    done
}

# prepare MAINSUITE: create/refresh the GOPATH for grpc as found in MAINSUITE.
prepare() {
    local main=$1 pkg suite ver grpcver dir tmp want
    ensure_lists "$main"
    want=""
    for pkg in "${PKGS[@]}"; do
        suite=$(pick_suite "$pkg" "$main")
        ver=$(version_in_suite "$pkg" "$suite")
        want+="$pkg=$ver suite=$suite"$'\n'
    done
    want+="suite=$main"$'\n'
    grpcver=$(version_in_suite golang-google-grpc-dev "$main")
    grpcver=${grpcver#*:}                   # strip an epoch
    local short
    short=$(echo "$grpcver" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
    dir="$GOPATHS/grpc-$short"

    if [[ -f "$dir/STAMP" ]] && [[ "$(grep -v '^grpc_version=' "$dir/STAMP")" == "$(printf '%s' "$want")" ]]; then
        touch "$dir/STAMP"  # checked against this apt state (testapps/matrix.py looks)
        echo "grpc $(sed -n 's/^grpc_version=//p' "$dir/STAMP") ($main): GOPATH=$dir/usr/share/gocode (up to date)"
        return
    fi

    mkdir -p "$GOPATHS"
    tmp=$(mktemp -d "$GOPATHS/.grpc-$short.tmp.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    mkdir "$tmp/debs" "$tmp/root"
    local specs=()
    for pkg in "${PKGS[@]}"; do
        specs+=("$pkg/$(pick_suite "$pkg" "$main")")
    done
    local log
    if ! log=$(cd "$tmp/debs" && apt-get -o APT::Sandbox::User=root download "${specs[@]}" 2>&1); then
        echo "$log" >&2
        die "apt-get download failed for $main"
    fi
    local deb
    for deb in "$tmp"/debs/*.deb; do
        dpkg -x "$deb" "$tmp/root"
    done
    # Absolute symlinks would point into the system GOPATH (other versions):
    # re-point them, relatively, inside this extraction.
    local link target
    while IFS= read -r -d '' link; do
        target=$(readlink "$link")
        ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$tmp/root$target")" "$link"
    done < <(find "$tmp/root" -type l -lname '/*' -print0)
    [[ -f "$tmp/root/usr/share/gocode/src/google.golang.org/grpc/version.go" ]] \
        || die "grpc sources missing after extracting $main packages"
    rm -rf "$tmp/debs"
    # The recorded version is the one actually extracted (the apt lists could in
    # theory change between madison and download).
    local real
    real=$(sed -nE 's/^const Version = "([^"]+)".*/\1/p' \
        "$tmp/root/usr/share/gocode/src/google.golang.org/grpc/version.go")
    {
        printf '%s' "$want"
        echo "grpc_version=$real"
    } >"$tmp/root/STAMP"
    # Swap in: move the old tree away, rename the new one in.
    local what=created
    if [[ -e "$dir" ]]; then
        mv -T "$dir" "$tmp/old"
        what=replaced
    fi
    mv -T "$tmp/root" "$dir"
    rm -rf "$tmp"
    trap - EXIT
    echo "grpc $real ($main): GOPATH=$dir/usr/share/gocode ($what)"
}

[[ $(id -u) == 0 ]] || die "run as root"
command -v apt-get >/dev/null || die "apt-get not found"

mkdir -p "$GOPATHS"
# Serialise concurrent runs.
exec 9>"$GOPATHS/.lock"
flock 9
# Leftovers of an interrupted run (we hold the lock, so nobody is using them).
rm -rf "$GOPATHS"/.grpc-*.tmp.*

load_madison
prepare trixie
prepare trixie-backports
