/* A request's route template, as the router that matched it holds it.
 *
 * The record's route field carries either text (net/http's ServeMux pattern, read by the
 * server probe) or, with SPAN_F_ROUTE_REFS, up to ROUTE_PARTS references to Go strings in
 * the traced process: (address, length) pairs that gotrace reads from the process once per
 * distinct route (gotrace/probes/http_routes.py). Routers keep their templates in strings
 * made when the routes were registered, which live as long as the router; sending their
 * address costs the kernel no copy and no length limit.
 *
 * A router probe (bpf/route_site.h) runs on the request's goroutine while the router
 * handles it. Either the route is known there and immutable (a matched route object:
 * route_now), or the router fills a per-request object of its own that the probe names
 * (route_source), read here when the response is complete. Such objects are pooled by the
 * routers and may serve another request by then, so the object must still name this
 * request: its *http.Request is ours, or its request's context descends from ours.
 */
#ifndef GOTRACE_ROUTE_H
#define GOTRACE_ROUTE_H

#include "goabi.h"
#include "gocontext.h"
#include "record.h"

#define ROUTE_PARTS 4  /* 16-byte references in the record's 64-byte route field */
_Static_assert(ROUTE_PARTS * sizeof(struct go_string) == SPAN_ROUTE_LEN,
               "the route field holds ROUTE_PARTS string references");

/* How a per-request object names its request. */
#define ROUTE_NAMES_REQUEST 1  /* a *http.Request field */
#define ROUTE_NAMES_CONTEXT 2  /* a context.Context field (the request's, or one under it) */

struct route_source {
    __u64 object;     /* the router's per-request object; 0: none */
    __u64 not_route;  /* a route string whose bytes are here is the request's path (unmatched) */
    __u16 route_off;  /* a Go string, or with parts > 1 a []string joined in order */
    __u16 names_off;  /* where the object names its request */
    __u8 parts;
    __u8 names;       /* ROUTE_NAMES_* */
    __u8 levels;      /* router levels that named the object (chi: one per mounted router) */
    __u8 _pad;
};

#if defined(HAS_GOCONTEXT) && defined(OFF_net_http_Request_ctx)
#define ROUTE_CTX_DEPTH 4  /* contexts above the request's that a router's may be */

/* Whether the context whose data word is ctx descends from the one whose data word is ours
 * (or is it), through the standard library's context types. */
static __always_inline int context_descends(struct go_iface ctx, __u64 ours) {
#pragma unroll
    for (int i = 0; i < ROUTE_CTX_DEPTH; i++) {
        if (!ctx.data)
            return 0;
        if (ctx.data == ours)
            return 1;
        __u64 parent = context_parent(itab_type(ctx.tab), ctx.data);
        if (!parent)
            return 0;
        ctx.tab = 0;
        ctx.data = 0;
        bpf_probe_read_user(&ctx, sizeof(ctx), (void *)parent);
    }
    return 0;
}

static __always_inline __u64 request_context(__u64 req) {
    return read_u64(req + OFF_net_http_Request_ctx + 8);  /* the interface's data word */
}

/* Whether the router's object, whose naming word(s) are at named, still serves request req:
 * another request may have taken it from the router's pool since. */
static __always_inline int names_request(const struct route_source *src, __u8 *named, __u64 req) {
    struct go_iface ctx;
    if (src->names == ROUTE_NAMES_REQUEST) {
        __u64 theirs = *(__u64 *)named;
        if (theirs == req)
            return 1;
        /* A middleware replaced the request (r.WithContext): its context descends from ours. */
        ctx.tab = 0;
        ctx.data = 0;
        bpf_probe_read_user(&ctx, sizeof(ctx), (void *)(theirs + OFF_net_http_Request_ctx));
    } else {
        ctx = *(struct go_iface *)named;
    }
    return context_descends(ctx, request_context(req));
}
#else
/* Without the context layout, only the request itself is recognised. */
static __always_inline int names_request(const struct route_source *src, __u8 *named, __u64 req) {
    return src->names == ROUTE_NAMES_REQUEST && *(__u64 *)named == req;
}
#endif

/* The route references of src's object into rec, when it still serves request req. Uses
 * window slot 0. */
static __always_inline void read_route_source(struct span_record *rec,
                                              const struct route_source *src, __u64 req) {
    __u32 route_off = src->route_off & (WINDOW_SIZE / 2 - 1);
    __u32 names_off = src->names_off & (WINDOW_SIZE / 2 - 1);
    __u32 size = MAX2(route_off + sizeof(struct go_slice), names_off + sizeof(struct go_iface));
    __u8 *w = read_window(0, src->object, size & (WINDOW_SIZE - 1));
    if (!w || !names_request(src, w + names_off, req))
        return;
    struct go_string *refs = (struct go_string *)rec->route;
    if (src->parts <= 1) {
        struct go_string route = *(struct go_string *)(w + route_off);
        if (!route.ptr || route.len <= 0 || route.ptr == src->not_route)
            return;
        refs[0] = route;
    } else {
        struct go_slice patterns = *(struct go_slice *)(w + route_off);
        /* A level whose router matched nothing (a 404 or 405 inside a mounted router)
         * added no part: the parts so far name the mount, not a route. More parts than
         * the record holds: no route rather than a part of one. */
        if (!patterns.ptr || patterns.len != src->levels || patterns.len > ROUTE_PARTS)
            return;
        __u32 bytes = (__u32)patterns.len * sizeof(struct go_string);
        if (bytes > SPAN_ROUTE_LEN)
            return;
        if (bpf_probe_read_user(refs, bytes, (void *)patterns.ptr) != 0)
            return;
    }
    rec->flags |= SPAN_F_ROUTE_REFS;
}

#endif
