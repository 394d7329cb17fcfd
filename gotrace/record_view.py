"""Fast reading of span records: one struct unpack per record instead of a ctypes copy.

The struct format is derived from the ctypes mirror (gotrace.records.SpanRecord, the one
description of the layout): every field at its ctypes offset, so fields added to the end of
the record are read without changes here. A record becomes a RecordFields tuple whose
attributes have SpanRecord's names and values, except that arrays, where ctypes gives array
objects, are their bytes as the kernel wrote them: ids and addresses as they are, arrays of
wider integers (sched_ns) for the one reader that needs them to unpack (most records never
do); char arrays are their whole bytes, NUL padding included (gotrace.records.text reads
them as ctypes does, up to the first NUL: most records need only one or two of their
strings). Fields whose names start with "_" (padding) are skipped.
"""

from __future__ import annotations

import ctypes
import struct
from collections import namedtuple
from typing import Any, NamedTuple

from gotrace.records import RECORD_SIZE, SpanRecord

_INTEGER_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}  # signed; upper case is unsigned


def _code(ctype: Any, name: str) -> str:
    """The struct code (standard sizes) of a ctypes scalar: ctypes' own codes are native
    ('L' is c_uint64 on 64-bit Linux but 4 bytes in a standard-size struct)."""
    size = ctypes.sizeof(ctype)
    if ctype._type_ in ("f", "d", "?"):
        return str(ctype._type_)
    if ctype._type_ not in "bBhHiIlLqQ" or size not in _INTEGER_CODES:
        raise TypeError(f"SpanRecord.{name}: cannot unpack {ctype.__name__}")
    signed = ctype(-1).value == -1
    return _INTEGER_CODES[size] if signed else _INTEGER_CODES[size].upper()


class FieldLayout(NamedTuple):
    """Where a RecordFields field is in the record, and its struct code ('s': bytes)."""

    name: str
    offset: int
    code: str
    size: int


def _layout() -> tuple[struct.Struct, list[FieldLayout]]:
    """(the struct, the fields it unpacks)."""
    codes: list[str] = []
    fields: list[FieldLayout] = []
    position = 0  # bytes described so far
    for name, ctype in SpanRecord._fields_:
        offset = getattr(SpanRecord, name).offset
        size = ctypes.sizeof(ctype)
        codes.append(f"{offset - position}x")
        position = offset + size
        if name.startswith("_"):
            codes.append(f"{size}x")
            continue
        code = "s" if issubclass(ctype, ctypes.Array) else _code(ctype, name)
        fields.append(FieldLayout(name, offset, code, size))
        codes.append(f"{size}s" if code == "s" else code)
    codes.append(f"{RECORD_SIZE - position}x")
    layout = struct.Struct("=" + "".join(codes))
    assert layout.size == RECORD_SIZE
    return layout, fields


_STRUCT, FIELDS = _layout()  # FIELDS: also how the compiled decode builds RecordFields
RecordFields = namedtuple("RecordFields", [field.name for field in FIELDS])  # type: ignore[misc]
_make = RecordFields._make
_unpack_from = _STRUCT.unpack_from


def unpack_record(data: bytes) -> RecordFields:
    """The record at the start of data (at least RECORD_SIZE bytes) as RecordFields."""
    return _make(_unpack_from(data))
