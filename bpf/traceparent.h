/* Continue an incoming W3C trace context: look "traceparent" up, ignoring case, in a
 * map[string][]string (a request's http.Header, which holds it as "Traceparent", or a gRPC
 * stream's metadata.MD, which holds it lowercase) and parse the first value.
 *
 * gotrace/probes/features.py defines HAS_TRACEPARENT, and with it what follows, only when
 * the traced binary's map layout is resolved. Besides the OFF_* struct fields it passes:
 *   GOMAP_SWISS         1: Go 1.24+ swiss tables (internal/runtime/maps); 0: runtime.hmap
 *   GOMAP_CHUNK_SIZE    bytes of one bucket (hmap) or one group (swiss), read with one call
 *   GOMAP_KEYS_OFF, GOMAP_KEY_STRIDE    slot i's key (a string header) within a chunk
 *   GOMAP_ELEMS_OFF, GOMAP_ELEM_STRIDE  slot i's value (a []string header) within a chunk
 *   GOMAP_OVERFLOW_OFF  hmap only: the bucket's overflow-bucket pointer
 *   GOMAP_PTR_SIZE      a pointer (directory entries)
 * The derivation of each is in gotrace/probes/features.py.
 *
 * The key's hash cannot be computed here (it is seeded per map), so buckets / groups are
 * scanned, with constant bounds: one look-up takes at most TP_MAX_STEPS steps (a step reads
 * one chunk, or enters a table / the old bucket array). Covered completely: an hmap of up to
 * 2^4 buckets (104 entries; while it grows, its old array too) and swiss tables of up to 16
 * groups (112 entries). In a bigger header map the key may be missed; the span then simply
 * starts its own trace.
 */
#ifndef GOTRACE_TRACEPARENT_H
#define GOTRACE_TRACEPARENT_H

#include "goabi.h"
#include "record.h"
#include "sampling.h"

#ifdef HAS_TRACEPARENT  /* defined with the macros below, when the binary's layout has them */

#define GOMAP_SLOTS 8             /* entries per bucket / group: abi.MapBucketCount, MapGroupSlots */
#define GOMAP_MIN_TOPHASH 5       /* hmap: tophash below this = empty or evacuated slot */
#define GOMAP_SAME_SIZE_GROW 8    /* hmap.flags: oldbuckets is as big as buckets */
#define GOMAP_CTRL_EMPTY_BIT 0x80 /* swiss: control byte with this bit = empty or deleted */

#define GOMAP_MAX_BUCKETS 16  /* hmap: buckets visited per bucket array (all of them up to B=4) */
#define GOMAP_MAX_CHAIN 3     /* hmap: a bucket and up to 2 overflow buckets */
#define GOMAP_MAX_TABLES 4    /* swiss: directory entries visited */
#define GOMAP_MAX_GROUPS 16   /* swiss: groups visited per table (capacity up to 128) */
#define TP_MAX_STEPS 40       /* loop steps per look-up: chunks read + tables / arrays entered */

#define TP_KEY_LEN 11 /* "traceparent" */
#define TP_LEN 55     /* "00-" 32 hex "-" 16 hex "-" 2 hex */

#define TP_BUF_SIZE 512
_Static_assert(GOMAP_CHUNK_SIZE <= TP_BUF_SIZE, "map bucket/group larger than the buffer");
_Static_assert(GOMAP_KEYS_OFF + (GOMAP_SLOTS - 1) * GOMAP_KEY_STRIDE + sizeof(struct go_string)
                   <= GOMAP_CHUNK_SIZE, "keys outside the chunk");
_Static_assert(GOMAP_ELEMS_OFF + (GOMAP_SLOTS - 1) * GOMAP_ELEM_STRIDE + sizeof(struct go_slice)
                   <= GOMAP_CHUNK_SIZE, "values outside the chunk");

