/* julienschmidt/httprouter's route: (*Router).ServeHTTP looks the request's path up with
 * (*node).getValue(n, path string) on the goroutine of the request's handler, n (the root of
 * the method's tree) in RAX, path in RBX and RCX. httprouter keeps no template once a route
 * is registered, so the record names the tree, the routed path's length (shorter than the
 * request's under http.StripPrefix) and the node layout, and gotrace matches the path there
 * (bpf/route_site.h route_by_tree). One uprobe hit per request (more for its 405 answers).
 */

#include "counters.h"
#include "route_site.h"

#define HR_PATH OFF_github_com_julienschmidt_httprouter_node_path
#define HR_WILD_CHILD OFF_github_com_julienschmidt_httprouter_node_wildChild
#define HR_TYPE OFF_github_com_julienschmidt_httprouter_node_nType
#define HR_INDICES OFF_github_com_julienschmidt_httprouter_node_indices
#define HR_CHILDREN OFF_github_com_julienschmidt_httprouter_node_children
#define HR_HANDLE OFF_github_com_julienschmidt_httprouter_node_handle
_Static_assert(HR_PATH < 256 && HR_WILD_CHILD < 256 && HR_TYPE < 256 && HR_INDICES < 256
               && HR_CHILDREN < 256 && HR_HANDLE < 256,
               "httprouter's node layout is sent a byte per field");
/* The node's field offsets, a byte each, in gotrace/probes/route_tree.py NodeLayout's order. */
#define HR_NODE_LAYOUT ((__u64)HR_PATH | (__u64)HR_WILD_CHILD << 8 | (__u64)HR_TYPE << 16 \
    | (__u64)HR_INDICES << 24 | (__u64)HR_CHILDREN << 32 | (__u64)HR_HANDLE << 40)

int httprouter_route(struct pt_regs *ctx) {
    count_hit(PROBE_HTTPROUTER_ROUTE);
    route_by_tree(GO_G(ctx), GO_ARG1(ctx), GO_ARG2(ctx), (__s64)GO_ARG3(ctx), HR_NODE_LAYOUT);
    return 0;
}
