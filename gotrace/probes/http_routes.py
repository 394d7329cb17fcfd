"""http.route: the record's route field as text (net/http ServeMux's pattern); with
F_ROUTE_REFS, references to the matched router's template strings in the traced process
(bpf/route.h), read from its memory once per distinct route; with F_ROUTE_TREE, the tree the
router matched the path in (gotrace/probes/route_tree.py).

A router's template is given as the router writes it (none for a 405, which the routers
answer themselves), with two normalisations:
* parts (chi's mounted sub-routers, one pattern each) are joined as chi joins them: a part
  ending in "/*" that another follows is the mount point, and loses its "/*";
* a variable's regular expression is left out, `{name:[0-9]+}` becoming `{name}`: gorilla/mux
  and chi keep it in the template, where it can be hundreds of characters, and what names the
  route is the variable.
"""

from __future__ import annotations

import struct

from gotrace.probes.route_tree import NodeLayout, match
from gotrace.procfs import read_memory
from gotrace.records import F_ROUTE_REFS, F_ROUTE_TREE, SpanRecord, char_field, text

_REFERENCE = struct.Struct("<Qq")  # a Go string header: address, length
MAX_TEMPLATE = 4096  # longer than any template; a longer reference is not one
MAX_ROUTES = 4096  # distinct (process, references) remembered; then forgotten all at once
_routes: dict[tuple[int, bytes], str] = {}
_tree_routes: dict[tuple[int, bytes, bytes], str] = {}
METHOD_NOT_ALLOWED = 405


def route_template(rec: SpanRecord) -> str:
    """The record's http.route; "" when none is known."""
    raw = char_field(rec, "route")
    if not rec.flags & (F_ROUTE_REFS | F_ROUTE_TREE):
        return servemux_route(text(raw))
    if rec.status == METHOD_NOT_ALLOWED:
        # The router's own answer: the path has a route, for other methods only. Routers
        # disagree on whether to name it (echo does, gin, chi, gorilla/mux do not): none do
        # here, so that a route's series holds the requests it served.
        return ""
    if rec.flags & F_ROUTE_TREE:
        return _tree_route(rec, raw)
    key = (rec.pid, raw)
    found = _routes.get(key)
    if found is None:
        if len(_routes) >= MAX_ROUTES:
            _routes.clear()
        found = _routes[key] = _read_template(*key)
    return found


def _tree_route(rec: SpanRecord, raw: bytes) -> str:
    """The route of a router that keeps only a tree (F_ROUTE_TREE): the request's path, as
    the router saw it, matched there. A path the router saw shortened (http.StripPrefix in
    front of it) keeps the prefix it lost: the route is then the whole path's."""
    root, routed_length = _REFERENCE.unpack_from(raw, 0)
    layout, _ = _REFERENCE.unpack_from(raw, _REFERENCE.size)
    field = char_field(rec, "path")
    path = field.partition(b"\0")[0]
    # A path that filled the field may have lost its end, and the routed part with it.
    if not 0 < routed_length <= len(path) < len(field):
        return ""
    key = (rec.pid, raw, path)
    found = _tree_routes.get(key)
    if found is None:
        if len(_tree_routes) >= MAX_ROUTES:
            _tree_routes.clear()
        cut = len(path) - routed_length
        routed = path[cut:].decode("utf-8", "replace")
        template = match(rec.pid, root, NodeLayout.unpack(layout), routed)
        found = _tree_routes[key] = (path[:cut].decode("utf-8", "replace") + template
                                     if template else "")
    return found


def servemux_route(pattern: str) -> str:
    """A ServeMux pattern '[METHOD ][HOST]/path' as a route: its path."""
    slash = pattern.find("/")
    return pattern[slash:] if slash >= 0 else ""


def _read_template(pid: int, references: bytes) -> str:
    parts = []
    for address, length in _REFERENCE.iter_unpack(references):
        if not address:
            break
        if not 0 < length <= MAX_TEMPLATE:
            return ""
        data = read_memory(pid, address, length)
        if data is None:
            return ""  # the process is gone: the route is not known
        parts.append(data.decode("utf-8", "replace"))
    return without_expressions(join_parts(parts))


def join_parts(parts: list[str]) -> str:
    """Mounted routers' patterns, outermost first, as one template."""
    joined = [part[:-2] if part.endswith("/*") and i + 1 < len(parts) else part
              for i, part in enumerate(parts)]
    return "".join(joined)


def without_expressions(template: str) -> str:
    """'{name:regexp}' variables as '{name}'; braces inside the regexp are balanced."""
    if "{" not in template:
        return template
    out: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if char != "{":
            out.append(char)
            i += 1
            continue
        end = _closing_brace(template, i)
        if end < 0:
            out.append(template[i:])
            break
        out.append("{" + template[i + 1:end].partition(":")[0] + "}")
        i = end + 1
    return "".join(out)


def _closing_brace(template: str, start: int) -> int:
    depth = 0
    for i in range(start, len(template)):
        if template[i] == "{":
            depth += 1
        elif template[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return -1
