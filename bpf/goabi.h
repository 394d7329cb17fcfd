/* The Go ABI and reading a Go program's memory: registers, Go's value layouts, keys that
 * name a process's Go objects, and the readers every probe uses.
 *
 * Offsets of Go struct fields arrive as -D macros named OFF_<field name>, resolved from the
 * traced binary (never assumed). Go's register ABI (amd64, Go >= 1.17): arguments in
 * RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11; the current goroutine's g in R14.
 */
#ifndef GOTRACE_GOABI_H
#define GOTRACE_GOABI_H

#include <uapi/linux/ptrace.h>

#define GO_G(ctx) ((ctx)->r14)
#define GO_ARG1(ctx) ((ctx)->ax)
#define GO_ARG2(ctx) ((ctx)->bx)
#define GO_ARG3(ctx) ((ctx)->cx)
#define GO_ARG4(ctx) ((ctx)->di)
#define GO_ARG5(ctx) ((ctx)->si)
#define GO_ARG6(ctx) ((ctx)->r8)
#define GO_ARG7(ctx) ((ctx)->r9)

struct go_string {
    __u64 ptr;
    __s64 len;
};

struct go_iface {
    __u64 tab;
    __u64 data;
};

struct go_slice {
    __u64 ptr;
    __s64 len;
    __s64 cap;
};

/* Goroutine ids, g structs and other Go heap addresses repeat from one process to another
 * (goids count from 1 in each; before Go 1.26 the heap begins at one fixed address), and the
 * processes of one binary share its program and maps: a key made of one names its process. */
struct go_key {
    __u64 id;  /* a goid, a g, or another Go heap address */
    __u32 tgid;
    __u32 _pad;
};

static __always_inline struct go_key go_key(__u64 id) {
    struct go_key key = {.id = id, .tgid = bpf_get_current_pid_tgid() >> 32};
    return key;
}

static __always_inline __u64 read_u64(__u64 addr) {
    __u64 v = 0;
    bpf_probe_read_user(&v, sizeof(v), (void *)addr);
    return v;
}

static __always_inline __u32 read_u32(__u64 addr) {
    __u32 v = 0;
    bpf_probe_read_user(&v, sizeof(v), (void *)addr);
    return v;
}

/* Copy a Go string (a struct go_string header) into dst (NUL-terminated, truncated to fit);
 * evaluates to the string's length. */
#define COPY_GO_STRING(dst, header)                                            \
    ({                                                                         \
        struct go_string __s = (header);                                       \
        __u64 __n = __s.len;                                                   \
        if (__n > sizeof(dst) - 1)                                             \
            __n = sizeof(dst) - 1;                                             \
        if (__s.ptr && __n > 0)                                                \
            bpf_probe_read_user((dst), __n & (sizeof(dst) - 1), (void *)__s.ptr); \
        __s.len;                                                               \
    })

/* Copy the Go string stored at str_addr into dst. */
#define READ_GO_STRING(dst, str_addr)                                          \
    ({                                                                         \
        struct go_string __h = {};                                             \
        bpf_probe_read_user(&__h, sizeof(__h), (void *)(str_addr));            \
        COPY_GO_STRING(dst, __h);                                              \
    })

/* Windows: each user-memory read is a helper call, a cost of its own (bench/REPORT.md), so a probe that
 * needs several fields of one struct reads its first bytes at once and picks the fields out
 * at their offsets, which are constants. A window's size is a constant expression too (the
 * largest field end it must hold), checked against WINDOW_SIZE when the program compiles. */
#define WINDOW_SIZE 512
#define END_OF(off, type) ((off) + sizeof(type))
#define MAX2(a, b) ((a) > (b) ? (a) : (b))
#define MAX3(a, b, c) MAX2(MAX2(a, b), c)
struct window {
    __u8 bytes[WINDOW_SIZE];
};
BPF_PERCPU_ARRAY(windows, struct window, 2);  /* a struct, and one it points to */

/* The first size bytes of the struct at addr, in window slot; 0 when unreadable. */
static __always_inline __u8 *read_window(__u32 slot, __u64 addr, __u32 size) {
    struct window *w = windows.lookup(&slot);
    if (!w || !addr || bpf_probe_read_user(w->bytes, size, (void *)addr) != 0)
        return 0;
    return w->bytes;
}

/* Byte c at byte i of a little-endian word: text built from constants, without strings. */
#define BYTE_AT(c, i) ((__u64)(__u8)(c) << (8 * (i)))

#define WINDOW_U64(w, off) (*(__u64 *)((w) + (off)))
#define WINDOW_STRING(w, off) (*(struct go_string *)((w) + (off)))

/* An interface value's dynamic type, by the hash its itab carries (the TYPEHASH_ macros
 * name types by theirs); 0 for a nil interface. */
static __always_inline __u32 itab_type(__u64 itab) {
    return itab ? read_u32(itab + OFF_internal_abi_ITab_Hash) : 0;
}

static __always_inline __u64 goroutine_id(__u64 g) {
    return read_u64(g + OFF_runtime_g_goid);
}

#endif
