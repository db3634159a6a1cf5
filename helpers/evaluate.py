"""Compare the course's methods on inverse problems: methods × tasks × images × seeds.

Run it from the repository root (one thread on a busy machine)::

    python -m helpers.evaluate --prior faces --threads 1
    python -m helpers.evaluate --prior faces --tasks deblur box --noise 0.05 --methods baseline sdedit dps \\
        --n-images 8 --n-select 4 --steps 50 --seeds 0 1 --out results/faces-small

**Methods** (``--methods``):

===============  =====================================================================
``measurement``  the measurement itself, brought to image size by the operator's
                 pseudo-inverse: the blurred image, the masked image (missing pixels
                 grey), the nearest-neighbour upsampled low-resolution image
``baseline``     the classical method of each task: Wiener deconvolution
                 (``skimage.restoration.wiener`` with the operator's kernel, its balance
                 chosen from ``--wiener-balance`` on the selection images), biharmonic
                 inpainting (``skimage.restoration.inpaint_biharmonic``), bicubic
                 upsampling (``torch.nn.functional.interpolate(mode="bicubic")``)
``sdedit``       :func:`helpers.samplers.sdedit`, a sweep over ``--sdedit-t0``; the t0
                 reported per task and noise level is chosen on the *selection images*
``score_ald``    :func:`helpers.samplers.score_ald` (λ = ``--ald-lambda``, Langevin rule)
``dps``          :func:`helpers.samplers.dps` (ζ′ = ``--dps-zeta``)
===============  =====================================================================

Any method given several values (``--sdedit-t0``, ``--wiener-balance``, ``--dps-zeta``,
``--ald-lambda``) is run with every value on the selection images, and the value with the
best mean ``--select-by`` metric (PSNR by default) is reported. The selection images are the
first ``--n-select`` images of the data set, the reported ones the next ``--n-images``:
the two sets never overlap. SDEdit's whole sweep is also run on the reported images, for the
t0 plot.

**Tasks** (``--tasks``, all with measurement noise ``--noise``, default σ_y = 0.05 in
model space [-1, 1] *and* noiseless): ``deblur`` (Gaussian blur, see :func:`blur_setting`),
``box`` (a centred box of half the image side), ``box_eyes`` / ``box_mouth`` (boxes over
the eyes / the mouth of the cartoon faces, :data:`helpers.face_measures.EYE_BOX` /
:data:`~helpers.face_measures.MOUTH_BOX`), ``random`` (keep 30 % of the pixels), ``sr2`` and
``sr4`` (super-resolution ×2, ×4: average pooling). ``all`` runs every task.

**Data**: the faces prior is scored on ``face_dataset("test")`` (never the training faces),
the MNIST prior on ``mnist_digits("heldout")``.

**Metrics** (image space [0, 1], ``data_range=1.0``): PSNR, SSIM, LPIPS (``--lpips``: alex
and vgg), wall time per image (the batch's time divided by its size), NFE; on faces also
whether the attribute classifiers of :mod:`helpers.face_measures` recover the true eye type
and mouth type from the reconstruction, and the eye-symmetry score. Tables give mean ± standard
error over the reported images (each image's values are first averaged over the seeds).

**Outputs** in ``--out`` (default ``results/<prior>/``):

* ``results.csv`` -- one row per (method, params, task, noise, image, seed), appended as
  each batch finishes. A restarted run reads it and skips every key already there, so an
  interrupted run loses at most one batch. Rows of other configurations (e.g. another
  ``--steps``) stay in the file and are ignored by the summary.
* ``summary.md`` -- a table per task and noise level, the chosen parameters, the SDEdit sweep.
* ``sdedit_sweep_psnr.png``, ``sdedit_sweep_lpips_<net>.png`` -- metric vs t0;
  ``bars_<task>.png`` -- bar charts per task.
* ``config.json`` (settings and the chosen parameters), ``command.txt`` (the exact command).

From Python, :func:`run_evaluation` takes an :class:`EvalConfig` and, optionally, the prior,
the images (and face attributes) and the attribute classifiers to use instead of loading them.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import samplers
from .operators import (
    BoxInpainting,
    GaussianBlur,
    Operator,
    RandomInpainting,
    SuperResolution,
)

__all__ = [
    "TASKS",
    "DEFAULT_TASKS",
    "METHODS",
    "CSV_FIELDS",
    "METRIC_COLUMNS",
    "Task",
    "EvalConfig",
    "EvalResult",
    "blur_setting",
    "build_task",
    "baseline_reconstruction",
    "run_evaluation",
    "read_results",
    "summarize",
    "main",
]

# ---------------------------------------------------------------------------- tasks
TASKS = {
    "deblur": "Gaussian deblurring",
    "box": "box inpainting (centred box, half the side)",
    "box_eyes": "box inpainting over the eyes",
    "box_mouth": "box inpainting over the mouth",
    "random": "random inpainting (30 % of the pixels kept)",
    "sr2": "super-resolution ×2",
    "sr4": "super-resolution ×4",
}
DEFAULT_TASKS = ("deblur", "box", "random", "sr4")
METHODS = ("measurement", "baseline", "sdedit", "score_ald", "dps")
METHOD_NAMES = {
    "measurement": "measurement",
    "baseline": "classical baseline",
    "sdedit": "SDEdit",
    "score_ald": "ScoreALD",
    "dps": "DPS",
}
RANDOM_KEEP = 0.3


@dataclass
class Task:
    """An inverse problem: its name, forward operator, kind and a one-line description."""

    name: str
    operator: Operator
    kind: str  # "deblur" | "inpaint" | "sr"
    description: str


def blur_setting(image_size: int) -> tuple[int, float]:
    """(kernel_size, std in pixels) of the deblurring task at ``image_size``.

    At 32 px: kernel 9, std 1.0 px (the kernel reaches ±4 std). DPS's blur (std 3.0 px at
    256 px, 1.2 % of the side) scaled to 32 px has std 0.375 px: its centre pixel keeps 89 %
    of the weight and on the test faces the blurred image is 43.9 dB from the original --
    nothing to restore. With std 1.0 px the blurred faces are at 23.6 dB, and the details that
    make a face's identity here (pupils, eyelids, mouth corners: 1-3 px) are gone while the
    outline stays, a degradation of the same visual strength as DPS's on 256-px photos, where
    those details are many pixels wide. The std scales with the image (``image_size / 32``
    px). From 128 px on the DPS setting is used, kernel 61 and std 3.0 px at 256 px (std
    scaled with the size), so 256-px results compare with the paper's.
    """
    size = int(image_size)
    if size >= 128:
        std = 3.0 * size / 256
        kernel = 61 if 61 // 2 < size else 2 * math.ceil(4 * std) + 1
        return kernel, std
    std = max(1.0, size / 32)
    kernel = 2 * math.ceil(4 * std) + 1
    while kernel // 2 >= size:  # reflect padding needs pad < size (only for tiny test images)
        kernel -= 2
    return kernel, std


def _box_from(box32: Sequence[int], size: int) -> tuple[tuple[int, int], tuple[float, float]]:
    from .face_measures import box_slices

    rs, cs = box_slices(box32, size)
    return (rs.stop - rs.start, cs.stop - cs.start), ((rs.start + rs.stop) / 2, (cs.start + cs.stop) / 2)


def build_task(name: str, image_size: int) -> Task:
    """The :class:`Task` called ``name`` (a key of :data:`TASKS`) for square images of ``image_size`` px."""
    size = int(image_size)
    if name == "deblur":
        k, s = blur_setting(size)
        return Task(name, GaussianBlur(k, s), "deblur", f"Gaussian deblurring (kernel {k}, std {s:g} px)")
    if name == "box":
        op = BoxInpainting(size, size // 2)
        return Task(name, op, "inpaint", f"box inpainting ({size // 2}×{size // 2} centred box)")
    if name in ("box_eyes", "box_mouth"):
        from .face_measures import EYE_BOX, MOUTH_BOX

        box_size, center = _box_from(EYE_BOX if name == "box_eyes" else MOUTH_BOX, size)
        op = BoxInpainting(size, box_size, center=center)
        part = "eyes" if name == "box_eyes" else "mouth"
        return Task(name, op, "inpaint", f"box inpainting over the {part} ({box_size[0]}×{box_size[1]} box)")
    if name == "random":
        op = RandomInpainting(size, RANDOM_KEEP, seed=0)
        return Task(name, op, "inpaint", f"random inpainting ({RANDOM_KEEP:.0%} of the pixels kept)")
    if name in ("sr2", "sr4"):
        k = int(name[2:])
        return Task(name, SuperResolution(k), "sr", f"super-resolution ×{k} (average pooling)")
    raise ValueError(f"unknown task {name!r}; choose from {list(TASKS)} (or 'all')")


# ---------------------------------------------------------------------------- baselines
def _wiener(y: torch.Tensor, op: GaussianBlur, balance: float) -> torch.Tensor:
    """Wiener deconvolution in image space, per channel, after reflect padding (the operator's padding)."""
    from skimage.restoration import wiener

    psf = op.kernel.double().numpy()
    p = op.kernel_size
    img = ((y.detach().cpu().double() + 1) / 2).numpy()
    out = np.empty_like(img)
    for b in range(img.shape[0]):
        for c in range(img.shape[1]):
            padded = np.pad(img[b, c], p, mode="reflect")
            out[b, c] = wiener(padded, psf, balance, clip=False)[p:-p, p:-p]
    return torch.from_numpy(np.clip(out, 0, 1) * 2 - 1).float()


def _biharmonic(y: torch.Tensor, op: Operator) -> torch.Tensor:
    from skimage.restoration import inpaint_biharmonic

    missing = op.mask[0, 0].cpu().numpy() == 0
    img = ((y.detach().cpu().double() + 1) / 2).numpy()
    out = np.empty_like(img)
    for b in range(img.shape[0]):
        if img.shape[1] == 1:
            out[b, 0] = inpaint_biharmonic(img[b, 0], missing)
        else:
            out[b] = np.moveaxis(inpaint_biharmonic(np.moveaxis(img[b], 0, -1), missing, channel_axis=-1), -1, 0)
    return torch.from_numpy(np.clip(out, 0, 1) * 2 - 1).float()


def baseline_reconstruction(task: Task, y: torch.Tensor, params: Optional[dict] = None) -> torch.Tensor:
    """The classical reconstruction of ``task`` from measurements ``y`` (B, C, h, w), model space.

    deblur: Wiener deconvolution with the task's kernel (``params["balance"]``, default 0.01);
    inpainting: biharmonic; super-resolution: bicubic upsampling. Returns (B, C, H, W) in [-1, 1].
    """
    params = params or {}
    if task.kind == "deblur":
        return _wiener(y, task.operator, float(params.get("balance", 0.01)))
    if task.kind == "inpaint":
        return _biharmonic(y, task.operator)
    if task.kind == "sr":
        k = task.operator.factor
        return F.interpolate(y.detach().cpu().float(), scale_factor=k, mode="bicubic", align_corners=False).clamp(-1, 1)
    raise ValueError(f"no baseline for task kind {task.kind!r}")


# ---------------------------------------------------------------------------- configuration
@dataclass
class EvalConfig:
    """Settings of :func:`run_evaluation`; the CLI's flags map one to one onto these fields."""

    prior: str = "faces"
    dataset: Optional[str] = None  # "faces" | "mnist"; default from the prior's name
    tasks: Sequence[str] = DEFAULT_TASKS
    noise_levels: Sequence[float] = (0.05, 0.0)
    methods: Sequence[str] = METHODS
    n_images: int = 16
    n_select: int = 4
    steps: int = 100
    seeds: Sequence[int] = (0,)
    sdedit_t0s: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
    sdedit_sweep_on_report: bool = True
    dps_step_sizes: Sequence[float] = (1.0,)
    ald_step_sizes: Sequence[float] = (1.0,)
    ald_step_rule: str = "langevin"
    wiener_balances: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1)
    select_by: str = "psnr"
    lpips_nets: Sequence[str] = ("alex", "vgg")
    face_measures: Optional[bool] = None  # None: on for the faces data set
    batch_size: int = 8
    device: Optional[str] = None
    out_dir: Optional[str] = None
    plots: bool = True
    progress: bool = True
    command: Optional[str] = None
    keep_images: bool = False  # keep the reconstructions of the reported images in EvalResult.images
    # steps per sampler ({"sdedit": 50, "dps": 250, ...}, e.g. helpers.steps_curve.CPU_STEPS); others use `steps`
    method_steps: Optional[dict] = None

    def steps_for(self, method: str) -> int:
        """The number of sampler steps of ``method``: ``method_steps[method]`` if given, else ``steps``."""
        return int((self.method_steps or {}).get(method, self.steps))

    def validate(self) -> None:
        tasks = list(self.tasks)
        if not tasks:
            raise ValueError("tasks is empty")
        for t in tasks:
            if t not in TASKS:
                raise ValueError(f"unknown task {t!r}; choose from {list(TASKS)}")
        for m in self.methods:
            if m not in METHODS:
                raise ValueError(f"unknown method {m!r}; choose from {list(METHODS)}")
        if not self.methods:
            raise ValueError("methods is empty")
        for s in self.noise_levels:
            if not (isinstance(s, (int, float)) and s >= 0):
                raise ValueError(f"noise levels must be >= 0 (model space), got {s!r}")
        if self.n_images < 1 or self.n_select < 0:
            raise ValueError("n_images must be >= 1 and n_select >= 0")
        if not self.seeds:
            raise ValueError("seeds is empty")
        if self.steps < 1:
            raise ValueError("steps must be >= 1")
        for m, n in (self.method_steps or {}).items():
            if m not in ("sdedit", "score_ald", "dps"):
                raise ValueError(f"method_steps names {m!r}; only the samplers 'sdedit', 'score_ald', 'dps' take steps")
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"method_steps[{m!r}] must be an integer >= 1, got {n!r}")
        for t0 in self.sdedit_t0s:
            if not 0 < t0 <= 1:
                raise ValueError(f"SDEdit t0 must be in (0, 1], got {t0!r}")
        if self.select_by not in ("psnr", "ssim", "lpips_alex", "lpips_vgg"):
            raise ValueError("select_by must be 'psnr', 'ssim', 'lpips_alex' or 'lpips_vgg'")
        if self.select_by.startswith("lpips") and self.select_by[6:] not in self.lpips_nets:
            raise ValueError(f"select_by={self.select_by!r} needs LPIPS net {self.select_by[6:]!r} in lpips_nets")
        for net in self.lpips_nets:
            if net not in ("alex", "vgg"):
                raise ValueError(f"unknown LPIPS net {net!r}; use 'alex' and/or 'vgg'")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.n_select == 0:
            grids = {
                "sdedit": self.sdedit_t0s, "dps": self.dps_step_sizes, "score_ald": self.ald_step_sizes,
                "baseline": self.wiener_balances if "deblur" in tasks else (0,),
            }
            for m in self.methods:
                if len(grids.get(m, (0,))) > 1:
                    raise ValueError(
                        f"{m} has several parameter values to choose from but n_select=0: give selection "
                        "images (--n-select) or a single value"
                    )


