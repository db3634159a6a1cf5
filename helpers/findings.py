"""The course's three findings, tested against the numbers of :mod:`helpers.evaluate`.

The poster the course is built from observed, on real face photos:

1. **SDEdit has no t0 "sweet spot"** that deblurs or inpaints without hallucination;
2. **eye symmetry is only partly recovered** under deconvolution;
3. **only DPS partly keeps the shape of the upper lip** (the mouth).

On the bundled cartoon-face prior every face is drawn from known parts (13 mouth types, 8 eye
types), and classifiers say whether a reconstruction kept the true type, so each observation
becomes a statistical test on a results folder of ``python -m helpers.evaluate`` (its
``results.csv`` and ``config.json``). Tests come from :mod:`helpers.stats`, all paired over the
same reported images and exact where possible; every claim ends in one of three words
(:func:`helpers.stats.verdict`, level :data:`helpers.stats.ALPHA` = 0.05):
**holds** (significant in the claimed direction), **not contradicted** (not significant either
way), **does not hold** (significant in the opposite direction, or the claim's premise is false).

* :func:`sdedit_sweet_spot` -- at every swept t0, is SDEdit worse than the best other method
  (measurement, classical baseline, ScoreALD, DPS) in PSNR (Wilcoxon signed-rank, one-sided) or
  in eye or mouth types kept (exact McNemar / sign test, two-sided)? The three tests of a t0
  are judged at 0.05 / 3 (Bonferroni: the t0 fails if *any* of them does). The finding
  ("no t0 does both") holds when every t0 fails; it does not hold when some t0 is significantly
  better than the best other method in one measure and no worse on average in the others.
* :func:`eye_symmetry_recovery` -- the eye-symmetry score (:func:`helpers.face_measures.eye_symmetry`)
  of each method against the measurement (recovered at all?) and against the clean faces
  (recovered only partly?), both with Wilcoxon signed-rank tests, paired per image when the
  clean faces' per-image values are known (else one-sample against their mean, and the
  sentence says so). Premise: the measurement lost symmetry (the clean faces' mean is at least
  :data:`MIN_GAP` above the measurement's).
* :func:`part_recovery` -- how often each method keeps the true mouth (or eye) type: an exact
  binomial test against the chance level of a uniform guess (1/13 for the mouth, 1/8 for the
  eyes; the right baseline when a box hides the whole part), and DPS against every other method
  (exact McNemar test, or the exact sign test on per-image rates when several seeds were run).

Values are per image (seeds averaged per image first) on the *reported* images only. Metrics
live in image space [0, 1]. :func:`report` and ``python -m helpers.findings FOLDER`` print every
test with its p-value.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .evaluate import METHOD_NAMES, _mean_se, _noise_str, per_image_values, read_results
from .stats import (
    ALPHA,
    DOES_NOT_HOLD,
    HOLDS,
    NOT_CONTRADICTED,
    TestResult,
    binomial_test,
    chance_level,
    combine_verdicts,
    format_p,
    mcnemar_test,
    sign_test,
    verdict,
    wilcoxon_signed_rank,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""The course's committed results (``results/`` of the repository). ``helpers/results`` is a link to it,
so the package built from the repository (``pip install git+…``, as on Colab) carries the files the
chapters read (pyproject.toml's package-data): the chapters work from a checkout and from a pip install."""


def committed_results(name: str = "faces") -> Path:
    """The folder of a committed evaluation (``"faces"``, ``"faces-steps"``, ``"mnist"``), from a checkout or an install.

    A ``FileNotFoundError`` says how to make it when the folder is not there.
    """
    path = RESULTS_DIR / name
    if not (path / "config.json").exists() and not (path / "steps_curve.csv").exists():
        raise FileNotFoundError(
            f"the committed results {name!r} are not at {path}: install the course from its repository "
            f"(pip install git+<repository>), or make them with `python -m helpers.evaluate --prior faces --out {path}` "
            "(the folder's command.txt in the repository has the exact command)"
        )
    return path


__all__ = [
    "RESULTS_DIR",
    "committed_results",
    "ResultSet",
    "Score",
    "PART_CLASSES",
    "sdedit_sweet_spot",
    "eye_symmetry_recovery",
    "part_recovery",
    "expected_checks",
    "report",
]

OTHER_METHODS = ("measurement", "baseline", "score_ald", "dps")
DIFFUSION_METHODS = ("sdedit", "score_ald", "dps")
MIN_GAP = 0.01  # eye symmetry: a smaller measurement-to-truth gap leaves nothing to recover
FULL_GAP = 0.9  # eye symmetry: closing at least 90 % of the gap is described as "fully" (descriptive only)
PART_CLASSES = {"mouth": 13, "eyes": 8}  # len(helpers.data.FACE_MOUTHS), len(FACE_EYES); checked by a test


