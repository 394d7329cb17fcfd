/* A span's connection: from a net.Conn interface value to the socket's addresses, whatever
 * Go types wrap the socket (TLS, cmux, go-conntrack, LimitListener, PROXY protocol, a type of
 * the program's own...).
 *
 * An interface value tells its dynamic type by hash (in its itab). For every type a
 * connection interface can hold in this binary, gotrace/gobin/conntypes.py worked out one
 * step, and gotrace filled conn_steps with them when it loaded this program: the value is the
 * socket (a *net.TCPConn or *net.UnixConn: a net.conn whose fd is a *netFD), or the
 * connection below is an interface value, or a pointer of a known type, at an offset in the
 * struct the value points at. A TCP socket gives its addresses (SPAN_F_HAS_CONN); a Unix
 * socket its kernel identity (SPAN_F_UNIX, read_unix_socket). At most MAX_CONN_STEPS steps are followed; every way of
 * failing is counted by reason in conn_misses and leaves the span without addresses.
 * With KERNEL_TCP_IDENTITY, HTTP and gRPC probes also name a TCP connection as both its
 * ends do (read_tcp_identity), for linking across hosts.
 */
#ifndef GOTRACE_CONN_H
#define GOTRACE_CONN_H

#include "goabi.h"
#include "record.h"

/* CONN_STEP_* (kinds and F_ flags) and CONN_MISS_* (reasons, and their count
 * CONN_MISS_REASONS) come as macros from gotrace/kernel/plan.py (conn_macros), the one definition
 * of these values. */
#define MAX_CONN_STEPS 6

struct conn_step {
    __u32 kind;       /* CONN_STEP_* */
    __u32 flags;      /* CONN_STEP_F_* */
    __u32 offset;     /* of the connection below, in the struct the value points at */
    __u32 next_hash;  /* CONN_STEP_POINTER: the type of the pointer found there */
};

BPF_HASH(conn_steps, __u32, struct conn_step, CONN_STEP_TYPES);  /* by the type's hash */

/* Connections not found, by reason: a dynamic type without a step (UNKNOWN_TYPE), a nil
 * connection on the way (NIL), more than MAX_CONN_STEPS wrappers (TOO_DEEP), a Unix socket
 * on a kernel without BTF, whose identity cannot be read (UNIX). */
BPF_PERCPU_ARRAY(conn_misses, __u64, CONN_MISS_REASONS);

static __always_inline void count_conn_miss(__u32 reason) {
    __u64 *n = conn_misses.lookup(&reason);
    if (n)
        (*n)++;
}

static __always_inline void read_tcp_addr(__u64 tcp_addr, __u8 *ip16, __u16 *port) {
    /* IP (a slice) and Port, together. */
    __u64 a[(MAX2(END_OF(OFF_net_TCPAddr_IP, struct go_slice),
                 END_OF(OFF_net_TCPAddr_Port, __u64)) + 7) / 8];
    _Static_assert(sizeof(a) <= 64, "net.TCPAddr's IP and Port are not at its start");
    if (bpf_probe_read_user(a, sizeof(a), (void *)tcp_addr) != 0)
        return;
    struct go_slice ip = *(struct go_slice *)((__u8 *)a + OFF_net_TCPAddr_IP);
    if (ip.len == 16) {
        bpf_probe_read_user(ip16, 16, (void *)ip.ptr);
    } else if (ip.len == 4) {
        ip16[10] = 0xff;
        ip16[11] = 0xff;
        bpf_probe_read_user(ip16 + 12, 4, (void *)ip.ptr);
    }
    *port = (__u16)*(__u64 *)((__u8 *)a + OFF_net_TCPAddr_Port);
}

/* The addresses of the TCP socket whose net.conn is at netconn; its *netFD (0 when nil). */
static __always_inline __u64 read_tcp_socket(struct span_record *rec, __u64 netconn) {
    __u64 fd = read_u64(netconn + OFF_net_conn_fd);
    if (!fd) {
        count_conn_miss(CONN_MISS_NIL);
        return 0;
    }
    /* laddr and raddr (net.Addr interfaces holding *net.TCPAddr): adjacent in every Go. */
    _Static_assert(OFF_net_netFD_raddr == OFF_net_netFD_laddr + sizeof(struct go_iface),
                   "net.netFD's laddr and raddr are not adjacent");
    struct go_iface addrs[2] = {};
    bpf_probe_read_user(addrs, sizeof(addrs), (void *)(fd + OFF_net_netFD_laddr));
    if (addrs[0].data)
        read_tcp_addr(addrs[0].data, rec->local_addr, &rec->local_port);
    if (addrs[1].data)
        read_tcp_addr(addrs[1].data, rec->peer_addr, &rec->peer_port);
    if (rec->local_port || rec->peer_port)
        rec->flags |= SPAN_F_HAS_CONN;
    return fd;
}

