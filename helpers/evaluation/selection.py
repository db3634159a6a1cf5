"""Choosing a parameter on the selection images: the best value of a grid, never silently at its edge.

A value chosen at the edge of its grid only says that the optimum lies there *or beyond*. So
:func:`choose_on_grid` widens the grid past that edge in ×3 steps (λ grid 0.3 1 3 with the best
at 3: try 9, then 27, ...; best at 0.3: try 0.1, ...) until

* the best value is interior -- ``"interior"`` (no widening needed) or ``"widened ×N to interior"``;
* the next value diverges (a sampler error or a non-finite score) -- the edge value stands,
  ``"edge: next value diverged"`` (the optimum is bounded by divergence);
* the cap of ``max_widenings`` steps is reached -- ``"edge: cap reached"``;
* the next value leaves the parameter's range (SDEdit's t0 must stay in (0, 1]) --
  ``"edge: range limit"``.

Grids of a single value are not searched (``"single value"``). The search only calls
``score(value)``; what a score is (mean PSNR over the selection images, ...) is the caller's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

__all__ = ["WIDEN_FACTOR", "MAX_WIDENINGS", "ValueRange", "GridChoice", "choose_on_grid", "key_value"]

#: each widening step multiplies (or divides) the edge value by this factor
WIDEN_FACTOR = 3.0
#: widening steps at most, per (task, noise, method)
MAX_WIDENINGS = 6


def key_value(v: float) -> float:
    """``v`` as the results file writes it (6 significant digits): 0.3 / 3 is 0.1, not 0.09999999999999999."""
    return float(f"{float(v):g}")


@dataclass(frozen=True)
class ValueRange:
    """The values a parameter may take: ``low < value <= high``."""

    low: float = 0.0
    high: float = math.inf

    def beyond(self, edge: float, upwards: bool, factor: float = WIDEN_FACTOR) -> Optional[float]:
        """The next value past ``edge`` (×factor up, ÷factor down), None if it leaves the range.

        Upwards, a step that overshoots ``high`` lands on ``high`` itself (t0 0.8 -> 1) unless
        the edge is already there.
        """
        if upwards:
            if edge >= self.high:
                return None
            return min(key_value(edge * factor), self.high)
        nxt = key_value(edge / factor)
        return nxt if nxt > self.low and nxt < edge else None


@dataclass
class GridChoice:
    """What :func:`choose_on_grid` found.

    ``tried`` holds (value, score) sorted by value, the widened values included; a diverged
    value has score NaN. ``outcome`` is one of ``"single value"``, ``"interior"``, ``"widened"``,
    ``"diverged"``, ``"cap"``, ``"range"``, ``"unscored"``; :meth:`describe` words it.
    """

    chosen: float
    tried: list
    outcome: str
    widenings: int = 0
    edge: Optional[str] = None  # "high" or "low" when the chosen value is at an edge
    widened: list = field(default_factory=list)  # the values added past the grid, in the order tried

    def describe(self) -> str:
        n, after = self.widenings, (f" (after widening ×{self.widenings})" if self.widenings else "")
        side = f" ({self.edge} edge)" if self.edge else ""
        return {
            "single value": "single value (not searched)",
            "interior": "interior",
            "widened": f"widened ×{n} to interior",
            "diverged": f"edge: next value diverged{side}{after}",
            "cap": f"edge: cap reached{side}, {n} widening(s)",
            "range": f"edge: range limit{side}{after}",
            "unscored": "no value scored (every value diverged)",
        }[self.outcome]


def choose_on_grid(
    values: Sequence[float],
    score: Callable[[float], float],
    *,
    higher_is_better: bool = True,
    value_range: ValueRange = ValueRange(),
    max_widenings: int = MAX_WIDENINGS,
    factor: float = WIDEN_FACTOR,
) -> GridChoice:
    """The best value of ``values`` by ``score``, the grid widened past an edge optimum (module doc).

    ``score(value)`` returns the value's score; NaN or ±inf means the value diverged (it is
    never chosen). Ties go to the value first in ``values``.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values is empty")
    if max_widenings < 0:
        raise ValueError(f"max_widenings must be >= 0, got {max_widenings}")
    scores = {}
    order = []  # grid order first, then widened values: the tie-breaking order
    for v in values:
        if v not in scores:
            scores[v] = float(score(v))
            order.append(v)
    if len(order) == 1:
        return GridChoice(order[0], [(order[0], scores[order[0]])], "single value")

    def finished(outcome: str, chosen: float, edge=None) -> GridChoice:
        tried = sorted(scores.items())
        return GridChoice(chosen, tried, outcome, len(order) - len(set(values)), edge, order[len(set(values)):])

    while True:
        finite = [v for v in order if math.isfinite(scores[v])]
        if not finite:
            return finished("unscored", order[0])
        best = (max if higher_is_better else min)(finite, key=lambda v: scores[v])  # first of equals
        ladder = sorted(scores)
        i = ladder.index(best)
        if 0 < i < len(ladder) - 1:
            if not (math.isfinite(scores[ladder[i - 1]]) and math.isfinite(scores[ladder[i + 1]])):
                edge = "high" if not math.isfinite(scores[ladder[i + 1]]) else "low"
                return finished("diverged", best, edge)
            return finished("interior" if len(order) == len(set(values)) else "widened", best)
        upwards = i == len(ladder) - 1
        edge = "high" if upwards else "low"
        if len(order) - len(set(values)) >= max_widenings:
            return finished("cap", best, edge)
        nxt = value_range.beyond(best, upwards, factor)
        if nxt is None or nxt in scores:
            return finished("range", best, edge)
        scores[nxt] = float(score(nxt))
        order.append(nxt)
        if not math.isfinite(scores[nxt]):
            return finished("diverged", best, edge)