def _name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


@dataclass(frozen=True)
class Score:
    """Mean ± standard error over ``n`` images."""

    mean: float
    se: float
    n: int

    def __str__(self) -> str:
        if not math.isfinite(self.mean):
            return "–"
        return f"{self.mean:.3g} ± {self.se:.2g}" if math.isfinite(self.se) else f"{self.mean:.3g}"


def _score(values) -> Score:
    a = np.asarray(list(values), dtype=float)
    return Score(*_mean_se(a[np.isfinite(a)]))


@dataclass
class ResultSet:
    """The rows and chosen parameters of one results folder of :mod:`helpers.evaluate`.

    ``selected`` maps ``(task, noise string, method)`` to the chosen ``params`` string;
    ``report_images`` are the indices of the reported images (the selection images are
    never used here). ``folder``: where it was read from (for messages).
    """

    rows: list
    selected: dict
    report_images: list
    config: dict = field(default_factory=dict)
    folder: str = ""

    @classmethod
    def load(cls, folder) -> "ResultSet":
        """Read ``results.csv`` and ``config.json`` of ``folder`` (a ``--out`` of helpers.evaluate)."""
        folder = Path(folder)
        csv_path, cfg_path = folder / "results.csv", folder / "config.json"
        for p in (csv_path, cfg_path):
            if not p.exists():
                raise FileNotFoundError(
                    f"{p} does not exist: run `python -m helpers.evaluate --out {folder}` first (see the README), "
                    "or point to a folder that holds its results.csv and config.json"
                )
        cfg = json.loads(cfg_path.read_text())
        selected = {}
        for key, params in cfg.get("selected", {}).items():
            task, sigma, method = key.split("|")
            selected[(task, sigma.split("=", 1)[1], method)] = params
        return cls(read_results(csv_path), selected, [int(i) for i in cfg.get("report_images", [])], cfg, str(folder))

    # -- access
    @property
    def reference(self) -> dict:
        """Face measures of the clean reported images, ``{field: Score}`` (empty if not recorded)."""
        ref = self.config.get("reference") or {}
        return {k: Score(float(v[0]), float(v[1]), int(v[2])) for k, v in ref.items()}

    def noise_levels(self) -> list[str]:
        """The σ_y strings that have chosen parameters in this folder, sorted by value."""
        return sorted({k[1] for k in self.selected}, key=float)

    def has_face_measures(self) -> bool:
        """True when the rows carry eye/mouth-type and eye-symmetry values (the faces prior)."""
        return any(str(r.get(f, "")).strip() not in ("", "nan") for r in self.rows
                   for f in ("eyes_ok", "mouth_ok", "eye_symmetry"))

    def _rows(self, method: str, task: str, noise, params: Optional[str]) -> list:
        ns = _noise_str(float(noise))
        if params is None:
            params = self.selected.get((task, ns, method))
            if params is None:
                return []
        report = set(self.report_images)
        return [r for r in self.rows
                if (r["method"], r["params"], r["task"]) == (method, params, task) and r.get("status") == "ok"
                and _noise_str(float(r["noise"])) == ns and int(r["image"]) in report]

    def per_image(self, method: str, task: str, noise, field: str, params: Optional[str] = None) -> dict:
        """{image: value averaged over seeds} on the reported images; ``params`` default: the chosen ones."""
        return per_image_values(self._rows(method, task, noise, params), field)

    def trials(self, method: str, task: str, noise, field: str, params: Optional[str] = None) -> np.ndarray:
        """Every (image, seed) value of ``field`` on the reported images (finite ones), unaveraged.

        For a kept/lost field these are independent trials under the null of a uniform guess
        (each seed draws anew), the input of an exact binomial test against chance.
        """
        vals = []
        for r in self._rows(method, task, noise, params):
            try:
                v = float(r.get(field, ""))
            except ValueError:
                continue
            if math.isfinite(v):
                vals.append(v)
        return np.asarray(vals, dtype=float)

    def score(self, method: str, task: str, noise, field: str, params: Optional[str] = None) -> Score:
        return _score(self.per_image(method, task, noise, field, params).values())

    def sdedit_params(self, task: str, noise) -> list[tuple[float, str]]:
        """[(t0, params)] of the SDEdit sweep present for ``task`` and ``noise``, by t0."""
        ns = _noise_str(float(noise))
        found = {}
        for r in self.rows:
            if r["method"] == "sdedit" and r["task"] == task and _noise_str(float(r["noise"])) == ns:
                t0 = float(r["params"].split(";")[0].split("=")[1])
                found[t0] = r["params"]
        return sorted(found.items())

    def methods(self, task: str, noise) -> list[str]:
        ns = _noise_str(float(noise))
        return [m for m in ("measurement", "baseline", "sdedit", "score_ald", "dps") if (task, ns, m) in self.selected]


