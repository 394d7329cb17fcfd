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
    return http_server_inflight.lookup(&by_g);
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
        st->rec.flags &= ~SPAN_F_ROUTE_REFS;
        return;
    }
    st->rec.flags |= SPAN_F_ROUTE_REFS;
    st->route.object = 0;
}

/* The router fills object for this request: its route is read when the response is complete
 * (bpf/route.h read_route_source), if object still names the request then. */
static __always_inline void route_later(__u64 g, struct route_source src) {
    struct http_server_inflight *st = routed_request(g);
    if (!st)
        return;
    st->route = src;
    __builtin_memset(st->rec.route, 0, SPAN_ROUTE_LEN);
    st->rec.flags &= ~SPAN_F_ROUTE_REFS;
}

#endif
