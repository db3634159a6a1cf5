"""Benchmark a shipped prior: are its samples good, varied and new, and how long do they take?

Run it from the repository root::

    python -m helpers.evaluate_prior --prior mnist --threads 1            # 256 samples, 100 DDPM steps
    python -m helpers.evaluate_prior --prior faces --threads 1 --timing   # also time 16 images at 1000 / 100 steps

It draws ``--n`` unconditional samples (default 256) with **ancestral DDPM sampling strided
to ``--steps`` timesteps** (default 100, evenly spaced over the 1000 training steps), image
*i* from its own seed ``--seed · 1_000_000 + i`` (so the images do not depend on the batch
size), and measures

* **faces** -- the eye-type and mouth-type classifiers of :mod:`helpers.face_measures`
  (their test accuracy is reported): the fraction of samples whose eye type and mouth type
  are each predicted with probability >= 0.9, against the same figure on the 512 real test
  faces; the histogram of predicted types, samples against real test faces (types no sample
  gets are listed); the eye-symmetry score (mean ± std), samples against real test faces.
* **mnist** -- a small CNN trained here on the 1000 held-out digits (``mnist_digits("heldout")``,
  never used to train the prior), whose accuracy is measured on the 4000 digits of the
  training split (which the CNN never saw): the fraction of samples classified with
  probability >= 0.9 (target >= 85 %), and the class histogram (target: every class >= 5 %).
* **both** -- memorisation: each sample's L2 distance, in [0, 1] pixel space over all
  C·H·W pixels, to its nearest training image (with the mirrored training images too when
  the prior was trained with horizontal flips), against the distance of real held-out images
  to their nearest training image and the median distance between two training images.
  A *near-copy* is a sample whose nearest-neighbour distance is below
  ``NEAR_COPY_FACTOR`` (0.25) × the median held-out-to-training nearest-neighbour distance.

**Sampler grid** (``--grid``, on by default): the same seeds drawn with ancestral DDPM and with
deterministic DDIM (η = 0) at 50, 100 and 250 steps, each scored with the classifier measures above
(``results["sampler_grid"]``); the model card shows the table and says which settings meet the targets.

Outputs, in ``--out`` (default ``helpers/pretrained/<prior>/evaluation/``): ``results.json``
(every figure, the settings, the software and a hash of the weights), ``samples_grid.png``
(the first 64 samples, 8 × 8), ``type_histogram.png`` (faces) or ``class_histogram.png``
(digits), ``nearest_neighbours.png`` (the 8 samples closest to a training image, above their
nearest training image), and a printed summary table. ``python -m helpers.model_card`` turns
``results.json`` into the prior's model card.

This is a benchmark script, not a test: at the defaults it takes minutes on a CPU
(a few seconds per DDPM step for 256 images). Use ``--threads 1`` on a machine that is
busy with other work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from ._util import file_sha256

__all__ = [
    "DEFAULT_N",
    "DEFAULT_STEPS",
    "CONFIDENCE",
    "NEAR_COPY_FACTOR",
    "generate_samples",
    "nearest_neighbour_distances",
    "median_pairwise_distance",
    "memorisation_stats",
    "confident_fraction",
    "class_shares",
    "DigitClassifier",
    "train_digit_classifier",
    "evaluate_faces",
    "evaluate_digits",
    "time_sampling",
    "sampler_grid",
    "parse_grid",
    "machine_load",
    "evaluate",
    "main",
]

DEFAULT_N = 256
DEFAULT_STEPS = 100
DEFAULT_BATCH = 32
CONFIDENCE = 0.9
"""A sample counts as *clearly classified* when the classifier gives its top class at least this probability."""
NEAR_COPY_FACTOR = 0.25
"""Near-copy threshold, as a fraction of the median held-out-to-training nearest-neighbour distance."""
DIGIT_CONFIDENT_TARGET = 0.85
DIGIT_MIN_SHARE_TARGET = 0.05
SEED_STRIDE = 1_000_000
#: Unconditional samplers of the sampler grid: DDPM (ancestral) and DDIM with η = 0.
SAMPLERS = ("ddpm", "ddim")
#: The sampler grid reported by default: both samplers at 50, 100 and 250 steps.
DEFAULT_GRID = tuple((sm, st) for sm in SAMPLERS for st in (50, 100, 250))
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


# --------------------------------------------------------------------------- #
# Sampling
# --------------------------------------------------------------------------- #
def image_seeds(n: int, seed: int = 0) -> list:
    """The per-image seeds ``seed · 1_000_000 + i``, i < n."""
    return [int(seed) * SEED_STRIDE + i for i in range(int(n))]


def generate_samples(prior, n: int = DEFAULT_N, steps: Optional[int] = DEFAULT_STEPS, seed: int = 0,
                     batch_size: int = DEFAULT_BATCH, progress: bool = True, sampler: str = "ddpm") -> np.ndarray:
    """``n`` unconditional samples (strided to ``steps``), float32 ``(n, C, H, W)`` in image space [0, 1].

    ``sampler``: ``"ddpm"`` (ancestral, Ho et al. 2020) or ``"ddim"`` (Song et al. 2021, η = 0, deterministic).
    Image *i* is drawn from its own seed (:func:`image_seeds`), so the result does not depend
    on ``batch_size``.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    from tqdm.auto import tqdm

    from .data import to_image_space
    from .samplers import sample_ddim, sample_ddpm

    seeds = image_seeds(n, seed)
    out = []
    with torch.no_grad():
        for start in tqdm(range(0, n, batch_size), desc=f"sampling {n} images", disable=not progress, unit="batch"):
            batch = seeds[start:start + batch_size]
            if sampler == "ddim":
                res = sample_ddim(prior, num_samples=len(batch), num_steps=steps, eta=0.0, seed=batch, progress=False)
            else:
                res = sample_ddpm(prior, num_samples=len(batch), num_steps=steps, seed=batch, progress=False)
            out.append(to_image_space(res.sample.float().cpu()).numpy())
    return np.concatenate(out).astype(np.float32)


