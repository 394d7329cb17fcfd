/* BCC's BPF environment, as much of it as bpf/context.h uses, for compiling that header into
 * an ordinary program (tests/test_goroutine_context.py): maps become static arrays with the
 * same method-call syntax, the hash maps without eviction; the running thread's process is
 * current_tgid. Included through bpf/goabi.h's <uapi/linux/ptrace.h>. */
#ifndef BPF_USER_STUBS_H
#define BPF_USER_STUBS_H

#include <linux/types.h>
#include <string.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

struct pt_regs;

static __u32 current_tgid;

static inline __u64 bpf_get_current_pid_tgid(void) { return (__u64)current_tgid << 32; }

static inline long bpf_probe_read_user(void *dst, __u32 size, const void *src) {
    (void)dst, (void)size, (void)src;
    return -14;  /* -EFAULT: no target memory here */
}

#define BPF_ARRAY(name, type, entries)                                          \
    static type name##_values[entries];                                         \
    static type *name##_lookup(__u32 *k) {                                      \
        return *k < (entries) ? &name##_values[*k] : 0;                         \
    }                                                                           \
    static struct { type *(*lookup)(__u32 *); } name = {name##_lookup}
#define BPF_PERCPU_ARRAY BPF_ARRAY

#define USER_HASH_ENTRIES 256  /* whatever the declared size: a test never fills it */
#define BPF_TABLE(kind, ktype, vtype, name, entries)                                    \
    static struct { ktype k; vtype v; int used; } name##_slots[USER_HASH_ENTRIES];     \
    static vtype *name##_lookup(ktype *k) {                                            \
        for (int i = 0; i < USER_HASH_ENTRIES; i++)                                    \
            if (name##_slots[i].used && !memcmp(&name##_slots[i].k, k, sizeof(*k)))    \
                return &name##_slots[i].v;                                             \
        return 0;                                                                      \
    }                                                                                  \
    static int name##_insert(ktype *k, vtype *v) {                                     \
        if (name##_lookup(k))                                                          \
            return -17;                                                                \
        for (int i = 0; i < USER_HASH_ENTRIES; i++)                                    \
            if (!name##_slots[i].used) {                                               \
                name##_slots[i].k = *k, name##_slots[i].v = *v;                        \
                name##_slots[i].used = 1;                                              \
                return 0;                                                              \
            }                                                                          \
        return -7;                                                                     \
    }                                                                                  \
    static int name##_update(ktype *k, vtype *v) {                                     \
        vtype *found = name##_lookup(k);                                               \
        if (!found)                                                                    \
            return name##_insert(k, v);                                                \
        *found = *v;                                                                   \
        return 0;                                                                      \
    }                                                                                  \
    static int name##_delete(ktype *k) {                                               \
        for (int i = 0; i < USER_HASH_ENTRIES; i++)                                    \
            if (name##_slots[i].used && !memcmp(&name##_slots[i].k, k, sizeof(*k))) { \
                name##_slots[i].used = 0;                                              \
                return 0;                                                              \
            }                                                                          \
        return -2;                                                                     \
    }                                                                                  \
    static struct {                                                                    \
        vtype *(*lookup)(ktype *);                                                     \
        int (*insert)(ktype *, vtype *);                                               \
        int (*update)(ktype *, vtype *);                                               \
        int (*delete)(ktype *);                                                        \
    } name = {name##_lookup, name##_insert, name##_update, name##_delete}

#endif