# ---------------------------------------------------------------------------- results file
CSV_FIELDS = [
    "method", "params", "task", "noise", "image", "seed", "split", "status",
    "psnr", "ssim", "lpips_alex", "lpips_vgg", "eyes_ok", "mouth_ok", "eye_symmetry",
    "seconds", "nfe", "backward", "batch", "prior", "finished",
]
KEY_FIELDS = ("method", "params", "task", "noise", "image", "seed")

#: (CSV field, column title in summary.md, decimals, higher is better)
METRIC_COLUMNS = [
    ("psnr", "PSNR [dB] ↑", 2, True),
    ("ssim", "SSIM ↑", 3, True),
    ("lpips_alex", "LPIPS-alex ↓", 3, False),
    ("lpips_vgg", "LPIPS-vgg ↓", 3, False),
    ("eyes_ok", "eye type ✓ ↑", 2, True),
    ("mouth_ok", "mouth type ✓ ↑", 2, True),
    ("eye_symmetry", "eye symmetry ↑", 2, True),
]


def _noise_str(noise: float) -> str:
    return f"{float(noise):g}"


def _key(row: dict) -> tuple:
    return (row["method"], row["params"], row["task"], _noise_str(float(row["noise"])), int(row["image"]), int(row["seed"]))


def read_results(path) -> list[dict]:
    """The complete rows of a ``results.csv`` (a row cut off by an interruption is dropped)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is not None and list(reader.fieldnames) != CSV_FIELDS:
            raise ValueError(
                f"{path} has columns {reader.fieldnames}, expected {CSV_FIELDS}: it was written by another "
                "version of helpers.evaluate; use another --out folder"
            )
        rows = []
        for row in reader:
            if None in row or any(row.get(k) in (None, "") for k in KEY_FIELDS + ("finished",)):
                continue  # truncated line
            rows.append(row)
    return rows


def _repair_csv(path: Path, rows: list[dict]) -> None:
    """Rewrite the file with its complete rows only, when an interruption left a partial line."""
    with open(path, newline="") as fh:
        n_lines = sum(1 for _ in csv.reader(fh))
    text = path.read_text()
    if n_lines - 1 == len(rows) and text.endswith("\n"):
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _append_rows(path: Path, rows: list[dict]) -> None:
    """Append rows in one write, flushed and synced, so that an interruption loses at most this batch."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    if not path.exists() or path.stat().st_size == 0:
        w.writeheader()
    w.writerows(rows)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, buf.getvalue().encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- plan