#if defined(KERNEL_UNIX) || defined(KERNEL_TCP_IDENTITY)
static __always_inline __u64 read_kernel_u64(__u64 addr) {
    __u64 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (void *)addr);
    return v;
}

/* The kernel's struct socket of a *netFD, 0 when there is none: its file descriptor (the
 * netFD's Sysfd) in this process's file table, task->files->fdt->fd[Sysfd], whose file's
 * private data is the socket. Read without the file table's lock (RCU): a descriptor closed
 * or reused meanwhile can name another socket, which callers check where it matters. Kernel
 * offsets come from the running kernel's BTF (gotrace/kernel/btf.py). */
static __always_inline __u64 netfd_socket(__u64 netfd) {
    __s64 sysfd = netfd ? (__s64)read_u64(netfd + OFF_net_netFD_pfd + OFF_internal_poll_FD_Sysfd)
                        : -1;
    __u64 files = read_kernel_u64((__u64)bpf_get_current_task() + KOFF_task_struct_files);
    __u64 fdt = files ? read_kernel_u64(files + KOFF_files_struct_fdt) : 0;
    __u32 max_fds = 0;
    if (fdt)
        bpf_probe_read_kernel(&max_fds, sizeof(max_fds), (void *)(fdt + KOFF_fdtable_max_fds));
    if (sysfd < 0 || sysfd >= max_fds)
        return 0;
    __u64 fds = read_kernel_u64(fdt + KOFF_fdtable_fd);
    __u64 file = fds ? read_kernel_u64(fds + 8 * (__u64)sysfd) : 0;
    return file ? read_kernel_u64(file + KOFF_file_private_data) : 0;
}
#endif

#ifdef KERNEL_UNIX
/* The inode number of a struct socket: the inode it was allocated with (struct socket_alloc). */
static __always_inline __u64 socket_inode(__u64 sock) {
    __u64 ino = 0;
    bpf_probe_read_kernel(&ino, sizeof(ino), (void *)(sock - KOFF_socket_alloc_socket +
                                                      KOFF_socket_alloc_vfs_inode +
                                                      KOFF_inode_i_ino));
    return ino;
}

/* A Unix socket's identity, from the kernel: the file descriptor (the netFD's Sysfd) names the
 * struct socket in this process's file table. Both ends see the same two struct sock (their
 * own, and unix_sock.peer) from the moment the client connected, reversed; the inode numbers
 * (as `ss -x` shows them) name the path, but the server's end has none until it is accepted. */
static __always_inline void read_unix_socket(struct span_record *rec, __u64 netconn) {
    __u64 sock = netfd_socket(read_u64(netconn + OFF_net_conn_fd));
    __u64 sk = sock ? read_kernel_u64(sock + KOFF_socket_sk) : 0;
    __u64 peer = sk ? read_kernel_u64(sk + KOFF_unix_sock_peer) : 0;
    if (!peer) {
        count_conn_miss(CONN_MISS_NIL);
        return;
    }
    __u64 peer_sock = read_kernel_u64(peer + KOFF_sock_sk_socket);
    __u64 ends[4] = {sk, socket_inode(sock), peer, peer_sock ? socket_inode(peer_sock) : 0};
    __builtin_memcpy(rec->local_addr, ends, 16);
    __builtin_memcpy(rec->peer_addr, ends + 2, 16);
    rec->flags |= SPAN_F_UNIX;
}
#endif


/* Which end of its TCP connection a probe runs on (read_conn_as), and whether it wants the
 * request's position in the stream too (HTTP/1). A client probe runs on the end that
 * connected: a program that accepted a connection and then spoke as an HTTP client over it
 * (a reverse tunnel) would name its own ISN one too low (below), a case left aside. */
