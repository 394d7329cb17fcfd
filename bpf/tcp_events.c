/* TCP trouble from kernel tracepoints (no uprobes, no kprobes): one program for the whole
 * tracer, whatever the traced programs. Each event is a record of bpf/record.h's layout with
 * the connection as the sender (retransmit) or the connecting side (connect) sees it, and a
 * connect's record names the process that connected; gotrace/facts/network.py attributes
 * them to the spans on that connection, and tells same-host linking who opened one.
 */
#include <uapi/linux/ptrace.h>
#define AF_INET 2  /* linux/socket.h's; including it costs half a second of compiling */
#include "record.h"

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define IPPROTO_TCP_NUM 6

BPF_RINGBUF_OUTPUT(tcp_events, 64);
BPF_PERCPU_ARRAY(tcp_scratch, struct span_record, 1);
/* A connection being opened: when its SYN went, and by which process (the handshake ends in
 * a softirq, in whatever process the CPU was running then). */
struct connecting {
    __u64 start_ns;
    __u64 tgid;
};
BPF_TABLE("lru_hash", __u64, struct connecting, tcp_connecting, 65536);  /* by sock */
BPF_ARRAY(tcp_lost, __u64, 1);  /* events the ring buffer had no room for */

static __always_inline struct span_record *tcp_record(__u16 kind, __u16 family,
                                                        const __u8 *saddr, const __u8 *daddr,
                                                        const __u8 *saddr6, const __u8 *daddr6,
                                                        __u16 sport, __u16 dport) {
    __u32 zero = 0;
    struct span_record *rec = tcp_scratch.lookup(&zero);
    if (!rec)
        return 0;
    __builtin_memset(rec, 0, sizeof(*rec));
    rec->kind = kind;
    rec->pid = bpf_get_current_pid_tgid() >> 32;
    rec->local_port = sport;
    rec->peer_port = dport;
    /* The addresses live in the tracepoint's context, which may only be read through a
     * helper once their offsets are computed. */
    if (family == AF_INET) {
        rec->local_addr[10] = rec->local_addr[11] = 0xff;
        rec->peer_addr[10] = rec->peer_addr[11] = 0xff;
        bpf_probe_read_kernel(rec->local_addr + 12, 4, saddr);
        bpf_probe_read_kernel(rec->peer_addr + 12, 4, daddr);
    } else {
        bpf_probe_read_kernel(rec->local_addr, 16, saddr6);
        bpf_probe_read_kernel(rec->peer_addr, 16, daddr6);
    }
    rec->flags = SPAN_F_HAS_CONN;
    return rec;
}

static __always_inline void tcp_emit(struct span_record *rec) {
    if (tcp_events.ringbuf_output(rec, sizeof(*rec), 0) != 0) {
        __u32 zero = 0;
        __u64 *n = tcp_lost.lookup(&zero);
        if (n)
            __sync_fetch_and_add(n, 1);
    }
}

TRACEPOINT_PROBE(tcp, tcp_retransmit_skb) {
    struct span_record *rec = tcp_record(EVENT_KIND_TCP_RETRANSMIT, args->family, args->saddr,
                                         args->daddr, args->saddr_v6, args->daddr_v6,
                                         args->sport, args->dport);
    if (!rec)
        return 0;
    rec->start_ns = rec->end_ns = bpf_ktime_get_ns();
    tcp_emit(rec);
    return 0;
}

TRACEPOINT_PROBE(sock, inet_sock_set_state) {
    if (args->protocol != IPPROTO_TCP_NUM)
        return 0;
    __u64 sk = (__u64)args->skaddr;
    if (args->newstate == TCP_SYN_SENT) {
        struct connecting began = {bpf_ktime_get_ns(), bpf_get_current_pid_tgid() >> 32};
        tcp_connecting.update(&sk, &began);
        return 0;
    }
    if (args->oldstate != TCP_SYN_SENT)
        return 0;
    struct connecting *began = tcp_connecting.lookup(&sk);
    if (!began)
        return 0;
    struct connecting connect = *began;
    tcp_connecting.delete(&sk);
    if (args->newstate != TCP_ESTABLISHED)
        return 0;
    struct span_record *rec = tcp_record(EVENT_KIND_TCP_CONNECT, args->family, args->saddr,
                                         args->daddr, args->saddr_v6, args->daddr_v6,
                                         args->sport, args->dport);
    if (!rec)
        return 0;
    rec->pid = connect.tgid;
    rec->start_ns = connect.start_ns;
    rec->end_ns = bpf_ktime_get_ns();
    tcp_emit(rec);
    return 0;
}