def _paired(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray]:
    """The values of ``a`` and ``b`` on the images both have, in image order."""
    common = sorted(set(a) & set(b))
    return np.array([a[i] for i in common], dtype=float), np.array([b[i] for i in common], dtype=float)


def _finite_pairs(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray]:
    x, y = _paired(a, b)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _kept_test(first: dict, second: dict, alternative: str = "two-sided", detail: str = "") -> TestResult:
    """McNemar's exact test when every per-image value is 0 or 1 (one seed), else the exact sign test
    on the per-image differences of the kept rates (several seeds averaged)."""
    a, b = _finite_pairs(first, second)
    if a.size == 0:
        raise ValueError(f"no common images with finite values to compare ({detail or 'kept/lost'})")
    if np.all(np.isin(a, (0, 1))) and np.all(np.isin(b, (0, 1))):
        return mcnemar_test(a, b, alternative, detail=detail)
    return sign_test(a - b, alternative, detail=detail)


def _value_test(first: dict, second: dict, alternative: str = "greater", detail: str = "") -> TestResult:
    """Wilcoxon signed-rank test of ``first − second`` over the images both have (PSNR, LPIPS, symmetry)."""
    a, b = _finite_pairs(first, second)
    if a.size < 2:
        raise ValueError(f"fewer than 2 common images with finite values to compare ({detail or 'paired values'})")
    return wilcoxon_signed_rank(a, b, alternative, detail=detail)


def _check_task(rs: ResultSet, task: str, noise) -> None:
    if not rs.methods(task, noise):
        have = sorted({(k[0], k[1]) for k in rs.selected})
        raise ValueError(f"no results for task {task!r} at σ_y = {_noise_str(float(noise))}; the folder has {have}")


def _check_field(rs: ResultSet, task: str, noise, field: str) -> None:
    """A clear error instead of NaN verdicts when a results folder lacks a measure (e.g. MNIST: no face measures)."""
    if not any(rs.per_image(m, task, noise, field) and
               any(math.isfinite(v) for v in rs.per_image(m, task, noise, field).values())
               for m in rs.methods(task, noise)):
        where = f" in {rs.folder}" if rs.folder else ""
        raise ValueError(f"no {field} values for {task!r} at σ_y = {_noise_str(float(noise))}{where}: "
                         + ("the face findings need a results folder of the faces prior (python -m helpers.evaluate "
                            "--prior faces ...), whose rows carry the face measures"
                            if field in ("eyes_ok", "mouth_ok", "eye_symmetry") else "this measure was not computed"))


def _pct(x: float) -> str:
    return f"{x:.0%}" if math.isfinite(x) else "–"


def _short(r: TestResult) -> str:
    """A test in a few words: name, the effect and its p-value."""
    name = {"exact McNemar test": "McNemar", "exact sign test": "sign test", "exact binomial test": "binomial"}.get(
        r.test, r.test.replace(" signed-rank test", "").replace("Wilcoxon", "Wilcoxon"))
    return f"{name} {format_p(r.p_value)}"


