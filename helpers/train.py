"""Train the course's small DDPM priors (cartoon faces, MNIST digits) on a CPU.

The shipped priors ``helpers/pretrained/faces`` and ``helpers/pretrained/mnist``
were made by this module, so every notebook runs offline with weights whose
provenance is known. The recipe is the one of Ho et al. (2020) and google's
``ddpm-*`` models, scaled down:

* network: a diffusers :class:`~diffusers.UNet2DModel` that predicts the noise ε
  (*epsilon prediction*), input and output ``(B, C, 32, 32)``;
* noise schedule: linear β from 1e-4 to 0.02 over T = 1000 steps,
  x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε with ε ~ N(0, I);
* objective: ``mean((ε_θ(x_t, t) − ε)²)`` with t uniform in {0, …, 999};
* data in *model space* [-1, 1] (images in [0, 1] are mapped by ``2x − 1``);
* AdamW with a short linear warm-up, gradient clipping at 1.0, and an
  exponential moving average (EMA) of the weights, which is what gets exported.

Training is **resumable**: every few minutes (and at the end) the model, its EMA,
the optimiser, the step, all random-number-generator states and the loss log are
written atomically to a checkpoint (``checkpoint.safetensors``: tensors in safetensors,
the rest as JSON in its metadata, so loading it never runs code); starting again with the same checkpoint
directory continues exactly where the last checkpoint left off (bit-for-bit the
same run as an uninterrupted one). ``--max-minutes`` is a wall-clock budget that
counts the time of earlier (resumed) sessions too.

Command line::

    python -m helpers.train --dataset mnist --out helpers/pretrained/mnist --force --max-minutes 45 --threads 1
    python -m helpers.train --dataset faces --out helpers/pretrained/faces --force --max-minutes 95 --threads 2

On a GPU add ``--device cuda`` (``tools/gpu_train_mnist.sh`` is the prepared run for a lent one).
(``--force``: the shipped priors' folders are written only on purpose.) Resuming with other
settings (``--lr``, ``--seed``, ``--batch-size``, ``--ema-decay``, ...) than the checkpoint's is an
error unless ``--override`` is given; ``--export-only`` exports an existing checkpoint and refuses
when there is none, as training with ``--steps 0`` would export random weights.

The export (``--out``) is a diffusers pipeline layout that
``helpers.priors.load_prior`` and ``diffusers.DDPMPipeline`` understand::

    out/unet/config.json, out/unet/diffusion_pytorch_model.safetensors   (EMA weights, fp32)
    out/scheduler/scheduler_config.json                                  (DDPMScheduler)
    out/training_log.csv, out/loss_curve.png, out/training_info.json

From Python::

    from helpers.train import TrainConfig, train
    result = train(TrainConfig(dataset="mnist", out="my_prior", max_minutes=5))
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import math
import os
import platform
import re
import random
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from ._util import as_float, as_int

__all__ = [
    "TrainConfig",
    "TrainResult",
    "MODEL_PRESETS",
    "DEFAULT_HPARAMS",
    "build_unet",
    "make_scheduler",
    "linear_betas",
    "diffusion_loss",
    "load_images",
    "export_prior",
    "load_checkpoint",
    "validate_config",
    "CheckpointError",
    "RESUME_SETTINGS",
    "resolve_device",
    "train",
    "main",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
PRETRAINED_DIR = REPO_ROOT / "helpers" / "pretrained"

#: Keyword arguments of :class:`diffusers.UNet2DModel` per dataset (``in_channels``
#: and ``out_channels`` are filled in from the data). Both use self-attention only
#: at the 8×8 resolution, which is cheap on a CPU; measured on one thread of the
#: course machine, a training step at batch 64 takes ≈ 0.8 s (mnist, 1.8 M
#: parameters) and ≈ 1.0 s (faces, 2.7 M parameters). The shipped mnist prior was grown
#: from this preset to ``layers_per_block=2`` (2.6 M parameters) by ``--init-from ... --layers-per-block 2``;
#: its ``training_info.json`` lists the runs.
MODEL_PRESETS: Dict[str, Dict[str, Any]] = {
    "mnist": dict(
        sample_size=32,
        block_out_channels=(32, 64, 96),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    ),
    "faces": dict(
        sample_size=32,
        block_out_channels=(32, 64, 128),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    ),
}

#: Per-dataset defaults for the options left as ``None`` in :class:`TrainConfig`.
DEFAULT_HPARAMS: Dict[str, Dict[str, Any]] = {
    "mnist": dict(lr=1e-3, hflip=False),
    "faces": dict(lr=6e-4, hflip=True),
    "custom": dict(lr=5e-4, hflip=False),
}

NUM_TRAIN_TIMESTEPS = 1000
BETA_START = 1e-4
BETA_END = 0.02


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    Attributes
    ----------
    dataset:
        ``"faces"`` (cartoon faces, 3×32×32, ``helpers.data.face_dataset(split="train")``),
        ``"mnist"`` (digits, 1×32×32, ``helpers.data.mnist_digits(split="train")``) or
        ``"custom"`` (use :attr:`images`). Selects the model preset and defaults.
    out:
        Directory for the exported prior (EMA weights in diffusers layout, logs,
        info). ``None``: do not export.
    steps:
        Stop after this many optimiser steps in total (resumed steps count).
        ``None``: no step limit (then set :attr:`max_minutes`).
    max_minutes:
        Wall-clock budget in minutes for the training loop, summed over all
        resumed sessions (data loading and export are not counted). ``None``: no
        time limit. Whichever of ``steps`` / ``max_minutes`` is hit first stops
        the run, which then checkpoints and exports.
    batch_size:
        Images per optimiser step. Each epoch is a fresh random permutation of
        the images; the last partial batch of an epoch is skipped.
    lr:
        Peak AdamW learning rate, reached after :attr:`warmup_steps` linear
        warm-up steps and kept constant afterwards. ``None``: dataset default
        (:data:`DEFAULT_HPARAMS`).
    warmup_steps, weight_decay, grad_clip:
        Linear warm-up length; AdamW weight decay; max global gradient norm
        (``None`` or 0 disables clipping).
    ema_decay:
        EMA decay; the decay used at EMA update n is ``min(ema_decay, (1+n)/(10+n))``
        so early averages are not dominated by the random initialisation.
    hflip:
        Random horizontal flips as augmentation (fine for the symmetric faces, not
        for digits). ``None``: dataset default.
    seed:
        Seeds the initialisation, the data order, t, ε and the flips.
    threads:
        ``torch.set_num_threads`` for this process (``None``: leave as is). Two
        concurrent runs on a 2-core machine should use 1 each.
    checkpoint_dir:
        Where checkpoints (``checkpoint.safetensors``) and the running loss log
        (``training_log.csv``) are written, and resumed from if present.
        ``None`` or ``""`` (the default in Python): no checkpoints and no resuming,
        so a notebook's run never touches the course's own training run. The command
        line defaults to ``<repo>/checkpoints/<dataset>/`` (git-ignored).
    checkpoint_every_minutes:
        Wall-clock interval between checkpoints (one is always written at the end).
    checkpoint_every_steps:
        Additionally checkpoint every this many steps (``None``: only time-based).
    resume:
        Resume from an existing checkpoint in :attr:`checkpoint_dir`.
    progress:
        Show a tqdm progress bar; otherwise print a status line about once a minute.
    model_config:
        Keyword arguments for :class:`diffusers.UNet2DModel` overriding the preset
        (e.g. a tiny network for tests). ``in_channels``/``out_channels`` default to
        the data's channel count.
    images:
        In-memory training images, float array/tensor ``(N, C, H, W)`` in [0, 1];
        used when given (whatever :attr:`dataset` says). Handy for tests.
    dataset_kwargs:
        Extra keyword arguments for the ``helpers.data`` loader (e.g. ``{"n": 5000}``).
    command:
        The command line that started the run, recorded in ``training_info.json``.
    init_from:
        A prior folder in pipeline layout (e.g. ``helpers/pretrained/mnist``) whose
        weights initialise both the network and its EMA when no checkpoint is resumed:
        continue training a shipped prior in a later session, when the git-ignored
        checkpoint is gone. The optimiser starts fresh (with warm-up); the earlier
        run's steps and wall time are recorded under ``initialised_from``.
    override:
        Resume even though a setting of :data:`RESUME_SETTINGS` (learning rate, seed, batch
        size, EMA decay, ...) differs from the checkpoint's; the changes are printed and recorded
        (``resume_overrides`` in ``training_info.json``). Without it such a resume is an error.
    force:
        Allow :attr:`out` inside ``helpers/pretrained/`` (replacing a shipped prior).
    device:
        Where the network, its EMA and the data live: ``"cpu"`` (default), ``"cuda"``,
        ``"cuda:N"`` or ``"auto"`` (CUDA when available). The random numbers (data order,
        t, ε, flips) are always drawn on the CPU generator and moved, so a run can be
        checkpointed on one device and resumed on another; only a CPU run is bit-for-bit
        reproducible. Not a resume setting: changing it needs no ``override``.
    """

    dataset: str = "faces"
    out: Optional[str] = None
    steps: Optional[int] = None
    max_minutes: Optional[float] = None
    batch_size: int = 64
    lr: Optional[float] = None
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: Optional[float] = 1.0
    ema_decay: float = 0.999
    hflip: Optional[bool] = None
    seed: int = 0
    threads: Optional[int] = None
    checkpoint_dir: Optional[str] = None
    checkpoint_every_minutes: float = 3.0
    checkpoint_every_steps: Optional[int] = None
    resume: bool = True
    progress: bool = True
    model_config: Optional[Dict[str, Any]] = None
    images: Any = field(default=None, repr=False)
    dataset_kwargs: Dict[str, Any] = field(default_factory=dict)
    command: Optional[str] = None
    init_from: Optional[str] = None
    override: bool = False
    force: bool = False
    device: str = "cpu"


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``model`` and ``ema_model`` are the trained networks (``ema_model`` is the one
    that gets exported); ``step`` the number of optimiser steps done in total;
    ``log`` the loss log as a list of ``(step, loss, ema_loss, wall_seconds)``;
    ``wall_seconds`` the training time summed over resumed sessions; ``out`` the
    export directory (or ``None``); ``stopped_by`` is ``"steps"``, ``"time"`` or
    ``"signal"``.
    """

    model: torch.nn.Module
    ema_model: torch.nn.Module
    step: int
    log: List[tuple]
    wall_seconds: float
    out: Optional[Path]
    stopped_by: str


# --------------------------------------------------------------------------- #
# Schedule, model, loss
# --------------------------------------------------------------------------- #
def linear_betas(num_train_timesteps: int = NUM_TRAIN_TIMESTEPS, beta_start: float = BETA_START,
                 beta_end: float = BETA_END) -> torch.Tensor:
    """The linear β schedule as a float64 tensor of shape ``(T,)`` (same values as diffusers')."""
    return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)


