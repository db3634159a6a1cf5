"""``results/README.md``, written from the committed results so that its numbers cannot drift from them.

Run from the repository root after regenerating any folder of ``results/``::

    python -m helpers.evaluation.overview            # writes results/README.md

It reads each evaluation folder's ``config.json`` (chosen parameters, how each was chosen) and
``results.csv`` (the per-image scores), the faces folder's findings (:func:`helpers.findings.report`),
and the steps curve (``faces-steps/steps_curve.csv``). Nothing in the written file is typed by hand
except the prose around the tables.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Optional

from .harness import METHOD_NAMES, _noise_str, read_results, summarize

__all__ = ["headline_table", "selection_table", "steps_table", "render", "main"]

_METHOD_ORDER = ("measurement", "baseline", "sdedit", "score_ald", "dps")
_PARAM_LABEL = {"sdedit": "t0", "score_ald": "λ", "dps": "ζ′", "baseline": ""}


def _param_value(params: str) -> str:
    """``'lambda=3;rule=langevin;steps=100'`` -> ``'3'``; ``'wiener;balance=0.01'`` -> ``'0.01'``; ``'pinv'`` -> ``''``."""
    for part in params.split(";"):
        if "=" in part and not part.startswith(("steps=", "rule=")):
            value = part.split("=", 1)[1]
            try:
                return f"{float(value):.3g}"
            except ValueError:
                return value
    return ""


def _fmt(mean: float, se: float, decimals: int) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.{decimals}f} ± {se:.{decimals}f}"


def _rows_of(rows: list, method: str, params: str, task: str, noise: str, images: set) -> list:
    return [r for r in rows if r["method"] == method and r["params"] == params and r["task"] == task
            and _noise_str(float(r["noise"])) == noise and int(r["image"]) in images and r.get("status", "ok") == "ok"]


def headline_table(folder: Path, noise: str = "0.05") -> str:
    """PSNR and LPIPS-alex (mean ± s.e. over the reported images) of each method's chosen setting, per task."""
    cfg = json.loads((folder / "config.json").read_text())
    rows = read_results(folder / "results.csv")
    images = set(int(i) for i in cfg["report_images"])
    selected = cfg["selected"]
    methods = [m for m in _METHOD_ORDER if m in cfg["methods"]]
    head = "| task | " + " | ".join(METHOD_NAMES[m] for m in methods) + " |"
    lines = [head, "|" + "---|" * (len(methods) + 1)]
    for task in cfg["tasks"]:
        cells = []
        for m in methods:
            params = selected.get(f"{task}|sigma={noise}|{m}")
            if params is None:
                cells.append("–")
                continue
            rs = _rows_of(rows, m, params, task, noise, images)
            psnr, psnr_se, _ = summarize(rs, "psnr")
            lp, lp_se, _ = summarize(rs, "lpips_alex") if rs and "lpips_alex" in rs[0] else (math.nan, math.nan, 0)
            value = _param_value(params)
            label = f" ({_PARAM_LABEL.get(m, '')} = {value})" if value and _PARAM_LABEL.get(m) else (f" ({value})" if value else "")
            cells.append(f"{_fmt(psnr, psnr_se, 1)} / {_fmt(lp, lp_se, 3)}{label}")
        lines.append(f"| {cfg['tasks_detail'].get(task, task)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def selection_table(folder: Path) -> str:
    """How each parameter was chosen: the grid tried, the value chosen, and whether it was interior."""
    cfg = json.loads((folder / "config.json").read_text())
    sel = cfg.get("selection") or {}
    lines = ["| task | σ_y | method | parameter | values tried | chosen | outcome |", "|---|---|---|---|---|---|---|"]
    for key, s in sel.items():
        task, sigma, method = key.split("|")
        tried = ", ".join(f"{float(v):.3g}" for v in sorted(s.get("tried", {}), key=float))
        lines.append(f"| {task} | {sigma.split('=', 1)[1]} | {METHOD_NAMES.get(method, method)} | {s.get('parameter', '')} | "
                     f"{tried} | {_param_value(s.get('chosen', ''))} | {s.get('outcome', '')} |")
    return "\n".join(lines)


def steps_table(folder: Path) -> Optional[str]:
    """PSNR lost against the largest step count, per method, task and step count (from ``steps_curve.csv``)."""
    path = folder / "steps_curve.csv"
    if not path.exists():
        return None
    from ..steps_curve import CPU_STEPS, acceptable_steps, cheapest_steps, read_curve

    points = read_curve(path)
    steps = sorted({p.steps for p in points})
    keys = sorted({(p.method, p.task) for p in points})
    lines = ["| method | task | " + " | ".join(str(s) for s in steps) + " |", "|---|---|" + "---|" * len(steps)]
    for method, task in keys:
        cells = []
        for s in steps:
            p = next((q for q in points if (q.method, q.task, q.steps) == (method, task, s)), None)
            cells.append("–" if p is None else _fmt(p.psnr_loss_db, p.psnr_loss_se, 2))
        lines.append(f"| {METHOD_NAMES.get(method, method)} | {task} | " + " | ".join(cells) + " |")
    cheapest = cheapest_steps(points)
    ok = acceptable_steps(points)
    lines.append("")
    lines.append("Cheapest step count whose mean PSNR loss is below 0.5 dB on every task: "
                 + ", ".join(f"{METHOD_NAMES.get(m, m)} {s}" for m, s in sorted(cheapest.items())) + ". "
                 "Step counts whose loss is not significantly above 0.5 dB on any task (loss − 1.645·s.e. < 0.5): "
                 + "; ".join(f"{METHOD_NAMES.get(m, m)} {', '.join(str(s) for s in v)}" for m, v in sorted(ok.items()))
                 + ". The chapters' CPU step counts: "
                 + ", ".join(f"{METHOD_NAMES.get(m, m)} {s}" for m, s in sorted(CPU_STEPS.items())) + ".")
    return "\n".join(lines)


def render(results_dir: Path) -> str:
    """The whole ``results/README.md``."""
    from ..findings import report

    results_dir = Path(results_dir)
    out = ["# Results", "",
           "*Written by `python -m helpers.evaluation.overview` from the folders below; do not edit by hand.*", "",
           "Every file here was written by a command of the course's package, run from the repository root on a "
           "2-core CPU (one torch thread per process, other jobs sharing the machine, so wall times are only "
           "indicative). Each evaluation folder holds its exact command in `command.txt`; rerunning it reproduces "
           "the numbers (samplers and measurement noise are seeded per image; an interrupted run skips the rows "
           "already in `results.csv`).", "",
           "In each evaluation folder: `results.csv` (one row per method, parameters, task, noise, image, seed), "
           "`summary.md` (every setting: mean ± standard error over the reported images, and how each parameter "
           "was chosen), `bars_<task>.png`, `sdedit_sweep_*.png` (the t0 sweep), `config.json` (settings, chosen "
           "parameters and the `selection` record, the clean images' face measures).", "",
           "**How parameters are chosen.** Each method's parameter (SDEdit t0, ScoreALD λ, DPS ζ′, the Wiener "
           "balance) is the best mean PSNR on selection images disjoint from the reported ones. A best value at the "
           "edge of its grid is not reported as such: the grid is widened ×3 past that edge until the best is "
           "interior, the next value diverges, or a cap or the parameter's range is reached; the *outcome* column "
           "says which. ScoreALD weighs its likelihood by the operator's noise propagation, "
           "1/(σ_y² + γ_t² (AAᵀ)_ii) (`helpers.operators.Operator.aat_diagonal`). LPIPS of these 32-px images is "
           "scored after bilinear upsampling to 64 px (LPIPS was trained on 64-px patches); it must not be set "
           "beside the DPS paper's 256-px values.", ""]
    for name, title in (("faces", "Faces"), ("mnist", "MNIST")):
        folder = results_dir / name
        if not (folder / "config.json").exists():
            continue
        cfg = json.loads((folder / "config.json").read_text())
        out += [f"## {title} (`{name}/`)", "",
                f"{cfg['n_images']} reported images, parameters chosen on {cfg['n_select']} others, "
                f"{cfg['steps']} sampler steps, seeds {cfg['seeds']}. PSNR [dB] / LPIPS-alex at σ_y = 0.05 "
                "(mean ± standard error; the chosen parameter in brackets):", "",
                headline_table(folder), "", "How each parameter was chosen:", "", selection_table(folder), ""]
        if name == "faces":
            try:
                out += ["### The course's findings, as tests", "", report(folder), "",
                        "Also in [`faces/findings.md`](faces/findings.md) "
                        "(`python -m helpers.findings results/faces --out results/faces/findings.md`).", ""]
            except ValueError as err:  # pragma: no cover - a folder without face measures
                out += [f"*Findings not available: {err}*", ""]
    steps_folder = results_dir / "faces-steps"
    table = steps_table(steps_folder)
    if table:
        out += ["## Steps (`faces-steps/`)", "",
                "PSNR lost against the largest step count (paired over the reported faces, ± standard error; "
                "parameters re-chosen at each count). The chapters' CPU step counts "
                "(`helpers.steps_curve.CPU_STEPS`) must lose no significant quality against 1000 steps (a test checks "
                "them against this CSV with `acceptable_steps`); see `faces-steps/steps_curve.md`.", "", table, ""]
    if (results_dir / "bench-faces.md").exists():
        out += ["## Speed", "", "[`bench-faces.md`](bench-faces.md): sampler overhead, DPS cost per step, peak "
                "memory, batch scaling (`python -m helpers.bench --prior faces --threads 1 --out results/bench-faces.md`).", ""]
    return "\n".join(out)


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.evaluation.overview", description=__doc__.split("\n")[0])
    p.add_argument("--results", default="results", help="the results folder")
    p.add_argument("--out", default=None, help="output file (default: <results>/README.md)")
    args = p.parse_args(argv)
    text = render(Path(args.results))
    out = Path(args.out or Path(args.results) / "README.md")
    out.write_text(text + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
