"""Bad input: one line on stderr, exit code 2, never a traceback or a hang."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FULL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gotrace.cli.main import main
from gotrace.gobin.binary import GoBinary
from testapps import matrix

SMALL_BINARY = matrix.Cell("httpserver", matrix.go_versions()[0], "stripped")


def run_inspect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gotrace", "inspect", *args],
                          capture_output=True, text=True, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess[str], expect: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gotrace: ")
    assert expect in lines[0]


@pytest.fixture(scope="module")
def go_binary() -> Path:
    return matrix.build(SMALL_BINARY)


def test_missing_path(tmp_path):
    assert_one_line_error(run_inspect(str(tmp_path / "nope")), "no such file")


def test_directory(tmp_path):
    assert_one_line_error(run_inspect(str(tmp_path)), "is a directory")


def test_not_elf(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    assert_one_line_error(run_inspect(str(path)), "not an ELF executable")


def test_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.touch()
    assert_one_line_error(run_inspect(str(path)), "empty file")


def test_non_go_elf():
    assert_one_line_error(run_inspect("/bin/ls"), "not a Go binary")


@pytest.mark.parametrize("keep", [100, 5000, 1_000_000])
def test_truncated_go_binary(tmp_path, go_binary, keep):
    path = tmp_path / "truncated"
    path.write_bytes(go_binary.read_bytes()[:keep])
    result = run_inspect(str(path))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def _patched_copy(tmp_path: Path, source: Path, old: bytes, new: bytes, start: int = 0) -> Path:
    data = bytearray(source.read_bytes())
    pos = data.find(old, start)
    assert pos >= 0
    data[pos: pos + len(new)] = new
    path = tmp_path / "patched"
    path.write_bytes(bytes(data))
    return path


def test_old_go_pclntab_header(tmp_path, go_binary):
    """A Go 1.16/1.17 function-table header (magic 0xfffffffa)."""
    with GoBinary(go_binary) as gb:
        magic = struct.pack("<I", gb.pclntab.magic)
    path = _patched_copy(tmp_path, go_binary, magic + b"\x00\x00\x01\x08",
                         struct.pack("<I", 0xFFFFFFFA))
    assert_one_line_error(run_inspect(str(path)), "Go 1.18 or later")


def test_old_go_version_in_build_info(tmp_path, go_binary):
    with GoBinary(go_binary) as gb:
        version = gb.buildinfo.go_version.encode()
        start = gb.image.sections[".go.buildinfo"].offset
    old = b"go1.16." + b"1" * (len(version) - 7)
    path = _patched_copy(tmp_path, go_binary, version, old, start)
    assert_one_line_error(run_inspect(str(path)), "Go 1.18 or later")


def test_vanished_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert_one_line_error(run_inspect("--pid", str(proc.pid)), f"no process with PID {proc.pid}")


def _interesting_regions(path: Path) -> list[tuple[int, int]]:
    """File ranges whose corruption reaches the parsers: headers and Go tables."""
    with GoBinary(path) as gb:
        image = gb.image
        md = gb.moduledata
        regions = [(0, 64 + 56 * 12)]
        for name in (".gopclntab", ".go.buildinfo", ".noptrdata", ".typelink", ".shstrtab"):
            sec = image.sections.get(name)
            if sec is not None:
                regions.append((sec.offset, min(sec.size, 65536)))
        regions.append((image.file_offset(md.vaddr), 512))
        regions.append((image.file_offset(md.types), min(md.etypes - md.types, 1 << 20)))
        shoff = struct.unpack_from("<Q", image.data, 40)[0]
        regions.append((shoff, 64 * 40))
    return regions


# 150 corrupted binaries by default, 300 with GOTRACE_MATRIX=full (each run draws new ones).
@settings(max_examples=300 if FULL else 150, deadline=5000,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_corrupted_binary_never_crashes(tmp_path_factory, go_binary, data):
    original = go_binary.read_bytes()
    regions = _interesting_regions(go_binary)
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 16), label="mutations")):
        start, size = data.draw(st.sampled_from(regions), label="region")
        pos = start + data.draw(st.integers(0, max(0, size - 8)), label="offset")
        chunk = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
        mutated[pos: pos + len(chunk)] = chunk
    path = tmp_path_factory.mktemp("fuzz") / "mutated"
    path.write_bytes(bytes(mutated))
    code = main(["inspect", "--json", str(path)])
    assert code in (0, 2)
    shutil.rmtree(path.parent)
