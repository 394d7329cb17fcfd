"""julienschmidt/httprouter's routes. The router keeps no template once a route is registered:
its tree of nodes holds the pieces (static path parts, ":name" and "/*name" wildcards). The
probe (bpf/httprouter.c) names the tree the router looked the request's path up in; here the
path is matched in that tree as httprouter matches it (its getValue), and the template is the
pieces of the nodes passed on the way. Nodes are read from the traced process once each: a
tree does not change once the program serves.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from gotrace.procfs import read_memory

PARAM, CATCH_ALL = 2, 3  # httprouter's nodeType values (static 0, root 1)
_STRING = struct.Struct("<Qq")
_SLICE = struct.Struct("<Qqq")
_MAX_TEXT = 4096  # a node's path or indices longer than this is not one
_MAX_CHILDREN = 256  # indices are bytes: no node has more children
_MAX_DEPTH = 256  # nodes passed on one match, at most (a path has fewer parts)
MAX_NODES = 65536  # nodes remembered; then forgotten all at once


class NodeLayout(NamedTuple):
    """Field offsets of httprouter's node, sent a byte each by the probe (HR_NODE_LAYOUT)."""

    path: int
    wild_child: int
    node_type: int
    indices: int
    children: int
    handle: int

    @classmethod
    def unpack(cls, word: int) -> NodeLayout:
        return cls(*((word >> (8 * i)) & 0xFF for i in range(6)))

    @property
    def size(self) -> int:
        return max(self.path + 16, self.indices + 16, self.children + 24, self.handle + 8,
                   self.wild_child + 1, self.node_type + 1)


class Node(NamedTuple):
    path: str
    wild_child: bool
    node_type: int
    indices: str
    children: tuple[int, ...]  # addresses
    has_handle: bool


_nodes: dict[tuple[int, int], Node | None] = {}


def match(pid: int, root: int, layout: NodeLayout, path: str) -> str | None:
    """The template of the route path takes in the tree at root; None when no route does."""
    pieces: list[str] = []
    node = _node(pid, root, layout)
    for _ in range(_MAX_DEPTH):
        if node is None:
            return None
        prefix = node.path
        if path == prefix:
            pieces.append(prefix)
            return "".join(pieces) if node.has_handle else None
        if len(path) <= len(prefix) or not path.startswith(prefix):
            return None
        pieces.append(prefix)
        path = path[len(prefix):]
        if not node.wild_child:
            at = node.indices.find(path[0])
            if at < 0 or at >= len(node.children):
                return None
            node = _node(pid, node.children[at], layout)
            continue
        node = _node(pid, node.children[0], layout) if node.children else None
        if node is None:
            return None
        pieces.append(node.path)
        if node.node_type == CATCH_ALL:
            return "".join(pieces) if node.has_handle else None
        if node.node_type != PARAM:
            return None
        end = path.find("/")
        if end < 0:
            return "".join(pieces) if node.has_handle else None
        if not node.children:
            return None
        path = path[end:]
        node = _node(pid, node.children[0], layout)
    return None


def _node(pid: int, address: int, layout: NodeLayout) -> Node | None:
    key = (pid, address)
    if key not in _nodes:
        if len(_nodes) >= MAX_NODES:
            _nodes.clear()
        _nodes[key] = _read_node(pid, address, layout)
    return _nodes[key]


def _read_node(pid: int, address: int, layout: NodeLayout) -> Node | None:
    raw = read_memory(pid, address, layout.size) if address else None
    if raw is None:
        return None
    path = _read_string(pid, raw, layout.path)
    indices = _read_string(pid, raw, layout.indices)
    children = _read_pointers(pid, raw, layout.children)
    if path is None or indices is None or children is None:
        return None
    handle = int.from_bytes(raw[layout.handle:layout.handle + 8], "little")
    return Node(path, raw[layout.wild_child] != 0, raw[layout.node_type], indices, children,
                handle != 0)


def _read_string(pid: int, raw: bytes, offset: int) -> str | None:
    address, length = _STRING.unpack_from(raw, offset)
    if length == 0:
        return ""
    if not 0 < length <= _MAX_TEXT:
        return None
    data = read_memory(pid, address, length)
    return None if data is None else data.decode("utf-8", "replace")


def _read_pointers(pid: int, raw: bytes, offset: int) -> tuple[int, ...] | None:
    address, length, _ = _SLICE.unpack_from(raw, offset)
    if length == 0:
        return ()
    if not 0 < length <= _MAX_CHILDREN:
        return None
    data = read_memory(pid, address, 8 * length)
    return None if data is None else struct.unpack(f"<{length}Q", data)
