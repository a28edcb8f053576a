"""95% intervals of a pass@1 and of a difference of two, that stay honest at 0 and at n (docs/fidelity.md §5).

- One sample per problem: the Wilson score interval of k correct out of n problems. Brown, Cai & DasGupta
  (2001, "Interval Estimation for a Binomial Proportion", Statistical Science 16(2)) recommend it for small n:
  its coverage stays near 95% where the Wald interval (and a percentile bootstrap, which behaves like it)
  collapses to [0, 0] at 0/n; Clopper–Pearson would hold ≥ 95% everywhere but is wider than it needs to be.
  At 0/40 its upper bound is z²/(n + z²) = 8.8%.
- Several samples per problem: the samples of one problem are correlated (a problem is easy or hard), so
  the problem is the unit. The same Wilson interval on the effective count n_eff = p(1−p)/v, v the variance
  of the pass@1 over problems (stderr², from the per-problem means): the effective-sample-size approach of
  survey statistics (Korn & Graubard 1998, Survey Methodology 24(2), with Clopper–Pearson; Franco, Little,
  Louis & Slud 2019, J. Survey Statistics and Methodology 7(3), compare seven such intervals under clustering
  and recommend the Wilson form). n_eff is kept between n problems (every sample of a problem alike: design
  effect m) and n·m samples (independent samples). At 0 or 1 the data cannot tell the design effect, so
  n_eff = n problems: no tighter than one sample per problem would give.
- A difference of two independent estimates (ours − the paper's): Newcombe's hybrid score interval
  (Newcombe 1998, Statistics in Medicine 17(8), method 10), which combines the two Wilson intervals by
  squaring and adding their one-sided widths (the MOVER construction of Zou & Donner 2008); unlike
  ±1.96·√(s₁² + s₂²) it does not shrink to nothing where both numbers sit at 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054  # two-sided 95%


def wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion `p` observed over `n` trials (`n` may be an effective count)."""
    if not n > 0:
        raise ValueError(f"Wilson interval: need n > 0, got {n}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"Wilson interval: p = {p} is not a proportion")
    a = z * z / n
    centre = (p + a / 2) / (1 + a)
    half = z * math.sqrt(p * (1 - p) / n + a / (4 * n)) / (1 + a)
    return max(0.0, centre - half), min(1.0, centre + half)


def effective_count(per_problem: Sequence[float], n_samples: int) -> float:
    """Independent observations that a pass@1 over these per-problem means (each over `n_samples` samples)
    is worth: n·m for one sample a problem, else p(1−p)/v within [n, n·m], n at p ∈ {0, 1}."""
    n = len(per_problem)
    total = n * n_samples
    if n_samples == 1:
        return float(total)
    p = sum(per_problem) / n
    if n < 2 or p <= 0.0 or p >= 1.0:
        return float(n)
    var = sum((x - p) ** 2 for x in per_problem) / (n - 1) / n
    return float(total) if var == 0 else min(float(total), max(float(n), p * (1 - p) / var))


def pass_at_1(per_problem: Sequence[float], n_samples: int) -> tuple[float, float]:
    """95% interval of the mean of `per_problem` (each the share of correct samples of one problem)."""
    if not per_problem:
        raise ValueError("no problems")
    return wilson(sum(per_problem) / len(per_problem), effective_count(per_problem, n_samples))


Interval = tuple[float, float]


def difference(p1: float, ci1: Interval, p2: float, ci2: Interval) -> Interval:
    """95% interval of p1 − p2, independent estimates with 95% intervals ci1, ci2 (Newcombe's method 10)."""
    (l1, u1), (l2, u2) = ci1, ci2
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)