#define TCP_END_CLIENT 1
#define TCP_END_SERVER 2
#define TCP_AT_POSITION 4

#ifdef KERNEL_TCP_IDENTITY
#define TCP_STATE_ESTABLISHED 1  /* the kernel's TCP_ESTABLISHED and TCP_CLOSE_WAIT */
#define TCP_STATE_CLOSE_WAIT 8
#define TCP_PAIR_MAX_SPAN 96   /* two members further apart are read one by one */
#define TCP_READ_ATTEMPTS 4    /* of a consistent counter/sequence snapshot */

/* The u32 at base + a and the one at base + b (tcp_sock's u64 byte counters: their low
 * halves), read at once when close together. The offsets are constants: the choice is made
 * at compile time. False when a read failed. */
static __always_inline int read_kernel_u32_pair(__u64 base, __u32 a, __u32 b, __u32 *va,
                                                __u32 *vb) {
    __u32 lo = a < b ? a : b;
    __u32 span = (a < b ? b : a) - lo + 4;
    if (span <= TCP_PAIR_MAX_SPAN) {
        __u64 buf[TCP_PAIR_MAX_SPAN / 8];
        if (bpf_probe_read_kernel(buf, span, (void *)(base + lo)) != 0)
            return 0;
        /* memcpy: an offset need not be aligned, and the verifier refuses unaligned loads
         * from the stack (the compiler splits them) */
        __builtin_memcpy(va, (__u8 *)buf + (a - lo), 4);
        __builtin_memcpy(vb, (__u8 *)buf + (b - lo), 4);
        return 1;
    }
    return bpf_probe_read_kernel(va, 4, (void *)(base + a)) == 0 &&
           bpf_probe_read_kernel(vb, 4, (void *)(base + b)) == 0;
}

/* The TCP connection of the *netFD netfd as both its ends name it, into rec->tcp_identity:
 * the initial sequence numbers of the end that connected and of the end that accepted. Each
 * end knows its peer's from what it received, and its own from what the peer acknowledged,
 * in u32 arithmetic (exact across wraps of the sequence space):
 *     ISN_peer = rcv_nxt - bytes_received - 1
 *     ISN_own  = snd_una - bytes_acked - (connected ? 0 : 1)
 * (the SYN counts in the connecting end's bytes_acked, not in an accepted socket's). The
 * socket must be a connected TCP one, on the local port the netFD named, else the file
 * descriptor was reused. The softirq that updates a counter and its sequence number runs
 * without the socket lock this probe cannot take: the counters are read before and after
 * the sequence numbers, again until both reads agree. Returns the struct sock, or 0 when
 * the identity is not known. */
static __always_inline __u64 read_tcp_identity(struct span_record *rec, __u64 netfd, int end) {
    __builtin_memset(rec->tcp_identity, 0, sizeof(rec->tcp_identity));
    __u64 sock = netfd_socket(netfd);
    __u64 sk = sock ? read_kernel_u64(sock + KOFF_socket_sk) : 0;
    __u32 port = 0, state = 0;
    if (!sk || !read_kernel_u32_pair(sk, KOFF_sock_skc_num, KOFF_sock_skc_state, &port, &state))
        return 0;
    state &= 0xff;  /* skc_state is a byte, skc_num 16 bits */
    port &= 0xffff;
    if ((state != TCP_STATE_ESTABLISHED && state != TCP_STATE_CLOSE_WAIT) ||
        (rec->local_port && rec->local_port != port))
        return 0;
#pragma unroll
    for (int i = 0; i < TCP_READ_ATTEMPTS; i++) {
        __u32 received = 0, acked = 0, rcv_nxt = 0, snd_una = 0, received2 = 0, acked2 = 0;
        if (!read_kernel_u32_pair(sk, KOFF_tcp_sock_bytes_received, KOFF_tcp_sock_bytes_acked,
                                  &received, &acked) ||
            !read_kernel_u32_pair(sk, KOFF_tcp_sock_rcv_nxt, KOFF_tcp_sock_snd_una, &rcv_nxt,
                                  &snd_una) ||
            !read_kernel_u32_pair(sk, KOFF_tcp_sock_bytes_received, KOFF_tcp_sock_bytes_acked,
                                  &received2, &acked2))
            return 0;
        if (received != received2 || acked != acked2)
            continue;
        __u32 peer = rcv_nxt - received - 1;
        __u32 own = snd_una - acked - (end & TCP_END_CLIENT ? 0 : 1);
        rec->tcp_identity[0] = end & TCP_END_CLIENT ? own : peer;
        rec->tcp_identity[1] = end & TCP_END_CLIENT ? peer : own;
        rec->tcp_identity[3] = TCP_ID_KNOWN;
        return sk;
    }
    return 0;
}