# --------------------------------------------------------------------------- #
# Memorisation: nearest-neighbour distances
# --------------------------------------------------------------------------- #
def _flat(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    return t.reshape(t.shape[0], -1).to(torch.float32)


def nearest_neighbour_distances(queries, reference, chunk: int = 4096, candidates: int = 4):
    """L2 distance of every query to its nearest reference image, and that image's index.

    ``queries`` (N, ...) and ``reference`` (M, ...) are arrays or tensors of the same
    per-image shape (use [0, 1] pixels); distances are over all pixels (not per pixel).
    Candidates are found with a fast float32 matrix product, then the best ``candidates``
    per query are re-measured exactly in float64, so a query that *is* a reference image
    gets distance 0. Returns ``(distances (N,) float64, indices (N,) int64)`` as numpy arrays.
    """
    q, r = _flat(queries), _flat(reference)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} values per image but the reference images {r.shape[1]}")
    k = min(int(candidates), r.shape[0])
    q2 = (q * q).sum(1, keepdim=True)
    best_d = torch.full((q.shape[0], 0), float("inf"))
    best_i = torch.zeros((q.shape[0], 0), dtype=torch.long)
    for start in range(0, r.shape[0], chunk):
        rc = r[start:start + chunk]
        d2 = q2 + (rc * rc).sum(1)[None, :] - 2.0 * q @ rc.T
        kk = min(k, rc.shape[0])
        vals, idx = torch.topk(d2, kk, dim=1, largest=False)
        best_d = torch.cat([best_d, vals], 1)
        best_i = torch.cat([best_i, idx + start], 1)
        vals, pos = torch.topk(best_d, min(k, best_d.shape[1]), dim=1, largest=False)
        best_d, best_i = vals, torch.gather(best_i, 1, pos)
    exact = ((q[:, None, :].double() - r[best_i].double()) ** 2).sum(-1).sqrt()  # (N, k)
    d, j = exact.min(1)
    return d.numpy(), torch.gather(best_i, 1, j[:, None])[:, 0].numpy()


def median_pairwise_distance(images, n: int = 1000, seed: int = 0) -> float:
    """Median L2 distance between two different images of a random subset of ``n`` images."""
    x = _flat(images)
    if x.shape[0] > n:
        idx = np.random.default_rng(seed).choice(x.shape[0], n, replace=False)
        x = x[torch.as_tensor(idx)]
    d = torch.cdist(x.double(), x.double())
    iu = torch.triu_indices(x.shape[0], x.shape[0], offset=1)
    return float(d[iu[0], iu[1]].median())


