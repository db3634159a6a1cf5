"""Exact, small-sample statistics for the course's comparisons.

The course compares methods on a few dozen images, so every claim gets a test whose p-value is
exact (or, where scipy cannot be exact, says so in its name):

* :func:`binomial_test` -- a rate of successes against a chance level (exact binomial test);
* :func:`chance_level` -- the rate of a uniform guess among ``n_classes`` types;
* :func:`mcnemar_test` -- two methods' kept/lost outcomes on the same images (exact McNemar test);
* :func:`sign_test` -- paired differences of any kind (exact sign test; McNemar is its special case);
* :func:`wilcoxon_signed_rank` and :func:`paired_t_test` -- paired PSNR/LPIPS values;
* :func:`verdict` -- one of three words, :data:`HOLDS`, :data:`NOT_CONTRADICTED`,
  :data:`DOES_NOT_HOLD`, for a claimed direction of an effect;
  :func:`combine_verdicts` for a claim made of several parts.

Every test returns a :class:`TestResult` that holds both one-sided p-values, so a verdict can be
drawn for either direction, and formats to a sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "ALPHA",
    "HOLDS",
    "NOT_CONTRADICTED",
    "DOES_NOT_HOLD",
    "VERDICTS",
    "TestResult",
    "chance_level",
    "binomial_tail",
    "binomial_test",
    "mcnemar_test",
    "sign_test",
    "wilcoxon_signed_rank",
    "paired_t_test",
    "verdict",
    "combine_verdicts",
    "format_p",
]

ALPHA = 0.05  # significance level of every verdict
HOLDS = "holds"
NOT_CONTRADICTED = "not contradicted"
DOES_NOT_HOLD = "does not hold"
VERDICTS = (HOLDS, NOT_CONTRADICTED, DOES_NOT_HOLD)
_ALTERNATIVES = ("greater", "less", "two-sided")


def format_p(p: float) -> str:
    """``"p = 0.1"``, ``"p = 0.0031"``, ``"p = 4.7e-10"``: two significant digits."""
    return f"p = {p:.2g}" if math.isfinite(p) else "p = –"


@dataclass(frozen=True)
class TestResult:
    """The outcome of one test.

    ``test``: the test's name; ``statistic`` (named ``statistic_name``); ``p_value`` for
    ``alternative`` ("greater": the effect is positive, "less": negative, "two-sided"); both
    one-sided p-values ``p_greater`` and ``p_less``; ``n`` the number of observations (images,
    pairs, trials); ``effect`` the observed effect whose sign the alternative is about (a rate
    minus the chance level, a difference of rates, a mean or median difference), named
    ``effect_name``; ``detail`` a short description of the data (counts, what was compared).
    """

    test: str
    statistic: float
    p_value: float
    n: int
    effect: float
    alternative: str
    p_greater: float
    p_less: float
    statistic_name: str = "statistic"
    effect_name: str = "effect"
    detail: str = ""

    __test__ = False  # not a pytest test class, despite its name

    def __str__(self) -> str:
        side = {"greater": "one-sided, effect > 0", "less": "one-sided, effect < 0", "two-sided": "two-sided"}[self.alternative]
        head = f"{self.detail}: " if self.detail else ""
        return (f"{head}{self.test}, {self.statistic_name} = {self.statistic:.4g}, n = {self.n}, "
                f"{self.effect_name} = {self.effect:+.3g}, {format_p(self.p_value)} ({side})")


def _check_alternative(alternative: str) -> None:
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")


def _two_sided_from_tails(p_greater: float, p_less: float) -> float:
    return min(1.0, 2.0 * min(p_greater, p_less))


def _pick(alternative: str, p_greater: float, p_less: float, p_two: float) -> float:
    return {"greater": p_greater, "less": p_less, "two-sided": p_two}[alternative]


# ---------------------------------------------------------------------------- binomial
def chance_level(n_classes: int) -> float:
    """The probability that a uniform guess among ``n_classes`` types is right: ``1 / n_classes``.

    E.g. 1/13 for the mouth type of a cartoon face (13 mouth types,
    :data:`helpers.data.FACE_MOUTHS`) when a box hides the whole mouth, 1/8 for the eye type.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive int, got {n_classes!r}")
    return 1.0 / int(n_classes)


def binomial_tail(k: int, n: int, p: float, upper: bool = True) -> float:
    """Exact binomial tail: ``P(X ≥ k)`` (``upper``) or ``P(X ≤ k)`` for X ~ Binomial(n, p).

    Summed term by term, ``Σ C(n, i) p^i (1 − p)^(n − i)``, with :func:`math.fsum`.
    """
    if not (0 <= p <= 1):
        raise ValueError(f"p must be in [0, 1], got {p}")
    idx = range(max(k, 0), n + 1) if upper else range(0, min(k, n) + 1)
    return min(1.0, math.fsum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in idx))


