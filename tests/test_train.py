"""Tests of :mod:`helpers.train` with a tiny UNet and in-memory images (CPU, no network)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from helpers.train import (
    TrainConfig,
    diffusion_loss,
    linear_betas,
    main,
    train,
)

TINY = dict(
    sample_size=16,
    block_out_channels=(16, 32),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
)


def _images(n: int = 48, c: int = 1, size: int = 16, seed: int = 0) -> np.ndarray:
    """Smooth, structured toy images in [0, 1]: shifted blobs (N, C, size, size)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    out = np.empty((n, c, size, size), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(0.3, 0.7, 2)
        for ch in range(c):
            out[i, ch] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.05)
    return out


def _config(tmp_path, name: str, **kw) -> TrainConfig:
    base = dict(
        dataset="custom", images=_images(), model_config=TINY, batch_size=8, lr=2e-3, warmup_steps=5,
        checkpoint_dir=str(tmp_path / name), progress=False, seed=0,
    )
    base.update(kw)
    return TrainConfig(**base)


@torch.no_grad()
def _fixed_loss(model, images: np.ndarray) -> float:
    """Mean loss over fixed images, timesteps and noise (deterministic)."""
    x0 = torch.as_tensor(images) * 2 - 1
    g = torch.Generator().manual_seed(123)
    acp = torch.cumprod(1 - linear_betas(), 0).float()
    losses = []
    for t_val in (50, 200, 400, 700):
        t = torch.full((x0.shape[0],), t_val, dtype=torch.long)
        noise = torch.randn(x0.shape, generator=g)
        losses.append(float(diffusion_loss(model.eval(), x0, t, noise, acp)))
    return float(np.mean(losses))


def test_linear_betas_match_ddpm():
    b = linear_betas()
    assert b.shape == (1000,)
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)


def test_training_lowers_the_loss(tmp_path):
    imgs = _images()
    before = train(_config(tmp_path, "a", images=imgs, steps=0, checkpoint_dir=""))
    after = train(_config(tmp_path, "b", images=imgs, steps=40, checkpoint_dir=""))
    l0, l1 = _fixed_loss(before.model, imgs), _fixed_loss(after.model, imgs)
    assert l1 < 0.8 * l0, (l0, l1)
    # the log has one row per step and finite values
    assert [r[0] for r in after.log] == list(range(1, 41))
    assert all(np.isfinite(r[1]) and np.isfinite(r[2]) for r in after.log)


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    full = train(_config(tmp_path, "full", steps=20, hflip=True))
    # first session: 10 steps with checkpointing, then a new session continues to 20
    part1 = train(_config(tmp_path, "split", steps=10, hflip=True, checkpoint_every_steps=5))
    assert part1.step == 10
    torch.manual_seed(999)  # disturb the global RNG: the checkpoint must restore it
    part2 = train(_config(tmp_path, "split", steps=20, hflip=True))
    assert part2.step == full.step == 20
    for a, b in zip(full.model.state_dict().values(), part2.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(full.ema_model.state_dict().values(), part2.ema_model.state_dict().values()):
        assert torch.equal(a, b)
    assert [r[:3] for r in full.log] == [r[:3] for r in part2.log]
    # the running CSV log next to the checkpoint has all 20 rows
    with open(tmp_path / "split" / "training_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 21))


def test_time_budget_stops_and_counts(tmp_path):
    res = train(_config(tmp_path, "t", max_minutes=0.02))  # ~1.2 s
    assert res.stopped_by == "time" and res.step >= 1
    # resuming with the same budget does no further step
    res2 = train(_config(tmp_path, "t", max_minutes=0.02))
    assert res2.step == res.step


def test_export_loads_in_diffusers(tmp_path):
    from diffusers import DDPMScheduler, UNet2DModel

    out = tmp_path / "prior"
    res = train(_config(tmp_path, "e", steps=3, out=str(out), images=_images(c=3)))
    unet = UNet2DModel.from_pretrained(out / "unet")
    assert unet.config.in_channels == 3 and unet.config.sample_size == 16
    for a, b in zip(unet.state_dict().values(), res.ema_model.state_dict().values()):
        assert torch.equal(a, b)
    sched = DDPMScheduler.from_pretrained(out / "scheduler")
    assert sched.config.num_train_timesteps == 1000
    assert sched.config.prediction_type == "epsilon"
    assert sched.config.variance_type == "fixed_small"
    assert torch.allclose(sched.betas.double(), linear_betas(), atol=1e-7)
    info = json.loads((out / "training_info.json").read_text())
    assert info["steps"] == 3 and info["params"] == sum(p.numel() for p in unet.parameters())
    assert (out / "training_log.csv").exists() and (out / "loss_curve.png").exists()


def test_cli_requires_a_budget():
    with pytest.raises(SystemExit):
        main(["--dataset", "mnist", "--out", "x"])


def test_init_from_continues_an_exported_prior(tmp_path):
    first = train(_config(tmp_path, "a", steps=12, out=str(tmp_path / "prior_a")))
    cont = train(_config(tmp_path, "b", steps=0, out=str(tmp_path / "prior_b"), init_from=str(tmp_path / "prior_a"),
                         seed=1))
    for p, q in zip(first.ema_model.parameters(), cont.model.parameters()):
        assert torch.equal(p, q)  # the network starts from the exported EMA weights, not from seed 1's init
    info = json.loads((tmp_path / "prior_b" / "training_info.json").read_text())
    assert info["initialised_from"]["steps"] == 12
    with pytest.raises(ValueError, match="does not match this run's architecture"):
        train(_config(tmp_path, "c", steps=0, init_from=str(tmp_path / "prior_a"),
                      model_config=dict(TINY, block_out_channels=(8, 16))))


def test_deepening_a_prior_keeps_its_function_and_the_new_layers_learn(tmp_path):
    first = train(_config(tmp_path, "a", steps=12, out=str(tmp_path / "prior_a")))
    deep_cfg = dict(TINY, layers_per_block=2)
    deep = train(_config(tmp_path, "b", steps=0, init_from=str(tmp_path / "prior_a"), model_config=deep_cfg))
    n_old = sum(p.numel() for p in first.ema_model.parameters())
    n_new = sum(p.numel() for p in deep.model.parameters())
    assert n_new > n_old * 1.2  # the second layer per block is real capacity
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 1, 16, 16, generator=g)
    t = torch.tensor([3, 400, 990])
    with torch.no_grad():
        before = first.ema_model.eval()(x, t).sample
        after = deep.model.eval()(x, t).sample
    assert before.abs().mean() > 0.1  # a trained network, not zeros
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    # the added layers start at zero output and move once trained
    added = [k for k in deep.model.state_dict() if k.startswith("up_blocks.0.resnets.1.conv2.")]
    assert added and all(torch.count_nonzero(deep.model.state_dict()[k]) == 0 for k in added)
    trained = train(_config(tmp_path, "c", steps=4, init_from=str(tmp_path / "prior_a"), model_config=deep_cfg))
    assert any(torch.count_nonzero(trained.model.state_dict()[k]) > 0 for k in added)
    # the export says so, also when it comes from a resumed checkpoint
    train(_config(tmp_path, "c", steps=5, init_from=str(tmp_path / "prior_a"), model_config=deep_cfg,
                  out=str(tmp_path / "prior_c")))
    info = json.loads((tmp_path / "prior_c" / "training_info.json").read_text())
    assert info["initialised_from"]["deepened"].startswith("layers_per_block 1 -> 2")
    with pytest.raises(ValueError, match="only 1 -> 2"):
        train(_config(tmp_path, "d", steps=0, init_from=str(tmp_path / "prior_a"),
                      model_config=dict(TINY, layers_per_block=3)))


# --------------------------------------------------------------------------- device
def test_resolve_device_names_the_flag_and_the_fix(monkeypatch):
    from helpers.train import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == "cpu" and resolve_device(" CPU ") == "cpu" and resolve_device(None) == "cpu"
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match=r"device \(--device\) is 'cuda' but torch sees no CUDA GPU.*--device cpu"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match=r"expected 'cpu', 'cuda', 'cuda:N' or 'auto'"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match=r"only 2 CUDA device\(s\); use cuda:0 .. cuda:1"):
        resolve_device("cuda:2")