struct traceparent_scratch {
    __u8 chunk[TP_BUF_SIZE];  /* the bucket or group being scanned */
    struct go_slice value;    /* the []string found under the key */
    __u8 key[16];             /* a candidate key's bytes */
    __u8 text[64];            /* the header value: 55 characters and the one after */
    __u8 ids[24];             /* parsed: trace id 0-15, parent id 16-23 */
    /* The walk's state. It lives in map memory on purpose: what the program loads from here
     * is an unknown number to the verifier, so all paths through one loop iteration meet
     * again at the next one. Counters kept in registers would be tracked exactly, and every
     * combination of them would be verified separately. */
    __u64 base;     /* bucket / group array being walked */
    __s64 i, n;     /* next index in it, and how many to visit */
    __u64 next;     /* hmap: overflow bucket to visit next, 0 for none */
    __s64 chain;    /* hmap: overflow buckets visited in the current chain */
    __u64 old;      /* hmap: oldbuckets, still to walk */
    __s64 n_old;
    __u64 dir;      /* swiss: the directory */
    __s64 d, dir_n; /* swiss: next directory entry, entries to visit */
    __u64 prev;     /* swiss: the table last visited */
};

BPF_PERCPU_ARRAY(traceparent_scratch, struct traceparent_scratch, 1);

/* "tracepar" and "ent" as little-endian words. Setting bit 5 of every byte lowercases an
 * ASCII letter, and only a letter's two cases become a given lowercase letter that way. */
#define TP_KEY_LO (BYTE_AT('t', 0) | BYTE_AT('r', 1) | BYTE_AT('a', 2) | BYTE_AT('c', 3) | \
                   BYTE_AT('e', 4) | BYTE_AT('p', 5) | BYTE_AT('a', 6) | BYTE_AT('r', 7))
#define TP_KEY_HI (BYTE_AT('e', 0) | BYTE_AT('n', 1) | BYTE_AT('t', 2))
#define TP_LOWER_8 0x2020202020202020ULL
#define TP_LOWER_3 0x202020ULL

static __always_inline int tp_key_matches(struct traceparent_scratch *s, __u64 ptr) {
    __builtin_memset(s->key, 0, sizeof(s->key));
    if (!ptr || bpf_probe_read_user(s->key, TP_KEY_LEN, (void *)ptr) != 0)
        return 0;
    return (*(__u64 *)s->key | TP_LOWER_8) == TP_KEY_LO &&
           (*(__u64 *)(s->key + 8) | TP_LOWER_3) == TP_KEY_HI;
}

/* Read the bucket/group at addr and look for the key among its full slots.
 * 1: found (its value is in s->value), 0: not here, -1: unreadable. */
static __always_inline int tp_scan_chunk(struct traceparent_scratch *s, __u64 addr) {
    if (bpf_probe_read_user(s->chunk, GOMAP_CHUNK_SIZE, (void *)addr) != 0)
        return -1;
#pragma unroll
    for (int i = 0; i < GOMAP_SLOTS; i++) {
        __u8 c = s->chunk[i]; /* hmap: tophash[i]; swiss: byte i of the control word */
#if GOMAP_SWISS
        if (c & GOMAP_CTRL_EMPTY_BIT)
            continue;
#else
        if (c < GOMAP_MIN_TOPHASH)
            continue;
#endif
        struct go_string *k = (struct go_string *)(s->chunk + GOMAP_KEYS_OFF + i * GOMAP_KEY_STRIDE);
        if (k->len != TP_KEY_LEN || !tp_key_matches(s, k->ptr))
            continue;
        __builtin_memcpy(&s->value, s->chunk + GOMAP_ELEMS_OFF + i * GOMAP_ELEM_STRIDE,
                         sizeof(s->value));
        return 1;
    }
    return 0;
}

#if GOMAP_SWISS
/* internal/runtime/maps.Map: dirLen == 0 -> dirPtr is the one group of a small map; else
 * dirPtr is an array of dirLen *table (a table spanning several entries repeats, in a row),
 * each table with groups.data (lengthMask + 1 groups). One step visits a group or a
 * directory entry. */
#define TP_MAP_WINDOW MAX2(END_OF(OFF_internal_runtime_maps_Map_dirPtr, __u64), \
                           END_OF(OFF_internal_runtime_maps_Map_dirLen, __u64))
#define TP_GROUPS_WINDOW \
    MAX2(END_OF(OFF_internal_runtime_maps_groupsReference_data, __u64), \
         END_OF(OFF_internal_runtime_maps_groupsReference_lengthMask, __u64))
_Static_assert(TP_MAP_WINDOW <= 64 && TP_GROUPS_WINDOW <= 64, "a map's header is too large");

