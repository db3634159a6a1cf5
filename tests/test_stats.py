"""Tests of helpers.stats against closed forms and hand computations."""

import math
from fractions import Fraction
from itertools import product

import numpy as np
import pytest
from scipy import stats as sps

from helpers import stats


def _tail_exact(k, n, p: Fraction) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p), in exact rational arithmetic."""
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def test_chance_level_is_one_over_the_number_of_classes():
    from helpers.data import FACE_EYES, FACE_MOUTHS

    assert stats.chance_level(len(FACE_MOUTHS)) == pytest.approx(1 / 13)
    assert stats.chance_level(len(FACE_EYES)) == pytest.approx(1 / 8)
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="n_classes"):
            stats.chance_level(bad)


def test_binomial_test_equals_the_closed_form_tail():
    # the course's case: 5 of 32 mouths kept against a uniform guess among 13 types
    res = stats.binomial_test(5, 32, 1 / 13)
    want = 1 - float(sum(math.comb(32, i) * Fraction(1, 13) ** i * Fraction(12, 13) ** (32 - i) for i in range(5)))
    assert res.p_value == pytest.approx(want, rel=1e-12)
    assert 0.05 < res.p_value < 0.15  # ≈ 0.10: not significant
    assert res.effect == pytest.approx(5 / 32 - 1 / 13) and res.n == 32 and res.statistic == 5
    # small cases by hand: P(X ≥ 2 | 3, 1/2) = 4/8, P(X ≥ 3) = 1/8, P(X ≤ 0) = 1/8
    assert stats.binomial_test(2, 3, 0.5).p_value == pytest.approx(0.5)
    assert stats.binomial_test(3, 3, 0.5).p_value == pytest.approx(1 / 8)
    assert stats.binomial_test(0, 3, 0.5, alternative="less").p_value == pytest.approx(1 / 8)
    # both tails include k, so they sum to 1 + P(X = k)
    r = stats.binomial_test(7, 20, 0.3)
    assert r.p_greater + r.p_less == pytest.approx(1 + math.comb(20, 7) * 0.3**7 * 0.7**13)
    assert r.p_greater == pytest.approx(_tail_exact(7, 20, Fraction(3, 10)), rel=1e-12)
    assert r.p_greater == pytest.approx(sps.binomtest(7, 20, 0.3, alternative="greater").pvalue, rel=1e-10)
    assert "5 of 32" in str(res) and "exact binomial test" in str(res) and "p = 0.096" in str(res)


def test_binomial_test_rejects_impossible_counts():
    with pytest.raises(ValueError, match="k ≤ n"):
        stats.binomial_test(5, 4, 0.5)
    with pytest.raises(ValueError, match="chance level"):
        stats.binomial_test(1, 4, 0.0)
    with pytest.raises(ValueError, match="alternative"):
        stats.binomial_test(1, 4, 0.5, alternative="bigger")


def test_mcnemar_on_a_hand_made_two_by_two_table():
    # both kept 10, only the first 7, only the second 1, neither 2 (n = 20)
    first = [1] * 10 + [1] * 7 + [0] * 1 + [0] * 2
    second = [1] * 10 + [0] * 7 + [1] * 1 + [0] * 2
    res = stats.mcnemar_test(first, second)
    # discordant 8, b = 7: two-sided p = 2 P(X ≤ 1 | 8, 1/2) = 2 (1 + 8) / 256
    assert res.p_value == pytest.approx(18 / 256)
    assert res.statistic == 7 and res.n == 20
    assert res.effect == pytest.approx((17 - 11) / 20)  # kept rates 17/20 vs 11/20
    assert res.p_greater == pytest.approx(9 / 256)  # P(X ≥ 7 | 8, 1/2) = (8 + 1) / 256
    # the course's box_mouth case: 5 kept by one method, none by the other -> 2 / 2^5
    assert stats.mcnemar_test([1] * 5 + [0] * 27, [0] * 32).p_value == pytest.approx(2 / 32)
    # concordant pairs alone carry no evidence
    assert stats.mcnemar_test([1, 0, 1], [1, 0, 1]).p_value == 1.0
    with pytest.raises(ValueError, match="0 and 1"):
        stats.mcnemar_test([0.5, 1], [0, 1])
    with pytest.raises(ValueError, match="same non-zero length"):
        stats.mcnemar_test([1, 0], [1])


def test_sign_test_by_hand_and_equal_to_mcnemar_on_binary_outcomes():
    d = [0.5, 1, -0.5, 0, 2, 3]  # 4 positive, 1 negative, 1 zero (dropped)
    res = stats.sign_test(d, alternative="greater")
    assert res.p_value == pytest.approx((5 + 1) / 32)  # P(X ≥ 4 | 5, 1/2)
    assert stats.sign_test(d).p_value == pytest.approx(12 / 32)
    assert res.effect == pytest.approx(np.mean(d))
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 2, 25), rng.integers(0, 2, 25)
    for alt in ("greater", "less", "two-sided"):
        assert stats.sign_test(a - b, alt).p_value == pytest.approx(stats.mcnemar_test(a, b, alt).p_value)


def test_wilcoxon_by_hand_and_against_scipy():
    # d = (1, 2, -3, 4): W+ = 1 + 2 + 4 = 7; of the 16 sign patterns, 5 give W+ ≥ 7
    first, second = np.array([1.0, 2.0, 0.0, 4.0]), np.array([0.0, 0.0, 3.0, 0.0])
    res = stats.wilcoxon_signed_rank(first, second, alternative="greater")
    assert res.statistic == 7
    w_all = [sum(r for r, s in zip((1, 2, 3, 4), signs) if s) for signs in product((0, 1), repeat=4)]
    assert res.p_value == pytest.approx(sum(w >= 7 for w in w_all) / 16) and res.p_value == pytest.approx(5 / 16)
    assert "exact" in res.test and res.effect == pytest.approx(1.5)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=20), rng.normal(size=20) - 0.4
    for alt in ("greater", "less", "two-sided"):
        got = stats.wilcoxon_signed_rank(x, y, alternative=alt).p_value
        assert got == pytest.approx(sps.wilcoxon(x - y, alternative=alt, method="exact").pvalue, rel=1e-12)
    # ties among |d| -> the normal approximation, and the name says so
    tied = stats.wilcoxon_signed_rank([1, 1, 2, 3, 5], [0, 0, 0, 0, 0])
    assert "approximation" in tied.test
    with pytest.raises(ValueError, match="finite"):
        stats.wilcoxon_signed_rank([1, np.nan], [0, 0])


def test_paired_t_by_hand_and_against_scipy():
    # d = (1, 2, 3): mean 2, sd 1, t = 2 √3; with 2 degrees of freedom P(T > t) = (1 − t / √(2 + t²)) / 2
    res = stats.paired_t_test([1, 2, 3], [0, 0, 0], alternative="greater")
    t = 2 * math.sqrt(3)
    assert res.statistic == pytest.approx(t)
    assert res.p_value == pytest.approx(0.5 * (1 - t / math.sqrt(2 + t * t)), rel=1e-10)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=12), rng.normal(size=12)
    for alt in ("greater", "less", "two-sided"):
        assert stats.paired_t_test(x, y, alt).p_value == pytest.approx(sps.ttest_rel(x, y, alternative=alt).pvalue, rel=1e-10)


def _result(p_greater, p_less, effect, alternative):
    p = {"greater": p_greater, "less": p_less, "two-sided": min(1, 2 * min(p_greater, p_less))}[alternative]
    return stats.TestResult("t", 0.0, p, 10, effect, alternative, p_greater, p_less)


def test_verdict_words():
    sig_up = _result(0.01, 0.995, 0.3, "greater")
    flat = _result(0.3, 0.75, 0.05, "greater")
    sig_down = _result(0.999, 0.002, -0.4, "greater")
    assert stats.verdict(sig_up, "greater") == "holds"
    assert stats.verdict(flat, "greater") == "not contradicted"
    assert stats.verdict(sig_down, "greater") == "does not hold"
    assert stats.verdict(sig_down, "less") == "holds"
    assert stats.verdict(sig_up, "greater", premise=False) == "does not hold"
    # a two-sided result is judged at its two-sided level: one-sided 0.04 is 0.08 two-sided
    assert stats.verdict(_result(0.04, 0.97, 0.2, "two-sided"), "greater") == "not contradicted"
    assert stats.verdict(_result(0.01, 0.995, 0.2, "two-sided"), "greater") == "holds"
    # the course's box_mouth numbers: 5/32 against 1/13 is not significant
    assert stats.verdict(stats.binomial_test(5, 32, 1 / 13), "greater") == "not contradicted"
    assert stats.verdict(stats.binomial_test(12, 32, 1 / 13), "greater") == "holds"
    with pytest.raises(ValueError, match="claimed"):
        stats.verdict(flat, "up")


def test_combine_verdicts():
    assert stats.combine_verdicts(["holds", "holds"]) == "holds"
    assert stats.combine_verdicts(["holds", "not contradicted"]) == "not contradicted"
    assert stats.combine_verdicts(["holds", "does not hold", "not contradicted"]) == "does not hold"
    with pytest.raises(ValueError, match="no verdicts"):
        stats.combine_verdicts([])
    with pytest.raises(ValueError, match="unknown"):
        stats.combine_verdicts(["true"])
