"""95% intervals of pass@1 and of ours − paper: right at 0 and at n, clustered samples counted per problem."""

import pytest
from srlm import interval

Z = interval.Z95


@pytest.mark.parametrize("k,n", [(0, 40), (1, 40), (2, 40), (20, 40), (39, 40), (40, 40), (157, 500), (3, 7)])
def test_wilson_bounds_are_the_roots_of_the_score_equation(k, n):
    """Wilson's interval is {p : |p̂ − p| ≤ z·√(p(1−p)/n)}: its ends solve (p̂ − p)² = z²·p(1−p)/n."""
    ph = k / n
    lo, hi = interval.wilson(ph, n)
    assert 0.0 <= lo <= ph <= hi <= 1.0
    for p in (lo, hi):
        assert (ph - p) ** 2 == pytest.approx(Z * Z * p * (1 - p) / n, abs=1e-12)
    assert lo > 0.0 if k > 0 else lo == 0.0
    assert hi < 1.0 if k < n else hi == 1.0


def test_wilson_at_the_edges_and_published_values():
    # 0/40: upper bound z²/(n + z²) = 8.76% (the AMC23 cell that showed [0.0, 0.0])
    assert interval.wilson(0.0, 40) == pytest.approx((0.0, Z * Z / (40 + Z * Z)))
    assert interval.wilson(0.0, 40)[1] == pytest.approx(0.0876, abs=1e-4)
    assert interval.wilson(1.0, 40) == pytest.approx((40 / (40 + Z * Z), 1.0))
    # Newcombe (1998, "Two-sided confidence intervals for the single proportion", Table I, method 3)
    published = {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0.0, 0.1611),
                 (1, 29): (0.0061, 0.1718)}  # fmt: skip
    for (k, n), published in published.items():
        assert interval.wilson(k / n, n) == pytest.approx(published, abs=1e-4)
    with pytest.raises(ValueError):
        interval.wilson(0.5, 0)
    with pytest.raises(ValueError):
        interval.wilson(1.5, 10)


def test_effective_count():
    # one sample per problem: n
    assert interval.effective_count([0.0, 1.0, 1.0], 1) == 3
    # at 0 or 1 the design effect is unknown: the problem count, not the sample count
    assert interval.effective_count([0.0] * 40, 4) == 40 and interval.effective_count([1.0] * 40, 4) == 40
    # all samples of a problem agree: p(1−p)/v = n − 1, held at n (design effect m at most)
    assert interval.effective_count([1.0] * 10 + [0.0] * 30, 4) == 40
    # no spread between problems: as many as there are samples
    assert interval.effective_count([0.25] * 40, 4) == 160
    # in between: p(1−p)/v. Per-problem means (0, .5, .5, 1) over 2 samples: v = (1/6)/4, p(1−p) = 1/4 -> 6
    assert interval.effective_count([0.0, 0.5, 0.5, 1.0], 2) == pytest.approx(6.0)


def test_pass_at_1_interval_holds_its_estimate():
    ci = interval.pass_at_1([0.0, 0.5, 0.5, 1.0], 2)
    assert ci == pytest.approx(interval.wilson(0.5, 6.0))
    with pytest.raises(ValueError):
        interval.pass_at_1([], 1)


def test_difference_is_newcombe_hybrid_score():
    """Newcombe (1998) method 10 on his published example: 56/70 vs 48/80 gives [0.0524, 0.3339]."""
    p1, p2 = 56 / 70, 48 / 80
    lo, hi = interval.difference(p1, interval.wilson(p1, 70), p2, interval.wilson(p2, 80))
    assert (lo, hi) == pytest.approx((0.0524, 0.3339), abs=1e-4)


def test_difference_at_zero_does_not_collapse():
    """Ours 0/40 against the paper's 0/40: a ±1.96·√(s²+s²) band is 0 wide and marks any difference; this one
    spans both Wilson upper bounds."""
    z = interval.wilson(0.0, 40)
    lo, hi = interval.difference(0.0, z, 0.0, z)
    assert lo == pytest.approx(-z[1]) and hi == pytest.approx(z[1]) and hi > 0.08
    # 0/40 ours vs 2/40 printed (5.0): inside the noise
    lo, hi = interval.difference(0.0, z, 0.05, interval.wilson(0.05, 40))
    assert lo < 0 < hi
    # 0/500 vs 31.4% over 500: far outside
    lo, hi = interval.difference(0.0, interval.wilson(0.0, 500), 0.314, interval.wilson(0.314, 500))
    assert hi < -0.25