static __always_inline int tp_find(struct traceparent_scratch *s, __u64 m) {
    __u64 head[(TP_MAP_WINDOW + 7) / 8];  /* the Map's directory pointer and length */
    if (bpf_probe_read_user(head, sizeof(head), (void *)m) != 0)
        return 0;
    __u64 dir = WINDOW_U64((__u8 *)head, OFF_internal_runtime_maps_Map_dirPtr);
    __s64 dir_len = (__s64)WINDOW_U64((__u8 *)head, OFF_internal_runtime_maps_Map_dirLen);
    if (!dir)
        return 0;
    s->base = dir_len == 0 ? dir : 0;
    s->i = 0;
    s->n = dir_len == 0 ? 1 : 0;
    s->dir = dir;
    s->d = 0;
    s->dir_n = dir_len > GOMAP_MAX_TABLES ? GOMAP_MAX_TABLES : dir_len;
    s->prev = 0;
    for (int step = 0; step < TP_MAX_STEPS; step++) {
        if (s->i < s->n) {
            int r = tp_scan_chunk(s, s->base + (__u64)s->i * GOMAP_CHUNK_SIZE);
            if (r)
                return r > 0;
            s->i++;
            continue;
        }
        if (s->d >= s->dir_n)
            break;
        __u64 t = read_u64(s->dir + (__u64)s->d * GOMAP_PTR_SIZE);
        s->d++;
        if (!t || t == s->prev)
            continue;
        s->prev = t;
        __u64 groups[(TP_GROUPS_WINDOW + 7) / 8] = {};  /* the table's groupsReference */
        bpf_probe_read_user(groups, sizeof(groups),
                            (void *)(t + OFF_internal_runtime_maps_table_groups));
        __u8 *g = (__u8 *)groups;
        __u64 mask = WINDOW_U64(g, OFF_internal_runtime_maps_groupsReference_lengthMask);
        s->base = WINDOW_U64(g, OFF_internal_runtime_maps_groupsReference_data);
        s->i = 0;
        s->n = !s->base ? 0 : mask >= GOMAP_MAX_GROUPS ? GOMAP_MAX_GROUPS : mask + 1;
    }
    return 0;
}
#else
/* runtime.hmap: 2^B buckets, each with a chain of overflow buckets. While the map grows,
 * oldbuckets (2^(B-1) buckets, or 2^B for a same-size grow) still holds the entries of every
 * bucket not yet evacuated; an evacuated one has tophash[0] in 2..4 and its chain is not
 * followed. One step visits a bucket. */
#define TP_HMAP_WINDOW MAX2(MAX2(END_OF(OFF_runtime_hmap_B, __u8), \
                                END_OF(OFF_runtime_hmap_flags, __u8)), \
                           MAX2(END_OF(OFF_runtime_hmap_buckets, __u64), \
                                END_OF(OFF_runtime_hmap_oldbuckets, __u64)))
_Static_assert(TP_HMAP_WINDOW <= 64, "runtime.hmap's header is too large");

static __always_inline int tp_find(struct traceparent_scratch *s, __u64 h) {
    __u64 head[(TP_HMAP_WINDOW + 7) / 8];  /* B, flags and the bucket arrays */
    if (bpf_probe_read_user(head, sizeof(head), (void *)h) != 0)
        return 0;
    __u8 b_log = ((__u8 *)head)[OFF_runtime_hmap_B];
    __u8 flags = ((__u8 *)head)[OFF_runtime_hmap_flags];
    __u32 old_log = b_log > 0 && !(flags & GOMAP_SAME_SIZE_GROW) ? b_log - 1 : b_log;
    s->base = WINDOW_U64((__u8 *)head, OFF_runtime_hmap_buckets);
    s->i = 0;
    s->n = b_log >= 4 ? GOMAP_MAX_BUCKETS : 1 << b_log;
    s->next = 0;
    s->chain = 0;
    s->old = WINDOW_U64((__u8 *)head, OFF_runtime_hmap_oldbuckets);
    s->n_old = old_log >= 4 ? GOMAP_MAX_BUCKETS : 1 << old_log;
    for (int step = 0; step < TP_MAX_STEPS; step++) {
        __u64 b = s->next;
        if (b) {
            s->chain++;
        } else if (s->base && s->i < s->n) {
            b = s->base + (__u64)s->i * GOMAP_CHUNK_SIZE;
            s->i++;
            s->chain = 0;
        } else if (s->old) {
            s->base = s->old;
            s->n = s->n_old;
            s->i = 0;
            s->old = 0;
            continue;
        } else {
            break;
        }
        int r = tp_scan_chunk(s, b);
        if (r)
            return r > 0;
        __u8 top0 = s->chunk[0];
        int evacuated = top0 > 1 && top0 < GOMAP_MIN_TOPHASH;
        s->next = s->chain + 1 < GOMAP_MAX_CHAIN && !evacuated
                      ? *(__u64 *)(s->chunk + GOMAP_OVERFLOW_OFF)
                      : 0;
    }
    return 0;
}
#endif

