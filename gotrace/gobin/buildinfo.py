"""Build information (.go.buildinfo): the Go version, main module, dependencies, settings.

The blob starts with a header (gobin/structs.py): the magic "\\xff Go buildinf:", pointer
size, flags. With flag 2 (Go 1.18+) the version and the module text follow it inline, each as
a uvarint length and bytes; before that the header held two pointers to Go string headers.
The module text is what `go version -m` prints: lines `path`, `mod`, `dep`, `=>` and `build`,
tab-separated, wrapped in 16-byte sentinels. GOPATH-mode builds carry a version but no
modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gotrace.errors import CorruptBinaryError
from gotrace.gobin.elffile import ElfImage
from gotrace.gobin.structs import BUILDINFO_HEADER, STRING
from gotrace.gobin.varint import uvarint

MAGIC = b"\xff Go buildinf:"
_FLAG_INLINE = 2
_SENTINEL_LEN = 16


@dataclass(frozen=True)
class Module:
    path: str
    version: str
    sum: str = ""
    replaced_by: Module | None = None


@dataclass
class BuildInfo:
    go_version: str  # e.g. "go1.22.12"
    path: str = ""
    main: Module | None = None
    deps: list[Module] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)

    def module_version(self, module_path: str) -> str | None:
        """The version of a module that is part of the build, after replacements."""
        for mod in [*([self.main] if self.main else []), *self.deps]:
            if mod.path == module_path:
                return (mod.replaced_by or mod).version
        return None


def _find_blob(image: ElfImage) -> int | None:
    sec = image.section(".go.buildinfo")
    if sec is not None:
        return sec.addr
    return next(image.find_aligned(MAGIC, 16, writable_only=True), None)


def _read_go_string(image: ElfImage, header_addr: int) -> str:
    ptr = image.pointer(header_addr + STRING.at.ptr)
    length = image.u64(header_addr + STRING.at.len)
    if not 0 <= length < 1 << 20:
        raise CorruptBinaryError(f"{image.path}: malformed build info string")
    return image.read(ptr, length).decode("utf-8", "replace")


def read_buildinfo(image: ElfImage) -> BuildInfo | None:
    """The build info, or None when the binary has none (not a Go binary, or Go < 1.13)."""
    addr = _find_blob(image)
    if addr is None:
        return None
    header = BUILDINFO_HEADER.unpack(image.read(addr, BUILDINFO_HEADER.size))
    if header.magic != MAGIC:
        raise CorruptBinaryError(f"{image.path}: malformed .go.buildinfo header")
    if header.flags & _FLAG_INLINE:
        seg = image.segment_of(addr)
        assert seg is not None
        start = addr + BUILDINFO_HEADER.size
        data = image.read(start, min(1 << 20, seg.vaddr + seg.filesz - start))
        length, pos = uvarint(data, 0)
        version = data[pos: pos + length].decode("utf-8", "replace")
        length, pos = uvarint(data, pos + length)
        modinfo = data[pos: pos + length].decode("utf-8", "replace")
        if pos + length > len(data):
            raise CorruptBinaryError(f"{image.path}: truncated build info")
    else:
        version = _read_go_string(image, addr + BUILDINFO_HEADER.at.version)
        modinfo = _read_go_string(image, addr + BUILDINFO_HEADER.at.mod)
    if not version.startswith("go"):
        raise CorruptBinaryError(f"{image.path}: malformed Go version {version[:40]!r}")
    info = BuildInfo(go_version=version)
    if len(modinfo) > 2 * _SENTINEL_LEN:
        _parse_modinfo(info, modinfo[_SENTINEL_LEN:-_SENTINEL_LEN])
    return info


def _parse_modinfo(info: BuildInfo, text: str) -> None:
    last: Module | None = None
    for line in text.splitlines():
        kind, _, rest = line.partition("\t")
        parts = rest.split("\t")
        if kind == "path":
            info.path = rest
        elif kind in ("mod", "dep") and len(parts) >= 2:
            last = Module(parts[0], parts[1], parts[2] if len(parts) > 2 else "")
            if kind == "mod":
                info.main = last
            else:
                info.deps.append(last)
        elif kind == "=>" and last is not None and len(parts) >= 2:
            replaced = Module(last.path, last.version, last.sum,
                              Module(parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
            if info.deps and info.deps[-1] is last:
                info.deps[-1] = replaced
            else:
                info.main = replaced
        elif kind == "build":
            key, _, value = rest.partition("=")
            info.settings[key] = value
