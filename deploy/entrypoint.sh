#!/bin/sh
# The container's entry point: put kernel headers where BCC looks for them, make sure
# tracefs is mounted, then run gotrace with the container's arguments.
#
# Headers: /lib/modules/RELEASE/build (and source, for Debian's split header packages) of
# the container itself, never the node's, point at the node's headers when the node has
# them (its /lib/modules and /usr/src mounted read-only at /host/lib/modules and
# /host/usr/src; GOTRACE_HOST_ROOT moves /host), else at the Debian bookworm headers in the
# image.
set -eu

host=${GOTRACE_HOST_ROOT:-/host}
release=$(uname -r)
modules=/lib/modules/$release
node_modules=$host/lib/modules/$release

# node_headers NAME: the node's /lib/modules/RELEASE/NAME as seen from here, if it holds
# headers. Its symbolic links name paths on the node, where / is our $host.
node_headers() {
    path=$node_modules/$1
    if [ -L "$path" ]; then
        target=$(readlink "$path")
        case $target in
            /*) path=$host$target ;;
            *) path=$node_modules/$target ;;
        esac
    fi
    if [ -d "$path/include" ]; then
        echo "$path"
    fi
}

mkdir -p "$modules"
build=$(node_headers build)
if [ -n "$build" ]; then
    ln -sfn "$build" "$modules/build"
    source=$(node_headers source)
    if [ -n "$source" ]; then
        ln -sfn "$source" "$modules/source"
    else
        rm -f "$modules/source"
    fi
else
    for dir in /usr/src/linux-headers-*-amd64; do ln -sfn "$dir" "$modules/build"; done
    for dir in /usr/src/linux-headers-*-common; do ln -sfn "$dir" "$modules/source"; done
fi

if [ ! -e /sys/kernel/tracing/uprobe_events ]; then
    mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
fi

exec gotrace "$@"
