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

/* The addresses of the TCP socket whose net.conn is at netconn. */
static __always_inline void read_tcp_socket(struct span_record *rec, __u64 netconn) {
    __u64 fd = read_u64(netconn + OFF_net_conn_fd);
    if (!fd) {
        count_conn_miss(CONN_MISS_NIL);
        return;
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
}

#ifdef KERNEL_UNIX
/* The inode number of a struct socket: the inode it was allocated with (struct socket_alloc). */
static __always_inline __u64 socket_inode(__u64 sock) {
    __u64 ino = 0;
    bpf_probe_read_kernel(&ino, sizeof(ino), (void *)(sock - KOFF_socket_alloc_socket +
                                                      KOFF_socket_alloc_vfs_inode +
                                                      KOFF_inode_i_ino));
    return ino;
}

static __always_inline __u64 read_kernel_u64(__u64 addr) {
    __u64 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (void *)addr);
    return v;
}

/* A Unix socket's identity, from the kernel: the file descriptor (the netFD's Sysfd) names the
 * struct socket in this process's file table. Both ends see the same two struct sock (their
 * own, and unix_sock.peer) from the moment the client connected, reversed; the inode numbers
 * (as `ss -x` shows them) name the path, but the server's end has none until it is accepted.
 * Kernel offsets come from the running kernel's BTF (gotrace/kernel/btf.py). */
static __always_inline void read_unix_socket(struct span_record *rec, __u64 netconn) {
    __u64 netfd = read_u64(netconn + OFF_net_conn_fd);
    __s64 sysfd = netfd ? (__s64)read_u64(netfd + OFF_net_netFD_pfd + OFF_internal_poll_FD_Sysfd)
                        : -1;
    __u64 files = read_kernel_u64((__u64)bpf_get_current_task() + KOFF_task_struct_files);
    __u64 fdt = files ? read_kernel_u64(files + KOFF_files_struct_fdt) : 0;
    __u32 max_fds = 0;
    if (fdt)
        bpf_probe_read_kernel(&max_fds, sizeof(max_fds), (void *)(fdt + KOFF_fdtable_max_fds));
    if (sysfd < 0 || sysfd >= max_fds) {
        count_conn_miss(CONN_MISS_NIL);
        return;
    }
    __u64 fds = read_kernel_u64(fdt + KOFF_fdtable_fd);
    __u64 file = fds ? read_kernel_u64(fds + 8 * (__u64)sysfd) : 0;
    __u64 sock = file ? read_kernel_u64(file + KOFF_file_private_data) : 0;
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

/* Fill a record's addresses from the net.Conn interface value stored at conn_iface_addr;
 * true when a TLS connection was on the way. */
static __always_inline int read_conn(struct span_record *rec, __u64 conn_iface_addr) {
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
            if (!(step->flags & CONN_STEP_F_UNIX))
                read_tcp_socket(rec, data);
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

#endif