def memorisation_stats(samples, train, heldout, hflip: bool = False, factor: float = NEAR_COPY_FACTOR) -> dict:
    """Nearest-training-image distances of samples against those of real held-out images.

    ``samples``, ``train``, ``heldout``: (N, C, H, W) in [0, 1]. With ``hflip`` the mirrored
    training images are part of the reference set (the prior saw them). Returns a dict with
    the distance summaries, the near-copy threshold ``factor × median(held-out NN distance)``,
    the near-copy fraction, and (for figures) the per-sample distances and neighbour indices.
    """
    train = np.asarray(train, dtype=np.float32)

    def nn(q):  # with hflip: the distance to a mirrored training image is that of the mirrored query
        d, i = nearest_neighbour_distances(q, train)
        if hflip:
            d2, i2 = nearest_neighbour_distances(np.ascontiguousarray(np.asarray(q)[..., ::-1]), train)
            flip = d2 < d
            d, i = np.where(flip, d2, d), np.where(flip, i2 + len(train), i)  # index >= len(train): mirrored
        return d, i

    d_s, i_s = nn(samples)
    d_h, _ = nn(heldout)
    pair = median_pairwise_distance(train)
    thr = factor * float(np.median(d_h))

    def summary(d):
        return {"median": float(np.median(d)), "mean": float(np.mean(d)), "min": float(np.min(d)),
                "p05": float(np.percentile(d, 5)), "p95": float(np.percentile(d, 95))}

    return {
        "distance": "L2 over all C*H*W pixels in [0, 1] space",
        "reference_set": f"{len(train)} training images" + (" and their mirror images (trained with hflip)" if hflip else ""),
        "samples_to_train_nn": summary(d_s),
        "heldout_to_train_nn": summary(d_h),
        "n_heldout": int(len(d_h)),
        "train_pairwise_median": pair,
        "near_copy_factor": factor,
        "near_copy_threshold": thr,
        "near_copy_definition": f"nearest-training-image distance < {factor:g} x median held-out-to-training "
                                f"nearest-neighbour distance (= {thr:.3f})",
        "near_copy_fraction": float(np.mean(d_s < thr)),
        "heldout_near_copy_fraction": float(np.mean(d_h < thr)),
        "nn_ratio_samples_to_heldout": float(np.median(d_s) / np.median(d_h)),
        "_distances": d_s,
        "_indices": i_s,
        "_reference_size": int(len(train)) * (2 if hflip else 1),
    }


# --------------------------------------------------------------------------- #
# Classifier statistics
# --------------------------------------------------------------------------- #
def confident_fraction(proba, threshold: float = CONFIDENCE) -> float:
    """Fraction of rows of ``proba`` (N, K) whose largest probability is >= ``threshold``."""
    p = np.asarray(proba)
    return float(np.mean(p.max(1) >= threshold)) if len(p) else float("nan")


def class_shares(proba_or_labels, num_classes: int) -> np.ndarray:
    """Share of each class among the predictions (argmax of (N, K) probabilities, or (N,) labels)."""
    a = np.asarray(proba_or_labels)
    labels = a.argmax(1) if a.ndim == 2 else a.astype(int)
    return np.bincount(labels, minlength=num_classes)[:num_classes] / max(1, len(labels))


# --------------------------------------------------------------------------- #
# Digit classifier (trained on the held-out digits)
# --------------------------------------------------------------------------- #
def _digit_net() -> torch.nn.Module:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 16 x 16
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8 x 8
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4 x 4
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 16, 10),
    )


class DigitClassifier:
    """A small CNN for 32 × 32 digits in [0, 1]; :meth:`predict_proba` gives (N, 10) probabilities."""

    def __init__(self, net: torch.nn.Module, info: Optional[dict] = None):
        self.net = net.eval()
        self.info = dict(info or {})

    def predict_proba(self, images, batch_size: int = 512) -> np.ndarray:
        x = torch.as_tensor(np.asarray(images, dtype=np.float32))
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 32, 32):
            raise ValueError(f"digits must have shape (N, 1, 32, 32) in [0, 1], got {tuple(x.shape)}")
        with torch.no_grad():
            return torch.cat([torch.softmax(self.net(x[i:i + batch_size]), 1) for i in range(0, len(x), batch_size)]).numpy()

    def accuracy(self, images, labels) -> float:
        return float(np.mean(self.predict_proba(images).argmax(1) == np.asarray(labels)))