@dataclass
class _Setting:
    method: str
    params: str  # the key string, e.g. "t0=0.4;steps=100"
    values: dict  # the parsed values, e.g. {"t0": 0.4}
    label: str
    deterministic: bool


def _fmt(v: float) -> str:
    return f"{float(v):g}"


def _settings(method: str, task: Task, cfg: EvalConfig) -> list[_Setting]:
    if method == "measurement":
        what = {"deblur": "blurred y", "inpaint": "masked y", "sr": "nearest-upsampled y"}[task.kind]
        return [_Setting(method, "pinv", {}, f"measurement ({what})", True)]
    if method == "baseline":
        if task.kind == "deblur":
            return [
                _Setting(method, f"wiener;balance={_fmt(b)}", {"balance": float(b)}, f"Wiener (balance {_fmt(b)})", True)
                for b in cfg.wiener_balances
            ]
        if task.kind == "inpaint":
            return [_Setting(method, "biharmonic", {}, "biharmonic inpainting", True)]
        return [_Setting(method, "bicubic", {}, "bicubic upsampling", True)]
    if method == "sdedit":
        return [
            _Setting(method, f"t0={_fmt(t)};steps={cfg.steps_for(method)}", {"t0": float(t)}, f"SDEdit (t0 = {_fmt(t)})", False)
            for t in cfg.sdedit_t0s
        ]
    if method == "score_ald":
        return [
            _Setting(method, f"lambda={_fmt(s)};rule={cfg.ald_step_rule};steps={cfg.steps_for(method)}", {"step_size": float(s)},
                     f"ScoreALD (λ = {_fmt(s)})", False)
            for s in cfg.ald_step_sizes
        ]
    if method == "dps":
        return [
            _Setting(method, f"zeta={_fmt(s)};steps={cfg.steps_for(method)}", {"step_size": float(s)}, f"DPS (ζ′ = {_fmt(s)})", False)
            for s in cfg.dps_step_sizes
        ]
    raise ValueError(method)