def test_device_is_checked_before_any_work_and_recorded(tmp_path, monkeypatch):
    from helpers.train import RESUME_SETTINGS, validate_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"--device"):
        train(_config(tmp_path, "d", steps=2, device="cuda"))
    assert not (tmp_path / "d").exists()  # refused before a checkpoint folder was made
    assert validate_config(_config(tmp_path, "d", steps=2, device="auto")).device == "cpu"
    # a checkpoint resumes on any device: the device is not a setting that needs --override
    assert "device" not in RESUME_SETTINGS
    out = tmp_path / "prior"
    train(_config(tmp_path, "d", steps=2, out=str(out)))
    info = json.loads((out / "training_info.json").read_text())
    assert info["device"] == "cpu" and "trained on" not in info["hardware"]
    with pytest.raises(SystemExit, match=r"python -m helpers.train: error: device \(--device\) is 'tpu'"):
        main(["--dataset", "mnist", "--out", str(tmp_path / "x"), "--steps", "1", "--device", "tpu"])


def test_gpu_training_script_explains_its_use(tmp_path):
    """tools/gpu_train_mnist.sh (the prepared run for a lent GPU) parses and says how to call it."""
    import os
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "tools" / "gpu_train_mnist.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert r.returncode == 2 and "usage: bash tools/gpu_train_mnist.sh fetch | train" in r.stderr
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    r = subprocess.run(["bash", str(script), "train"], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "OUT must name the folder" in r.stderr


def test_init_from_takes_the_priors_layers_per_block_when_not_given(tmp_path):
    """Continuing a deepened prior with --init-from alone (no --layers-per-block) keeps its architecture."""
    deep = dict(TINY, layers_per_block=2)
    first = train(_config(tmp_path, "a", steps=3, out=str(tmp_path / "deep"), model_config=deep))
    no_layers = {k: v for k, v in TINY.items() if k != "layers_per_block"}
    cont = train(_config(tmp_path, "b", steps=0, out=str(tmp_path / "cont"), model_config=no_layers,
                         init_from=str(tmp_path / "deep")))
    assert cont.model.config.layers_per_block == 2
    for a, b in zip(first.ema_model.state_dict().values(), cont.ema_model.state_dict().values()):
        assert torch.equal(a, b)
    # an explicit value is kept (and a 2 -> 1 change is refused with the fix)
    with pytest.raises(ValueError, match="use the same layers_per_block"):
        train(_config(tmp_path, "c", steps=1, model_config=TINY, init_from=str(tmp_path / "deep")))
