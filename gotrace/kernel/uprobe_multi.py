"""uprobe_multi links (Linux 6.6+): one BPF link attaches a program at many offsets of one
file, optionally for one process only, through the bpf(2) syscall.

Why: a uprobe attached as a perf event costs about 0.1 s to close on the kernels gotrace runs
on (each close waits for several RCU grace periods under global locks), and a session holds
dozens of them; a link with all of one program's offsets opens and closes in milliseconds.

The bpf_attr layouts below are the kernel's uapi (include/uapi/linux/bpf.h), checked against
the BTF of a 6.18 kernel (bpftool btf dump file /sys/kernel/btf/vmlinux): link_create's
uprobe_multi member begins at byte 16; prog_load's expected_attach_type is at byte 68.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import threading
from collections.abc import Collection, Sequence

_NR_BPF = 321  # x86-64, the only architecture gotrace reads binaries of
BPF_PROG_LOAD = 5
BPF_LINK_CREATE = 28
BPF_PROG_TYPE_KPROBE = 2
BPF_TRACE_UPROBE_MULTI = 48  # enum bpf_attach_type; also the programs' expected attach type


class _LinkCreateUprobeMulti(ctypes.Structure):
    """union bpf_attr's link_create, with its uprobe_multi member."""

    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("target_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("path", ctypes.c_uint64),  # const char *
        ("offsets", ctypes.c_uint64),  # const __u64 *: file offsets
        ("ref_ctr_offsets", ctypes.c_uint64),
        ("cookies", ctypes.c_uint64),
        ("cnt", ctypes.c_uint32),
        ("uprobe_flags", ctypes.c_uint32),  # BPF_F_UPROBE_MULTI_RETURN (1) or 0
        ("pid", ctypes.c_uint32),  # 0: every process
    ]


class _ProgLoad(ctypes.Structure):
    """union bpf_attr's prog_load, up to expected_attach_type."""

    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
    ]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(command: int, attr: ctypes.Structure) -> int:
    """bpf(command, attr): a new file descriptor, or OSError with the kernel's errno."""
    fd = _libc.syscall(ctypes.c_long(_NR_BPF), ctypes.c_int(command), ctypes.byref(attr),
                       ctypes.c_uint(ctypes.sizeof(attr)))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return fd


def attach(prog_fd: int, path: str, offsets: Sequence[int], pid: int) -> int:
    """A uprobe_multi link running the program (loaded with expected attach type
    BPF_TRACE_UPROBE_MULTI) at each file offset of the file at path, for the process pid
    only (its every thread), or for every process if pid is 0. Closing the fd detaches it."""
    c_path = ctypes.create_string_buffer(os.fsencode(path))
    c_offsets = (ctypes.c_uint64 * len(offsets))(*offsets)
    attr = _LinkCreateUprobeMulti(prog_fd=prog_fd, attach_type=BPF_TRACE_UPROBE_MULTI,
                                  path=ctypes.addressof(c_path),
                                  offsets=ctypes.addressof(c_offsets), cnt=len(offsets),
                                  pid=pid)
    return _bpf(BPF_LINK_CREATE, attr)


def close_links(fds: Collection[int]) -> None:
    """Detach links by closing their fds, all at once: each close waits for RCU grace
    periods (about 50 ms a link on a busy 6.18 machine), which concurrent closes share
    (18 links: 0.85 s one after the other, 0.07 s together)."""
    if len(fds) <= 1:
        for fd in fds:
            os.close(fd)
        return
    closers = [threading.Thread(target=os.close, args=(fd,), name="gotrace-unlink")
               for fd in fds]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join()


def _empty_program() -> int:
    """A loaded 'return 0' program that uprobe_multi links accept, for the probe below."""
    insns = (ctypes.c_uint8 * 16)(0xb7, 0, 0, 0, 0, 0, 0, 0,  # r0 = 0
                                  0x95, 0, 0, 0, 0, 0, 0, 0)  # exit
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = _ProgLoad(prog_type=BPF_PROG_TYPE_KPROBE, insn_cnt=2,
                     insns=ctypes.addressof(insns), license=ctypes.addressof(license_),
                     prog_name=b"gotrace_probe", expected_attach_type=BPF_TRACE_UPROBE_MULTI)
    return _bpf(BPF_PROG_LOAD, attr)


def _link_errno(prog_fd: int, path: str, pid: int) -> int:
    """The errno of creating a link that must fail (0 if it did not: then it is closed)."""
    try:
        os.close(attach(prog_fd, path, [0], pid))
    except OSError as e:
        return e.errno or 0
    return 0


@functools.cache
def supported() -> bool:
    """Whether this kernel attaches uprobe_multi links with a per-process PID filter; tried
    once per gotrace process, on links that cannot succeed (nothing is attached anywhere).

    A link on the directory '/' fails with EBADF where uprobe_multi exists (the path is
    looked up, then refused as not a regular file) and with EINVAL, EOPNOTSUPP or ENOSYS
    where it does not. The first kernels with uprobe_multi (6.6 and the releases until a
    2024 fix, and stable ones without it) filtered on the PID's thread, not its process,
    which would miss every other thread of a Go program: the fixed ones refuse a negative
    PID before looking at the path (EINVAL), the others get to the path (EBADF)."""
    try:
        prog_fd = _empty_program()
    except OSError:
        return False
    try:
        return (_link_errno(prog_fd, "/", 0) == errno.EBADF
                and _link_errno(prog_fd, "/", -1 & 0xFFFFFFFF) == errno.EINVAL)
    finally:
        os.close(prog_fd)