# ---------------------------------------------------------------------------- finding 1
def sdedit_sweet_spot(rs: ResultSet, task: str, noise, alpha: float = ALPHA) -> dict:
    """Is there a t0 at which SDEdit removes the degradation *and* keeps the face's parts?

    For every swept t0, three paired tests against the best other method (by mean; measurement,
    classical baseline, ScoreALD, DPS): PSNR (Wilcoxon signed-rank, one-sided: the best other
    is higher), eye type kept and mouth type kept (exact McNemar / sign test, two-sided). Each
    at ``alpha / 3`` (Bonferroni). A t0's word: "holds" (no sweet spot there) when any of the
    three shows SDEdit significantly worse; "does not hold" (a sweet spot) when one shows SDEdit
    significantly better and the others are no worse on average; else "not contradicted".
    The finding's word combines the t0s (:func:`helpers.stats.combine_verdicts`).

    Returns a dict with ``t0s``; per-t0 :class:`Score` lists ``psnr``, ``lpips``, ``eyes``,
    ``mouth``; the measurement's ``measurement`` scores; ``best_psnr`` and ``best_other``
    (``{"eyes_ok"|"mouth_ok": (Score, method)}``); per t0 ``tests`` (``{"psnr"|"eyes_ok"|"mouth_ok":
    TestResult}``, effects = best other − SDEdit) and ``t0_verdicts``; ``removes_degradation``
    (means: PSNR above, LPIPS below the measurement's, descriptive); ``sweet_spots`` (t0s judged
    "does not hold"); ``verdict_word`` and a ``verdict`` sentence with every p-value.
    """
    _check_task(rs, task, noise)
    sweep = rs.sdedit_params(task, noise)
    if not sweep:
        raise ValueError(f"no SDEdit sweep for {task!r} at σ_y = {_noise_str(float(noise))}")
    for f in ("psnr", "eyes_ok", "mouth_ok"):
        _check_field(rs, task, noise, f)
    ns = _noise_str(float(noise))
    lp = "lpips_alex" if rs.score("measurement", task, noise, "lpips_alex").n else "lpips_vgg"
    meas = {f: rs.score("measurement", task, noise, f) for f in ("psnr", lp, "eyes_ok", "mouth_ok")}
    others = [m for m in OTHER_METHODS if (task, ns, m) in rs.selected]

    def best_of(f: str) -> tuple[Score, str]:
        cands = [(rs.score(m, task, noise, f), m) for m in others]
        cands = [c for c in cands if c[0].n and math.isfinite(c[0].mean)]
        if not cands:
            raise ValueError(f"no other method has {f} values for {task!r} at σ_y = {ns}")
        return max(cands, key=lambda c: c[0].mean)

    best_psnr = best_of("psnr")
    best = {part: best_of(part) for part in ("eyes_ok", "mouth_ok")}
    ref_vals = {"psnr": rs.per_image(best_psnr[1], task, noise, "psnr"),
                **{p: rs.per_image(best[p][1], task, noise, p) for p in best}}
    out = {"task": task, "noise": ns, "t0s": [t for t, _ in sweep], "lpips_field": lp,
           "measurement": meas, "best_psnr": best_psnr, "best_other": best, "alpha": alpha}
    for key, f in (("psnr", "psnr"), ("lpips", lp), ("eyes", "eyes_ok"), ("mouth", "mouth_ok")):
        out[key] = [rs.score("sdedit", task, noise, f, params) for _, params in sweep]
    level = alpha / 3
    tests, words, keeps = [], [], []
    for t0, params in sweep:
        sd = {f: rs.per_image("sdedit", task, noise, f, params) for f in ("psnr", "eyes_ok", "mouth_ok")}
        t = {"psnr": _value_test(ref_vals["psnr"], sd["psnr"], "greater",
                                 detail=f"PSNR, {_name(best_psnr[1])} − SDEdit (t0 = {t0:g})")}
        for p in ("eyes_ok", "mouth_ok"):
            t[p] = _kept_test(ref_vals[p], sd[p], "two-sided", detail=f"{p[:-3]} kept, {_name(best[p][1])} − SDEdit (t0 = {t0:g})")
        w = {k: verdict(r, "greater", alpha=level) for k, r in t.items()}
        if HOLDS in w.values():
            word = HOLDS
        elif DOES_NOT_HOLD in w.values() and all(r.effect <= 0 for r in t.values()):
            word = DOES_NOT_HOLD
        else:
            word = NOT_CONTRADICTED
        tests.append(t)
        words.append(word)
        keeps.append(w["eyes_ok"] != HOLDS and w["mouth_ok"] != HOLDS)
    out["tests"], out["t0_verdicts"], out["keeps_parts"] = tests, words, keeps
    out["removes_degradation"] = [out["psnr"][j].mean > meas["psnr"].mean and out["lpips"][j].mean < meas[lp].mean
                                  for j in range(len(sweep))]
    out["sweet_spots"] = [t0 for t0, w in zip(out["t0s"], words) if w == DOES_NOT_HOLD]
    out["verdict_word"] = combine_verdicts(words)
    per_t0 = []
    for t0, t, w in zip(out["t0s"], tests, words):
        per_t0.append(f"t0 = {t0:g}: PSNR {0.0 - t['psnr'].effect:+.2f} dB ({_short(t['psnr'])}), eyes kept "
                      f"{0.0 - t['eyes_ok'].effect:+.0%} ({_short(t['eyes_ok'])}), mouth kept {0.0 - t['mouth_ok'].effect:+.0%} "
                      f"({_short(t['mouth_ok'])}) → {w}")
    out["verdict"] = (
        f"{task}, σ_y = {ns}, SDEdit against the best other method (PSNR: {_name(best_psnr[1])} {best_psnr[0].mean:.2f} dB; "
        f"eyes kept: {_name(best['eyes_ok'][1])} {_pct(best['eyes_ok'][0].mean)}; mouth kept: {_name(best['mouth_ok'][1])} "
        f"{_pct(best['mouth_ok'][0].mean)}); SDEdit's median PSNR difference and kept-rate differences, each test at "
        f"{level:.3g} (Bonferroni over 3): " + "; ".join(per_t0)
        + f". Finding 1 (no t0 both removes the degradation and keeps the parts): **{out['verdict_word']}**."
    )
    return out


