"""A BPF ring buffer read straight from its memory: every waiting record in one call.

libbpf's reader, through BCC, calls back into Python once per record, which costs more than
reading the records here. The reading is gotrace.native's ring_take; take_in_python below is
its reference. The layout is the kernel's (kernel/bpf/ringbuf.c): a page holding the
consumer's position, which the reader writes; a page holding the producer's position; then the
data area, mapped twice in a row so that a record that wraps around its end reads as one
piece. A record is an 8-byte header (its length, with a busy bit while the producer still
writes it and a discard bit when it gave the record up) and the record, padded to 8 bytes.
gotrace's probes send a span record without its trailing zeros (bpf/span.h emit): a record
shorter than the reader's min_size is given them back.

No barriers: gotrace runs only on x86-64 (its probes read the amd64 Go ABI's registers), where
loads are not reordered with other loads, so a record whose header reads as committed has its
bytes in place; positions are read and written as single aligned 8-byte moves (ring_take says
so with acquire loads and a release store, which are plain moves there).
"""

from __future__ import annotations

import mmap
import select
import struct

from gotrace import native

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HEADER_SIZE = 8
UNLIMITED = 2**63  # records per take
_LENGTH = struct.Struct("<I")
_POSITION = struct.Struct("<Q")

Memory = mmap.mmap | bytearray  # the kernel's mapping, or a ring buffer laid out as it is


def take_in_python(consumer_page: Memory, data: Memory, page: int, mask: int,
                   min_size: int, limit: int) -> list[bytes]:
    """The committed records, in order (up to one still being written, and at most limit of
    them), each padded with zeros to min_size, and the consumer's position moved past them.
    consumer_page (writable) starts with the consumer's position; data with the producer's,
    and its data area starts at offset page; mask is its size - 1."""
    length_at = _LENGTH.unpack_from
    consumer = _POSITION.unpack_from(consumer_page)[0]
    producer = _POSITION.unpack_from(data)[0]
    records = []
    while consumer < producer and len(records) < limit:
        offset = page + (consumer & mask)
        length = length_at(data, offset)[0]
        if length & _BUSY:
            break
        size = length & ~(_BUSY | _DISCARD)
        if not length & _DISCARD:
            start = offset + _HEADER_SIZE
            records.append(bytes(data[start:start + size]).ljust(min_size, b"\0"))
        consumer += (size + _HEADER_SIZE + 7) & ~7
    _POSITION.pack_into(consumer_page, 0, consumer)
    return records


_take = native.compiled("ring_take", take_in_python)


class RingBuffer:
    """The consumer's end of a BPF_MAP_TYPE_RINGBUF map of data_size bytes, whose records
    are taken padded with zeros to min_size."""

    def __init__(self, map_fd: int, data_size: int, min_size: int = 0) -> None:
        if data_size <= 0 or data_size & (data_size - 1):
            raise ValueError(f"a ring buffer's size is a power of two, not {data_size}")
        page = mmap.PAGESIZE
        self._page = page
        self._mask = data_size - 1
        self._min_size = min_size
        self._consumer_page = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                                        mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._data = mmap.mmap(map_fd, page + 2 * data_size, mmap.MAP_SHARED, mmap.PROT_READ,
                               offset=page)
        self._epoll = select.epoll()
        self._epoll.register(map_fd, select.EPOLLIN)

    def wait(self, timeout_ms: int) -> None:
        """Until the producer wakes the reader, or timeout_ms."""
        self._epoll.poll(timeout_ms / 1000)

    def fill(self) -> float:
        """The share of the buffer holding records not taken yet."""
        consumer = _POSITION.unpack_from(self._consumer_page)[0]
        producer = _POSITION.unpack_from(self._data)[0]
        return (producer - consumer) / (self._mask + 1)

    def take(self, limit: int = UNLIMITED) -> list[bytes]:
        """The committed records, in order (up to one still being written), at most limit."""
        return _take(self._consumer_page, self._data, self._page, self._mask, self._min_size,
                     limit)

    def close(self) -> None:
        self._epoll.close()
        self._consumer_page.close()
        self._data.close()