def binomial_test(k: int, n: int, p0: float, alternative: str = "greater", detail: str = "") -> TestResult:
    """Exact binomial test of ``k`` successes in ``n`` independent trials against the rate ``p0``.

    One-sided p-values: ``P(X ≥ k)`` ("greater") and ``P(X ≤ k)`` ("less") for X ~ Binomial(n, p0);
    "two-sided" doubles the smaller tail (capped at 1). Effect: ``k/n − p0``.
    Reference: the exact binomial test (Clopper & Pearson 1934; e.g. Conover, *Practical
    Nonparametric Statistics*, 3rd ed., §3.1).
    """
    _check_alternative(alternative)
    k, n = int(k), int(n)
    if n < 1 or not (0 <= k <= n):
        raise ValueError(f"need 0 ≤ k ≤ n and n ≥ 1, got k = {k}, n = {n}")
    if not (0 < p0 < 1):
        raise ValueError(f"chance level p0 must be in (0, 1), got {p0}")
    pg, pl = binomial_tail(k, n, p0, upper=True), binomial_tail(k, n, p0, upper=False)
    p2 = _two_sided_from_tails(pg, pl)
    return TestResult("exact binomial test", k, _pick(alternative, pg, pl, p2), n, k / n - p0, alternative, pg, pl,
                      statistic_name="successes", effect_name="rate − chance",
                      detail=detail or f"{k} of {n} against chance {p0:.3g}")


# ---------------------------------------------------------------------------- paired kept / lost
def _sign_counts(n_pos: int, n_neg: int, n_pairs: int, alternative: str, test: str, detail: str,
                 effect: float, effect_name: str, statistic_name: str) -> TestResult:
    m = n_pos + n_neg
    if m == 0:
        pg = pl = p2 = 1.0
    else:
        pg, pl = binomial_tail(n_pos, m, 0.5, upper=True), binomial_tail(n_pos, m, 0.5, upper=False)
        p2 = _two_sided_from_tails(pg, pl)
    return TestResult(test, n_pos, _pick(alternative, pg, pl, p2), n_pairs, effect, alternative, pg, pl,
                      statistic_name=statistic_name, effect_name=effect_name,
                      detail=detail or f"{n_pos} pairs favour the first, {n_neg} the second, {n_pairs - m} tied")


def mcnemar_test(first_kept: Sequence, second_kept: Sequence, alternative: str = "two-sided", detail: str = "") -> TestResult:
    """Exact McNemar test of two methods' kept (1) / lost (0) outcomes on the same images.

    Only the discordant pairs count: ``b`` images where the first keeps and the second loses,
    ``c`` the reverse. Under the null (both methods keep equally often) b ~ Binomial(b + c, 1/2);
    the two-sided p-value is ``min(1, 2 P(X ≤ min(b, c)))``. Effect: the difference of the kept
    rates, ``(b − c) / n``. Statistic: ``b``.
    Reference: McNemar (1947), *Psychometrika* 12:153; exact form e.g. Agresti, *Categorical
    Data Analysis*, 3rd ed., §11.1.
    """
    _check_alternative(alternative)
    a, b = np.asarray(first_kept, dtype=float), np.asarray(second_kept, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two 1-d outcome lists of the same non-zero length, got shapes {a.shape} and {b.shape}")
    if not np.all(np.isin(a, (0, 1))) or not np.all(np.isin(b, (0, 1))):
        raise ValueError("McNemar's test needs kept/lost outcomes of 0 and 1; use sign_test for fractions")
    n_b, n_c = int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1)))
    return _sign_counts(n_b, n_c, a.size, alternative, "exact McNemar test", detail or
                        f"first kept {int(a.sum())}/{a.size}, second {int(b.sum())}/{b.size}; discordant b = {n_b}, c = {n_c}",
                        (n_b - n_c) / a.size, "difference of kept rates", "b")


def sign_test(differences: Sequence, alternative: str = "two-sided", detail: str = "") -> TestResult:
    """Exact sign test of paired differences (e.g. per-image kept rates of two methods).

    Zero differences are dropped; with ``m`` non-zero differences of which ``s`` are positive,
    s ~ Binomial(m, 1/2) under the null of a zero median difference. "greater": ``P(X ≥ s)``,
    "less": ``P(X ≤ s)``, two-sided twice the smaller tail. Effect: the mean difference.
    On kept/lost (0/1) outcomes this is exactly McNemar's test.
    Reference: Conover, *Practical Nonparametric Statistics*, 3rd ed., §3.4.
    """
    _check_alternative(alternative)
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or d.size == 0 or not np.all(np.isfinite(d)):
        raise ValueError("need a non-empty 1-d list of finite differences")
    pos, neg = int(np.sum(d > 0)), int(np.sum(d < 0))
    return _sign_counts(pos, neg, d.size, alternative, "exact sign test", detail, float(d.mean()), "mean difference", "positive differences")


# ---------------------------------------------------------------------------- paired values
def _paired_differences(first: Sequence, second: Sequence) -> np.ndarray:
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"need two 1-d value lists of the same length ≥ 2, got shapes {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("paired values must be finite (NaN or Inf found)")
    return a - b