def _sample_seed(image: int, seed: int) -> int:
    """Sampler seed of an image: independent of the batch it runs in."""
    return 1_000_003 * int(seed) + int(image)


def _noise_seed(image: int) -> int:
    """Measurement-noise seed of an image: the same for every method and seed."""
    return 7_000_000 + int(image)


# ---------------------------------------------------------------------------- running
@dataclass
class EvalResult:
    """What :func:`run_evaluation` did: paths, the chosen parameters, the rows it summarised."""

    out_dir: Path
    csv_path: Path
    summary_path: Path
    selected: dict  # (task, noise_str, method) -> params string
    rows: list  # the CSV rows of this configuration (reported and selection images)
    computed: int  # number of (image, seed) reconstructions computed in this call
    skipped: int  # number found in results.csv and not recomputed
    plots: list = field(default_factory=list)
    # with ``keep_images``: {(task, noise_str, method): {image index: (C, H, W) tensor in image space [0, 1]}},
    # the chosen parameters, first seed, reported images computed in this call (not those found in results.csv)
    images: dict = field(default_factory=dict)


def _load_data(cfg: EvalConfig, n: int, image_shape) -> tuple[np.ndarray, Optional[dict]]:
    name = cfg.dataset
    if name == "faces":
        from .data import face_dataset

        images, attrs = face_dataset("test", size=int(image_shape[-1]), n=max(n, 1), progress=cfg.progress)
        return images[:n], {k: v[:n] for k, v in attrs.items()}
    if name == "mnist":
        from .data import mnist_digits

        images, labels = mnist_digits("heldout", size=int(image_shape[-1]))
        if len(images) < n:
            raise ValueError(f"mnist heldout has {len(images)} digits; asked for {n}")
        return images[:n], {"label": labels[:n]}
    raise ValueError(
        f"no data set for prior {cfg.prior!r}: pass dataset='faces' or 'mnist' (--dataset), or give run_evaluation "
        "the images"
    )


class _Runner:
    def __init__(self, cfg: EvalConfig, prior, images: torch.Tensor, attrs, classifiers, csv_path: Path):
        self.cfg, self.prior, self.images, self.attrs, self.clf = cfg, prior, images, attrs, classifiers
        self.csv_path = csv_path
        self.done = {_key(r): r for r in read_results(csv_path)}
        if csv_path.exists():
            _repair_csv(csv_path, list(self.done.values()))
        self.computed = 0
        self.skipped = 0
        self.measurements: dict = {}
        self.bar = None
        self.kept: dict = {}  # (method, params, task, noise_str, seed) -> {image: (C, H, W) in [0, 1]}

    # -- measurement y per (task, noise, image), the same for every method and seed
    def measurement(self, task: Task, noise: float, idx: list[int]) -> torch.Tensor:
        ys = []
        for i in idx:
            key = (task.name, _noise_str(noise), i)
            if key not in self.measurements:
                x = self.images[i : i + 1] * 2 - 1
                self.measurements[key] = task.operator.measure(x, noise_std=float(noise), seed=_noise_seed(i))
            ys.append(self.measurements[key])
        return torch.cat(ys)

    def reconstruct(self, s: _Setting, task: Task, noise: float, y: torch.Tensor, seeds: list[int]):
        """(x_hat in model space on the CPU, nfe, backward passes, status)."""
        cfg, prior, op = self.cfg, self.prior, task.operator
        if s.method == "measurement":
            return op.pseudo_inverse(y).clamp(-1, 1), 0, 0, "ok"
        if s.method == "baseline":
            return baseline_reconstruction(task, y, s.values), 0, 0, "ok"
        try:
            if s.method == "sdedit":
                r = samplers.sdedit(prior, op, y, start_time=s.values["t0"], num_steps=cfg.steps_for("sdedit"), seed=seeds, progress=False)
                return r.sample.cpu().float(), r.nfe, 0, "ok"
            if s.method == "score_ald":
                r = samplers.score_ald(prior, op, y, num_steps=cfg.steps_for("score_ald"), step_size=s.values["step_size"],
                                       noise_std=float(noise), step_rule=cfg.ald_step_rule, seed=seeds, progress=False)
                return r.sample.cpu().float(), r.nfe, 0, "ok"
            if s.method == "dps":
                r = samplers.dps(prior, op, y, num_steps=cfg.steps_for("dps"), step_size=s.values["step_size"], seed=seeds,
                                 progress=False)
                return r.sample.cpu().float(), r.nfe, r.nfe, "ok"
        except samplers.SamplerDivergedError:
            return None, 0, 0, "diverged"
        raise ValueError(s.method)

    def metrics(self, x_hat: Optional[torch.Tensor], idx: list[int]) -> list[dict]:
        from .metrics import lpips_distance, psnr, ssim

        n = len(idx)
        out = [dict() for _ in range(n)]
        if x_hat is None:
            return out
        truth = self.images[idx]
        xi = ((x_hat + 1) / 2).clamp(0, 1)
        cols = {"psnr": psnr(xi, truth, data_range=1.0), "ssim": ssim(xi, truth, data_range=1.0)}
        for net in self.cfg.lpips_nets:
            cols[f"lpips_{net}"] = lpips_distance(xi, truth, net=net, data_range=1.0)
        if self.clf is not None:
            from .face_measures import eye_symmetry

            pred = self.clf.predict(xi, ["eyes", "mouth"])
            cols["eyes_ok"] = (pred["eyes"] == np.asarray(self.attrs["eyes"])[idx]).astype(float)
            cols["mouth_ok"] = (pred["mouth"] == np.asarray(self.attrs["mouth"])[idx]).astype(float)
            cols["eye_symmetry"] = eye_symmetry(xi)
        for k, v in cols.items():
            v = np.atleast_1d(np.asarray(v, dtype=float))
            for j in range(n):
                out[j][k] = f"{v[j]:.6g}"
        return out

    def run_unit(self, s: _Setting, task: Task, noise: float, split: str, image_idx: list[int]) -> list[dict]:
        cfg = self.cfg
        seeds = [int(cfg.seeds[0])] if s.deterministic else [int(x) for x in cfg.seeds]
        rows = []
        for seed in seeds:
            todo = []
            for i in image_idx:
                key = (s.method, s.params, task.name, _noise_str(noise), i, seed)
                if key in self.done:
                    rows.append(self.done[key])
                    self.skipped += 1
                    if self.bar is not None:
                        self.bar.update(1)
                else:
                    todo.append(i)
            for start in range(0, len(todo), cfg.batch_size):
                idx = todo[start : start + cfg.batch_size]
                y = self.measurement(task, noise, idx)
                t0 = time.perf_counter()
                x_hat, nfe, backward, status = self.reconstruct(s, task, noise, y, [_sample_seed(i, seed) for i in idx])
                seconds = (time.perf_counter() - t0) / len(idx)
                mets = self.metrics(x_hat, idx)
                if cfg.keep_images and x_hat is not None and split == "report":
                    kept = self.kept.setdefault((s.method, s.params, task.name, _noise_str(noise), seed), {})
                    for j, i in enumerate(idx):
                        kept[i] = ((x_hat[j] + 1) / 2).clamp(0, 1)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
                new = []
                for j, i in enumerate(idx):
                    row = {k: "" for k in CSV_FIELDS}
                    row.update(method=s.method, params=s.params, task=task.name, noise=_noise_str(noise), image=str(i),
                               seed=str(seed), split=split, status=status, seconds=f"{seconds:.6g}", nfe=str(nfe),
                               backward=str(backward), batch=str(len(idx)), prior=str(getattr(self.prior, "name", "")),
                               finished=stamp)
                    row.update(mets[j])
                    new.append(row)
                _append_rows(self.csv_path, new)
                for row in new:
                    self.done[_key(row)] = row
                rows.extend(new)
                self.computed += len(idx)
                if self.bar is not None:
                    self.bar.update(len(idx))
                    self.bar.set_postfix_str(f"{task.name} σ={_noise_str(noise)} {s.label}", refresh=False)
        return rows


