"""The course's three findings, checked against the numbers of :mod:`helpers.evaluate`.

The poster the course is built from observed, on real face photos:

1. **SDEdit has no t0 "sweet spot"** that deblurs or inpaints without hallucination;
2. **eye symmetry is only partly recovered** under deconvolution;
3. **only DPS partly keeps the shape of the upper lip** (the mouth).

On the bundled cartoon-face prior every face is drawn from known parts, so each observation
becomes a number computed from a results folder of ``python -m helpers.evaluate`` (its
``results.csv`` and ``config.json``):

* :func:`sdedit_sweet_spot` -- for every swept t0: PSNR and LPIPS against the measurement's
  (does it remove the degradation?) and the eye-type and mouth-type recovery against the best
  other method's (does it keep the face's parts, or invent new ones?). A *sweet spot* is a t0
  that does both: PSNR above and LPIPS below the measurement's means, and eye and mouth
  recovery each no more than one standard error below the best of the other methods
  (measurement, classical baseline, ScoreALD, DPS).
* :func:`eye_symmetry_recovery` -- the eye-symmetry score (:func:`helpers.face_measures.eye_symmetry`)
  of each method on a task, and the fraction of the gap between the measurement and the clean
  faces that it closes: *not* recovered when the method is not above the measurement by more
  than one paired standard error (or closes under 10 % of the gap), *fully* when it closes at
  least 90 % of the gap (:data:`FULL_GAP`), *partly* in between.
* :func:`part_recovery` -- how often each method's reconstruction shows the true mouth (or
  eye) type, and whether one method is ahead of every other by more than one paired standard
  error.

All values are means over the *reported* images (seeds averaged per image first) with standard
errors over images; the verdicts are sentences that state the numbers they rest on, so a
chapter can print them next to its plots. Metrics live in image space [0, 1].
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .evaluate import METHOD_NAMES, _mean_se, _noise_str, per_image_values, read_results

__all__ = [
    "ResultSet",
    "Score",
    "sdedit_sweet_spot",
    "eye_symmetry_recovery",
    "part_recovery",
]

OTHER_METHODS = ("measurement", "baseline", "score_ald", "dps")
MIN_GAP = 0.01  # eye symmetry: a smaller measurement-to-truth gap leaves nothing to recover
FULL_GAP = 0.9  # eye symmetry: closing at least 90 % of the measurement-to-truth gap counts as "fully"


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
    never used here).
    """

    rows: list
    selected: dict
    report_images: list
    config: dict = field(default_factory=dict)

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
        return cls(read_results(csv_path), selected, [int(i) for i in cfg.get("report_images", [])], cfg)

    # -- access
    @property
    def reference(self) -> dict:
        """Face measures of the clean reported images, ``{field: Score}`` (empty if not recorded)."""
        ref = self.config.get("reference") or {}
        return {k: Score(float(v[0]), float(v[1]), int(v[2])) for k, v in ref.items()}

    def per_image(self, method: str, task: str, noise, field: str, params: Optional[str] = None) -> dict:
        """{image: value averaged over seeds} on the reported images; ``params`` default: the chosen ones."""
        ns = _noise_str(float(noise))
        if params is None:
            params = self.selected.get((task, ns, method))
            if params is None:
                return {}
        report = set(self.report_images)
        rows = [r for r in self.rows
                if (r["method"], r["params"], r["task"]) == (method, params, task) and r.get("status") == "ok"
                and _noise_str(float(r["noise"])) == ns and int(r["image"]) in report]
        return per_image_values(rows, field)

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


def _paired(a: dict, b: dict) -> Score:
    """Mean ± s.e. of a − b over the images both have."""
    common = sorted(set(a) & set(b))
    return _score(a[i] - b[i] for i in common)


def _check_task(rs: ResultSet, task: str, noise) -> None:
    if not rs.methods(task, noise):
        have = sorted({(k[0], k[1]) for k in rs.selected})
        raise ValueError(f"no results for task {task!r} at σ_y = {_noise_str(float(noise))}; the folder has {have}")