/* 1 when c is a lowercase hex digit (the only ones W3C trace context allows), else 0.
 * Arithmetic, no branches: a branch per character would double the verifier's paths. */
static __always_inline __u64 tp_is_hex(__u64 c) {
    __s64 d = (__s64)c - '0', e = (__s64)c - 'a';
    /* x in [0, lim) <=> x >= 0 and x - lim < 0: both sign bits of ~x and x - lim set. */
    return ((__u64)((~d & (d - 10)) | (~e & (e - 6))) >> 63) & 1;
}

/* The value of a hex digit (meaningful only when tp_is_hex): '0'-'9' are 0x30-0x39, 'a'-'f'
 * are 0x61-0x66, whose bit 6 adds the 9 that takes 1-6 to 10-15. */
static __always_inline __u8 tp_hex_value(__u64 c) {
    return (c & 0xf) + 9 * ((c >> 6) & 1);
}

/* Parse s->text (len: the whole header value's length) into s->ids; 1 when valid. */
static __always_inline int tp_parse(struct traceparent_scratch *s, __s64 len) {
    __u8 *t = s->text;
    __u64 hex_ok = tp_is_hex(t[0]) & tp_is_hex(t[1]) & tp_is_hex(t[53]) & tp_is_hex(t[54]);
    __u8 trace_any = 0, parent_any = 0;
    /* Not unrolled: 24 small steps (the trace id's 16 bytes from offset 3, the parent id's 8
     * from offset 36) cost the verifier little, and unrolled they overflow the stack. */
#pragma clang loop unroll(disable)
    for (int i = 0; i < 24; i++) {
        int pos = i < 16 ? 3 + 2 * i : 4 + 2 * i;
        __u64 h = t[pos], l = t[pos + 1];
        hex_ok &= tp_is_hex(h) & tp_is_hex(l);
        __u8 b = tp_hex_value(h) << 4 | tp_hex_value(l);
        s->ids[i] = b;
        if (i < 16)
            trace_any |= b;
        else
            parent_any |= b;
    }
    if (!hex_ok || !trace_any || !parent_any)
        return 0;
    if (t[2] != '-' || t[35] != '-' || t[52] != '-')
        return 0;
    __u8 version = tp_hex_value(t[0]) << 4 | tp_hex_value(t[1]);
    if (version == 0xff)
        return 0;
    /* Version 00 is exactly 55 characters; a later version may append "-..." fields. */
    if (len != TP_LEN && (version == 0 || t[TP_LEN] != '-'))
        return 0;
    return 1;
}

/* m: a map[string][]string (the map pointer itself). */
static __always_inline void read_traceparent(struct span_record *rec, __u64 m) {
    if (!m)
        return;
    __u32 zero = 0;
    struct traceparent_scratch *s = traceparent_scratch.lookup(&zero);
    if (!s)
        return;
    if (!tp_find(s, m) || s->value.len < 1 || !s->value.ptr)
        return;
    struct go_string str = {};
    if (bpf_probe_read_user(&str, sizeof(str), (void *)s->value.ptr) != 0 || !str.ptr)
        return;
    if (str.len < TP_LEN)
        return;
    /* The 55 characters, and for a longer value the one after (it must be '-'). */
    int err = str.len == TP_LEN
                  ? bpf_probe_read_user(s->text, TP_LEN, (void *)str.ptr)
                  : bpf_probe_read_user(s->text, TP_LEN + 1, (void *)str.ptr);
    if (err != 0 || !tp_parse(s, str.len))
        return;
    __builtin_memcpy(rec->trace_id, s->ids, 16);
    __builtin_memcpy(rec->parent_span_id, s->ids + 16, 8);
    rec->flags |= SPAN_F_HAS_PARENT | SPAN_F_REMOTE_PARENT;
    remote_decision(rec, tp_hex_value(s->text[54]));  /* the flags' low hex digit */
}

#endif  /* HAS_TRACEPARENT */
#endif