# ---------------------------------------------------------------------------- summaries
def _as_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def per_image_values(rows: list[dict], field_name: str) -> dict[int, float]:
    """``{image: value}`` of ``field_name``, each the mean over that image's seeds (missing/NaN values skipped)."""
    by_image: dict[int, list[float]] = {}
    for r in rows:
        v = _as_float(r.get(field_name))
        if math.isfinite(v):
            by_image.setdefault(int(r["image"]), []).append(v)
    return {i: float(np.mean(v)) for i, v in sorted(by_image.items())}


def _per_image(rows: list[dict], field_name: str) -> np.ndarray:
    """Values of ``field_name`` per image (sorted by image), each the mean over that image's seeds."""
    return np.array(list(per_image_values(rows, field_name).values()), dtype=float)


def _mean_se(values: np.ndarray) -> tuple[float, float, int]:
    n = len(values)
    if n == 0:
        return float("nan"), float("nan"), 0
    se = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return float(values.mean()), se, n


def summarize(rows: list[dict], field_name: str) -> tuple[float, float, int]:
    """(mean, standard error, number of images) of a metric over images, seeds averaged per image first."""
    return _mean_se(_per_image(rows, field_name))


def _fmt_ms(m: float, se: float, decimals: int) -> str:
    if not math.isfinite(m):
        return "–"
    if not math.isfinite(se):
        return f"{m:.{decimals}f}"
    return f"{m:.{decimals}f} ± {se:.{decimals}f}"


def _fmt_sig(v: float, sig: int = 3) -> str:
    if not math.isfinite(v):
        return "–"
    if float(v).is_integer() and abs(v) < 1e6:
        return str(int(v))
    decimals = max(0, min(6, sig - 1 - int(math.floor(math.log10(abs(v))))))
    return f"{v:.{decimals}f}"


