"""The runtime's names for why a goroutine waits, read from the binary.

g.waitreason holds a runtime.waitReason: a small integer whose meaning changes between Go
releases (new reasons are inserted in the middle of the list). The runtime keeps their names
in runtime.waitReasonStrings, a [...]string in the data section. Stripped binaries have no
symbol for it, so it is found by its content: entry 1 is "GC assist marking" and entry 2
"IO wait" in every Go release from 1.19 to 1.26, entry 0 the empty string.
"""

from __future__ import annotations

from gotrace.errors import CorruptBinaryError
from gotrace.gobin.elffile import ElfImage, Section
from gotrace.gobin.structs import STRING

ANCHOR = b"GC assist marking"  # waitReasonStrings[1]
SECOND = b"IO wait"  # waitReasonStrings[2]
MAX_REASONS = 256  # waitReason is a uint8
MAX_NAME = 64


def wait_reason_names(image: ElfImage) -> list[str]:
    """waitReasonStrings as a list (index = the waitReason value); [] when not found."""
    rodata = image.section(".rodata")
    if rodata is None:
        return []
    for text_addr in _occurrences(image, rodata, ANCHOR):
        # Go string headers {ptr, len} = {text_addr, len(ANCHOR)} in writable data.
        for entry in image.pointers_to(text_addr):
            if image.u64(entry + STRING.at.len) != len(ANCHOR):
                continue
            names = _read_array(image, rodata, entry - STRING.size)
            if names[:3] == ["", ANCHOR.decode(), SECOND.decode()]:
                return names
    return []


def _occurrences(image: ElfImage, sec: Section, needle: bytes) -> list[int]:
    """Addresses of needle in a section (the strings are in .rodata: searching only there is
    several times quicker than searching every read-only segment)."""
    raw = image.section_bytes(sec)
    found, at = [], raw.find(needle)
    while at >= 0:
        found.append(sec.addr + at)
        at = raw.find(needle, at + 1)
    return found


def _read_array(image: ElfImage, rodata: Section, start: int) -> list[str]:
    """Strings from start on, while the headers look like waitReasonStrings' entries."""
    names: list[str] = []
    for index in range(MAX_REASONS):
        try:
            ptr, length = image.words(start + STRING.size * index, 2)
        except CorruptBinaryError:  # ran off the loaded image
            break
        if index == 0 and length == 0:
            names.append("")
            continue
        inside = rodata.addr <= ptr and ptr + length <= rodata.addr + rodata.size
        if not (0 < length <= MAX_NAME and inside):
            break
        names.append(image.read(ptr, length).decode("utf-8", "replace"))
    return names