# ---------------------------------------------------------------------------- finding 1
def sdedit_sweet_spot(rs: ResultSet, task: str, noise) -> dict:
    """Is there a t0 at which SDEdit removes the degradation *and* keeps the face's parts?

    Returns a dict with ``t0s``, per-t0 :class:`Score` lists ``psnr``, ``lpips``, ``eyes``,
    ``mouth``; the measurement's ``measurement`` scores; ``best_other`` (the best other method's
    eye and mouth recovery, and which method); per-t0 booleans ``removes_degradation`` and
    ``keeps_parts``; ``sweet_spots`` (the t0s with both) and a ``verdict`` sentence.
    """
    _check_task(rs, task, noise)
    sweep = rs.sdedit_params(task, noise)
    if not sweep:
        raise ValueError(f"no SDEdit sweep for {task!r} at σ_y = {_noise_str(float(noise))}")
    lp = "lpips_alex" if rs.score("measurement", task, noise, "lpips_alex").n else "lpips_vgg"
    meas = {f: rs.score("measurement", task, noise, f) for f in ("psnr", lp, "eyes_ok", "mouth_ok")}
    best = {}
    for part in ("eyes_ok", "mouth_ok"):
        cands = [(rs.score(m, task, noise, part), m) for m in OTHER_METHODS if (task, _noise_str(float(noise)), m) in rs.selected]
        cands = [c for c in cands if c[0].n]
        best[part] = max(cands, key=lambda c: c[0].mean) if cands else (Score(float("nan"), float("nan"), 0), "")
    out = {"task": task, "noise": _noise_str(float(noise)), "t0s": [t for t, _ in sweep], "lpips_field": lp,
           "measurement": meas, "best_other": best}
    for key, f in (("psnr", "psnr"), ("lpips", lp), ("eyes", "eyes_ok"), ("mouth", "mouth_ok")):
        out[key] = [rs.score("sdedit", task, noise, f, params) for _, params in sweep]
    removes, keeps = [], []
    for j in range(len(sweep)):
        removes.append(out["psnr"][j].mean > meas["psnr"].mean and out["lpips"][j].mean < meas[lp].mean)
        ok = True
        for key, part in (("eyes", "eyes_ok"), ("mouth", "mouth_ok")):
            ref, _ = best[part]
            s = out[key][j]
            if not (math.isfinite(ref.mean) and math.isfinite(s.mean)):
                ok = False
                continue
            tol = s.se if math.isfinite(s.se) else 0.0
            ok = ok and s.mean >= ref.mean - tol
        keeps.append(ok)
    out["removes_degradation"], out["keeps_parts"] = removes, keeps
    out["sweet_spots"] = [t for t, r, k in zip(out["t0s"], removes, keeps) if r and k]
    rem = [f"{t:g}" for t, r in zip(out["t0s"], removes) if r]
    kp = [f"{t:g}" for t, k in zip(out["t0s"], keeps) if k]
    (be, bm), (bmo, bmm) = best["eyes_ok"], best["mouth_ok"]
    head = (f"{task}, σ_y = {out['noise']}: SDEdit beats the measurement in PSNR and LPIPS at t0 ∈ {{{', '.join(rem) or 'none'}}}; "
            f"it keeps eye and mouth types as often as the best other method (eyes {be.mean:.0%} by "
            f"{METHOD_NAMES.get(bm, bm)}, mouth {bmo.mean:.0%} by {METHOD_NAMES.get(bmm, bmm)}) at t0 ∈ {{{', '.join(kp) or 'none'}}}. ")
    if out["sweet_spots"]:
        out["verdict"] = head + f"Sweet spot at t0 = {', '.join(f'{t:g}' for t in out['sweet_spots'])}: the finding does NOT hold here."
    else:
        out["verdict"] = head + "No t0 does both: the finding holds."
    return out