def _random_shift(x: torch.Tensor, g: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    b, _, h, w = x.shape
    pad = torch.nn.functional.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=g).tolist()
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=g).tolist()
    return torch.stack([pad[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])


def train_digit_classifier(images, labels, epochs: int = 30, batch_size: int = 50, lr: float = 2e-3,
                           seed: int = 0) -> DigitClassifier:
    """Train :func:`_digit_net` with Adam and random ±2-pixel shifts; deterministic for a seed (on one thread).

    About 15 s for 1000 digits and 30 epochs on one CPU thread.
    """
    from torch.nn import functional as F

    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = _digit_net()
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(net(_random_shift(x[idx], g)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return DigitClassifier(net, {"model": "CNN 3x(conv3x3+ReLU+maxpool) 16-32-64, dropout 0.3, linear",
                                 "n_train": int(len(x)), "epochs": epochs, "augmentation": "random shifts of up to 2 px",
                                 "seed": seed})


# --------------------------------------------------------------------------- #
# Per-dataset evaluations
# --------------------------------------------------------------------------- #
def _hist_figure(panels: Sequence[tuple], title: str):
    """Bar charts, one panel per (name, class_names, sample_shares, real_shares, real_label)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 0.45 * max(len(p[1]) for p in panels) + 2), 3.0 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (name, classes, s, r, real_label) in zip(axes, panels):
        pos = np.arange(len(classes))
        ax.bar(pos - 0.2, s, width=0.4, label="samples", color="tab:blue")
        ax.bar(pos + 0.2, r, width=0.4, label=real_label, color="tab:gray")
        ax.set_xticks(pos)
        ax.set_xticklabels(classes, rotation=45 if max(len(c) for c in classes) > 2 else 0, ha="right" if max(len(c) for c in classes) > 2 else "center", fontsize=8)
        ax.set_ylabel("share of images")
        ax.set_title(name, fontsize=10)
        for i in np.flatnonzero(np.asarray(s) == 0):
            ax.annotate("none", (pos[i] - 0.2, 0), xytext=(0, 2), textcoords="offset points", ha="center",
                        fontsize=7, color="tab:red", rotation=90, va="bottom")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.set_layout_engine("constrained")
    return fig


def evaluate_faces(samples: np.ndarray, progress: bool = True) -> tuple:
    """Face measures of ``samples`` (N, 3, 32, 32) in [0, 1] against the real test faces.

    Returns ``(results dict, histogram figure, real test faces)``.
    """
    from .data import FACE_EYES, FACE_MOUTHS, face_dataset
    from .face_measures import eye_symmetry, load_or_train_classifiers

    clf = load_or_train_classifiers(progress=progress)
    real, _ = face_dataset("test", progress=progress)
    attrs = ("eyes", "mouth")
    names = {"eyes": FACE_EYES, "mouth": FACE_MOUTHS}
    ps, pr = clf.predict_proba(samples, attrs), clf.predict_proba(real, attrs)
    res = {"classifiers": {a: {"model": clf.info.get("model", "logistic"), "test_accuracy": float(clf.test_accuracy.get(a, float("nan"))),
                               "n_test_faces": int(clf.info.get("n_test", len(real)))} for a in attrs},
           "confidence_threshold": CONFIDENCE}
    both_s = np.ones(len(samples), bool)
    both_r = np.ones(len(real), bool)
    panels = []
    for a in attrs:
        ss, rs = class_shares(ps[a], len(names[a])), class_shares(pr[a], len(names[a]))
        both_s &= ps[a].max(1) >= CONFIDENCE
        both_r &= pr[a].max(1) >= CONFIDENCE
        res[a] = {
            "confident_fraction_samples": confident_fraction(ps[a]),
            "confident_fraction_real": confident_fraction(pr[a]),
            "types": list(names[a]),
            "type_shares_samples": [float(v) for v in ss],
            "type_shares_real": [float(v) for v in rs],
            "missing_types_samples": [names[a][i] for i in np.flatnonzero(ss == 0)],
            "min_type_share_samples": float(ss.min()),
        }
        panels.append((f"{a} type (predicted)", names[a], ss, rs, f"real test faces (n={len(real)})"))
    res["both_confident_fraction_samples"] = float(both_s.mean())
    res["both_confident_fraction_real"] = float(both_r.mean())
    sym_s, sym_r = eye_symmetry(samples), eye_symmetry(real)
    res["eye_symmetry"] = {"samples_mean": float(sym_s.mean()), "samples_std": float(sym_s.std()),
                           "real_mean": float(sym_r.mean()), "real_std": float(sym_r.std())}
    fig = _hist_figure(panels, f"Predicted eye and mouth types: {len(samples)} samples vs real test faces")
    return res, fig, real


def evaluate_digits(samples: np.ndarray, progress: bool = True, epochs: int = 30, seed: int = 0) -> tuple:
    """Digit classifier figures for ``samples`` (N, 1, 32, 32) in [0, 1].

    The CNN is trained on the 1000 held-out digits and tested on the 4000 training-split digits.
    Returns ``(results dict, histogram figure, real held-out digits)``.
    """
    from .data import mnist_digits

    x_h, y_h = mnist_digits("heldout")
    x_t, y_t = mnist_digits("train")
    t0 = time.time()
    clf = train_digit_classifier(x_h, y_h, epochs=epochs, seed=seed)
    train_s = time.time() - t0
    ps, pt = clf.predict_proba(samples), clf.predict_proba(x_t)
    ss, st = class_shares(ps, 10), class_shares(pt, 10)
    res = {
        "classifier": dict(clf.info, trained_on="mnist_digits('heldout'): 1000 digits, 100 per class, never seen by the prior",
                           tested_on="mnist_digits('train'): 4000 digits the classifier never saw",
                           test_accuracy=clf.accuracy(x_t, y_t), train_seconds=round(train_s, 1)),
        "confidence_threshold": CONFIDENCE,
        "confident_fraction_samples": confident_fraction(ps),
        "confident_fraction_real": confident_fraction(pt),
        "confident_target": DIGIT_CONFIDENT_TARGET,
        "class_shares_samples": [float(v) for v in ss],
        "class_shares_real_predicted": [float(v) for v in st],
        "min_class_share_samples": float(ss.min()),
        "min_class_share_target": DIGIT_MIN_SHARE_TARGET,
        "missing_classes_samples": [int(i) for i in np.flatnonzero(ss == 0)],
    }
    res["meets_targets"] = bool(res["confident_fraction_samples"] >= DIGIT_CONFIDENT_TARGET
                                and res["min_class_share_samples"] >= DIGIT_MIN_SHARE_TARGET)
    fig = _hist_figure([("predicted digit", [str(i) for i in range(10)], ss, st, "real digits (n=4000)")],
                       f"Predicted classes: {len(samples)} samples vs real digits")
    ax = fig.axes[0]
    ax.axhline(DIGIT_MIN_SHARE_TARGET, color="tab:red", lw=0.8, ls="--")
    return res, fig, x_h


# --------------------------------------------------------------------------- #
# Sampler grid: the same measures for DDPM and DDIM at several step counts
# --------------------------------------------------------------------------- #
def parse_grid(items: Sequence[str]) -> list:
    """``["ddpm:100", "ddim:50"]`` -> ``[("ddpm", 100), ("ddim", 50)]``, with errors that name the bad item."""
    out = []
    for item in items:
        sampler, _, steps = str(item).partition(":")
        if sampler not in SAMPLERS or not steps.isdigit() or int(steps) < 1:
            raise ValueError(f"grid point {item!r} must be SAMPLER:STEPS with SAMPLER in {list(SAMPLERS)} and STEPS a "
                             "positive integer, e.g. ddim:100")
        out.append((sampler, int(steps)))
    return out


def _grid_scorer(prior_name: str, progress: bool):
    """A function ``samples -> {measure: value}`` with the prior's quality measures (no memorisation)."""
    if prior_name == "mnist":
        from .data import mnist_digits

        x_h, y_h = mnist_digits("heldout")
        clf = train_digit_classifier(x_h, y_h)

        def score(samples):
            p = clf.predict_proba(samples)
            shares = class_shares(p, 10)
            return {"confident_fraction": confident_fraction(p), "min_class_share": float(shares.min()),
                    "meets_targets": bool(confident_fraction(p) >= DIGIT_CONFIDENT_TARGET
                                          and shares.min() >= DIGIT_MIN_SHARE_TARGET)}
        return score
    from .face_measures import load_or_train_classifiers

    clf = load_or_train_classifiers(progress=progress)

    def score(samples):
        p = clf.predict_proba(samples, ("eyes", "mouth"))
        both = (p["eyes"].max(1) >= CONFIDENCE) & (p["mouth"].max(1) >= CONFIDENCE)
        return {"confident_fraction": float(both.mean()),
                "min_class_share": float(min(class_shares(p[a], p[a].shape[1]).min() for a in ("eyes", "mouth")))}
    return score


def sampler_grid(prior, prior_name: str, points: Sequence[tuple] = DEFAULT_GRID, n: int = DEFAULT_N, seed: int = 0,
                 batch_size: int = DEFAULT_BATCH, progress: bool = True, reuse: Optional[dict] = None) -> list:
    """Quality of the prior's samples for each (sampler, steps) of ``points``.

    Each point draws ``n`` samples with the same per-image seeds and scores them: for ``mnist`` the fraction
    classified with probability ≥ :data:`CONFIDENCE` by the held-out digit CNN and the smallest class share; for
    ``faces`` the fraction whose eye type and mouth type are both confident and the smallest type share.
    ``reuse`` maps ``(sampler, steps)`` to samples already drawn with these seeds (not drawn again).
    Returns one dict per point: ``sampler``, ``steps``, ``n``, ``seconds`` and the measures.
    """
    score = _grid_scorer(prior_name, progress)
    rows = []
    for sampler, steps in points:
        t0 = time.time()
        samples = (reuse or {}).get((sampler, int(steps)))
        if samples is None or len(samples) != n:
            samples = generate_samples(prior, n=n, steps=int(steps), seed=seed, batch_size=batch_size,
                                       progress=progress, sampler=sampler)
        rows.append(dict(sampler=sampler, steps=int(steps), n=int(n), seconds=round(time.time() - t0, 1), **score(samples)))
        if progress:
            r = rows[-1]
            print(f"[evaluate_prior] {sampler} {steps} steps: confident {100 * r['confident_fraction']:.1f} %, "
                  f"smallest class {100 * r['min_class_share']:.1f} %", flush=True)
    return rows


# --------------------------------------------------------------------------- #
# Timing and environment
# --------------------------------------------------------------------------- #
def machine_load() -> dict:
    """Load average, CPU count, torch threads, and other ``helpers.train`` processes running now."""
    others = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if "helpers.train" in cmd and int(p.name) != os.getpid():
            others.append(cmd)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    cpus = os.cpu_count() or 1
    return {"loadavg_1_5_15": [round(v, 2) for v in load], "cpu_count": cpus, "torch_threads": torch.get_num_threads(),
            "other_training_processes": others,
            "loaded": bool(others) or load[0] > 0.5 * cpus}


def time_sampling(prior, num_images: int = 16, steps: Sequence[int] = (1000, 100), seed: int = 0) -> dict:
    """Wall time of unconditional DDPM sampling of ``num_images`` images in one batch, per step count."""
    from .samplers import sample_ddpm

    before = machine_load()
    rows = []
    with torch.no_grad():
        sample_ddpm(prior, num_samples=2, num_steps=2, seed=seed, progress=False)  # warm-up
        for s in steps:
            t0 = time.perf_counter()
            sample_ddpm(prior, num_samples=num_images, num_steps=int(s), seed=seed, progress=False)
            dt = time.perf_counter() - t0
            rows.append({"steps": int(s), "images": num_images, "seconds": round(dt, 2),
                         "seconds_per_step": round(dt / s, 4), "seconds_per_image": round(dt / num_images, 3)})
    after = machine_load()
    return {"sampler": "DDPM (ancestral), one batch", "runs": rows, "machine_before": before, "machine_after": after,
            "machine_loaded": before["loaded"] or after["loaded"],
            "note": ("the machine was busy with other work during the timing (see machine_before/after); "
                     "an idle machine is faster") if (before["loaded"] or after["loaded"]) else "the machine was idle"}


def _weights_sha256(prior_dir: Path) -> Optional[str]:
    files = sorted((prior_dir / "unet").glob("*.safetensors")) or sorted((prior_dir / "unet").glob("*.bin"))
    if not files:
        return None
    return file_sha256(files[0])


def _software() -> dict:
    import diffusers

    return {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "platform": platform.platform(), "processor": platform.processor() or platform.machine()}


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #
def _json_clean(obj):
    if isinstance(obj, dict):
        return {k: _json_clean(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _fmt(v, pct=False):
    if v is None:
        return "-"
    return f"{100 * v:.1f} %" if pct else f"{v:.3f}"


def summary_rows(results: dict) -> list:
    """(measure, samples, real/reference) rows of the printed summary table."""
    rows = []
    if results.get("faces"):
        f = results["faces"]
        for a in ("eyes", "mouth"):
            acc = f["classifiers"][a]["test_accuracy"]
            rows.append((f"{a} type confident (p >= {CONFIDENCE:g}); clf. test acc. {100 * acc:.1f} %",
                         _fmt(f[a]["confident_fraction_samples"], True), _fmt(f[a]["confident_fraction_real"], True)))
        rows.append(("eyes and mouth both confident", _fmt(f["both_confident_fraction_samples"], True),
                     _fmt(f["both_confident_fraction_real"], True)))
        for a in ("eyes", "mouth"):
            miss = f[a]["missing_types_samples"]
            rows.append((f"{a} types never predicted", ", ".join(miss) if miss else "none", "-"))
            rows.append((f"smallest {a} type share", _fmt(f[a]["min_type_share_samples"], True),
                         _fmt(min(f[a]["type_shares_real"]), True)))
        s = f["eye_symmetry"]
        rows.append(("eye symmetry (mean ± std)", f"{s['samples_mean']:.3f} ± {s['samples_std']:.3f}",
                     f"{s['real_mean']:.3f} ± {s['real_std']:.3f}"))
    if results.get("digits"):
        d = results["digits"]
        rows.append((f"digit classifier accuracy (CNN, on 4000 unseen real digits)", "-",
                     _fmt(d["classifier"]["test_accuracy"], True)))
        rows.append((f"confidently classified (p >= {CONFIDENCE:g}; target >= {100 * DIGIT_CONFIDENT_TARGET:.0f} %)",
                     _fmt(d["confident_fraction_samples"], True), _fmt(d["confident_fraction_real"], True)))
        rows.append((f"smallest class share (target >= {100 * DIGIT_MIN_SHARE_TARGET:.0f} %)",
                     _fmt(d["min_class_share_samples"], True), _fmt(min(d["class_shares_real_predicted"]), True)))
        rows.append(("class shares 0..9 [%]", " ".join(f"{100 * v:.0f}" for v in d["class_shares_samples"]),
                     " ".join(f"{100 * v:.0f}" for v in d["class_shares_real_predicted"])))
    m = results.get("memorisation")
    if m:
        rows.append(("nearest-training-image distance, median", _fmt(m["samples_to_train_nn"]["median"]),
                     _fmt(m["heldout_to_train_nn"]["median"]) + " (held-out)"))
        rows.append(("nearest-training-image distance, min", _fmt(m["samples_to_train_nn"]["min"]),
                     _fmt(m["heldout_to_train_nn"]["min"]) + " (held-out)"))
        rows.append(("median distance of two training images", "-", _fmt(m["train_pairwise_median"])))
        rows.append((f"near-copies (NN distance < {m['near_copy_threshold']:.3f})", _fmt(m["near_copy_fraction"], True),
                     _fmt(m["heldout_near_copy_fraction"], True) + " (held-out)"))
    for g in results.get("sampler_grid") or []:
        rows.append((f"{g['sampler'].upper()} {g['steps']} steps: confident / smallest class",
                     f"{_fmt(g['confident_fraction'], True)} / {_fmt(g['min_class_share'], True)}", "-"))
    t = results.get("timing")
    if t:
        for r in t["runs"]:
            rows.append((f"time, {r['images']} images, {r['steps']} DDPM steps" + (" (loaded machine)" if t["machine_loaded"] else ""),
                         f"{r['seconds']:.1f} s", "-"))
    return rows


def format_table(rows: list, header=("measure", "samples", "real / reference")) -> str:
    w = [max(len(str(r[i])) for r in list(rows) + [header]) for i in range(3)]
    line = lambda r: "  ".join(str(c).ljust(w[i]) for i, c in enumerate(r))  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * x for x in w)] + [line(r) for r in rows])


def evaluate(prior_name: str, n: int = DEFAULT_N, steps: int = DEFAULT_STEPS, seed: int = 0, out: Optional[str] = None,
             batch_size: int = DEFAULT_BATCH, timing: bool = False, timing_only: bool = False, progress: bool = True,
             prior_dir: Optional[str] = None, command: Optional[str] = None, grid: Sequence[tuple] = (),
             device: str = "cpu") -> dict:
    """Run the evaluation of the bundled prior ``prior_name`` ("faces" | "mnist"); returns the results dict.

    ``prior_dir`` evaluates another folder as if it were that prior (same data and measures). ``grid``: the
    (sampler, steps) points of :func:`sampler_grid` to report as well (``results["sampler_grid"]``).
    ``device``: where the prior samples (``"cpu"``, ``"cuda"``, ``"auto"``). The noise is drawn from the same
    per-image seeds on every device, but only the CPU's figures are the reproducible ones the model card shows;
    a GPU run is for a quick check (e.g. of weights trained on a lent GPU).
    """
    from .plotting import image_grid
    from .priors import load_prior

    if prior_name not in ("faces", "mnist"):
        raise ValueError(f"prior must be 'faces' or 'mnist', got {prior_name!r}")
    pdir = Path(prior_dir) if prior_dir else PRETRAINED_DIR / prior_name
    out_dir = Path(out) if out else pdir / "evaluation"
    out_dir.mkdir(parents=True, exist_ok=True)
    from .train import resolve_device

    device = resolve_device(device)
    prior = load_prior(str(pdir) if prior_dir else prior_name, device=device)
    info_path = pdir / "training_info.json"
    tinfo = json.loads(info_path.read_text()) if info_path.exists() else {}
    header = {
        "prior": prior_name,
        "prior_dir": str(pdir),
        "weights_sha256": _weights_sha256(pdir),
        "training_steps": tinfo.get("steps"),
        "training_exported_utc": tinfo.get("exported_utc"),
        "num_parameters": prior.num_parameters,
        "evaluated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "software": _software(),
        "device": device,
    }
    results_path = out_dir / "results.json"
    if timing_only:
        if not results_path.exists():
            raise FileNotFoundError(f"--timing-only adds the timing to {results_path}, which does not exist; run the evaluation first")
        results = json.loads(results_path.read_text())
        if results.get("weights_sha256") != header["weights_sha256"]:
            print("[evaluate_prior] warning: results.json was made with other weights; only the timing is new", flush=True)
        results["timing"] = dict(time_sampling(prior), measured_utc=header["evaluated_utc"], command=command)
        results_path.write_text(json.dumps(_json_clean(results), indent=2) + "\n")
        return results

    t0 = time.time()
    samples = generate_samples(prior, n=n, steps=steps, seed=seed, batch_size=batch_size, progress=progress)
    sampling_s = time.time() - t0
    results = dict(header)
    results["sampling"] = {
        "n": n, "sampler": f"DDPM (ancestral, Ho et al. 2020), strided to {steps} of the {prior.schedule.num_train_timesteps} "
                           "training timesteps (evenly spaced), x0 clipped to [-1, 1]",
        "steps": steps, "seed": seed, "image_seeds": f"seed * {SEED_STRIDE} + i, i = 0..{n - 1}",
        "batch_size": batch_size, "seconds": round(sampling_s, 1), "machine": machine_load(),
    }
    results["finite"] = bool(np.isfinite(samples).all())
    fig = image_grid(samples[:64], value_range=(0, 1), nrow=8, cell_size=0.9,
                     suptitle=f"{prior_name}: {min(64, n)} samples, DDPM {steps} steps, seed {seed}")
    fig.savefig(out_dir / "samples_grid.png", dpi=100)

    if prior_name == "faces":
        from .data import face_dataset

        res, hist, heldout = evaluate_faces(samples, progress=progress)
        results["faces"] = res
        hist.savefig(out_dir / "type_histogram.png", dpi=100)
        train, _ = face_dataset("train", progress=progress)
    else:
        from .data import mnist_digits

        res, hist, heldout = evaluate_digits(samples, progress=progress)
        results["digits"] = res
        hist.savefig(out_dir / "class_histogram.png", dpi=100)
        train, _ = mnist_digits("train")
    hflip = bool(tinfo.get("hflip", prior_name == "faces"))
    mem = memorisation_stats(samples, train, heldout, hflip=hflip)
    results["memorisation"] = mem
    # the 8 samples closest to a training image, above their nearest training image
    order = np.argsort(mem["_distances"])[:8]
    ref_idx = mem["_indices"][order]
    nn_imgs = [train[i] if i < len(train) else np.ascontiguousarray(train[i - len(train)][..., ::-1]) for i in ref_idx]
    fig = image_grid(list(samples[order]) + nn_imgs, value_range=(0, 1), nrow=8, cell_size=1.0,
                     titles=[f"d={mem['_distances'][i]:.2f}" for i in order] + ["nearest train"] * len(order),
                     suptitle=f"Samples closest to a training image (top) and that image (bottom); "
                              f"near-copy threshold {mem['near_copy_threshold']:.2f}")
    fig.savefig(out_dir / "nearest_neighbours.png", dpi=100)
    if timing:
        results["timing"] = dict(time_sampling(prior, seed=seed), measured_utc=header["evaluated_utc"], command=command)
    elif results_path.exists():  # keep an earlier timing of the same weights
        old = json.loads(results_path.read_text())
        if old.get("timing") and old.get("weights_sha256") == header["weights_sha256"]:
            results["timing"] = old["timing"]
    if grid:
        results["sampler_grid"] = sampler_grid(prior, prior_name, grid, n=n, seed=seed, batch_size=batch_size,
                                               progress=progress, reuse={("ddpm", int(steps)): samples})
    results["total_seconds"] = round(time.time() - t0, 1)
    results_path.write_text(json.dumps(_json_clean(results), indent=2) + "\n")
    return results


def _parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m helpers.evaluate_prior", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--prior", choices=["faces", "mnist"], required=True, help="bundled prior to evaluate")
    p.add_argument("--n", type=int, default=DEFAULT_N, help="number of samples")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="DDPM steps (strided over the 1000 training steps)")
    p.add_argument("--seed", type=int, default=0, help="image i uses seed SEED*1000000+i")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="images per sampling batch")
    p.add_argument("--out", default=None, help="output folder (default: helpers/pretrained/<prior>/evaluation/)")
    p.add_argument("--timing", action="store_true", help="also time sampling 16 images at 1000 and at 100 steps")
    p.add_argument("--timing-only", action="store_true", help="only the timing, added to an existing results.json")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (use 1 on a busy machine)")
    p.add_argument("--prior-dir", default=None, help="evaluate this folder instead of the bundled prior (same measures)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto; the model card's figures are the CPU's")
    p.add_argument("--grid", nargs="*", default=[f"{a}:{b}" for a, b in DEFAULT_GRID], metavar="SAMPLER:STEPS",
                   help="also report these samplers and step counts (DDPM and DDIM at 50, 100, 250 by default); "
                        "--grid with no value skips it")
    args = p.parse_args(argv)
    try:
        args.grid = parse_grid(args.grid)
    except ValueError as err:
        p.error(str(err))
    if args.n < 1 or args.steps < 1 or args.batch_size < 1:
        p.error("--n, --steps and --batch-size must be positive")
    from .train import resolve_device

    try:
        device = resolve_device(args.device)
    except ValueError as err:
        p.error(str(err))
    if device != "cpu" and (args.out is None or args.timing or args.timing_only):
        p.error(f"--device {args.device}: the model card shows the CPU's figures and timing, so a run on {device} "
                "needs its own --out folder and no --timing; drop --device for the card's evaluation")
    args.device = device  # "auto" resolved once, so the parsed arguments say where it ran
    return args


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Entry point of ``python -m helpers.evaluate_prior`` (see the module docstring)."""
    args = _parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python -m helpers.evaluate_prior " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    results = evaluate(args.prior, n=args.n, steps=args.steps, seed=args.seed, out=args.out, batch_size=args.batch_size,
                       timing=args.timing, timing_only=args.timing_only, progress=not args.no_progress,
                       prior_dir=args.prior_dir, command=command, grid=args.grid, device=args.device)
    out_dir = Path(args.out) if args.out else (Path(args.prior_dir) if args.prior_dir else PRETRAINED_DIR / args.prior) / "evaluation"
    if not args.timing_only:
        s = results["sampling"]
        print(f"\n{args.prior} prior ({results['num_parameters'] / 1e6:.2f} M parameters, {results['training_steps']} training steps): "
              f"{s['n']} samples, DDPM {s['steps']} steps, seed {s['seed']}, {s['seconds']:.0f} s of sampling")
    print(format_table(summary_rows(results)))
    print(f"\nwrote {out_dir / 'results.json'} and the figures beside it")
    return results


if __name__ == "__main__":
    main()