def wilcoxon_signed_rank(first: Sequence, second: Sequence, alternative: str = "two-sided", detail: str = "") -> TestResult:
    """Wilcoxon signed-rank test of paired values ``first − second`` (e.g. PSNR of two methods per image).

    Zero differences are dropped (Wilcoxon's convention). The p-value is exact (the permutation
    distribution of W+) when there are at most 50 non-zero differences and no ties among their
    absolute values, else scipy's normal approximation (the test's name then says so).
    Statistic: ``W+``, the sum of the ranks of the positive differences. Effect: the median difference.
    Reference: Wilcoxon (1945), *Biometrics Bulletin* 1:80; :func:`scipy.stats.wilcoxon`.
    """
    from scipy import stats as sps

    _check_alternative(alternative)
    d = _paired_differences(first, second)
    nz = d[d != 0]
    if nz.size == 0:
        return TestResult("Wilcoxon signed-rank test", 0.0, 1.0, d.size, 0.0, alternative, 1.0, 1.0,
                          statistic_name="W+", effect_name="median difference", detail=detail or "all differences zero")
    exact = nz.size <= 50 and len(np.unique(np.abs(nz))) == nz.size
    method = "exact" if exact else "approx"
    ps = {alt: float(sps.wilcoxon(nz, alternative=alt, method=method).pvalue) for alt in _ALTERNATIVES}
    ranks = sps.rankdata(np.abs(nz))
    w_plus = float(ranks[nz > 0].sum())
    name = "Wilcoxon signed-rank test" + (" (exact)" if exact else " (normal approximation)")
    return TestResult(name, w_plus, ps[alternative], d.size, float(np.median(d)), alternative, ps["greater"], ps["less"],
                      statistic_name="W+", effect_name="median difference", detail=detail)


def paired_t_test(first: Sequence, second: Sequence, alternative: str = "two-sided", detail: str = "") -> TestResult:
    """Paired (Student) t test of ``first − second``: ``t = mean(d) / (sd(d) / √n)``, n − 1 degrees of freedom.

    Assumes roughly normal differences; prefer :func:`wilcoxon_signed_rank` for skewed ones.
    Effect: the mean difference. Reference: Student (1908), *Biometrika* 6:1; :func:`scipy.stats.ttest_rel`.
    """
    from scipy import stats as sps

    _check_alternative(alternative)
    d = _paired_differences(first, second)
    sd = float(d.std(ddof=1))
    if sd == 0:
        mean = float(d.mean())
        pg = 0.0 if mean > 0 else 1.0
        pl = 0.0 if mean < 0 else 1.0
        t = math.copysign(math.inf, mean) if mean else 0.0
    else:
        t = float(d.mean() / (sd / math.sqrt(d.size)))
        pg, pl = float(sps.t.sf(t, d.size - 1)), float(sps.t.cdf(t, d.size - 1))
    p2 = _two_sided_from_tails(pg, pl)
    return TestResult("paired t test", t, _pick(alternative, pg, pl, p2), d.size, float(d.mean()), alternative, pg, pl,
                      statistic_name="t", effect_name="mean difference", detail=detail)


# ---------------------------------------------------------------------------- verdicts
def verdict(result: TestResult, claimed: str = "greater", *, premise: bool = True, alpha: float = ALPHA) -> str:
    """One of :data:`HOLDS`, :data:`NOT_CONTRADICTED`, :data:`DOES_NOT_HOLD` for a claimed effect direction.

    ``claimed``: "greater" (the claim is that ``result.effect`` > 0) or "less".

    * "does not hold" when ``premise`` is False (what the claim takes for granted is untrue), or
      when the effect is significant in the opposite direction;
    * "holds" when it is significant in the claimed direction;
    * "not contradicted" otherwise.

    Significance: for a one-sided or two-sided ``result`` alike, the one-sided p-value in the
    direction in question is below ``alpha``; except that a two-sided result (e.g. McNemar) must
    have its two-sided p-value below ``alpha`` and its effect in that direction, so a claim is
    never judged at a laxer level than the test that was reported.
    """
    if claimed not in ("greater", "less"):
        raise ValueError(f"claimed must be 'greater' or 'less', got {claimed!r}")
    if not premise:
        return DOES_NOT_HOLD

    def significant(direction: str) -> bool:
        p_one = result.p_greater if direction == "greater" else result.p_less
        if result.alternative == "two-sided":
            sign_ok = result.effect > 0 if direction == "greater" else result.effect < 0
            return bool(result.p_value < alpha and sign_ok)
        return bool(p_one < alpha)

    opposite = "less" if claimed == "greater" else "greater"
    if significant(opposite):
        return DOES_NOT_HOLD
    if significant(claimed):
        return HOLDS
    return NOT_CONTRADICTED


def combine_verdicts(words: Iterable[str]) -> str:
    """The verdict of a claim that needs all its parts: "does not hold" if any part does not,
    "holds" if every part holds, else "not contradicted". Empty input is an error."""
    words = list(words)
    if not words:
        raise ValueError("no verdicts to combine")
    bad = [w for w in words if w not in VERDICTS]
    if bad:
        raise ValueError(f"unknown verdict words {bad}; expected {VERDICTS}")
    if DOES_NOT_HOLD in words:
        return DOES_NOT_HOLD
    if all(w == HOLDS for w in words):
        return HOLDS
    return NOT_CONTRADICTED
