"""How gotrace's uprobes are attached (gotrace/kernel/program.py, gotrace/kernel/uprobe_multi.py):
uprobe_multi links on this kernel, perf-event uprobes through BCC where it has none, and
perf events for a program whose link the kernel refuses. Real probes on real test servers:
the hits per request are the same whichever way, and detaching one process leaves another
process of the same binary traced. The file offsets given to links are BCC's for the same
addresses, on every kind of build.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gotrace.gobin.binary import GoBinary
from gotrace.kernel import uprobe_multi
from gotrace.kernel.plan import plan_probes
from gotrace.kernel.program import Program, compile_program, file_offsets
from gotrace.pipeline.sampling import SamplerConfig
from gotrace.resolve.layout import Layout, resolve
from testapps import matrix

# BCC warns about str paths given to attach_uprobe (gotrace/kernel/program.py passes str).
pytestmark = pytest.mark.filterwarnings("ignore:not a bytes object:DeprecationWarning")

MACROS = SamplerConfig("always_on").kernel_macros()
REQUESTS = 5


def _kernel() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def _offset_cells() -> list[matrix.Cell]:
    gos = matrix.go_versions()
    cells = [matrix.Cell("httpserver", gos[0], "plain"),
             matrix.Cell("httpserver", gos[0], "pie-extlink"),
             matrix.Cell("httpserver", gos[-1], "extlink"),
             matrix.Cell("httpserver", gos[-1], "pie-stripped"),
             matrix.Cell("httpserver", gos[-1], "pie-extlink-stripped")]
    sql_gos = matrix.db_client_go("sqlclient", gos)  # cgo: go-sqlite3
    if sql_gos:
        cells.append(matrix.Cell("sqlclient", sql_gos[-1], "pie-extlink-stripped"))
    return cells


@pytest.mark.parametrize("build_cell", _offset_cells(), ids=str)
def test_file_offsets_are_bccs(build_cell: matrix.Cell):
    """Every probed address converts to the file offset BCC computes for it (the offset a
    perf-event uprobe is attached at): PIE or not, internal or external link, stripped."""
    from bcc import BPF

    path = str(matrix.build(build_cell))
    with GoBinary(path) as gb:
        layout = resolve(gb)
    plan = plan_probes(layout, MACROS, opt_in=("database",))
    addrs = sorted({addr for probe in plan.probes for a in probe.attachments
                    if (fn := layout.functions.get(a.function))
                    for addr in ([fn.entry_probe] if a.where == "entry" else fn.ret_addresses)})
    assert len(addrs) >= 10
    ours = file_offsets(path, addrs)
    bccs = {addr: BPF._check_path_symbol(path.encode(), b"", addr, -1)[1] for addr in addrs}
    assert ours == bccs


def test_this_kernel_has_links():
    """The machines gotrace is tested on run 6.18: uprobe_multi with the process-wide PID
    filter (6.10 and later). On an older kernel this fails, naming it: the links' tests below
    need them (the perf-event path is tested on every kernel)."""
    assert _kernel() >= (6, 10), f"kernel {os.uname().release}: no uprobe_multi PID filter"
    assert uprobe_multi.supported()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Layout]:
    """A copy of a test server of our own: the kernel keeps uprobes per file, and other
    tools' uprobes on the shared build (other test runs' perf events) would refuse links."""
    built = matrix.build(matrix.Cell("httpserver", matrix.go_versions()[-1], "stripped"))
    path = str(tmp_path_factory.mktemp("uprobe_multi") / built.name)
    shutil.copy2(built, path)
    with GoBinary(path) as gb:
        return path, resolve(gb)


@contextmanager
def _running(path: str, count: int) -> Iterator[list[tuple[int, str]]]:
    """count processes of the server: (pid, address)."""
    procs = [subprocess.Popen([path, "-addr", "127.0.0.1:0"], stdout=subprocess.PIPE,
                              text=True) for _ in range(count)]
    try:
        found = []
        for proc in procs:
            line = proc.stdout.readline()
            assert line.startswith("READY "), line
            found.append((proc.pid, line.split()[1]))
        yield found
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


def _requests(addr: str) -> None:
    for _ in range(REQUESTS):
        with urllib.request.urlopen(f"http://{addr}/hello", timeout=10) as resp:
            resp.read()


def _server_hits(program: Program) -> tuple[int, int]:
    hits = program.hits()
    return hits["http_server_entry"], hits["http_server_end"]


def _hits_of(program: Program, addr: str) -> tuple[int, int]:
    before = _server_hits(program)
    _requests(addr)
    after = _server_hits(program)
    return after[0] - before[0], after[1] - before[1]


@pytest.mark.parametrize("multi", [True, False], ids=["links", "perf-events"])
def test_detach_one_process_keeps_the_other(server, multi: bool):
    """Two processes of one binary, each attached with its PID filter: each request hits
    the server's two probes once, in its own process only; detaching one leaves the
    other's probes working. With links (the default here) and with perf events."""
    path, layout = server
    assert not multi or uprobe_multi.supported(), "no uprobe_multi links on this kernel"
    program = compile_program(plan_probes(layout, MACROS), multi=multi)
    try:
        with _running(path, 2) as [(pid_a, addr_a), (pid_b, addr_b)]:
            exe_a, exe_b = f"/proc/{pid_a}/exe", f"/proc/{pid_b}/exe"
            count = program.attach(exe_a, layout, pid_a)
            assert program.attach(exe_b, layout, pid_b) == count
            if multi:  # a link per program and process
                sites = len(program._sites(exe_a, layout))
                links = {key: len(fds) for key, fds in program._links.items()}
                assert links == {(exe_a, pid_a): sites, (exe_b, pid_b): sites}
                assert not program._uprobes and not program._perf_copies
            else:
                assert not program._links and len(program._uprobes) == 2 * count
            assert _hits_of(program, addr_a) == (REQUESTS, REQUESTS)
            assert _hits_of(program, addr_b) == (REQUESTS, REQUESTS)
            program.detach(exe_a, pid_a)
            assert _hits_of(program, addr_a) == (0, 0)
            assert _hits_of(program, addr_b) == (REQUESTS, REQUESTS)
            program.detach(exe_b, pid_b)
            assert _hits_of(program, addr_b) == (0, 0)
            assert not program._links and not program._uprobes
    finally:
        program.close()