# ---------------------------------------------------------------------------- main entry
def run_evaluation(config: EvalConfig, *, prior=None, images=None, attrs: Optional[dict] = None,
                   classifiers=None) -> EvalResult:
    """Run (or resume) an evaluation and write ``results.csv``, ``summary.md``, plots, ``config.json``, ``command.txt``.

    Parameters
    ----------
    config : the settings (:class:`EvalConfig`; a dict of its fields is accepted too).
    prior : use this prior instead of ``load_prior(config.prior)`` (e.g. a tiny test network).
    images : use these images instead of the data set: (N, C, H, W) in image space [0, 1],
        numpy or torch; images ``0 .. n_select-1`` choose the parameters, the next
        ``n_images`` are reported.
    attrs : face attributes of ``images`` (``{"eyes": (N,), "mouth": (N,)}`` class indices)
        for the eye/mouth recovery scores.
    classifiers : the attribute classifiers (anything with
        ``predict(images, ["eyes", "mouth"]) -> {attr: (N,) ints}``); default
        :func:`helpers.face_measures.load_or_train_classifiers` when face measures are on.
    """
    cfg = EvalConfig(**config) if isinstance(config, dict) else dataclasses.replace(config)
    cfg.validate()
    if cfg.dataset is None and images is None:
        cfg.dataset = cfg.prior if cfg.prior in ("faces", "mnist") else None
    if prior is None:
        from .priors import load_prior

        prior = load_prior(cfg.prior, device=cfg.device)
    n_total = cfg.n_select + cfg.n_images
    if images is None:
        images, attrs = _load_data(cfg, n_total, prior.image_shape)
    images = torch.as_tensor(np.asarray(images, dtype=np.float32)) if not torch.is_tensor(images) else images.detach().cpu().float()
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(prior.image_shape):
        raise ValueError(f"images have shape {tuple(images.shape)} but the prior makes {tuple(prior.image_shape)} images")
    if len(images) < n_total:
        raise ValueError(f"need {n_total} images (n_select={cfg.n_select} + n_images={cfg.n_images}), got {len(images)}")
    from .data import check_range

    check_range(images, 0.0, 1.0, "images")
    face_on = cfg.face_measures
    if face_on is None:
        face_on = attrs is not None and "eyes" in attrs and "mouth" in attrs and (cfg.dataset == "faces" or classifiers is not None)
    if face_on:
        if attrs is None or "eyes" not in attrs or "mouth" not in attrs:
            raise ValueError("face measures need the images' attributes (attrs with 'eyes' and 'mouth')")
        if classifiers is None:
            from .face_measures import load_or_train_classifiers

            classifiers = load_or_train_classifiers(progress=cfg.progress)
    else:
        classifiers = None

    out = Path(cfg.out_dir or Path("results") / str(cfg.prior).replace("/", "_"))
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "results.csv"
    runner = _Runner(cfg, prior, images, attrs, classifiers, csv_path)
    size = int(prior.image_shape[-1])
    tasks = [build_task(t, size) for t in cfg.tasks]
    select_idx = list(range(cfg.n_select))
    report_idx = list(range(cfg.n_select, n_total))

    # plan: which (setting, task, noise, split) units run
    grid = {(t.name, m): _settings(m, t, cfg) for t in tasks for m in cfg.methods}

    def n_seeds(s):
        return 1 if s.deterministic else len(cfg.seeds)

    total = 0
    for t in tasks:
        for m in cfg.methods:
            ss = grid[(t.name, m)]
            sel = len(ss) > 1
            report_settings = len(ss) if (m == "sdedit" and cfg.sdedit_sweep_on_report) or not sel else 1
            per = n_seeds(ss[0])
            total += len(cfg.noise_levels) * per * (len(select_idx) * len(ss) * sel + len(report_idx) * report_settings)
    if cfg.progress:
        from tqdm.auto import tqdm

        runner.bar = tqdm(total=total, desc="evaluate", unit="img")

    selected: dict = {}
    lower_better = cfg.select_by.startswith("lpips")
    try:
        for t in tasks:
            for noise in cfg.noise_levels:
                for m in cfg.methods:
                    ss = grid[(t.name, m)]
                    chosen = ss[0]
                    if len(ss) > 1:
                        scores = []
                        for s in ss:
                            rows = runner.run_unit(s, t, noise, "select", select_idx)
                            mean = summarize([r for r in rows if r["status"] == "ok"], cfg.select_by)[0]
                            scores.append(mean if math.isfinite(mean) else (math.inf if lower_better else -math.inf))
                        best = int(np.argmin(scores) if lower_better else np.argmax(scores))
                        chosen = ss[best]
                    selected[(t.name, _noise_str(noise), m)] = chosen.params
                    to_report = ss if (m == "sdedit" and cfg.sdedit_sweep_on_report) else [chosen]
                    for s in to_report:
                        runner.run_unit(s, t, noise, "report", report_idx)
    finally:
        if runner.bar is not None:
            runner.bar.close()

    # this configuration's rows, read back from the file (the summary is computed from the CSV)
    all_rows = read_results(csv_path)
    wanted = {(s.method, s.params, t.name) for t in tasks for m in cfg.methods for s in grid[(t.name, m)]}
    noises = {_noise_str(n) for n in cfg.noise_levels}
    images_set = set(select_idx) | set(report_idx)
    cfg_rows = [
        r for r in all_rows
        if (r["method"], r["params"], r["task"]) in wanted and _noise_str(float(r["noise"])) in noises
        and int(r["image"]) in images_set and int(r["seed"]) in {int(x) for x in cfg.seeds}
    ]
    command = cfg.command or f"helpers.evaluate.run_evaluation({cfg!r})"
    reference = _reference_scores(images[report_idx], None if attrs is None else {k: np.asarray(v)[report_idx] for k, v in attrs.items()},
                                  classifiers)
    summary = _summary_markdown(cfg, tasks, grid, selected, cfg_rows, report_idx, select_idx, prior, command, reference)
    summary_path = out / "summary.md"
    summary_path.write_text(summary)
    (out / "command.txt").write_text(command + "\n")
    cfg_json = dataclasses.asdict(cfg)
    cfg_json["selected"] = {f"{k[0]}|sigma={k[1]}|{k[2]}": v for k, v in selected.items()}
    cfg_json["report_images"] = report_idx
    cfg_json["select_images"] = select_idx
    cfg_json["tasks_detail"] = {t.name: t.description for t in tasks}
    cfg_json["prior_name"] = str(getattr(prior, "name", cfg.prior))
    # face measures of the clean reported images: [mean, standard error, n] (null without face measures)
    cfg_json["reference"] = None if reference is None else {k: [float(x) for x in v] for k, v in reference.items()}
    (out / "config.json").write_text(json.dumps(cfg_json, indent=2, default=str) + "\n")
    plots = _make_plots(out, cfg, tasks, grid, selected, cfg_rows, report_idx) if cfg.plots else []
    kept = {}
    if cfg.keep_images:
        for (task_name, ns, m), params in selected.items():
            got = runner.kept.get((m, params, task_name, ns, int(cfg.seeds[0])))
            if got:
                kept[(task_name, ns, m)] = dict(sorted(got.items()))
    return EvalResult(out, csv_path, summary_path, selected, cfg_rows, runner.computed, runner.skipped, plots, kept)


def _reference_scores(images: torch.Tensor, attrs, classifiers) -> Optional[dict]:
    """Face measures of the clean reported images (what a perfect reconstruction would score)."""
    if classifiers is None or attrs is None:
        return None
    from .face_measures import eye_symmetry

    pred = classifiers.predict(images, ["eyes", "mouth"])
    return {
        "eyes_ok": _mean_se((pred["eyes"] == attrs["eyes"]).astype(float)),
        "mouth_ok": _mean_se((pred["mouth"] == attrs["mouth"]).astype(float)),
        "eye_symmetry": _mean_se(np.asarray(eye_symmetry(images), dtype=float)),
    }


def _rows_for(rows, method, params, task, noise, image_idx) -> list[dict]:
    ims = set(image_idx)
    return [
        r for r in rows
        if r["method"] == method and r["params"] == params and r["task"] == task
        and _noise_str(float(r["noise"])) == noise and int(r["image"]) in ims
    ]


def _metric_columns(cfg: EvalConfig, face: bool) -> list:
    cols = [c for c in METRIC_COLUMNS if c[0] in ("psnr", "ssim")]
    cols += [c for c in METRIC_COLUMNS if c[0].startswith("lpips_") and c[0][6:] in cfg.lpips_nets]
    if face:
        cols += [c for c in METRIC_COLUMNS if c[0] in ("eyes_ok", "mouth_ok", "eye_symmetry")]
    return cols