def make_scheduler():
    """The :class:`diffusers.DDPMScheduler` that describes the trained priors.

    Linear β 1e-4 → 0.02 over 1000 steps, ``variance_type="fixed_small"``,
    ``clip_sample=True``, epsilon prediction (as google's ``ddpm-celebahq-256``).
    """
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS,
        beta_start=BETA_START,
        beta_end=BETA_END,
        beta_schedule="linear",
        variance_type="fixed_small",
        clip_sample=True,
        prediction_type="epsilon",
    )


def build_unet(dataset: str = "faces", in_channels: int = 3, model_config: Optional[Dict[str, Any]] = None):
    """Create the (randomly initialised) :class:`diffusers.UNet2DModel`.

    The preset of ``dataset`` (:data:`MODEL_PRESETS`; ``"custom"`` uses the faces
    preset) is updated with ``model_config``; ``in_channels``/``out_channels``
    default to ``in_channels``. The caller seeds torch beforehand.
    """
    from diffusers import UNet2DModel

    kwargs = dict(MODEL_PRESETS.get(dataset, MODEL_PRESETS["faces"]))
    kwargs.update(model_config or {})
    kwargs.setdefault("in_channels", in_channels)
    kwargs.setdefault("out_channels", kwargs["in_channels"])
    return UNet2DModel(**kwargs)


