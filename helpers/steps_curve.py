"""Quality against number of sampler steps: how much PSNR/LPIPS fewer steps cost.

Runs :func:`helpers.evaluate.run_evaluation` once per step count (each in its own
sub-folder ``<out>/steps-<n>/``, so an interrupted run resumes where it stopped), then
compares every step count with the largest one *on the same images, noise and seeds*
(paired differences) and writes

* ``steps_curve.csv`` -- one row per (task, noise, method, steps): chosen parameter,
  PSNR and LPIPS mean ± standard error, the paired PSNR loss against the most steps;
* ``steps_curve.md`` -- the same as tables, and per method the cheapest step count whose
  PSNR loss stays below ``--max-loss-db`` (default 0.5 dB) on *every* task;
* ``steps_curve_psnr.png``, ``steps_curve_lpips_<net>.png`` -- the curves.

Run it from the repository root::

    python -m helpers.steps_curve --prior faces --steps 50 100 250 1000 --tasks deblur box \\
        --noise 0.05 --methods sdedit score_ald dps --n-images 16 --n-select 8 \\
        --sdedit-t0 0.2 --dps-zeta 0.3 1 3 --ald-lambda 0.3 1 3 --threads 1 --out results/faces-steps

Every flag other than ``--steps`` and ``--max-loss-db`` is :mod:`helpers.evaluate`'s (so
``--n-select`` defaults to 8, and fewer are refused for a choice among several values unless
``--allow-small-selection`` is given). Step sizes given as several values are chosen again at each
step count on the selection images, the grid widened past an edge as there (a sampler with 10x
fewer steps may want a different ζ′ or λ). In the curves, colour is the method and line style
the task and noise level.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .evaluate import (
    METHOD_NAMES,
    EvalConfig,
    _mean_se as _mean_se_n,
    _noise_str,
    config_from_args,
    per_image_values,
    run_evaluation,
)

#: The chapters' default step counts on the CPU (the bundled faces prior): for each sampler the cheapest
#: step count of ``results/faces-steps/steps_curve.md`` whose mean PSNR loss against 1000 steps stays
#: below 0.5 dB on every task measured (deblurring and box inpainting, σ_y = 0.05, 16 test faces).
#: A test recomputes these from the committed ``steps_curve.csv``. On a GPU the chapters use 1000.
CPU_STEPS = {"sdedit": 50, "score_ald": 250, "dps": 250}

CURVE_FIELDS = [
    "task", "noise", "method", "steps", "params", "n_images",
    "psnr", "psnr_se", "psnr_loss_db", "psnr_loss_se", "lpips_alex", "lpips_vgg", "seconds", "nfe",
]


@dataclasses.dataclass
class CurvePoint:
    task: str
    noise: str
    method: str
    steps: int
    params: str
    n_images: int
    psnr: float
    psnr_se: float
    psnr_loss_db: float  # mean over images of (PSNR at the most steps - PSNR at these steps)
    psnr_loss_se: float
    lpips_alex: float
    lpips_vgg: float
    seconds: float  # per image
    nfe: float


def _mean_se(values) -> tuple[float, float]:
    m, se, _ = _mean_se_n(np.asarray(list(values), dtype=float))
    return m, se


def curve_points(results_by_steps: dict[int, "object"]) -> list[CurvePoint]:
    """The curve from ``{steps: EvalResult}`` (reported images, the chosen parameters only)."""
    if not results_by_steps:
        raise ValueError("results_by_steps is empty")
    ref_steps = max(results_by_steps)
    points = []
    keys = sorted(results_by_steps[ref_steps].selected)
    for key in keys:
        task, noise, method = key
        if method in ("measurement", "baseline"):
            continue  # they do not depend on the step count
        per_steps = {}
        for n, res in results_by_steps.items():
            params = res.selected.get(key)
            rows = [r for r in res.rows if r["method"] == method and r["params"] == params and r["task"] == task
                    and _noise_str(float(r["noise"])) == noise and r["split"] == "report" and r["status"] == "ok"]
            per_steps[n] = (params, rows)
        ref_psnr = per_image_values(per_steps[ref_steps][1], "psnr")
        for n in sorted(per_steps):
            params, rows = per_steps[n]
            psnr = per_image_values(rows, "psnr")
            common = sorted(set(psnr) & set(ref_psnr))
            loss_m, loss_se = _mean_se(ref_psnr[i] - psnr[i] for i in common)
            pm, pse = _mean_se(psnr.values())
            points.append(CurvePoint(
                task=task, noise=noise, method=method, steps=int(n), params=str(params), n_images=len(psnr),
                psnr=pm, psnr_se=pse, psnr_loss_db=loss_m, psnr_loss_se=loss_se,
                lpips_alex=_mean_se(per_image_values(rows, "lpips_alex").values())[0],
                lpips_vgg=_mean_se(per_image_values(rows, "lpips_vgg").values())[0],
                seconds=_mean_se(per_image_values(rows, "seconds").values())[0],
                nfe=_mean_se(per_image_values(rows, "nfe").values())[0],
            ))
    return points


def read_curve(path) -> list[CurvePoint]:
    """The points of a ``steps_curve.csv`` written by :func:`write_outputs`."""
    out = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            vals = {}
            for f in dataclasses.fields(CurvePoint):
                v = r[f.name]
                vals[f.name] = int(v) if f.type in ("int", int) else (float(v) if f.type in ("float", float) else v)
            out.append(CurvePoint(**vals))
    return out


def cheapest_steps(points: Sequence[CurvePoint], max_loss_db: float = 0.5) -> dict[str, Optional[int]]:
    """Per method: the fewest steps whose mean PSNR loss against the most steps is below
    ``max_loss_db`` on every (task, noise) evaluated; None if no step count qualifies."""
    out: dict[str, Optional[int]] = {}
    for method in sorted({p.method for p in points}):
        pts = [p for p in points if p.method == method]
        ok_steps = []
        for n in sorted({p.steps for p in pts}):
            losses = [p.psnr_loss_db for p in pts if p.steps == n]
            if losses and all(math.isfinite(x) and x < max_loss_db for x in losses):
                ok_steps.append(n)
        out[method] = min(ok_steps) if ok_steps else None
    return out


def acceptable_steps(points: Sequence[CurvePoint], max_loss_db: float = 0.5, z: float = 1.645) -> dict[str, list]:
    """Per method: the step counts whose PSNR loss is *not significantly above* ``max_loss_db`` on every
    (task, noise): ``loss − z·se < max_loss_db`` (one-sided, 5 % for z = 1.645), ascending.

    :func:`cheapest_steps` compares the mean loss alone, so a task whose loss is mostly noise (box
    inpainting: every run invents the hidden region anew, standard errors near 1 dB) can reject a step count
    that loses nothing measurable. This rule rejects a count only when the loss is shown to exceed the limit.
    """
    out: dict[str, list] = {}
    for method in sorted({p.method for p in points}):
        pts = [p for p in points if p.method == method]
        ok = []
        for n in sorted({p.steps for p in pts}):
            cell = [p for p in pts if p.steps == n]
            if cell and all(math.isfinite(p.psnr_loss_db) and p.psnr_loss_db - z * (p.psnr_loss_se if math.isfinite(p.psnr_loss_se) else 0.0)
                            < max_loss_db for p in cell):
                ok.append(n)
        out[method] = ok
    return out


def _f(v: float, d: int) -> str:
    return "–" if not math.isfinite(v) else f"{v:.{d}f}"


def write_outputs(out: Path, points: Sequence[CurvePoint], max_loss_db: float, command: str) -> list[Path]:
    """``steps_curve.csv``, ``steps_curve.md`` and the PNG curves in ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    csv_path = out / "steps_curve.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CURVE_FIELDS)
        w.writeheader()
        for p in points:
            w.writerow({k: getattr(p, k) for k in CURVE_FIELDS})
    paths.append(csv_path)

    best = cheapest_steps(points, max_loss_db)
    steps_all = sorted({p.steps for p in points})
    ref = max(steps_all)
    lines = [
        "# Quality against number of steps", "",
        f"Command: `{command}`", "",
        f"PSNR loss = mean over the reported images of PSNR({ref} steps) − PSNR(n steps), on the same images, "
        "measurement noise and seeds (± standard error). Step sizes were chosen again at every step count "
        "on the selection images.", "",
        f"## Cheapest step count losing less than {max_loss_db} dB PSNR against {ref} steps (on every task)", "",
        "| method | steps |", "|---|---|",
    ]
    for m, n in best.items():
        lines.append(f"| {METHOD_NAMES.get(m, m)} | {n if n is not None else f'none (all lose ≥ {max_loss_db} dB)'} |")
    lines.append("")
    for task, noise in sorted({(p.task, p.noise) for p in points}):
        lines += [f"## {task}, σ_y = {noise}", "",
                  "| method | steps | chosen | PSNR [dB] | PSNR loss [dB] | LPIPS alex | LPIPS vgg | s / image | NFE |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for p in points:
            if (p.task, p.noise) != (task, noise):
                continue
            lines.append(
                f"| {METHOD_NAMES.get(p.method, p.method)} | {p.steps} | `{p.params}` | {_f(p.psnr, 2)} ± {_f(p.psnr_se, 2)} "
                f"| {_f(p.psnr_loss_db, 2)} ± {_f(p.psnr_loss_se, 2)} | {_f(p.lpips_alex, 3)} | {_f(p.lpips_vgg, 3)} "
                f"| {_f(p.seconds, 2)} | {_f(p.nfe, 0)} |")
        lines.append("")
    md = out / "steps_curve.md"
    md.write_text("\n".join(lines))
    paths.append(md)

    from .evaluation.report import keyed_lines_figure

    for field, ylabel in [("psnr", "PSNR [dB]"), ("lpips_alex", "LPIPS (alex)"), ("lpips_vgg", "LPIPS (vgg)")]:
        series = []  # colour = method, line style = (task, noise): no two lines alike however many tasks
        for task, noise, method in sorted({(p.task, p.noise, p.method) for p in points}):
            pts = {p.steps: p for p in points if (p.task, p.noise, p.method) == (task, noise, method)}
            ys = [getattr(pts[n], field) if n in pts else np.nan for n in steps_all]
            errs = ([(pts[n].psnr_se if n in pts and math.isfinite(pts[n].psnr_se) else 0.0) for n in steps_all]
                    if field == "psnr" else None)
            series.append((METHOD_NAMES.get(method, method), f"{task}, σ_y = {noise}", steps_all, ys, errs))
        if all(np.all(~np.isfinite(np.asarray(s[3], dtype=float))) for s in series):
            continue
        fig = keyed_lines_figure(series, colour_title="colour = method", style_title="line style = task, noise",
                                 xlabel="sampler steps", ylabel=ylabel, logx=True,
                                 title="quality vs steps (mean ± s.e.)", figsize=(7.2, 4.4))
        p = out / f"steps_curve_{field}.png"
        fig.savefig(p, dpi=120)
        paths.append(p)
    return paths


def run_steps_curve(config: EvalConfig, steps: Sequence[int], *, max_loss_db: float = 0.5, prior=None, images=None,
                    attrs=None, classifiers=None, command: Optional[str] = None) -> tuple[list[CurvePoint], list[Path]]:
    """Evaluate ``config`` at each of ``steps`` (sub-folders ``steps-<n>`` of ``config.out_dir``) and write the curve.

    ``prior``, ``images``, ``attrs``, ``classifiers`` are passed to :func:`run_evaluation`.
    """
    steps = [int(s) for s in steps]
    if len(steps) < 2 or any(s < 1 for s in steps):
        raise ValueError(f"steps must hold at least two positive step counts, got {steps}")
    if not (max_loss_db > 0):
        raise ValueError(f"max_loss_db must be > 0, got {max_loss_db}")
    if config.out_dir is None:
        raise ValueError("config.out_dir is required (e.g. results/faces-steps)")
    if config.method_steps:
        raise ValueError("config.method_steps is set: the curve varies the steps of every sampler, leave it None")
    if not set(config.methods) & {"sdedit", "score_ald", "dps"}:
        raise ValueError("methods must include a sampler (sdedit, score_ald or dps): the others do not use steps")
    out = Path(config.out_dir)
    if prior is None:
        from .priors import load_prior

        prior = load_prior(config.prior, device=config.device)
    results = {}
    for n in steps:
        cfg = dataclasses.replace(config, steps=n, out_dir=str(out / f"steps-{n}"), plots=False,
                                  command=(command or "helpers.steps_curve") + f"  [steps={n}]")
        results[n] = run_evaluation(cfg, prior=prior, images=images, attrs=attrs, classifiers=classifiers)
    points = curve_points(results)
    paths = write_outputs(out, points, max_loss_db, command or f"helpers.steps_curve.run_steps_curve(steps={steps})")
    return points, paths


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.steps_curve", description=__doc__.splitlines()[0],
                                epilog="All other flags are those of python -m helpers.evaluate.")
    p.add_argument("--steps", nargs="+", type=int, required=True, help="step counts, e.g. 50 100 250 1000")
    p.add_argument("--max-loss-db", type=float, default=0.5, help="PSNR loss allowed against the most steps")
    args, rest = p.parse_known_args(argv)
    cfg, eargs = config_from_args(rest)
    if cfg.out_dir is None:
        cfg = dataclasses.replace(cfg, out_dir=str(Path("results") / f"{cfg.prior}-steps"))
    if eargs.threads:
        torch.set_num_threads(eargs.threads)
    argv_list = sys.argv[1:] if argv is None else list(argv)
    command = "python -m helpers.steps_curve " + shlex.join(argv_list)
    try:
        points, paths = run_steps_curve(cfg, args.steps, max_loss_db=args.max_loss_db, command=command)
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(Path(cfg.out_dir, "steps_curve.md").read_text())
    print("wrote " + ", ".join(str(x) for x in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
