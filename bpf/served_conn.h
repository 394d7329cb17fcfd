/* A served connection's addresses, read from its memory once per connection.
 *
 * Servers serve each connection on a goroutine of its own for the connection's whole life:
 * net/http's conn.serve runs every request of an HTTP/1 connection; grpc-go's serveStreams
 * reads every frame of an HTTP/2 connection and starts each RPC's goroutine. A goroutine id
 * is never reused, so keyed by that goroutine's id, an entry names one connection for good:
 * its first request reads the addresses (seven to nine user-memory reads, read_conn in
 * bpf/conn.h) and the later ones copy them from here. The struct holding the net.Conn (the
 * owner: an *http.conn, a grpc-go *http2Server) is checked as well. An entry outlives its
 * connection until the LRU evicts it; no later request can name it.
 * With KERNEL_TCP_IDENTITY the entry also keeps the connection's ISNs, constant for its life,
 * and its struct sock, from which an HTTP/1 request's position is read (bpf/conn.h): that
 * sock lives as long as the connection's file descriptor, which the serving goroutine holds.
 *
 * A connection whose caller a span found untraced by its mark (bpf/sampling.h root_decision,
 * untraced_peers) has that caller for its whole life, so the entry remembers when, and for
 * UNTRACED_RECHECK_NS after, the connection's spans take it from here instead of looking the
 * mark up (a hash look-up per request otherwise; bench/REPORT.md). The look-up that rechecks
 * also refreshes the mark, well within the idle time after which it lapses.
 */
#ifndef GOTRACE_SERVED_CONN_H
#define GOTRACE_SERVED_CONN_H

#include "goabi.h"
#include "record.h"
#include "conn.h"

struct served_conn {
    __u64 owner;
    __u8 local_addr[16];
    __u8 peer_addr[16];
    __u16 local_port;
    __u16 peer_port;
    __u16 tls;
    __u16 flags;  /* SPAN_F_HAS_CONN or SPAN_F_UNIX */
    __u64 untraced_ns;  /* when a span last found its caller untraced by the mark; 0: never */
#ifdef KERNEL_TCP_IDENTITY
    __u64 sk;  /* 0 when the TCP identity is not known */
    __u32 isn_client, isn_server;
#endif
};

BPF_TABLE("lru_hash", struct go_key, struct served_conn, served_conns, MAX_INFLIGHT);

#define UNTRACED_RECHECK_NS 1000000000ULL
_Static_assert(UNTRACED_RECHECK_NS < (__u64)UNTRACED_PEER_IDLE_NS,
               "a remembered untraced caller is rechecked before its mark lapses");

/* The addresses of the connection served by goroutine conn_goid copied into rec from
 * served_conns, when its entry is owner's; then *tls tells whether it is TLS. end: as
 * read_conn_as's (bpf/conn.h), TCP_END_SERVER with or without TCP_AT_POSITION. */
static __always_inline int known_served_conn(struct span_record *rec, struct go_key *key,
                                             __u64 owner, int *tls, int end) {
    struct served_conn *known = served_conns.lookup(key);
    if (!known || known->owner != owner)
        return 0;
    __builtin_memcpy(rec->local_addr, known->local_addr, 16);
    __builtin_memcpy(rec->peer_addr, known->peer_addr, 16);
    rec->local_port = known->local_port;
    rec->peer_port = known->peer_port;
    rec->flags |= known->flags;
    if (rec->start_ns - known->untraced_ns <= UNTRACED_RECHECK_NS)
        rec->flags |= SPAN_F_CALLER_UNTRACED;  /* root_decision takes it as found */
    *tls = known->tls;
#ifdef KERNEL_TCP_IDENTITY
    if (known->sk) {
        rec->tcp_identity[0] = known->isn_client;
        rec->tcp_identity[1] = known->isn_server;
        rec->tcp_identity[3] = TCP_ID_KNOWN;
        if (end & TCP_AT_POSITION)
            read_tcp_position(rec, known->sk, end);
    }
#endif
    return 1;
}

/* read_conn_as, and the addresses remembered for the connection of key's goroutine. */
static __always_inline int remember_served_conn(struct span_record *rec, struct go_key *key,
                                                __u64 owner, __u64 conn_iface_addr, int end) {
    __u64 sk = 0;
    int tls = read_conn_as(rec, conn_iface_addr, end, &sk);
    __u16 found = rec->flags & (SPAN_F_HAS_CONN | SPAN_F_UNIX);
    if (found) {
        struct served_conn fresh = {.owner = owner, .local_port = rec->local_port,
                                    .peer_port = rec->peer_port, .tls = tls, .flags = found};
        __builtin_memcpy(fresh.local_addr, rec->local_addr, 16);
        __builtin_memcpy(fresh.peer_addr, rec->peer_addr, 16);
#ifdef KERNEL_TCP_IDENTITY
        fresh.sk = sk;
        fresh.isn_client = rec->tcp_identity[0];
        fresh.isn_server = rec->tcp_identity[1];
#endif
        served_conns.update(key, &fresh);
    }
    return tls;
}

/* Once the span's root decision is made (flags_before: its flags until then): when that
 * found the caller untraced by the mark itself, the entry of the connection that goroutine
 * conn_goid serves for owner remembers it. */
static __always_inline void note_caller_untraced(struct span_record *rec, __u16 flags_before,
                                                 __u64 conn_goid, __u64 owner) {
    if (!conn_goid || (flags_before & SPAN_F_CALLER_UNTRACED) ||
        !(rec->flags & SPAN_F_CALLER_UNTRACED))
        return;
    struct go_key key = go_key(conn_goid);
    struct served_conn *known = served_conns.lookup(&key);
    if (known && known->owner == owner)
        known->untraced_ns = rec->start_ns;
}

/* read_conn_as for a connection served by goroutine conn_goid: from served_conns when its
 * entry is owner's, else read and remembered. True when the connection is TLS. */
static __always_inline int read_served_conn(struct span_record *rec, __u64 conn_goid,
                                            __u64 owner, __u64 conn_iface_addr, int end) {
    struct go_key key = go_key(conn_goid);
    int tls = 0;
    if (known_served_conn(rec, &key, owner, &tls, end))
        return tls;
    return remember_served_conn(rec, &key, owner, conn_iface_addr, end);
}

#endif