def _summary_markdown(cfg, tasks, grid, selected, rows, report_idx, select_idx, prior, command, reference) -> str:
    face = reference is not None
    cols = _metric_columns(cfg, face)
    lines = []
    pname = getattr(prior, "name", cfg.prior)
    lines.append(f"# Evaluation of `{pname}`: {len(report_idx)} images × {len(cfg.seeds)} seed(s), "
                 + (f"{cfg.steps} steps" if not cfg.method_steps else
                    "steps " + ", ".join(f"{METHOD_NAMES[m]} {cfg.steps_for(m)}" for m in ("sdedit", "score_ald", "dps"))))
    lines.append("")
    lines.append(f"Command: `{command}`")
    lines.append("")
    data = {"faces": 'face_dataset("test")', "mnist": 'mnist_digits("heldout")'}.get(cfg.dataset or "", "the given images")
    lines.append(
        f"- Images: {data}, reported images {report_idx[0]}–{report_idx[-1]}; parameters chosen on images "
        + (f"{select_idx[0]}–{select_idx[-1]}" if select_idx else "(none)")
        + f" by mean {cfg.select_by} (the two sets are disjoint). Seeds: {list(cfg.seeds)}."
    )
    lines.append(
        "- Values: mean ± standard error over the reported images (each image's value is first averaged over "
        "the seeds; deterministic methods run once). Metrics in image space [0, 1] (data_range 1.0); "
        "σ_y is in model space [-1, 1]."
    )
    lines.append(
        f"- s / image: wall time of a batch (up to {cfg.batch_size} images) divided by its size, on "
        f"{getattr(prior, 'device', 'cpu')} with {torch.get_num_threads()} thread(s). NFE: network forward passes "
        "per image (DPS adds as many backward passes)."
    )
    if face:
        ref = "; ".join(f"{title.split(' ↑')[0]} {_fmt_ms(*reference[f][:2], d)}" for f, title, d, _ in cols if f in reference)
        lines.append(f"- Clean reported images (what a perfect reconstruction scores): {ref}.")
    lines.append("")
    header = ["method", "params", "n"] + [c[1] for c in cols] + ["s / image", "NFE"]
    for t in tasks:
        for noise in cfg.noise_levels:
            ns = _noise_str(noise)
            lines.append(f"## {t.description}, σ_y = {ns}")
            lines.append("")
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
            for m in cfg.methods:
                params = selected.get((t.name, ns, m))
                if params is None:
                    continue
                s = next(x for x in grid[(t.name, m)] if x.params == params)
                rs = _rows_for(rows, m, params, t.name, ns, report_idx)
                n_div = sum(r["status"] == "diverged" for r in rs)
                ok = [r for r in rs if r["status"] == "ok"]
                cells = [s.label + (f" ({n_div} diverged)" if n_div else ""), f"`{params}`", str(len({int(r['image']) for r in ok}))]
                for f, _, d, _ in cols:
                    mean, se, _ = summarize(ok, f)
                    cells.append(_fmt_ms(mean, se, d))
                cells.append(_fmt_sig(summarize(ok, "seconds")[0]))
                cells.append(_fmt_sig(summarize(ok, "nfe")[0]))
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    # chosen parameters
    multi = [m for m in cfg.methods if any(len(grid[(t.name, m)]) > 1 for t in tasks)]
    if multi:
        lines.append(f"## Parameters chosen on the selection images (best mean {cfg.select_by})")
        lines.append("")
        lines.append(f"| task | σ_y | method | chosen | mean {cfg.select_by} on the selection images |")
        lines.append("|---|---:|---|---|---|")
        for t in tasks:
            for noise in cfg.noise_levels:
                ns = _noise_str(noise)
                for m in multi:
                    ss = grid[(t.name, m)]
                    if len(ss) < 2:
                        continue
                    parts = []
                    for s in ss:
                        mean = summarize(
                            [r for r in _rows_for(rows, m, s.params, t.name, ns, select_idx) if r["status"] == "ok"],
                            cfg.select_by,
                        )[0]
                        mark = " ✔" if s.params == selected.get((t.name, ns, m)) else ""
                        parts.append(f"{s.label.split('(')[-1].rstrip(')')}: {_fmt_sig(mean, 4)}{mark}")
                    lines.append(f"| {t.name} | {ns} | {METHOD_NAMES[m]} | `{selected.get((t.name, ns, m))}` | {'; '.join(parts)} |")
        lines.append("")
    # SDEdit sweep on the reported images
    if "sdedit" in cfg.methods and cfg.sdedit_sweep_on_report and len(cfg.sdedit_t0s) > 1:
        for f, title, d, _ in [c for c in cols if c[0] in ("psnr",) or c[0].startswith("lpips_")][:2]:
            lines.append(f"## SDEdit sweep on the reported images: {title} vs t0 (✔ = chosen on the selection images)")
            lines.append("")
            lines.append("| task | σ_y | " + " | ".join(f"t0 = {_fmt(t0)}" for t0 in cfg.sdedit_t0s) + " |")
            lines.append("|---|---:|" + "---:|" * len(cfg.sdedit_t0s))
            for t in tasks:
                for noise in cfg.noise_levels:
                    ns = _noise_str(noise)
                    cells = []
                    for s in grid[(t.name, "sdedit")]:
                        ok = [r for r in _rows_for(rows, "sdedit", s.params, t.name, ns, report_idx) if r["status"] == "ok"]
                        mean, se, _ = summarize(ok, f)
                        mark = " ✔" if s.params == selected.get((t.name, ns, "sdedit")) else ""
                        cells.append(_fmt_ms(mean, se, d) + mark)
                    lines.append(f"| {t.name} | {ns} | " + " | ".join(cells) + " |")
            lines.append("")
    lines.append("Tasks: " + "; ".join(f"`{t.name}` = {t.description}" for t in tasks) + ".")
    lines.append("")
    return "\n".join(lines)


def parse_summary_tables(text: str) -> dict:
    """Read the per-task tables of a ``summary.md`` back: ``{(task description, σ_y string): [row dicts]}``.

    Each row dict maps the table's column titles to the cell strings. Used by the tests to check
    that the Markdown agrees with ``results.csv``.
    """
    tables, current, header = {}, None, None
    for line in text.splitlines():
        if line.startswith("## ") and ", σ_y = " in line:
            desc, ns = line[3:].rsplit(", σ_y = ", 1)
            current, header = (desc, ns.strip()), None
            tables[current] = []
        elif line.startswith("## "):
            current = None
        elif current is not None and line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
            elif not set("".join(cells)) <= set("-: "):
                tables[current].append(dict(zip(header, cells)))
    return tables


