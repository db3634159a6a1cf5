"""A stand-in for ``google/ddpm-celebahq-256``, written by code: same architecture, random weights.

The course's GPU path loads the real face model ``google/ddpm-celebahq-256`` (256×256 RGB,
113,673,219 parameters, 455 MB of fp32 weights) from the Hugging Face hub. CI and offline
machines cannot download it, so this module writes a *randomly initialised* network of the
same architecture in the same on-disk layout, and :func:`helpers.priors.load_prior` loads it
by the same code path (pipeline layout: ``unet/`` + ``scheduler/``) as the hub model:

- ``width="full"``: exactly the hub model's :data:`CELEBAHQ_UNET_CONFIG` (113,673,219
  parameters, ~497 GFLOP per forward at batch 1). Its outputs are meaningless (random weights),
  but its cost (time, memory) is the real model's: use it to time and budget the GPU path.
- ``width="narrow"``: the same block layout, resolution (256), attention placement (16×16, in
  the 5th down block, the mid block and the 2nd up block), norm settings and scheduler, with
  every channel count divided by 4 (:data:`NARROW_CHANNELS`) and ``norm_num_groups`` 32 → 8
  so that each group norm has the same channels per group as in the full model. 7.1 M
  parameters, ~31 GFLOP per forward (16× less), ~0.35 s per forward at batch 1 on one CPU
  thread: a 256-px stand-in cheap enough for CI.

Nothing is downloaded. The weights are seeded (``seed``) and deterministic for a given torch
version. Command line::

    python -m helpers.standin --out /tmp/celebahq-standin            # full width, 455 MB
    python -m helpers.standin --out /tmp/celebahq-narrow --narrow    # narrow, 29 MB

then ``helpers.priors.load_prior("/tmp/celebahq-narrow")``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Union

import torch

__all__ = [
    "CELEBAHQ_REPO_ID",
    "CELEBAHQ_UNET_CONFIG",
    "CELEBAHQ_SCHEDULER_CONFIG",
    "CELEBAHQ_MODEL_INDEX",
    "CELEBAHQ_NUM_PARAMETERS",
    "NARROW_CHANNELS",
    "NARROW_NORM_GROUPS",
    "WIDTHS",
    "standin_config",
    "build_standin_unet",
    "write_standin",
    "main",
]

CELEBAHQ_REPO_ID = "google/ddpm-celebahq-256"

CELEBAHQ_UNET_CONFIG: dict = {
    "act_fn": "silu",
    "attention_head_dim": None,
    "block_out_channels": (128, 128, 256, 256, 512, 512),
    "center_input_sample": False,
    "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "in_channels": 3,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 256,
    "time_embedding_type": "positional",
    "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
}
"""The ``UNet2DModel`` keyword arguments of ``google/ddpm-celebahq-256`` (its ``unet/config.json``,
without the ``_class_name`` / ``_diffusers_version`` keys). Six resolution levels 256 → 8 px,
two residual blocks per level, one-head self-attention at 16×16 (``attention_head_dim=None``:
one head of the block's full width), GroupNorm(32, eps 1e-6), the original DDPM's sinusoidal
time embedding (``flip_sin_to_cos=False``, ``freq_shift=1``) and stride-2 downsampling
without padding (``downsample_padding=0``), as in Ho et al.'s TensorFlow code."""

CELEBAHQ_SCHEDULER_CONFIG: dict = {
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "clip_sample": True,
    "num_train_timesteps": 1000,
    "trained_betas": None,
    "variance_type": "fixed_small",
}
"""The hub model's ``scheduler/scheduler_config.json`` (a ``DDPMScheduler``): linear β from 1e-4 to
0.02 over T = 1000 steps, posterior variance β̃_t (``fixed_small``), x̂_0 clipped to [-1, 1].
It names no ``prediction_type``, so ε-prediction (diffusers' default) applies; it names no
``timestep_spacing`` either -- the course's samplers choose their own (``"linspace"``)."""

CELEBAHQ_MODEL_INDEX: dict = {
    "_class_name": "DDPMPipeline",
    "scheduler": ["diffusers", "DDPMScheduler"],
    "unet": ["diffusers", "UNet2DModel"],
}
"""The hub model's ``model_index.json`` (a ``DDPMPipeline``), without ``_diffusers_version``."""

CELEBAHQ_NUM_PARAMETERS = 113_673_219
"""Parameters of the full-width network (``sum(p.numel() for p in unet.parameters())``)."""

NARROW_CHANNELS = (32, 32, 64, 64, 128, 128)
"""``block_out_channels`` of the narrow stand-in: the full model's divided by 4."""
NARROW_NORM_GROUPS = 8
"""``norm_num_groups`` of the narrow stand-in: 32 / 4, so every GroupNorm keeps the full model's
channels per group (4 at 128 channels ... 16 at 512)."""

WIDTHS = ("full", "narrow")

_INFO_FILE = "standin_info.json"


def standin_config(width: str = "full") -> dict:
    """``UNet2DModel`` keyword arguments of the stand-in: :data:`CELEBAHQ_UNET_CONFIG`, channels cut for ``"narrow"``."""
    if width not in WIDTHS:
        raise ValueError(f"width={width!r}: choose 'full' (the hub model's exact architecture) or 'narrow' (channels / 4, for CI)")
    cfg = dict(CELEBAHQ_UNET_CONFIG)
    if width == "narrow":
        cfg["block_out_channels"] = NARROW_CHANNELS
        cfg["norm_num_groups"] = NARROW_NORM_GROUPS
    return cfg


def build_standin_unet(width: str = "full", seed: int = 0, device: Union[str, torch.device, None] = None):
    """A randomly initialised ``UNet2DModel`` of :func:`standin_config` ``(width)``, in eval mode.

    The initialisation (PyTorch's and diffusers' defaults) draws from torch's CPU generator seeded
    with ``seed``, inside :func:`torch.random.fork_rng`, so the caller's random state is left as it
    was and the same seed gives the same weights. ``device="meta"`` builds it without memory
    (shapes only: for counting FLOPs); the weights then have no values.
    """
    from diffusers import UNet2DModel

    cfg = standin_config(width)
    if device is not None and torch.device(device).type == "meta":
        with torch.device("meta"):
            return UNet2DModel(**cfg).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        unet = UNet2DModel(**cfg)
    unet = unet.eval()
    return unet if device is None else unet.to(device)


def _write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def write_standin(path: Union[str, os.PathLike], width: str = "full", seed: int = 0, overwrite: bool = False) -> Path:
    """Write a random-weight stand-in of ``google/ddpm-celebahq-256`` to the folder ``path``; returns it.

    Layout (the hub repository's diffusers pipeline layout)::

        path/model_index.json                         DDPMPipeline: unet + scheduler
        path/unet/config.json                         UNet2DModel config (standin_config(width))
        path/unet/diffusion_pytorch_model.safetensors fp32 weights (455 MB full, 29 MB narrow)
        path/scheduler/scheduler_config.json          CELEBAHQ_SCHEDULER_CONFIG
        path/standin_info.json                        what this is: random weights, width, seed

    ``helpers.priors.load_prior(path)`` then returns a :class:`helpers.priors.Prior` with images
    (3, 256, 256), the linear-β schedule of 1000 steps, ``fixed_small`` variance and clipping.
    ``width``: ``"full"`` or ``"narrow"`` (see the module docstring). Same ``seed`` → identical
    weights. An existing stand-in is replaced only with ``overwrite=True``; a folder holding
    anything else is refused.
    """
    import diffusers

    path = Path(path).expanduser()
    if width not in WIDTHS:
        standin_config(width)  # raises the explanatory error
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} is a file; give a folder for the stand-in")
    if path.is_dir() and any(path.iterdir()):
        if not (path / _INFO_FILE).exists():
            raise FileExistsError(f"{path} is not empty and holds no stand-in ({_INFO_FILE} is missing); choose an empty folder")
        if not overwrite:
            raise FileExistsError(f"{path} already holds a stand-in; pass overwrite=True (--force) to replace it")
    unet = build_standin_unet(width, seed)
    path.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(str(path / "unet"), safe_serialization=True)
    version = diffusers.__version__
    _write_json(path / "scheduler" / "scheduler_config.json",
                {"_class_name": "DDPMScheduler", "_diffusers_version": version, **CELEBAHQ_SCHEDULER_CONFIG})
    _write_json(path / "model_index.json", {**CELEBAHQ_MODEL_INDEX, "_diffusers_version": version})
    n_params = sum(p.numel() for p in unet.parameters())
    _write_json(path / _INFO_FILE, {
        "what": f"randomly initialised stand-in for {CELEBAHQ_REPO_ID}: same architecture"
                + (" (channels / 4)" if width == "narrow" else "") + ", random weights, outputs are meaningless",
        "width": width,
        "seed": int(seed),
        "parameters": n_params,
        "torch": torch.__version__,
        "diffusers": version,
        "written_by": "python -m helpers.standin",
    })
    return path


def main(argv: Optional[list] = None) -> int:
    """``python -m helpers.standin --out DIR [--narrow] [--seed N] [--force]``."""
    p = argparse.ArgumentParser(prog="python -m helpers.standin", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder to write (pipeline layout: unet/, scheduler/)")
    p.add_argument("--narrow", action="store_true", help="channels / 4 (7.1 M parameters, for CI) instead of the full 113.7 M")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (default 0)")
    p.add_argument("--force", action="store_true", help="replace a stand-in already in --out")
    args = p.parse_args(argv)
    width = "narrow" if args.narrow else "full"
    try:
        out = write_standin(args.out, width=width, seed=args.seed, overwrite=args.force)
    except FileExistsError as err:
        print(f"error: --out {args.out}: {err}", file=sys.stderr)
        return 2
    info = json.loads((out / _INFO_FILE).read_text())
    size = (out / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    print(f"wrote a {width} stand-in for {CELEBAHQ_REPO_ID} to {out}: {info['parameters']:,} parameters, "
          f"{size / 2**20:.1f} MiB of weights, seed {args.seed}. Load it with helpers.priors.load_prior({str(out)!r}).")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
