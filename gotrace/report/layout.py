"""A layered layout for a small directed graph: callers left of the services they call.

Layers are longest paths from the nodes nobody calls, after setting aside the edges that
close a cycle (found by depth-first search); within a layer, nodes sit near the average
position of their callers, which keeps most edges short and uncrossed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

N = TypeVar("N", bound=Hashable)
_END = object()  # what next() answers for a node whose edges are all explored


def layered_layout(nodes: Sequence[N], edges: Iterable[tuple[N, N]]) -> dict[N, tuple[int, int]]:
    """node -> (layer, position in the layer), both from 0; deterministic for a given order
    of `nodes` (pass them sorted)."""
    successors: dict[N, list[N]] = defaultdict(list)
    for source, target in edges:
        if source != target and target not in successors[source]:
            successors[source].append(target)
    forward = _without_cycles(nodes, successors)
    layer = _longest_path_layers(nodes, forward)
    callers: dict[N, list[N]] = defaultdict(list)
    for source, targets in forward.items():
        for target in targets:
            callers[target].append(source)
    position: dict[N, tuple[int, int]] = {}
    for depth in range(max(layer.values(), default=-1) + 1):
        # sorted() is stable: nodes with the same barycentre keep the given order.
        members = sorted((node for node in nodes if layer[node] == depth),
                         key=lambda node: _barycentre(callers[node], position))
        position.update((node, (depth, index)) for index, node in enumerate(members))
    return position


def _barycentre(callers: list[N], position: dict[N, tuple[int, int]]) -> float:
    placed = [position[caller][1] for caller in callers]
    return sum(placed) / len(placed) if placed else 0.0


def _without_cycles(nodes: Sequence[N], successors: dict[N, list[N]]) -> dict[N, list[N]]:
    """The edges minus those pointing back to a node still on the depth-first path; the
    search starts from the nodes nobody calls, so a cycle is cut where it is entered."""
    called = {target for targets in successors.values() for target in targets}
    starts = [node for node in nodes if node not in called] + list(nodes)
    forward: dict[N, list[N]] = defaultdict(list)
    done: set[N] = set()
    on_path: set[N] = set()
    for start in starts:
        if start in done:
            continue
        on_path.add(start)
        stack = [(start, iter(successors[start]))]
        while stack:
            node, pending = stack[-1]
            target = next(pending, _END)
            if target is _END:
                stack.pop()
                on_path.discard(node)
                done.add(node)
            elif target not in on_path:
                forward[node].append(target)
                if target not in done:
                    on_path.add(target)
                    stack.append((target, iter(successors[target])))
    return forward


def _longest_path_layers(nodes: Sequence[N], forward: dict[N, list[N]]) -> dict[N, int]:
    pending = {node: 0 for node in nodes}
    for targets in forward.values():
        for target in targets:
            pending[target] += 1
    layer = dict.fromkeys(nodes, 0)
    ready = [node for node in nodes if pending[node] == 0]
    while ready:
        node = ready.pop()
        for target in forward[node]:
            layer[target] = max(layer[target], layer[node] + 1)
            pending[target] -= 1
            if pending[target] == 0:
                ready.append(target)
    return layer