# ---------------------------------------------------------------------------- finding 2
def eye_symmetry_recovery(rs: ResultSet, task: str, noise, truth_symmetry: Score,
                          truth_per_image: Optional[dict] = None, alpha: float = ALPHA) -> dict:
    """Is eye symmetry only partly recovered? Every method against the measurement and the clean faces.

    ``truth_symmetry``: the clean reported faces' :class:`Score` (``ResultSet.reference``);
    ``truth_per_image``: optional ``{image: clean eye symmetry}`` for tests paired per image
    (else one-sample tests against ``truth_symmetry.mean``, named so in the sentence).

    For each method: ``vs_measurement`` (Wilcoxon signed-rank, one-sided, method − measurement
    > 0: symmetry recovered at all) and ``vs_truth`` (clean − method > 0: recovered only in part);
    its ``word`` combines both (:func:`helpers.stats.combine_verdicts`). ``status`` describes it:
    "not" (not significantly above the measurement), "partly" (above it and below the clean
    faces), "fully" (above it, not significantly below the clean faces). ``gap_closed`` =
    (method − measurement) / (clean − measurement), on the means. Premise: the gap is at least
    :data:`MIN_GAP`; else every word is "does not hold" (nothing was lost, nothing to recover).
    Returns ``{"methods": {method: {...}}, "truth", "gap", "paired_with_truth", "verdict_word",
    "verdict"}``; the word combines the diffusion methods.
    """
    _check_task(rs, task, noise)
    _check_field(rs, task, noise, "eye_symmetry")
    ns = _noise_str(float(noise))
    meas = rs.per_image("measurement", task, noise, "eye_symmetry")
    m_score = _score(meas.values())
    paired = truth_per_image is not None
    truth = dict(truth_per_image) if paired else None
    gap = truth_symmetry.mean - m_score.mean
    premise = gap >= MIN_GAP
    out: dict = {"task": task, "noise": ns, "truth": truth_symmetry, "measurement": m_score, "gap": gap,
                 "paired_with_truth": paired, "premise": premise, "methods": {}}

    def vs_truth(vals: dict, who: str) -> TestResult:
        ref = truth if paired else {i: truth_symmetry.mean for i in vals}
        kind = "paired" if paired else "one-sample against the clean mean"
        return _value_test(ref, vals, "greater", detail=f"eye symmetry, clean − {who} ({kind})")

    out["measurement_vs_truth"] = vs_truth(meas, "measurement")
    for m in rs.methods(task, noise):
        if m == "measurement":
            continue
        vals = rs.per_image(m, task, noise, "eye_symmetry")
        s = _score(vals.values())
        up = _value_test(vals, meas, "greater", detail=f"eye symmetry, {_name(m)} − measurement")
        down = vs_truth(vals, _name(m))
        w_up, w_down = verdict(up, "greater", alpha=alpha), verdict(down, "greater", alpha=alpha)
        status = "not" if w_up != HOLDS else ("partly" if w_down == HOLDS else "fully")
        closed = (s.mean - m_score.mean) / gap if abs(gap) > 1e-12 else float("nan")
        out["methods"][m] = {"symmetry": s, "gap_closed": closed, "vs_measurement": up, "vs_truth": down,
                             "status": status if premise else "nothing to recover",
                             "word": combine_verdicts([w_up, w_down]) if premise else DOES_NOT_HOLD}
    words = [v["word"] for m, v in out["methods"].items() if m in DIFFUSION_METHODS]
    out["verdict_word"] = combine_verdicts(words) if words else NOT_CONTRADICTED
    if not premise:
        out["verdict_word"] = DOES_NOT_HOLD
    listing = "; ".join(
        f"{_name(m)} {v['symmetry'].mean:.3f} ({_pct(v['gap_closed'])} of the gap; vs measurement "
        f"{_short(v['vs_measurement'])}, vs clean {_short(v['vs_truth'])}: {v['status']}, {v['word']})"
        for m, v in out["methods"].items())
    head = (f"{task}, σ_y = {ns}: eye symmetry of the clean faces {truth_symmetry.mean:.3f}, measurement "
            f"{m_score.mean:.3f} (gap {gap:.3f}; measurement below clean: {_short(out['measurement_vs_truth'])}); "
            f"Wilcoxon signed-rank tests{'' if paired else ', against the clean faces one-sample (no per-image clean values)'}. ")
    if not premise:
        out["verdict"] = (head + f"The gap is below {MIN_GAP}: the measurement lost (almost) no symmetry, so the premise "
                          f"(a visible loss to recover) is false. {listing}. Finding 2 (eye symmetry only partly recovered): "
                          f"**{DOES_NOT_HOLD}** (nothing to recover).")
    else:
        out["verdict"] = head + listing + f". Finding 2 (eye symmetry only partly recovered): **{out['verdict_word']}**."
    return out


