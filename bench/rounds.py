"""The order of untraced and traced rounds."""

from __future__ import annotations


def alternation(pairs: int) -> list[bool]:
    """Whether each round is traced: pairs of one untraced and one traced round ordered
    UT, TU, UT, ... so that a machine drifting steadily during the run weighs on both sides
    alike (with an even number of pairs, exactly)."""
    order: list[bool] = []
    for i in range(pairs):
        order += [False, True] if i % 2 == 0 else [True, False]
    return order