# perf_event_open(2) for a uprobe of the "uprobe" PMU: config1 the path, config2 the
# offset, bits 32-63 of config the USDT semaphore's offset (PERF_UPROBE_REF_CTR_OFFSET_SHIFT).
class _PerfEventAttr(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("size", ctypes.c_uint32),
                ("config", ctypes.c_uint64), ("sample_period", ctypes.c_uint64),
                ("sample_type", ctypes.c_uint64), ("read_format", ctypes.c_uint64),
                ("flags", ctypes.c_uint64), ("wakeup_events", ctypes.c_uint32),
                ("bp_type", ctypes.c_uint32), ("config1", ctypes.c_uint64),
                ("config2", ctypes.c_uint64), ("rest", ctypes.c_uint8 * 64)]


@contextmanager
def _semaphore_uprobe(path: str, offset: int, pid: int) -> Iterator[None]:
    """Another tool's uprobe at offset with a USDT semaphore offset, as BCC 0.26's Python
    module sets by accident: the kernel then refuses links at that offset (EINVAL)."""
    pmu = int(Path("/sys/bus/event_source/devices/uprobe/type").read_text())
    c_path = ctypes.create_string_buffer(path.encode())
    attr = _PerfEventAttr(type=pmu, size=ctypes.sizeof(_PerfEventAttr),
                          config=6 << 32, config1=ctypes.addressof(c_path), config2=offset)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(298, ctypes.byref(attr), pid, -1, -1, 8)  # perf_event_open, CLOEXEC
    assert fd >= 0, os.strerror(ctypes.get_errno())
    try:
        yield
    finally:
        os.close(fd)


def test_refused_link_falls_back_to_perf_events(server):
    """A program whose link the kernel refuses gets perf-event uprobes from a copy of it
    loaded the old way; every other program keeps its link, hits and run-time statistics
    count both, and detach and close undo both."""
    path, layout = server
    assert uprobe_multi.supported(), "no uprobe_multi links on this kernel"
    program = compile_program(plan_probes(layout, MACROS))
    try:
        with _running(path, 1) as [(pid, addr)]:
            exe = f"/proc/{pid}/exe"
            entry = layout.functions["net/http.serverHandler.ServeHTTP"].entry_probe
            with _semaphore_uprobe(exe, file_offsets(exe, [entry])[entry], pid):
                program.attach(exe, layout, pid)
            assert list(program._perf_copies) == [b"http_server_entry"]
            assert len(program._uprobes) == 1
            assert len(program._links[(exe, pid)]) == len(program._sites(exe, layout)) - 1
            assert _hits_of(program, addr) == (REQUESTS, REQUESTS)
            assert "http_server_entry" in program.run_ns()
            program.detach(exe, pid)
            assert _hits_of(program, addr) == (0, 0)
            assert not program._links and not program._uprobes
    finally:
        program.close()