# ---------------------------------------------------------------------------- finding 3
def part_recovery(rs: ResultSet, task: str, noise, part: str = "mouth", truth_rate: Optional[float] = None,
                  alpha: float = ALPHA) -> dict:
    """How often each method shows the true ``part`` ("mouth" or "eyes") type on ``task``, with tests.

    * ``chance``: :func:`helpers.stats.chance_level` of the part's number of types
      (:data:`PART_CLASSES`: 1/13 for the mouth, 1/8 for the eyes), what a uniform guess keeps
      when the box hides the whole part;
    * ``vs_chance``: ``{method: TestResult}``, exact binomial test (one-sided, above chance)
      over every (image, seed) trial;
    * ``dps_vs``: ``{method: TestResult}``, DPS against every other method on the same images
      (exact McNemar test, two-sided; the exact sign test on per-image rates with several seeds);
    * ``leader``: the diffusion method significantly ahead of every other diffusion method
      (two-sided p < ``alpha`` each), or None.

    The course's finding (for the mouth): DPS keeps it above chance *and* more often than every
    other method. ``verdict_word`` combines those tests; None for the eyes (only reported).
    Returns also ``methods`` (``{method: Score}``), ``counts`` (``{method: (kept, trials)}``) and
    a ``verdict`` sentence with every p-value.
    """
    if part not in PART_CLASSES:
        raise ValueError(f"part must be 'mouth' or 'eyes', got {part!r}")
    _check_task(rs, task, noise)
    f = f"{part}_ok"
    _check_field(rs, task, noise, f)
    ns = _noise_str(float(noise))
    chance = chance_level(PART_CLASSES[part])
    per = {m: rs.per_image(m, task, noise, f) for m in rs.methods(task, noise)}
    scores = {m: _score(v.values()) for m, v in per.items()}
    counts, vs_chance = {}, {}
    for m in per:
        tr = rs.trials(m, task, noise, f)
        if tr.size:
            counts[m] = (int(round(tr.sum())), int(tr.size))
            vs_chance[m] = binomial_test(*counts[m], chance, "greater",
                                         detail=f"{_name(m)}: {part} kept {counts[m][0]} of {counts[m][1]} against chance 1/{PART_CLASSES[part]}")
    dps_vs = {}
    if "dps" in per:
        for m in per:
            if m != "dps":
                dps_vs[m] = _kept_test(per["dps"], per[m], "two-sided", detail=f"{part} kept, DPS − {_name(m)}")
    diffusion = [m for m in DIFFUSION_METHODS if m in per]
    leader = None
    for cand in diffusion:
        rest = [m for m in diffusion if m != cand]
        if rest and all(verdict(_kept_test(per[cand], per[m]), "greater", alpha=alpha) == HOLDS for m in rest):
            leader = cand
    finding = part == "mouth"
    word = None
    if finding:
        if "dps" not in per or "dps" not in vs_chance:
            word = DOES_NOT_HOLD if "dps" in per else NOT_CONTRADICTED
        else:
            word = combine_verdicts([verdict(vs_chance["dps"], "greater", alpha=alpha)]
                                    + [verdict(r, "greater", alpha=alpha) for r in dps_vs.values()])
    ref = f", clean faces {_pct(truth_rate)}" if truth_rate is not None else ""
    listing = "; ".join(
        f"{_name(m)} {counts[m][0]}/{counts[m][1]} = {_pct(scores[m].mean)} (vs chance: {_short(vs_chance[m])})"
        for m in per if m in counts)
    versus = "; ".join(f"DPS − {_name(m)} {r.effect:+.0%} ({_short(r)})" for m, r in dps_vs.items())
    sentence = (f"{task}, σ_y = {ns}, {part} type kept (chance 1/{PART_CLASSES[part]} = {_pct(chance)}{ref}): {listing}. "
                + (f"Paired: {versus}. " if versus else "")
                + (f"Leader among the diffusion methods (p < {alpha:g} against each): {_name(leader)}. " if leader else
                   "No diffusion method is significantly ahead of all the others. "))
    if finding:
        sentence += f"Finding 3 (only DPS partly keeps the {part}: above chance and ahead of every other method): **{word}**."
    return {"task": task, "noise": ns, "part": part, "chance": chance, "methods": scores, "counts": counts,
            "vs_chance": vs_chance, "dps_vs": dps_vs, "leader": leader, "verdict_word": word, "verdict": sentence}


# ---------------------------------------------------------------------------- figures
NOISE_LINESTYLES = ("-", "--", ":", "-.")


