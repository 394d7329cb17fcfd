/* What a router's probe does on the goroutine that runs the request's handler: name where
 * the request's route is (bpf/route.h), in the span the server probe keeps for it. A request
 * the server probe does not trace (none in flight on the goroutine) is left alone.
 */
#ifndef GOTRACE_ROUTE_SITE_H
#define GOTRACE_ROUTE_SITE_H

#include "goabi.h"
#include "http_server.h"
#include "route.h"

static __always_inline struct http_server_inflight *routed_request(__u64 g) {
    struct go_key by_g = go_key(g);
    struct http_server_inflight *st = http_server_inflight.lookup(&by_g);
    return st && st->response ? st : 0;
}

/* The route is the Go string at template, fixed for as long as the router lives (a matched
 * route object's template): referenced now. The innermost router to say wins. */
static __always_inline void route_now(__u64 g, __u64 template) {
    struct http_server_inflight *st = routed_request(g);
    if (!st)
        return;
    struct go_string *refs = (struct go_string *)st->rec.route;
    __builtin_memset(refs, 0, SPAN_ROUTE_LEN);
    if (bpf_probe_read_user(refs, sizeof(*refs), (void *)template) != 0 || !refs->ptr
        || refs->len <= 0) {
        __builtin_memset(refs, 0, SPAN_ROUTE_LEN);
        st->rec.flags &= ~(SPAN_F_ROUTE_REFS | SPAN_F_ROUTE_TREE);
        return;
    }
    st->rec.flags = (st->rec.flags & ~SPAN_F_ROUTE_TREE) | SPAN_F_ROUTE_REFS;
    st->route.object = 0;
}

/* The router fills object for this request: its route is read when the response is complete
 * (bpf/route.h read_route_source), if object still names the request then. A router that
 * names the same object again is one level further in (a mounted sub-router). */
static __always_inline void route_later(__u64 g, struct route_source src) {
    struct http_server_inflight *st = routed_request(g);
    if (!st)
        return;
    if (st->route.object == src.object) {
        if (st->route.levels < 255)
            st->route.levels++;
        return;
    }
    src.levels = 1;
    st->route = src;
    __builtin_memset(st->rec.route, 0, SPAN_ROUTE_LEN);
    st->rec.flags &= ~(SPAN_F_ROUTE_REFS | SPAN_F_ROUTE_TREE);
}

/* The router looks the request's path up in the tree at root: gotrace matches it there
 * (gotrace/probes/route_tree.py), reading the nodes at the offsets in layout. A router
 * that asks again with the same path is looking for the methods the path has (its 405 and
 * OPTIONS answers), not routing the request: the first ask stands. */
static __always_inline void route_by_tree(__u64 g, __u64 root, __u64 path, __s64 path_len,
                                          __u64 layout) {
    struct http_server_inflight *st = routed_request(g);
    if (!st || ((st->rec.flags & SPAN_F_ROUTE_TREE) && st->route.not_route == path))
        return;
    struct go_string *refs = (struct go_string *)st->rec.route;
    __builtin_memset(refs, 0, SPAN_ROUTE_LEN);
    refs[0].ptr = root;
    refs[0].len = path_len;
    refs[1].ptr = layout;
    st->rec.flags = (st->rec.flags & ~SPAN_F_ROUTE_REFS) | SPAN_F_ROUTE_TREE;
    st->route.object = 0;
    st->route.not_route = path;
}

#endif