/* HTTP/1: the request's position in the stream, the bytes the server sent on the connection
 * before its response. Go's client sends a request only once the previous response was read
 * to its end, and the server has flushed that response before it reads the next request, so
 * the client's bytes consumed (copied_seq) at the round trip's start equal the server's bytes
 * written (write_seq) at the handler's start; both relative to the server's ISN. */
static __always_inline void read_tcp_position(struct span_record *rec, __u64 sk, int end) {
    __u32 seq = 0;
    if (!(rec->tcp_identity[3] & TCP_ID_KNOWN) ||
        bpf_probe_read_kernel(&seq, sizeof(seq),
                              (void *)(sk + (end & TCP_END_CLIENT ? KOFF_tcp_sock_copied_seq
                                                                  : KOFF_tcp_sock_write_seq))))
        return;
    rec->tcp_identity[2] = seq - rec->tcp_identity[1] - 1;
    rec->tcp_identity[3] |= TCP_ID_POSITION;
}
#endif

/* Fill a record's addresses from the net.Conn interface value stored at conn_iface_addr;
 * true when a TLS connection was on the way. end: TCP_END_* (| TCP_AT_POSITION) for an
 * HTTP or gRPC probe, whose TCP connection is then named as both its ends name it (with
 * KERNEL_TCP_IDENTITY); its struct sock goes to *sk when sk is not 0. */
static __always_inline int read_conn_as(struct span_record *rec, __u64 conn_iface_addr,
                                        int end, __u64 *sk) {
    struct go_iface conn = {};
    bpf_probe_read_user(&conn, sizeof(conn), (void *)conn_iface_addr);
    if (!conn.tab || !conn.data) {
        count_conn_miss(CONN_MISS_NIL);
        return 0;
    }
    __u32 type = itab_type(conn.tab);
    __u64 data = conn.data;
    int tls = 0;
#pragma unroll
    for (int i = 0; i < MAX_CONN_STEPS; i++) {
        struct conn_step *step = conn_steps.lookup(&type);
        if (!step) {
            count_conn_miss(CONN_MISS_UNKNOWN_TYPE);
            return tls;
        }
        if (step->flags & CONN_STEP_F_TLS)
            tls = 1;
        if (step->kind == CONN_STEP_SOCKET) {
            if (!(step->flags & CONN_STEP_F_UNIX)) {
                __u64 netfd = read_tcp_socket(rec, data);
#ifdef KERNEL_TCP_IDENTITY
                if (end && netfd) {
                    __u64 found = read_tcp_identity(rec, netfd, end);
                    if (found && (end & TCP_AT_POSITION))
                        read_tcp_position(rec, found, end);
                    if (sk)
                        *sk = found;
                }
#endif
            }
#ifdef KERNEL_UNIX
            else
                read_unix_socket(rec, data);
#else
            else
                count_conn_miss(CONN_MISS_UNIX);  /* no kernel BTF to read its identity */
#endif
            return tls;
        }
        __u64 at = data + step->offset;
        if (step->kind == CONN_STEP_INTERFACE) {
            conn.tab = conn.data = 0;
            bpf_probe_read_user(&conn, sizeof(conn), (void *)at);
            type = itab_type(conn.tab);
            data = conn.data;
        } else {
            type = step->next_hash;
            data = read_u64(at);
        }
        if (!data) {
            count_conn_miss(CONN_MISS_NIL);
            return tls;
        }
    }
    count_conn_miss(CONN_MISS_TOO_DEEP);
    return tls;
}

/* read_conn_as for a connection that needs no TCP identity (database clients). */
static __always_inline int read_conn(struct span_record *rec, __u64 conn_iface_addr) {
    return read_conn_as(rec, conn_iface_addr, 0, 0);
}

#endif