def sweet_spot_figure(sweeps: Sequence[dict], dps: Optional[ResultSet] = None):
    """PSNR, LPIPS, eye- and mouth-type recovery against t0, one line per :func:`sdedit_sweet_spot` result.

    Encoding: **colour = task**, **line style = noise level σ_y** (solid, dashed, dotted,
    dash-dot in the order the noise levels first appear), so no two sweeps share both. The
    measurement's value is a thin line in the sweep's colour and style ending in a square at
    the right edge; the best other method's part recovery one ending in a triangle. t0s judged
    sweet spots are ringed in black. Returns a matplotlib Figure (no pyplot).
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if not sweeps:
        raise ValueError("sweeps is empty: pass results of sdedit_sweet_spot")
    tasks = list(dict.fromkeys(sw["task"] for sw in sweeps))
    noises = list(dict.fromkeys(sw["noise"] for sw in sweeps))
    if len(noises) > len(NOISE_LINESTYLES):
        raise ValueError(f"at most {len(NOISE_LINESTYLES)} noise levels in one figure, got {noises}")
    fig = Figure(figsize=(11, 3.2))
    axes = fig.subplots(1, 4)
    panels = [("psnr", "PSNR [dB] ↑", "psnr"), ("lpips", "LPIPS ↓", None), ("eyes", "eye type kept ↑", "eyes_ok"),
              ("mouth", "mouth type kept ↑", "mouth_ok")]
    for sw in sweeps:
        color = f"C{tasks.index(sw['task'])}"
        ls = NOISE_LINESTYLES[noises.index(sw["noise"])]
        label = f"{sw['task']}, σ_y={sw['noise']}"
        xmax = max(sw["t0s"])
        for ax, (key, title, meas_key) in zip(axes, panels):
            mk = meas_key or sw["lpips_field"]
            ys = np.array([s.mean for s in sw[key]])
            es = np.array([s.se if math.isfinite(s.se) else 0.0 for s in sw[key]])
            ax.errorbar(sw["t0s"], ys, yerr=es, marker="o", ms=3, color=color, ls=ls, capsize=2, label=label)
            refs = [(sw["measurement"][mk].mean, "s")]
            if key in ("eyes", "mouth"):
                refs.append((sw["best_other"][f"{key}_ok"][0].mean, "^"))
            for value, marker in refs:
                ax.axhline(value, color=color, ls=ls, lw=0.8, alpha=0.6)
                ax.plot([xmax], [value], marker=marker, color=color, ms=5, clip_on=False)
            spots = [j for j, t in enumerate(sw["t0s"]) if t in sw["sweet_spots"]]
            if spots:
                ax.plot([sw["t0s"][j] for j in spots], ys[spots], "o", mfc="none", mec="k", ms=9)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("SDEdit start time $t_0$", fontsize=8)
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=7)
    keys = [Line2D([], [], color="0.4", lw=0.8, marker="s", ms=4, label="measurement"),
            Line2D([], [], color="0.4", lw=0.8, marker="^", ms=4, label="best other method")]
    axes[0].legend(handles=axes[0].get_legend_handles_labels()[0] + keys, fontsize=7)
    fig.suptitle("SDEdit sweep (mean ± s.e.); colour: task, line style: σ_y; thin lines: the measurement (■) "
                 "and the best other method's part recovery (▲)", fontsize=9)
    fig.set_layout_engine("constrained")
    return fig


def method_bars(groups: dict, *, ylabel: str, title: str = "", reference: Optional[dict] = None):
    """Grouped bars: ``groups = {group label: {method: Score}}`` (e.g. one group per task).

    ``reference``: ``{group label: value}`` drawn as a black line over the group (e.g. the clean
    faces' score). Returns a matplotlib Figure.
    """
    from matplotlib.figure import Figure

    if not groups:
        raise ValueError("groups is empty")
    methods = []
    for g in groups.values():
        for m in g:
            if m not in methods:
                methods.append(m)
    fig = Figure(figsize=(1.2 + 1.6 * len(groups) + 0.3 * len(methods), 3.2))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(methods))
    for j, m in enumerate(methods):
        xs, ys, es = [], [], []
        for gi, g in enumerate(groups.values()):
            if m in g and math.isfinite(g[m].mean):
                xs.append(gi + (j - (len(methods) - 1) / 2) * width)
                ys.append(g[m].mean)
                es.append(g[m].se if math.isfinite(g[m].se) else 0.0)
        ax.bar(xs, ys, width, yerr=es, capsize=2, label=METHOD_NAMES.get(m, m), color=f"C{j}")
    for gi, label in enumerate(groups):
        if reference and label in reference:
            ax.hlines(reference[label], gi - 0.45, gi + 0.45, colors="k", lw=1.5,
                      label="clean images" if gi == 0 else None)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(list(groups), fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.set_layout_engine("constrained")
    return fig


# ---------------------------------------------------------------------------- command line
def expected_checks(rs: ResultSet, noise=0.05, alpha: float = ALPHA) -> list[str]:
    """The harness issue's expectation, tested: DPS has lower LPIPS (alex) than the measurement and
    the classical baseline on box inpainting and Gaussian deblurring (Wilcoxon signed-rank,
    one-sided, paired per image); one sentence per task with both p-values and the combined word."""
    out = []
    lp = "lpips_alex"
    for task in ("box", "deblur"):
        if not rs.methods(task, noise):
            continue
        _check_field(rs, task, noise, lp)
        dps = rs.per_image("dps", task, noise, lp)
        tests = {m: _value_test(rs.per_image(m, task, noise, lp), dps, "greater", detail=f"LPIPS, {_name(m)} − DPS")
                 for m in ("measurement", "baseline") if rs.per_image(m, task, noise, lp)}
        word = combine_verdicts([verdict(r, "greater", alpha=alpha) for r in tests.values()]) if tests else NOT_CONTRADICTED
        d = rs.score("dps", task, noise, lp)
        parts = "; ".join(f"{_name(m)} {rs.score(m, task, noise, lp)} ({_short(r)})" for m, r in tests.items())
        out.append(f"{task}, σ_y = {_noise_str(float(noise))}: LPIPS (alex) DPS {d}; {parts}. "
                   f"Expectation (DPS below the measurement and the classical baseline): **{word}**.")
    return out


def _clean_eye_symmetry(rs: ResultSet) -> Optional[dict]:
    """Per-image eye symmetry of the clean reported faces, recomputed from the cached test faces;
    None when they cannot be had or do not reproduce the folder's recorded mean."""
    ref = rs.reference.get("eye_symmetry")
    if ref is None or rs.config.get("dataset") != "faces" or not rs.report_images:
        return None
    try:
        from .data import face_dataset
        from .face_measures import eye_symmetry

        idx = list(rs.report_images)
        images, _ = face_dataset("test", n=max(idx) + 1, progress=False)
        vals = np.asarray(eye_symmetry(images[idx]), dtype=float)
    except Exception:  # noqa: BLE001 - the paired test is a refinement; fall back to one-sample
        return None
    if abs(float(vals.mean()) - ref.mean) > 1e-6:
        return None
    return dict(zip(idx, vals.tolist()))


def report(folder, noise=0.05) -> str:
    """Every finding and expectation of a faces results folder, with its tests, as Markdown bullets.

    Raises ValueError with a message naming the fix when the folder has no face measures (e.g.
    an MNIST folder) or no rows at ``noise`` (listing the noise levels it has).
    """
    rs = ResultSet.load(folder)
    ns = _noise_str(float(noise))
    if not rs.has_face_measures():
        raise ValueError(f"{folder} has no face measures (prior {rs.config.get('prior', '?')!r}): the face findings "
                         "need a results folder of the faces prior, e.g. `python -m helpers.evaluate --prior faces ...` "
                         "(results/faces)")
    if ns not in rs.noise_levels():
        raise ValueError(f"{folder} has no results at σ_y = {ns}; the noise levels present are "
                         f"{', '.join(rs.noise_levels()) or 'none'}: pass one of them with --noise")
    lines = [f"Findings from `{folder}` (σ_y = {ns}); every test paired over the reported images, level {ALPHA:g}; "
             "verdicts: holds / not contradicted / does not hold:", ""]
    lines += [f"- {s}" for s in expected_checks(rs, noise)]
    for task in ("deblur", "box"):  # the poster's tasks (on the part boxes no method recovers the hidden part)
        if rs.methods(task, noise) and rs.sdedit_params(task, noise):
            lines.append("- " + sdedit_sweet_spot(rs, task, noise)["verdict"])
    ref = rs.reference
    if "eye_symmetry" in ref:
        clean = _clean_eye_symmetry(rs)
        for s in dict.fromkeys((ns, "0")):
            if rs.methods("deblur", s):
                lines.append("- " + eye_symmetry_recovery(rs, "deblur", s, ref["eye_symmetry"], clean)["verdict"])
    for task, part in (("box_mouth", "mouth"), ("box", "mouth"), ("deblur", "mouth"), ("box_eyes", "eyes"), ("deblur", "eyes")):
        if rs.methods(task, noise):
            truth = ref[f"{part}_ok"].mean if f"{part}_ok" in ref else None
            lines.append("- " + part_recovery(rs, task, noise, part, truth_rate=truth)["verdict"])
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m helpers.findings", description="The course's findings from a results folder.")
    p.add_argument("folder", nargs="?", default="results/faces", help="an --out folder of helpers.evaluate (faces prior)")
    p.add_argument("--noise", type=float, default=0.05)
    p.add_argument("--out", default=None, help="also write the Markdown here")
    args = p.parse_args(argv)
    try:
        text = report(args.folder, args.noise)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