def diffusion_loss(model, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                   alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The DDPM "simple" loss ``mean((ε_θ(√ᾱ_t x0 + √(1−ᾱ_t) ε, t) − ε)²)``.

    ``x0`` and ``noise``: ``(B, C, H, W)``, ``x0`` in [-1, 1]; ``t``: int64 ``(B,)``
    in [0, T−1]; ``alphas_cumprod``: ``(T,)``. Returns a scalar tensor.
    """
    a = alphas_cumprod.to(x0.dtype)[t].view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1.0 - a).sqrt() * noise
    pred = model(xt, t).sample
    return torch.mean((pred - noise) ** 2)


# --------------------------------------------------------------------------- #
# Data
# --------------------------------------------------------------------------- #
def load_images(config: TrainConfig, progress: bool = True) -> torch.Tensor:
    """Training images in model space: float32 tensor ``(N, C, H, W)`` in [-1, 1].

    ``config.images`` (in [0, 1]) if given, else ``helpers.data.face_dataset`` /
    ``helpers.data.mnist_digits`` with split ``"train"``.
    """
    if config.images is not None:
        x = torch.as_tensor(np.asarray(config.images, dtype=np.float32))
    elif config.dataset == "mnist":
        from helpers.data import mnist_digits

        kw = dict(split="train", size=32)
        kw.update(config.dataset_kwargs)
        x, _ = mnist_digits(**kw)
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    elif config.dataset == "faces":
        from helpers.data import face_dataset

        kw = dict(split="train", size=32, progress=progress)
        kw.update(config.dataset_kwargs)
        x, _ = face_dataset(**kw)
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    else:
        raise ValueError(f"dataset={config.dataset!r} needs config.images (or use 'faces' / 'mnist')")
    if x.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.min() < -1e-3 or x.max() > 1 + 1e-3:
        raise ValueError("images must lie in [0, 1]")
    return (x * 2.0 - 1.0).contiguous()


class _Batches:
    """Deterministic epoch-permutation batch sampler driven by a ``torch.Generator``.

    Its whole state (the current permutation and position) is saved in checkpoints.
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        if n < batch_size:
            raise ValueError(f"need at least batch_size={batch_size} images, got {n}")
        self.n, self.batch_size, self.g = n, batch_size, generator
        self.perm: Optional[torch.Tensor] = None
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.perm is None or self.pos + self.batch_size > self.n:
            self.perm = torch.randperm(self.n, generator=self.g)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state_dict(self) -> Dict[str, Any]:
        return {"perm": self.perm, "pos": self.pos}

    def load_state_dict(self, s: Dict[str, Any]) -> None:
        self.perm, self.pos = s["perm"], int(s["pos"])


# --------------------------------------------------------------------------- #
# Checkpoints and logs
# --------------------------------------------------------------------------- #
def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_log_csv(path: Path, log: Sequence[tuple]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["step", "loss", "ema_loss", "wall_seconds"])
    for step, loss, ema_loss, wall in log:
        w.writerow([step, f"{loss:.6g}", f"{ema_loss:.6g}", f"{wall:.2f}"])
    _atomic_write_bytes(path, buf.getvalue().encode())


def _resolve_checkpoint_dir(config: TrainConfig) -> Optional[Path]:
    if not config.checkpoint_dir:
        return None
    return Path(config.checkpoint_dir)


CHECKPOINT_NAME = "checkpoint.safetensors"
"""The checkpoint file in ``checkpoint_dir``: tensors in safetensors, everything else as JSON in its metadata."""
LEGACY_CHECKPOINT_NAME = "checkpoint.pt"
"""Checkpoints of earlier versions (``torch.save``); read only with torch's restricted (weights-only) unpickler."""
CHECKPOINT_FORMAT = "helpers.train/checkpoint-v2"

#: TrainConfig fields that define the optimisation; changing one on resume needs ``override``.
#: field -> how the command line spells it.
RESUME_SETTINGS: Dict[str, str] = {
    "dataset": "--dataset", "batch_size": "--batch-size", "lr": "--lr", "warmup_steps": "--warmup-steps",
    "weight_decay": "TrainConfig.weight_decay", "grad_clip": "TrainConfig.grad_clip", "ema_decay": "--ema-decay",
    "hflip": "TrainConfig.hflip", "seed": "--seed", "model_config": "TrainConfig.model_config",
    "dataset_kwargs": "TrainConfig.dataset_kwargs",
}


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read (truncated, corrupt, foreign); the message names the file."""


def _start_anew_hint(path: Path) -> str:
    return (f"start anew with --no-resume (TrainConfig(resume=False)), or move {path} away; "
            "a checkpoint cannot be repaired")


def _jsonable(value: Any) -> Any:
    """``value`` with tuples as lists and unknown objects as strings (what a JSON round trip gives)."""
    return json.loads(json.dumps(value, default=str))


def _pack_checkpoint(state: Dict[str, Any]) -> bytes:
    """The training state as safetensors bytes: every tensor a tensor, the rest JSON in the metadata.

    Exact: tensors keep dtype and bits, Python floats survive JSON (``repr`` round-trips), and
    the RNG states are stored whole (torch's as uint8 tensors, numpy's key as uint8 bytes).
    """
    from safetensors.torch import save

    tensors: Dict[str, torch.Tensor] = {}
    for k, v in state["model"].items():
        tensors[f"model/{k}"] = v.detach().to("cpu", copy=True).contiguous()
    for k, v in state["ema"].items():
        tensors[f"ema/{k}"] = v.detach().to("cpu", copy=True).contiguous()
    opt_scalars: Dict[str, Dict[str, Any]] = {}
    for pid, st in state["optimizer"]["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optimizer/state/{pid}/{name}"] = v.detach().to("cpu", copy=True).contiguous()
            else:
                opt_scalars.setdefault(str(pid), {})[name] = v
    tensors["rng/generator"] = state["generator"].clone()
    tensors["rng/torch"] = state["rng"]["torch"].clone()
    np_name, np_key, np_pos, np_has_gauss, np_gauss = state["rng"]["numpy"]
    tensors["rng/numpy_key"] = torch.from_numpy(np.ascontiguousarray(np_key, dtype=np.uint32).view(np.uint8).copy())
    if state["batches"]["perm"] is not None:
        tensors["batches/perm"] = state["batches"]["perm"].clone().contiguous()
    py_version, py_state, py_gauss = state["rng"]["python"]
    meta = {
        "format": CHECKPOINT_FORMAT,
        "step": int(state["step"]), "wall_seconds": float(state["wall_seconds"]),
        "ema_updates": int(state["ema_updates"]), "log": [list(r) for r in state["log"]],
        "config": _jsonable(state["config"]), "n_images": state.get("n_images"),
        "overrides": _jsonable(state.get("overrides", [])),
        "batches_pos": int(state["batches"]["pos"]),
        "optimizer_param_groups": _jsonable(state["optimizer"]["param_groups"]),
        "optimizer_scalars": opt_scalars,
        "rng_numpy": [np_name, int(np_pos), int(np_has_gauss), float(np_gauss)],
        "rng_python": [py_version, list(py_state), py_gauss],
    }
    return save(tensors, metadata={"checkpoint": json.dumps(meta)})


def _unpack_checkpoint(path: Path) -> Dict[str, Any]:
    """Read a checkpoint written by :func:`_pack_checkpoint` into the state dict :func:`train` resumes from."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        header = f.metadata() or {}
        if "checkpoint" not in header:
            raise ValueError("no 'checkpoint' entry in the safetensors metadata: not a helpers.train checkpoint")
        meta = json.loads(header["checkpoint"])
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
        tensors = {k: f.get_tensor(k) for k in f.keys()}

    def part(prefix: str) -> Dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    opt_state: Dict[int, Dict[str, Any]] = {}
    for k, v in part("optimizer/state/").items():
        pid, name = k.split("/", 1)
        opt_state.setdefault(int(pid), {})[name] = v
    for pid, d in meta["optimizer_scalars"].items():
        opt_state.setdefault(int(pid), {}).update(d)
    groups = meta["optimizer_param_groups"]
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    np_name, np_pos, np_has_gauss, np_gauss = meta["rng_numpy"]
    np_key = tensors["rng/numpy_key"].numpy().copy().view(np.uint32)
    py_version, py_state, py_gauss = meta["rng_python"]
    return {
        "model": part("model/"), "ema": part("ema/"),
        "optimizer": {"state": dict(sorted(opt_state.items())), "param_groups": groups},
        "generator": tensors["rng/generator"],
        "batches": {"perm": tensors.get("batches/perm"), "pos": meta["batches_pos"]},
        "rng": {"torch": tensors["rng/torch"], "numpy": (np_name, np_key, np_pos, np_has_gauss, np_gauss),
                "python": (py_version, tuple(py_state), py_gauss)},
        "step": meta["step"], "wall_seconds": meta["wall_seconds"], "log": [tuple(r) for r in meta["log"]],
        "ema_updates": meta["ema_updates"], "config": meta.get("config") or {}, "n_images": meta.get("n_images"),
        "overrides": meta.get("overrides", []),
    }


def _load_legacy_checkpoint(path: Path) -> Dict[str, Any]:
    """A ``checkpoint.pt`` of an earlier version, read with torch's weights-only unpickler.

    Only tensors, containers, numbers and the three numpy globals an RNG state needs are
    admitted, so a tampered file raises instead of running code.
    """
    import numpy._core.multiarray as _ma

    allowed = [_ma._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


def _find_checkpoint(ckpt_dir: Optional[Path]) -> Optional[Path]:
    """The checkpoint to resume from in ``ckpt_dir``: the safetensors one, else a legacy ``checkpoint.pt``."""
    if ckpt_dir is None:
        return None
    for name in (CHECKPOINT_NAME, LEGACY_CHECKPOINT_NAME):
        if (ckpt_dir / name).exists():
            return ckpt_dir / name
    return None


def load_checkpoint(path: os.PathLike) -> Dict[str, Any]:
    """Read a training checkpoint (``checkpoint.safetensors``, or a legacy ``checkpoint.pt``).

    Raises :class:`CheckpointError` naming the file when it is truncated, corrupt or not a
    checkpoint of this module; nothing in the file is executed.
    """
    path = Path(path)
    try:
        if path.suffix == ".pt":
            s = _load_legacy_checkpoint(path)
        else:
            s = _unpack_checkpoint(path)
        missing = [k for k in ("model", "ema", "optimizer", "generator", "batches", "rng", "step", "wall_seconds",
                               "log", "ema_updates") if k not in s]
        if missing:
            raise KeyError(f"missing entries {missing}")
    except Exception as err:  # noqa: BLE001 - any failure to parse is a corrupt checkpoint
        msg = str(err).splitlines()[0][:300] if str(err) else ""
        raise CheckpointError(f"the checkpoint {path} cannot be read ({type(err).__name__}: {msg}); "
                              + _start_anew_hint(path)) from None
    return s


def _save_checkpoint(ckpt_dir: Path, state: Dict[str, Any], log: Sequence[tuple]) -> None:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(ckpt_dir / CHECKPOINT_NAME, _pack_checkpoint(state))
    _write_log_csv(ckpt_dir / "training_log.csv", log)


def _plot_loss(log: Sequence[tuple], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not log:
        return
    steps = np.array([r[0] for r in log])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, [r[1] for r in log], lw=0.5, alpha=0.35, label="loss (per step)")
    ax.plot(steps, [r[2] for r in log], lw=1.5, label="EMA-smoothed loss")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("MSE of predicted noise")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _hardware_string(device: str = "cpu") -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = ""
    if device.startswith("cuda"):
        gpu = f"trained on {torch.cuda.get_device_name(torch.device(device))} ({device}); "
    return (f"{gpu}{cpu}; {os.cpu_count()} logical CPUs; torch {torch.__version__} "
            f"with {torch.get_num_threads()} thread(s); {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}")


def export_prior(ema_model, out: os.PathLike, log: Sequence[tuple] = (), info: Optional[Dict[str, Any]] = None) -> Path:
    """Write a prior directory in diffusers pipeline layout.

    ``out/unet`` (``ema_model.save_pretrained``, fp32 safetensors),
    ``out/scheduler`` (:func:`make_scheduler`), ``out/training_log.csv``,
    ``out/loss_curve.png``, ``out/training_info.json`` (``info``, with ``weights_sha256``) and
    ``out/weights.sha256`` (the weights' SHA-256, which :func:`helpers.priors.load_prior` checks).
    Returns ``out``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ema_model.save_pretrained(out / "unet", safe_serialization=True)
    make_scheduler().save_pretrained(out / "scheduler")
    from .priors import record_weights_sha256

    sha = record_weights_sha256(out)
    if info is not None:
        info = dict(info, weights_sha256=sha)
    _write_log_csv(out / "training_log.csv", log)
    title = f"DDPM training loss ({info.get('dataset', '')})" if info else "DDPM training loss"
    try:
        _plot_loss(log, out / "loss_curve.png", title)
    except Exception as exc:  # plotting must never lose a trained model
        print(f"[train] could not plot the loss curve: {exc}", file=sys.stderr)
    if info is not None:
        _atomic_write_bytes(out / "training_info.json", (json.dumps(info, indent=2) + "\n").encode())
    return out


# --------------------------------------------------------------------------- #
# Training loop
# --------------------------------------------------------------------------- #
@torch.no_grad()
def _ema_update(ema_params: List[torch.Tensor], params: List[torch.Tensor], decay: float) -> None:
    torch._foreach_mul_(ema_params, decay)
    torch._foreach_add_(ema_params, params, alpha=1.0 - decay)


def _rng_states() -> Dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_states(s: Dict[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def train(config: TrainConfig, stop_flag: Optional[Callable[[], bool]] = None) -> TrainResult:
    """Train (or resume training) a DDPM prior as described by ``config``.

    Steps: load the images (model space [-1, 1]); build the UNet of the dataset's
    preset with seed ``config.seed``; resume from ``checkpoint_dir/checkpoint.safetensors``
    if it exists (an error if its settings differ, unless ``config.override``); loop until ``config.steps`` or ``config.max_minutes`` (or
    ``stop_flag()`` returns True, e.g. after SIGTERM); write a final checkpoint;
    export the EMA weights to ``config.out``. Returns a :class:`TrainResult`.

    A run resumed from a checkpoint reproduces an uninterrupted run exactly
    (same parameters, EMA, optimiser state and loss log), given the same config.
    """
    if config.steps is None and config.max_minutes is None and stop_flag is None:
        raise ValueError("set config.steps and/or config.max_minutes")
    config = validate_config(config)
    _check_out_dir(config)
    config = _layers_from_init(config)
    if config.threads:
        torch.set_num_threads(int(config.threads))
    hp = dict(DEFAULT_HPARAMS.get(config.dataset, DEFAULT_HPARAMS["custom"]))
    lr = float(config.lr if config.lr is not None else hp["lr"])
    hflip = bool(config.hflip if config.hflip is not None else hp["hflip"])

    device = torch.device(config.device)
    data = load_images(config, progress=config.progress).to(device)
    n_images, channels = data.shape[0], data.shape[1]
    if config.batch_size > n_images:
        raise ValueError(f"batch_size (--batch-size) is {config.batch_size} but there are only {n_images} training "
                         f"images; use --batch-size {n_images} or less")

    # Seeded initialisation: the model is built from the same seed whether or not we resume.
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    model = build_unet(config.dataset, in_channels=channels, model_config=config.model_config).to(device)
    model.train()
    ema_model = copy.deepcopy(model).eval().requires_grad_(False)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    batches = _Batches(n_images, config.batch_size, gen)
    alphas_cumprod = torch.cumprod(1.0 - linear_betas(), dim=0).to(device=device, dtype=torch.float32)

    step, wall_done, log, ema_updates = 0, 0.0, [], 0
    ckpt_dir = _resolve_checkpoint_dir(config)
    ckpt_path = _find_checkpoint(ckpt_dir) if config.resume else None
    resumed_from = None
    overrides: List[Dict[str, Any]] = []
    if ckpt_path is not None:
        s = load_checkpoint(ckpt_path)
        changes = _changed_settings(s, config, lr, hflip, n_images)
        if changes and not config.override:
            lines = "; ".join(f"{RESUME_SETTINGS.get(k, k)}: checkpoint {v['checkpoint']!r}, now {v['now']!r}"
                              for k, v in changes.items())
            raise ValueError(f"the checkpoint {ckpt_path} was made with other settings ({lines}). Resume with the "
                             "checkpoint's settings, pass --override (TrainConfig(override=True)) to continue with "
                             "the new ones (recorded in training_info.json), or start anew with --no-resume")
        try:
            model.load_state_dict(s["model"])
            ema_model.load_state_dict(s["ema"])
            opt.load_state_dict(s["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"the checkpoint {ckpt_path} does not fit this run's network or optimiser "
                                  f"({str(err).splitlines()[0][:200]}); " + _start_anew_hint(ckpt_path)) from None
        gen.set_state(s["generator"])
        batches.load_state_dict(s["batches"])
        if batches.perm is not None and len(batches.perm) != n_images:  # overridden data: start a new epoch
            batches.perm = None
        _set_rng_states(s["rng"])
        step, wall_done, log, ema_updates = int(s["step"]), float(s["wall_seconds"]), list(s["log"]), int(s["ema_updates"])
        overrides = list(s.get("overrides") or [])
        if changes:
            overrides.append({"at_step": step, "changes": _jsonable(changes)})
            print(f"[train] --override: resuming at step {step} with changed settings: "
                  + ", ".join(f"{k} {v['checkpoint']!r} -> {v['now']!r}" for k, v in changes.items()), flush=True)
        for g in opt.param_groups:  # the optimiser's own copy; equal unless overridden
            g["weight_decay"] = config.weight_decay
        resumed_from = step
        print(f"[train] resumed from {ckpt_path} at step {step} ({wall_done / 60:.1f} min done)", flush=True)
    initialised_from = None
    if config.init_from:
        initialised_from = _init_from_prior(model, ema_model, Path(config.init_from), resumed=resumed_from is not None)
    if config.out and step == 0 and initialised_from is None and (
            config.steps == 0 or (config.max_minutes is not None and config.max_minutes <= 0)):
        raise ValueError(_untrained_message(config, ckpt_dir))

    params = [p for p in model.parameters()]
    ema_params = [p for p in ema_model.parameters()]

    def make_state() -> Dict[str, Any]:
        return {
            "model": model.state_dict(), "ema": ema_model.state_dict(), "optimizer": opt.state_dict(),
            "generator": gen.get_state(), "batches": batches.state_dict(), "rng": _rng_states(),
            "step": step, "wall_seconds": wall_done + (time.time() - t_start), "log": log,
            "ema_updates": ema_updates, "config": _config_record(config, lr, hflip),
            "n_images": int(n_images), "overrides": overrides,
        }

    budget_s = config.max_minutes * 60.0 if config.max_minutes is not None else math.inf
    max_steps = config.steps if config.steps is not None else sys.maxsize
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=step, desc=f"train {config.dataset}", unit="step", dynamic_ncols=True)

    t_start = time.time()
    last_ckpt = t_start
    last_print = t_start
    ema_loss = log[-1][2] if log else None
    stopped_by = "steps"
    print(f"[train] {config.dataset}: {n_images} images {tuple(data.shape[1:])}, {n_params / 1e6:.2f} M params, "
          f"batch {config.batch_size}, lr {lr:g}, hflip {hflip}, threads {torch.get_num_threads()}, "
          f"device {config.device}", flush=True)
    while True:
        elapsed = wall_done + (time.time() - t_start)
        if step >= max_steps:
            stopped_by = "steps"
            break
        if elapsed >= budget_s:
            stopped_by = "time"
            break
        if stop_flag is not None and stop_flag():
            stopped_by = "signal"
            break

        # every random number comes from the CPU generator `gen` (checkpointed), then moves to the device
        idx = batches.next()
        x0 = data[idx.to(device)]
        if hflip:
            flip = (torch.rand(x0.shape[0], generator=gen) < 0.5).to(device)
            x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-1), x0)
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (x0.shape[0],), generator=gen).to(device)
        noise = torch.randn(tuple(x0.shape), generator=gen).to(device)

        cur_lr = lr * min(1.0, (step + 1) / max(1, config.warmup_steps))
        for g in opt.param_groups:
            g["lr"] = cur_lr
        loss = diffusion_loss(model, x0, t, noise, alphas_cumprod)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        decay = min(config.ema_decay, (1 + ema_updates) / (10 + ema_updates))
        _ema_update(ema_params, params, decay)
        ema_updates += 1
        step += 1

        lv = float(loss.detach())
        if not math.isfinite(lv):
            raise FloatingPointError(f"loss became {lv} at step {step}; lower the learning rate")
        ema_loss = lv if ema_loss is None else 0.99 * ema_loss + 0.01 * lv
        now = time.time()
        log.append((step, lv, ema_loss, wall_done + (now - t_start)))

        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{lv:.4f}", ema=f"{ema_loss:.4f}")
        elif now - last_print >= 60:
            el = wall_done + (now - t_start)
            recent = [r for r in log[-200:]]
            sps = (recent[-1][3] - recent[0][3]) / max(1, len(recent) - 1)
            print(f"[train] step {step}  loss {lv:.4f}  ema_loss {ema_loss:.4f}  {el / 60:.1f} min  "
                  f"{sps:.2f} s/step", flush=True)
            last_print = now
        if ckpt_dir is not None and (
            now - last_ckpt >= config.checkpoint_every_minutes * 60
            or (config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0)
        ):
            _save_checkpoint(ckpt_dir, make_state(), log)
            last_ckpt = time.time()
    if bar is not None:
        bar.close()

    wall_total = wall_done + (time.time() - t_start)
    if ckpt_dir is not None:
        _save_checkpoint(ckpt_dir, make_state(), log)
    print(f"[train] stopped ({stopped_by}) at step {step} after {wall_total / 60:.1f} min; "
          f"ema_loss {ema_loss if ema_loss is not None else float('nan'):.4f}", flush=True)

    out = None
    if config.out and step == 0 and initialised_from is None:
        raise ValueError(_untrained_message(config, ckpt_dir))
    if config.out:
        info = {
            "dataset": config.dataset,
            "n_images": int(n_images),
            "image_shape": list(data.shape[1:]),
            "model_space": "[-1, 1]",
            "params": int(n_params),
            "unet_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(ema_model.config).items()
                            if not k.startswith("_")},
            "steps": int(step),
            "batch_size": config.batch_size,
            "lr": lr,
            "warmup_steps": config.warmup_steps,
            "optimizer": f"AdamW(weight_decay={config.weight_decay}), grad clip {config.grad_clip}",
            "ema_decay": config.ema_decay,
            "hflip": hflip,
            "seed": config.seed,
            "objective": "epsilon prediction, MSE, t ~ U{0..999}, linear beta 1e-4 -> 0.02 over 1000 steps",
            "weights": "EMA",
            "wall_seconds": round(wall_total, 1),
            "stopped_by": stopped_by,
            "resumed_from_step": resumed_from,
            "initialised_from": initialised_from,
            "resume_overrides": overrides or None,
            "final_ema_loss": ema_loss,
            "hardware": _hardware_string(config.device),
            "device": config.device,
            "command": config.command,
            "exported_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        out = export_prior(ema_model, config.out, log, info)
        print(f"[train] exported EMA weights to {out}", flush=True)
    return TrainResult(model=model, ema_model=ema_model, step=step, log=log, wall_seconds=wall_total,
                       out=out, stopped_by=stopped_by)


def _config_record(config: TrainConfig, lr: float, hflip: bool) -> Dict[str, Any]:
    d = {f.name: getattr(config, f.name) for f in fields(config) if f.name != "images"}
    d["lr"], d["hflip"] = lr, hflip
    return _jsonable(d)


def _changed_settings(s: Dict[str, Any], config: TrainConfig, lr: float, hflip: bool,
                      n_images: int) -> Dict[str, Dict[str, Any]]:
    """The :data:`RESUME_SETTINGS` (and the number of images) that differ from checkpoint ``s``."""
    saved = s.get("config") or {}
    now = _config_record(config, lr, hflip)
    changes = {}
    for k in RESUME_SETTINGS:
        if k in saved and _jsonable(saved[k]) != now.get(k):
            changes[k] = {"checkpoint": saved[k], "now": now.get(k)}
    if s.get("n_images") is not None and int(s["n_images"]) != int(n_images):
        changes["n_images"] = {"checkpoint": int(s["n_images"]), "now": int(n_images)}
    return changes


def _untrained_message(config: TrainConfig, ckpt_dir: Optional[Path]) -> str:
    where = f"no checkpoint in {ckpt_dir}" if ckpt_dir is not None else "no checkpoint_dir"
    return (f"refusing to export untrained (randomly initialised) weights to out={config.out!r}: 0 optimiser steps "
            f"would be done (steps={config.steps}, max_minutes={config.max_minutes}, {where}, no init_from). "
            "Give --steps >= 1 or --max-minutes > 0, or point --checkpoint-dir at a run to resume")


def validate_config(config: TrainConfig) -> TrainConfig:
    """A copy of ``config`` with every number checked and made a Python int/float.

    Python, numpy and 0-d torch scalars are accepted alike. A bad value raises ``ValueError``
    (or ``TypeError`` for a wrong type) naming the field and its command-line flag.
    """
    def opt(value, fn, *args, **kw):
        return None if value is None else fn(value, *args, **kw)

    if config.dataset not in ("faces", "mnist", "custom"):
        raise ValueError(f"dataset (--dataset) is {config.dataset!r}; expected 'faces', 'mnist' or 'custom'")
    return replace(
        config,
        device=resolve_device(config.device),
        steps=opt(config.steps, as_int, "steps (--steps)", min=0),
        max_minutes=opt(config.max_minutes, as_float, "max_minutes (--max-minutes)", nonnegative=True),
        batch_size=as_int(config.batch_size, "batch_size (--batch-size)", positive=True),
        lr=opt(config.lr, as_float, "lr (--lr)", positive=True),
        warmup_steps=as_int(config.warmup_steps, "warmup_steps (--warmup-steps)", min=0),
        weight_decay=as_float(config.weight_decay, "weight_decay", nonnegative=True),
        grad_clip=opt(config.grad_clip, as_float, "grad_clip", nonnegative=True),
        ema_decay=as_float(config.ema_decay, "ema_decay (--ema-decay)", min=0.0, max=1.0, max_open=True,
                           hint="typical values are 0.999 to 0.9999"),
        seed=as_int(config.seed, "seed (--seed)", min=0, max=2**32 - 1,
                    hint="numpy's global seed must fit in 32 bits"),
        threads=opt(config.threads, as_int, "threads (--threads)", positive=True),
        checkpoint_every_minutes=as_float(config.checkpoint_every_minutes,
                                          "checkpoint_every_minutes (--checkpoint-every-minutes)", positive=True),
        checkpoint_every_steps=opt(config.checkpoint_every_steps, as_int, "checkpoint_every_steps", positive=True),
    )


def resolve_device(device: Any) -> str:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available) as a device string.

    Raises ``ValueError`` naming ``device (--device)`` for another value, or for CUDA on a
    machine where ``torch.cuda.is_available()`` is False (with the fix: ``--device cpu``).
    """
    name = str(device).strip().lower() if device is not None else "cpu"
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if re.fullmatch(r"cuda(:\d+)?", name):
        if not torch.cuda.is_available():
            raise ValueError(f"device (--device) is {device!r} but torch sees no CUDA GPU here "
                             "(torch.cuda.is_available() is False); use --device cpu (or auto)")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device (--device) is {device!r} but there are only {torch.cuda.device_count()} "
                             f"CUDA device(s); use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
        return name
    raise ValueError(f"device (--device) is {device!r}; expected 'cpu', 'cuda', 'cuda:N' or 'auto'")


def _check_out_dir(config: TrainConfig) -> None:
    """Refuse to export into ``helpers/pretrained/`` (a shipped prior) unless ``config.force``."""
    refuse_shipped_out(config.out, config.force, "--force (TrainConfig(force=True))")


def refuse_shipped_out(out: Optional[str], force: bool, force_flag: str = "--force") -> None:
    """Raise ``ValueError`` if ``out`` lies in ``helpers/pretrained/`` (a shipped prior) and not ``force``.

    ``force_flag`` is how the caller's user passes ``force`` (named in the message).
    """
    if not out or force:
        return
    resolved = Path(out).expanduser().resolve()
    shipped = PRETRAINED_DIR.resolve()
    if resolved == shipped or shipped in resolved.parents:
        raise ValueError(f"out (--out) is {out!r}, inside {shipped}, the priors that ship with the course: "
                         "exporting there would replace a shipped prior (and invalidate its model card and "
                         f"evaluation). Export to another folder, or pass {force_flag} if you mean to replace it")


def read_log_csv(path: os.PathLike) -> List[tuple]:
    """The ``(step, loss, ema_loss, wall_seconds)`` rows that :func:`_write_log_csv` wrote to ``path``."""
    with open(path) as fh:
        return [(int(r["step"]), float(r["loss"]), float(r["ema_loss"]), float(r["wall_seconds"]))
                for r in csv.DictReader(fh)]


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #
def _parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m helpers.train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=["faces", "mnist"], required=True, help="training images")
    p.add_argument("--out", required=True, help="export directory (diffusers layout, EMA weights)")
    p.add_argument("--steps", type=int, default=None, help="total optimiser steps (resumed steps count)")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget, resumed time counts")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None, help="peak AdamW learning rate (default: per dataset)")
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--checkpoint-dir", default=None, help="default: <repo>/checkpoints/<dataset>/")
    p.add_argument("--checkpoint-every-minutes", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--init-from", default=None,
                   help="start from an exported prior's weights (e.g. helpers/pretrained/mnist) when no checkpoint exists")
    p.add_argument("--layers-per-block", type=int, default=None,
                   help="ResNet layers per UNet block (default: the preset's 1); 2 with --init-from a 1-layer prior "
                        "deepens it, the new layers starting as the identity (deepen_unet_state)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar; print a status line each minute")
    p.add_argument("--export-only", action="store_true",
                   help="do not train: export the EMA weights of the existing checkpoint to --out "
                        "(with the checkpoint's settings)")
    p.add_argument("--override", action="store_true",
                   help="resume even if --lr, --seed, --batch-size, --ema-decay, ... differ from the checkpoint's "
                        "(the changes are recorded in training_info.json)")
    p.add_argument("--force", action="store_true", help="allow --out inside helpers/pretrained/ (replace a shipped prior)")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda, cuda:N or auto (CUDA when available); a checkpoint resumes on any device")
    args = p.parse_args(argv)
    if args.export_only:
        if args.no_resume:
            p.error("--export-only exports the checkpoint, --no-resume ignores it: give one of them")
        if args.steps is not None or args.max_minutes is not None:
            p.error("--export-only does no training: drop --steps / --max-minutes")
    elif args.steps is None and args.max_minutes is None:
        p.error("give --steps and/or --max-minutes")
    checks = [
        ("steps", "--steps", lambda v: as_int(v, "--steps", positive=True,
                                              hint="use --export-only to export a checkpoint without training")),
        ("max_minutes", "--max-minutes", lambda v: as_float(v, "--max-minutes", positive=True)),
        ("batch_size", "--batch-size", lambda v: as_int(v, "--batch-size", positive=True)),
        ("lr", "--lr", lambda v: as_float(v, "--lr", positive=True)),
        ("warmup_steps", "--warmup-steps", lambda v: as_int(v, "--warmup-steps", min=0)),
        ("ema_decay", "--ema-decay", lambda v: as_float(v, "--ema-decay", min=0.0, max=1.0, max_open=True,
                                                        hint="typical values are 0.999 to 0.9999")),
        ("checkpoint_every_minutes", "--checkpoint-every-minutes",
         lambda v: as_float(v, "--checkpoint-every-minutes", positive=True)),
        ("seed", "--seed", lambda v: as_int(v, "--seed", min=0, max=2**32 - 1)),
        ("threads", "--threads", lambda v: as_int(v, "--threads", positive=True)),
    ]
    for attr, _flag, check in checks:
        value = getattr(args, attr)
        if value is not None:
            try:
                check(value)
            except (TypeError, ValueError) as err:
                p.error(str(err))
    return args


def _init_from_prior(model, ema_model, path: Path, resumed: bool) -> Dict[str, Any]:
    """Load an exported prior's weights into ``model`` and ``ema_model`` (skipped when a checkpoint was resumed)."""
    info_path = path / "training_info.json"
    earlier = json.loads(info_path.read_text()) if info_path.exists() else {}
    record = {"path": str(path), "steps": earlier.get("steps"), "wall_seconds": earlier.get("wall_seconds"),
              "lr": earlier.get("lr"), "ema_decay": earlier.get("ema_decay"), "params": earlier.get("params"),
              "command": earlier.get("command"), "resume_overrides": earlier.get("resume_overrides"),
              "initialised_from": earlier.get("initialised_from")}
    init_config = json.loads((path / "unet" / "config.json").read_text()) if (path / "unet" / "config.json").exists() else {}
    old_layers, new_layers = init_config.get("layers_per_block"), model.config.layers_per_block
    deepen = old_layers is not None and old_layers != new_layers
    if deepen:
        record["deepened"] = f"layers_per_block {old_layers} -> {new_layers} (new layers start as the identity)"
    if resumed:  # the checkpoint already holds the continued run
        return record
    weights = path / "unet" / "diffusion_pytorch_model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"init_from={str(path)!r} holds no {weights.relative_to(path)}: give a prior folder in pipeline layout")
    from safetensors.torch import load_file

    state = load_file(str(weights))
    if deepen:
        if old_layers != 1 or new_layers != 2:
            raise ValueError(f"init_from={str(path)!r} has layers_per_block={old_layers}, this run {new_layers}: only "
                             "1 -> 2 (deepen_unet_state) is supported; use the same layers_per_block")
        state = deepen_unet_state(state, model)
        print(f"[train] deepened {path}: layers_per_block {old_layers} -> {new_layers}, same function", flush=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"init_from={str(path)!r} does not match this run's architecture: {str(err).splitlines()[0]}") from None
    ema_model.load_state_dict(state)
    print(f"[train] initialised from {path} ({record['steps']} earlier steps)", flush=True)
    return record


def deepen_unet_state(state: Dict[str, torch.Tensor], model) -> Dict[str, torch.Tensor]:
    """Weights for ``model`` (``layers_per_block=2``) that compute the same ε as ``state`` (``layers_per_block=1``).

    Net2Net-style deepening (Chen et al., ICLR 2016): the trained layers keep their weights and
    every added layer starts as the identity, so training continues from the same function with
    more capacity.

    * A down block gets a second ResNet block (and, in an attention block, a second attention)
      after the first. Its last convolution (``conv2``) and the attention's output projection
      (``to_out``) are zero, and both blocks add their input back (residual connection), so each
      is the identity. Its skip output therefore equals the first layer's.
    * An up block consumes one skip more. Its layers 0 and 2 are the trained layers 0 and 1 (they
      receive the same skips as before); the added middle layer ignores its skip (1×1 shortcut
      ``[I 0]``, ``conv2`` zero) and its attention is zero, so it passes its input through.
    * Everything else (time embedding, mid block, in/out convolutions) is copied.

    The other weights of the new layers (``conv1``, norms, time projection, q/k/v) keep
    ``model``'s random initialisation, so that the zero layers get gradients and grow.
    """
    new = {k: v.clone() for k, v in model.state_dict().items()}
    for key, value in state.items():
        m = re.match(r"(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key)
        target = key  # down blocks keep their layer 0 as layer 0; all else is copied as is
        if m is not None and m.group(1) == "up_blocks":  # up layers 0, 1 become 0, 2
            target = f"up_blocks.{m.group(2)}.{m.group(3)}.{0 if m.group(4) == '0' else 2}.{m.group(5)}"
        if target not in new or new[target].shape != value.shape:
            raise ValueError(f"deepen_unet_state: {key} has no counterpart {target} of shape {tuple(value.shape)}")
        new[target] = value.clone()
    for key in new:
        m = re.match(r"(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions)\.1\.(.*)", key)
        if m is None:
            continue
        kind, rest = m.group(3), m.group(4)
        if (kind == "resnets" and rest.startswith("conv2.")) or (kind == "attentions" and rest.startswith("to_out.0.")):
            new[key] = torch.zeros_like(new[key])
        elif kind == "resnets" and rest.startswith("conv_shortcut."):
            if rest.endswith("bias"):
                new[key] = torch.zeros_like(new[key])
            else:  # (out, out + skip, 1, 1): pass the running features, drop the skip
                w = torch.zeros_like(new[key])
                out_ch = w.shape[0]
                w[:, :out_ch, 0, 0] = torch.eye(out_ch)
                new[key] = w
    return new


def _layers_from_init(config: TrainConfig) -> TrainConfig:
    """Take ``layers_per_block`` from the ``init_from`` prior when the run does not set it.

    The shipped mnist prior has 2 layers per block, its preset 1: without this, continuing it with
    ``--init-from helpers/pretrained/mnist`` alone would fail on the architecture. An explicit
    ``--layers-per-block`` (e.g. 2 from a 1-layer prior, to deepen it) is kept.
    """
    if not config.init_from or "layers_per_block" in (config.model_config or {}):
        return config
    cfg_path = Path(config.init_from) / "unet" / "config.json"
    if not cfg_path.exists():
        return config  # _init_from_prior says what is missing
    layers = json.loads(cfg_path.read_text()).get("layers_per_block")
    preset = MODEL_PRESETS.get(config.dataset, MODEL_PRESETS["faces"])["layers_per_block"]
    if layers is None or layers == preset:
        return config
    print(f"[train] layers_per_block {layers}, as in --init-from {config.init_from} (the {config.dataset} preset has "
          f"{preset})", flush=True)
    return replace(config, model_config=dict(config.model_config or {}, layers_per_block=layers))


def _export_only_config(config: TrainConfig) -> TrainConfig:
    """The config of ``--export-only``: the checkpoint's own settings, no training step.

    Exits with a message naming the checkpoint folder when there is no checkpoint to export
    (exporting the randomly initialised network instead would look like a trained prior).
    """
    ckpt_dir = _resolve_checkpoint_dir(config)
    path = _find_checkpoint(ckpt_dir)
    if path is None:
        raise SystemExit(f"python -m helpers.train: error: --export-only: there is no checkpoint in {ckpt_dir} "
                         f"(no {CHECKPOINT_NAME}); train first, or point --checkpoint-dir at the run to export")
    saved = load_checkpoint(path).get("config") or {}
    keep = {k: saved[k] for k in RESUME_SETTINGS if k in saved}
    if isinstance(keep.get("model_config"), dict):
        keep["model_config"] = dict(keep["model_config"])
    # the exported info describes the run, not the export: its training command and its initialisation
    for k in ("init_from", "command"):
        if saved.get(k):
            keep[k] = saved[k]
    # resume, do no step, write the checkpoint back and export
    return replace(config, **keep, steps=0, max_minutes=None, resume=True)


def main(argv: Optional[Sequence[str]] = None) -> TrainResult:
    """Entry point of ``python -m helpers.train`` (see the module docstring)."""
    args = _parse_args(argv)
    command = "python -m helpers.train " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    config = TrainConfig(
        dataset=args.dataset, out=args.out, steps=args.steps, max_minutes=args.max_minutes,
        batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps, ema_decay=args.ema_decay,
        seed=args.seed, threads=args.threads, checkpoint_dir=args.checkpoint_dir or str(REPO_ROOT / "checkpoints" / args.dataset),
        checkpoint_every_minutes=args.checkpoint_every_minutes, resume=not args.no_resume,
        progress=not args.no_progress, command=command, init_from=args.init_from,
        model_config={"layers_per_block": args.layers_per_block} if args.layers_per_block else None,
        device=args.device,
    )
    config.override, config.force = args.override, args.force
    stop = {"flag": False}
    if args.export_only:
        config = _export_only_config(config)
    else:
        def _handler(signum, frame):  # finish the current step, checkpoint, export
            print(f"[train] got signal {signum}: stopping after this step", flush=True)
            stop["flag"] = True

        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)
    try:
        return train(config, stop_flag=lambda: stop["flag"])
    except (ValueError, FileNotFoundError, CheckpointError) as err:
        # A setting or file the user must change (each message names the flag or file): one line, not a traceback.
        raise SystemExit(f"python -m helpers.train: error: {err}") from None


if __name__ == "__main__":
    main()
