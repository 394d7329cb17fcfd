"""gotrace.kernel.ringbuf against the kernel: records of odd sizes and given-up ones, read as the
producer wrote them while the buffer wraps around many times."""

from __future__ import annotations

import os
import struct

from bcc import BPF

from gotrace.kernel.ringbuf import RingBuffer

# Each getppid() of this process sends a 13-byte record, then a 100-byte one, both carrying a
# sequence number; every third 100-byte one is reserved, then given up (discarded).
PROGRAM = r"""
struct small { __u32 seq; char pad[9]; } __attribute__((packed));
struct large { __u32 seq; char pad[96]; };
BPF_RINGBUF_OUTPUT(out, 1);
BPF_ARRAY(sequence, __u32, 1);

TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    if ((bpf_get_current_pid_tgid() >> 32) != TARGET_PID)
        return 0;
    int zero = 0;
    __u32 *seq = sequence.lookup(&zero);
    if (!seq)
        return 0;
    struct small s = {.seq = *seq};
    out.ringbuf_output(&s, sizeof(s), BPF_RB_NO_WAKEUP);
    struct large *l = out.ringbuf_reserve(sizeof(struct large));
    if (l) {
        l->seq = *seq;
        if (*seq % 3 == 0)
            out.ringbuf_discard(l, BPF_RB_NO_WAKEUP);
        else
            out.ringbuf_submit(l, BPF_RB_NO_WAKEUP);
    }
    *seq += 1;
    return 0;
}
"""


def test_records_come_whole_and_in_order_across_many_wraps():
    bpf = BPF(text=PROGRAM.replace("TARGET_PID", str(os.getpid())).encode())
    table = bpf["out"]
    ring = RingBuffer(table.map_fd, table.max_entries)
    try:
        seen = []
        for _ in range(200):  # 20 x ~136 bytes per round in a 4 KiB buffer: ~130 wraps
            for _ in range(20):
                os.getppid()
            seen.extend(ring.take())
        assert ring.take() == []
    finally:
        ring.close()
        bpf.cleanup()
    expected = []
    for seq in range(4000):
        expected.append((13, seq))
        if seq % 3:
            expected.append((100, seq))
    assert [(len(r), struct.unpack_from("<I", r)[0]) for r in seen] == expected
