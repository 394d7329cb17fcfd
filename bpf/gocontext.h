/* Values in a context.Context chain, read in place.
 *
 * A Context is an interface value: its itab carries the dynamic type's hash, which tells the
 * standard library's context types apart (TYPEHASH_* macros, resolved from the binary). A
 * *valueCtx holds a key and a value (empty interfaces, whose first word is the type, hash
 * included); it and *cancelCtx / *timerCtx hold their parent Context in a known field. Any
 * other type ends the walk: its layout is unknown.
 */
#ifndef GOTRACE_GOCONTEXT_H
#define GOTRACE_GOCONTEXT_H

#include "goabi.h"

#ifdef HAS_GOCONTEXT  /* defined with the macros below, when the binary's layout has them */

#define CTX_MAX_DEPTH 8  /* contexts visited, from the given one towards the root */

/* A *valueCtx's parent, key and value, read at once (a window, bpf/goabi.h). */
#define VALUECTX_WINDOW MAX3(END_OF(OFF_context_valueCtx_Context, struct go_iface), \
                             END_OF(OFF_context_valueCtx_key, struct go_iface), \
                             END_OF(OFF_context_valueCtx_val, struct go_iface))
_Static_assert(VALUECTX_WINDOW <= 64, "context.valueCtx's fields are not at its start");

/* Where a context of the standard library's types (by its itab's type hash) keeps its parent
 * Context; 0 for any other type, whose layout is unknown. */
static __always_inline __u64 context_parent(__u32 type, __u64 data) {
    if (type == TYPEHASH_ptr_context_valueCtx)
        return data + OFF_context_valueCtx_Context;
    if (type == TYPEHASH_ptr_context_cancelCtx)
        return data + OFF_context_cancelCtx_Context;
    if (type == TYPEHASH_ptr_context_timerCtx)
        return data + OFF_context_timerCtx_cancelCtx + OFF_context_cancelCtx_Context;
    return 0;
}

/* The data word of the value stored under a key whose type hash is key_hash, in the context
 * c (a Context interface value, already read) or its ancestors; 0 when none is found. */
static __always_inline __u64 context_value(struct go_iface c, __u32 key_hash) {
#pragma unroll
    for (int i = 0; i < CTX_MAX_DEPTH; i++) {
        if (!c.tab || !c.data)
            return 0;
        __u32 type = itab_type(c.tab);
        if (type == TYPEHASH_ptr_context_valueCtx) {
            __u64 v[(VALUECTX_WINDOW + 7) / 8];
            if (bpf_probe_read_user(v, sizeof(v), (void *)c.data) != 0)
                return 0;
            struct go_iface key = *(struct go_iface *)((__u8 *)v + OFF_context_valueCtx_key);
            if (key.tab && read_u32(key.tab + OFF_internal_abi_Type_Hash) == key_hash)
                return ((struct go_iface *)((__u8 *)v + OFF_context_valueCtx_val))->data;
            c = *(struct go_iface *)((__u8 *)v + OFF_context_valueCtx_Context);
            continue;
        }
        __u64 parent = context_parent(type, c.data);
        if (!parent)
            return 0;
        c.tab = 0;
        c.data = 0;
        bpf_probe_read_user(&c, sizeof(c), (void *)parent);
    }
    return 0;
}

#endif  /* HAS_GOCONTEXT */
#endif