# ---------------------------------------------------------------------------- plots
def _make_plots(out: Path, cfg, tasks, grid, selected, rows, report_idx) -> list:
    from matplotlib.figure import Figure

    from .plotting import metric_curve

    paths = []
    metrics = [("psnr", "PSNR [dB]")] + [(f"lpips_{n}", f"LPIPS ({n})") for n in cfg.lpips_nets]
    if "sdedit" in cfg.methods and cfg.sdedit_sweep_on_report and len(cfg.sdedit_t0s) > 1:
        for f, ylabel in metrics[:2]:
            ys, errs = {}, {}
            for t in tasks:
                for noise in cfg.noise_levels:
                    ns = _noise_str(noise)
                    means, ses = [], []
                    for s in grid[(t.name, "sdedit")]:
                        ok = [r for r in _rows_for(rows, "sdedit", s.params, t.name, ns, report_idx) if r["status"] == "ok"]
                        mean, se, _ = summarize(ok, f)
                        means.append(mean)
                        ses.append(se if math.isfinite(se) else 0.0)
                    ys[f"{t.name}, σ_y={ns}"] = means
                    errs[f"{t.name}, σ_y={ns}"] = ses
            fig = metric_curve(list(cfg.sdedit_t0s), ys, yerr=errs, xlabel="SDEdit start time t0",
                               ylabel=ylabel, title=f"SDEdit sweep ({len(report_idx)} images, mean ± s.e.)",
                               figsize=(4.8, 3.2) if len(ys) <= 4 else (6.4, 4.6))
            p = out / f"sdedit_sweep_{f}.png"
            fig.savefig(p, dpi=120)
            paths.append(p)
    bar_metrics = [("psnr", "PSNR [dB] ↑"), ("ssim", "SSIM ↑")] + [(f"lpips_{n}", f"LPIPS-{n} ↓") for n in cfg.lpips_nets[:1]]
    for t in tasks:
        methods = [m for m in cfg.methods]
        fig = Figure(figsize=(4.2 * len(bar_metrics), 3.4))
        axes = fig.subplots(1, len(bar_metrics), squeeze=False)[0]
        width = 0.8 / max(1, len(methods))
        for ax, (f, title) in zip(axes, bar_metrics):
            for j, m in enumerate(methods):
                means, ses = [], []
                for noise in cfg.noise_levels:
                    ns = _noise_str(noise)
                    params = selected.get((t.name, ns, m))
                    ok = [r for r in _rows_for(rows, m, params, t.name, ns, report_idx) if r["status"] == "ok"] if params else []
                    mean, se, _ = summarize(ok, f)
                    means.append(mean)
                    ses.append(se if math.isfinite(se) else 0.0)
                xs = np.arange(len(cfg.noise_levels)) + (j - (len(methods) - 1) / 2) * width
                ax.bar(xs, means, width, yerr=ses, capsize=2, label=METHOD_NAMES[m])
            ax.set_xticks(np.arange(len(cfg.noise_levels)))
            ax.set_xticklabels([f"σ_y = {_noise_str(n)}" for n in cfg.noise_levels])
            ax.set_title(title, fontsize=9)
            ax.grid(True, axis="y", alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{t.description} ({len(report_idx)} images, mean ± s.e.)", fontsize=10)
        fig.set_layout_engine("constrained")
        p = out / f"bars_{t.name}.png"
        fig.savefig(p, dpi=120)
        paths.append(p)
    return paths


# ---------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    d = EvalConfig()
    p = argparse.ArgumentParser(prog="python -m helpers.evaluate", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--prior", default=d.prior, help="bundled name (faces, mnist), local folder or hub id")
    p.add_argument("--dataset", default=None, choices=["faces", "mnist"], help="default: from the prior's name")
    p.add_argument("--tasks", nargs="+", default=list(d.tasks), help=f"some of {list(TASKS)}, or 'all'")
    p.add_argument("--noise", nargs="+", type=float, default=list(d.noise_levels), help="σ_y values (model space)")
    p.add_argument("--methods", nargs="+", default=list(d.methods), choices=list(METHODS))
    p.add_argument("--n-images", type=int, default=d.n_images, help="reported images")
    p.add_argument("--n-select", type=int, default=d.n_select, help="images for choosing t0 etc. (disjoint)")
    p.add_argument("--steps", type=int, default=d.steps, help="sampler steps (SDEdit: of a full t0 = 1 trajectory)")
    p.add_argument("--seeds", nargs="+", type=int, default=list(d.seeds))
    p.add_argument("--sdedit-t0", nargs="+", type=float, default=list(d.sdedit_t0s))
    p.add_argument("--no-sdedit-sweep-report", action="store_true", help="run only the chosen t0 on the reported images")
    p.add_argument("--dps-zeta", nargs="+", type=float, default=list(d.dps_step_sizes), help="DPS ζ′ (several: chosen)")
    p.add_argument("--ald-lambda", nargs="+", type=float, default=list(d.ald_step_sizes), help="ScoreALD λ")
    p.add_argument("--ald-rule", default=d.ald_step_rule, choices=["langevin", "poster"])
    p.add_argument("--wiener-balance", nargs="+", type=float, default=list(d.wiener_balances))
    p.add_argument("--select-by", default=d.select_by, choices=["psnr", "ssim", "lpips_alex", "lpips_vgg"])
    p.add_argument("--lpips", nargs="+", default=list(d.lpips_nets), help="LPIPS nets: alex vgg, or none")
    p.add_argument("--face-measures", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 on a busy machine)")
    p.add_argument("--out", default=None, help="output folder; None means results/<prior>/")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(argv: Optional[list] = None) -> tuple[EvalConfig, argparse.Namespace]:
    """The :class:`EvalConfig` of a command line (and the parsed arguments)."""
    args = _parser().parse_args(argv)
    tasks = list(TASKS) if args.tasks == ["all"] else args.tasks
    lpips_nets = [] if args.lpips == ["none"] else args.lpips
    argv_list = sys.argv[1:] if argv is None else list(argv)
    return EvalConfig(
        prior=args.prior, dataset=args.dataset, tasks=tasks, noise_levels=args.noise, methods=args.methods,
        n_images=args.n_images, n_select=args.n_select, steps=args.steps, seeds=args.seeds,
        sdedit_t0s=args.sdedit_t0, sdedit_sweep_on_report=not args.no_sdedit_sweep_report,
        dps_step_sizes=args.dps_zeta, ald_step_sizes=args.ald_lambda, ald_step_rule=args.ald_rule,
        wiener_balances=args.wiener_balance, select_by=args.select_by, lpips_nets=lpips_nets,
        face_measures={"auto": None, "on": True, "off": False}[args.face_measures], batch_size=args.batch_size,
        device=args.device, out_dir=args.out, plots=not args.no_plots, progress=not args.no_progress,
        command="python -m helpers.evaluate" + ("" if not argv_list else " " + shlex.join(argv_list)),
    ), args


def main(argv: Optional[list] = None) -> int:
    cfg, args = config_from_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = run_evaluation(cfg)
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result.summary_path.read_text())
    print(f"wrote {result.csv_path}, {result.summary_path} and {len(result.plots)} plot(s) in {result.out_dir} "
          f"({result.computed} reconstructions computed, {result.skipped} found in results.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