# ---------------------------------------------------------------------------- finding 2
def eye_symmetry_recovery(rs: ResultSet, task: str, noise, truth_symmetry: Score) -> dict:
    """Eye symmetry of every method on ``task`` against the measurement and the clean faces.

    ``truth_symmetry``: the score of the clean reported faces (e.g. ``Score`` of
    :func:`helpers.face_measures.eye_symmetry` on them). Returns ``{method: {"symmetry": Score,
    "gap_closed": float, "vs_measurement": Score (paired), "status": "not"|"partly"|"fully"}}``
    plus ``truth`` and a ``verdict`` sentence. ``gap_closed`` = (method − measurement) /
    (truth − measurement).
    """
    _check_task(rs, task, noise)
    meas = rs.per_image("measurement", task, noise, "eye_symmetry")
    m_score = _score(meas.values())
    out: dict = {"task": task, "noise": _noise_str(float(noise)), "truth": truth_symmetry, "methods": {}}
    gap = truth_symmetry.mean - m_score.mean
    for m in rs.methods(task, noise):
        vals = rs.per_image(m, task, noise, "eye_symmetry")
        s = _score(vals.values())
        d = _paired(vals, meas)
        closed = (s.mean - m_score.mean) / gap if abs(gap) > 1e-12 else float("nan")
        above_meas = (math.isfinite(d.se) and d.mean > d.se) or (not math.isfinite(d.se) and d.mean > 0)
        if not above_meas or not math.isfinite(closed) or closed < 0.1:
            status = "not"
        elif closed >= FULL_GAP:
            status = "fully"
        else:
            status = "partly"
        out["methods"][m] = {"symmetry": s, "gap_closed": closed, "vs_measurement": d, "status": "not" if m == "measurement" else status}
    if abs(gap) < MIN_GAP:
        out["verdict"] = (f"{task}, σ_y = {out['noise']}: the measurement's eye symmetry ({m_score.mean:.3f}) is already that "
                          f"of the clean faces ({truth_symmetry.mean:.3f}; gap {gap:.3f} < {MIN_GAP}): there is nothing to "
                          "recover, so the finding cannot be tested on this task. "
                          + "; ".join(f"{METHOD_NAMES.get(m, m)} {v['symmetry'].mean:.3f}" for m, v in out["methods"].items()
                                      if m != "measurement") + ".")
        for v in out["methods"].values():
            v["status"] = "nothing to recover"
        return out
    parts = [f"{METHOD_NAMES.get(m, m)} {v['symmetry'].mean:.3f} ({v['status']}"
             + (f", {v['gap_closed']:.0%} of the gap" if m != "measurement" and math.isfinite(v["gap_closed"]) else "") + ")"
             for m, v in out["methods"].items()]
    statuses = {v["status"] for m, v in out["methods"].items() if m in ("sdedit", "score_ald", "dps")}
    if statuses and statuses <= {"partly"}:
        tail = "every diffusion method recovers it only partly: the finding holds."
    elif "fully" in statuses and "partly" in statuses:
        tail = "some diffusion methods recover it fully, others partly: the finding holds only in part."
    elif statuses == {"fully"}:
        tail = f"every diffusion method closes at least {FULL_GAP:.0%} of the gap: the finding does NOT hold here."
    elif statuses == {"not"}:
        tail = "no diffusion method improves the measurement's symmetry: the finding does NOT hold here (nothing is recovered)."
    else:
        tail = "the diffusion methods differ (" + ", ".join(sorted(statuses)) + "): the finding holds only in part."
    out["verdict"] = (f"{task}, σ_y = {out['noise']}: eye symmetry of the clean faces {truth_symmetry.mean:.3f}, "
                      f"measurement {m_score.mean:.3f}; " + "; ".join(parts[1:] if parts and parts[0].startswith("measurement") else parts)
                      + f". {tail[0].upper() + tail[1:]}")
    return out


# ---------------------------------------------------------------------------- finding 3
def part_recovery(rs: ResultSet, task: str, noise, part: str = "mouth", truth_rate: Optional[float] = None) -> dict:
    """How often each method shows the true ``part`` ("mouth" or "eyes") type on ``task``.

    Returns ``{"methods": {method: Score}, "leader": method or None, "margins": {method: Score}
    (leader − method, paired), "verdict": str}``. The leader is the method with the highest
    recovery that is ahead of every other diffusion method by more than one paired standard
    error; None if no method is. ``truth_rate``: the classifier's rate on the clean faces
    (what "fully" would be), for the sentence.
    """
    if part not in ("mouth", "eyes"):
        raise ValueError(f"part must be 'mouth' or 'eyes', got {part!r}")
    _check_task(rs, task, noise)
    f = f"{part}_ok"
    per = {m: rs.per_image(m, task, noise, f) for m in rs.methods(task, noise)}
    scores = {m: _score(v.values()) for m, v in per.items()}
    diffusion = [m for m in ("sdedit", "score_ald", "dps") if m in per]
    leader, margins = None, {}
    if diffusion:
        top = max(diffusion, key=lambda m: scores[m].mean)
        margins = {m: _paired(per[top], per[m]) for m in diffusion if m != top}
        if all(math.isfinite(d.mean) and d.mean > (d.se if math.isfinite(d.se) else 0.0) for d in margins.values()):
            leader = top
    listing = "; ".join(f"{METHOD_NAMES.get(m, m)} {s.mean:.0%} ± {s.se:.0%}" if math.isfinite(s.se) else
                        f"{METHOD_NAMES.get(m, m)} {s.mean:.0%}" for m, s in scores.items())
    ref = f" (clean faces: {truth_rate:.0%})" if truth_rate is not None else ""
    finding = part == "mouth"  # the course's finding is about the mouth; for the eyes the sentence only reports
    if leader == "dps":
        partly = truth_rate is None or scores["dps"].mean < truth_rate - (scores["dps"].se or 0)
        tail = ("DPS alone is ahead of the other diffusion methods by more than one paired standard error"
                + (f", and below the clean faces: it partly keeps the {part}." if partly else f", and keeps the {part} as often as the clean faces show it.")
                + ((" The finding holds." if partly else " The finding holds, and DPS even keeps it fully here.") if finding else ""))
    elif leader is not None:
        tail = f"{METHOD_NAMES.get(leader, leader)}, not DPS, is ahead of the other diffusion methods" + (
            ": the finding does NOT hold here." if finding else ".")
    else:
        tail = "no diffusion method is ahead of all others by more than one paired standard error" + (
            ": the finding is not confirmed here." if finding else ".")
    return {"task": task, "noise": _noise_str(float(noise)), "part": part, "methods": scores, "leader": leader,
            "margins": margins, "verdict": f"{task}, σ_y = {_noise_str(float(noise))}, {part} type recovered{ref}: {listing}. {tail}"}


