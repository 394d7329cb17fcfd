"""Struct field offsets from DWARF, for unstripped binaries.

Slower than type metadata (pyelftools parses every DIE of a unit), so it serves as the
fallback for types without a runtime descriptor and as the cross-check in tests. Go names
DWARF types with their full package path ("net/http.Request"; a dot in its last element
escaped, "gopkg.in/redis%2ev5.Client"); vendored copies keep the vendor prefix, which we accept
as the same type.
"""

from __future__ import annotations

import urllib.parse

from elftools.common.exceptions import ELFError

from gotrace.errors import CorruptBinaryError
from gotrace.gobin.elffile import ElfImage
from gotrace.gobin.typeinfo import package_matches, split_type_name


def _matches(dwarf_name: str, wanted: set[str]) -> str | None:
    # A package path's last element is escaped in DWARF names as in symbols: its dots
    # (gopkg.in/redis%2ev5.baseClient), and a few other bytes.
    if "%" in dwarf_name:
        dwarf_name = urllib.parse.unquote(dwarf_name)
    if dwarf_name in wanted:
        return dwarf_name
    if "/vendor/" in dwarf_name:
        try:
            pkg, name = split_type_name(dwarf_name)
        except ValueError:
            return None
        for w in wanted:
            wpkg, wname = split_type_name(w)
            if wname == name and package_matches(pkg, wpkg):
                return w
    return None


def dwarf_struct_fields(image: ElfImage, type_names: set[str]) -> dict[str, dict[str, int]]:
    """For each wanted struct type found in DWARF: field name -> byte offset."""
    if not image.has_dwarf or not type_names:
        return {}
    out: dict[str, dict[str, int]] = {}
    try:
        info = image.pyelftools.get_dwarf_info(relocate_dwarf_sections=False)
        for cu in info.iter_CUs():
            for die in cu.get_top_DIE().iter_children():
                if die.tag != "DW_TAG_structure_type":
                    continue
                name_attr = die.attributes.get("DW_AT_name")
                if name_attr is None:
                    continue
                wanted = _matches(name_attr.value.decode("utf-8", "replace"), type_names)
                if wanted is None or wanted in out:
                    continue
                fields: dict[str, int] = {}
                for member in die.iter_children():
                    if member.tag != "DW_TAG_member":
                        continue
                    loc = member.attributes.get("DW_AT_data_member_location")
                    mname = member.attributes.get("DW_AT_name")
                    if loc is not None and mname is not None and isinstance(loc.value, int):
                        fields[mname.value.decode("utf-8", "replace")] = loc.value
                out[wanted] = fields
                if len(out) == len(type_names):
                    return out
    except (ELFError, AssertionError, KeyError, ValueError) as e:
        raise CorruptBinaryError(f"{image.path}: malformed DWARF ({e})") from None
    return out
