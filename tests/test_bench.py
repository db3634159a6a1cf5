"""Tests of helpers.bench: the ratios are computed and finite (no timing thresholds: machines differ)."""

import math

import pytest
import torch

from helpers import bench


@pytest.mark.parametrize("sampler", ["ddpm", "dps"])
def test_overhead_ratio_is_finite_and_positive(tiny_prior, sampler):
    ratio = bench.overhead_ratio(tiny_prior, sampler, batch=1, steps=2, repeats=1)
    assert math.isfinite(ratio) and ratio > 0


def test_dps_cost_and_scaling(tiny_prior):
    cost = bench.dps_step_cost(tiny_prior, batch=2, steps=2, repeats=1)
    assert all(math.isfinite(v) and v > 0 for v in cost.values())
    rows = bench.batch_scaling(tiny_prior, batches=(1, 2), steps=2, repeats=1)
    assert [r["batch"] for r in rows] == [1, 2]
    assert all(r["dps_image_steps_per_s"] > 0 for r in rows)


def test_memory_worker_measures_a_run():
    out = bench._memory_worker({"random_unet": "tiny", "sampler": "dps", "batch": 2, "steps": 2, "threads": 1})
    assert out["peak_bytes"] >= 0 and out["method"]


def test_random_unet_shapes():
    from diffusers import UNet2DModel

    with torch.device("meta"):  # no memory, no download
        celeba = UNet2DModel(**bench.RANDOM_UNETS["celebahq256"])
        faces = UNet2DModel(**bench.RANDOM_UNETS["faces32"])
    assert abs(sum(p.numel() for p in celeba.parameters()) / 1e6 - 114) < 1  # DDPM paper: 114 M
    assert celeba.config.sample_size == 256
    assert sum(p.numel() for p in faces.parameters()) == 2_736_099  # the bundled faces prior


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_gpu_option_explains_missing_cuda(capsys):
    assert bench.main(["--gpu-celebahq"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
