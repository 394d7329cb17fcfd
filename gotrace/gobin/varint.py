"""Go's unsigned varint, as used in build info and type-metadata names."""

from gotrace.errors import CorruptBinaryError


def uvarint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a uvarint at data[pos]; returns (value, position after it)."""
    value = shift = 0
    while pos < len(data) and shift < 64:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
    raise CorruptBinaryError("malformed varint in Go metadata")


def encode_uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)