# ---------------------------------------------------------------------------- figures
def sweet_spot_figure(sweeps: Sequence[dict], dps: Optional[ResultSet] = None):
    """PSNR, LPIPS, eye- and mouth-type recovery against t0, one line per :func:`sdedit_sweet_spot` result.

    The measurement's value is a dotted line, the best other method's recovery a dashed one (same
    colour); t0s that are sweet spots are ringed. Returns a matplotlib Figure (no pyplot).
    """
    from matplotlib.figure import Figure

    if not sweeps:
        raise ValueError("sweeps is empty: pass results of sdedit_sweet_spot")
    fig = Figure(figsize=(11, 3.0))
    axes = fig.subplots(1, 4)
    panels = [("psnr", "PSNR [dB] ↑", "psnr"), ("lpips", "LPIPS ↓", None), ("eyes", "eye type kept ↑", "eyes_ok"),
              ("mouth", "mouth type kept ↑", "mouth_ok")]
    for k, sw in enumerate(sweeps):
        color = f"C{k}"
        label = f"{sw['task']}, σ_y={sw['noise']}"
        for ax, (key, title, meas_key) in zip(axes, panels):
            mk = meas_key or sw["lpips_field"]
            ys = np.array([s.mean for s in sw[key]])
            es = np.array([s.se if math.isfinite(s.se) else 0.0 for s in sw[key]])
            ax.errorbar(sw["t0s"], ys, yerr=es, marker="o", ms=3, color=color, capsize=2, label=label)
            ax.axhline(sw["measurement"][mk].mean, color=color, ls=":", lw=1)
            if key in ("eyes", "mouth"):
                ref, _ = sw["best_other"][f"{key}_ok"]
                ax.axhline(ref.mean, color=color, ls="--", lw=1)
            spots = [j for j, t in enumerate(sw["t0s"]) if t in sw["sweet_spots"]]
            if spots:
                ax.plot([sw["t0s"][j] for j in spots], ys[spots], "o", mfc="none", mec="k", ms=9)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("SDEdit start time $t_0$", fontsize=8)
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle("SDEdit sweep (mean ± s.e.); dotted: the measurement; dashed: the best other method's part recovery",
                 fontsize=9)
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
def expected_checks(rs: ResultSet, noise=0.05) -> list[str]:
    """The harness issue's expectations as sentences with their numbers: does DPS beat the measurement
    and the classical baseline in LPIPS on box inpainting and Gaussian deblurring?"""
    out = []
    lp = "lpips_alex"
    for task in ("box", "deblur"):
        if not rs.methods(task, noise):
            continue
        d, m, b = (rs.score(x, task, noise, lp) for x in ("dps", "measurement", "baseline"))
        ok = d.mean < m.mean and d.mean < b.mean
        out.append(f"{task}, σ_y = {_noise_str(float(noise))}: LPIPS (alex) DPS {d}, measurement {m}, classical baseline {b}: "
                   + ("DPS is lowest, as expected." if ok else "DPS is NOT below both, contrary to the expectation."))
    return out


def report(folder, noise=0.05) -> str:
    """All verdicts of a faces results folder as Markdown bullet points."""
    rs = ResultSet.load(folder)
    lines = [f"Findings from `{folder}` (σ_y = {_noise_str(float(noise))}):", ""]
    lines += [f"- {s}" for s in expected_checks(rs, noise)]
    for task in ("deblur", "box"):  # the poster's tasks (on the part boxes no method recovers the hidden part)
        if rs.methods(task, noise) and rs.sdedit_params(task, noise):
            lines.append("- " + sdedit_sweet_spot(rs, task, noise)["verdict"])
    ref = rs.reference
    if "eye_symmetry" in ref:
        for s in (noise, 0.0):
            if rs.methods("deblur", s):
                lines.append("- " + eye_symmetry_recovery(rs, "deblur", s, ref["eye_symmetry"])["verdict"])
    for task, part in (("box_mouth", "mouth"), ("box", "mouth"), ("deblur", "mouth"), ("box_eyes", "eyes"), ("deblur", "eyes")):
        if rs.methods(task, noise) and f"{part}_ok" in ref:
            lines.append("- " + part_recovery(rs, task, noise, part, truth_rate=ref[f"{part}_ok"].mean)["verdict"])
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
