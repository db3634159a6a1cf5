"""helpers.standin: a random-weight google/ddpm-celebahq-256 written by code, loaded like the hub model."""

import json

import numpy as np
import pytest
import torch

from helpers import standin


def _attention_positions(cfg):
    return ([i for i, b in enumerate(cfg["down_block_types"]) if "Attn" in b],
            [i for i, b in enumerate(cfg["up_block_types"]) if "Attn" in b])


def test_full_config_has_the_hub_models_parameter_count():
    unet = standin.build_standin_unet("full", device="meta")  # shapes only: no 455 MB allocation
    assert sum(p.numel() for p in unet.parameters()) == standin.CELEBAHQ_NUM_PARAMETERS == 113_673_219
    cfg = standin.standin_config("full")
    assert cfg == standin.CELEBAHQ_UNET_CONFIG
    assert cfg["block_out_channels"] == (128, 128, 256, 256, 512, 512)
    assert _attention_positions(cfg) == ([4], [1])  # 16×16: after four halvings of 256


def test_full_parameter_count_on_cpu():
    # the real (CPU) construction too: the meta build must not differ
    unet = standin.build_standin_unet("full", seed=0)
    assert sum(p.numel() for p in unet.parameters()) == 113_673_219


def test_narrow_keeps_layout_attention_size_and_norms():
    full, narrow = standin.standin_config("full"), standin.standin_config("narrow")
    changed = {k for k in full if full[k] != narrow[k]}
    assert changed == {"block_out_channels", "norm_num_groups"}
    assert _attention_positions(narrow) == _attention_positions(full)
    assert narrow["sample_size"] == 256 and narrow["attention_head_dim"] is None
    for c_full, c_narrow in zip(full["block_out_channels"], narrow["block_out_channels"]):
        assert c_narrow % narrow["norm_num_groups"] == 0
        assert c_narrow // narrow["norm_num_groups"] == c_full // full["norm_num_groups"]  # channels per group kept
    n = sum(p.numel() for p in standin.build_standin_unet("narrow", device="meta").parameters())
    assert 5e6 < n < 10e6
    with pytest.raises(ValueError, match="narrow"):
        standin.standin_config("thin")


@pytest.fixture(scope="module")
def narrow_dir(tmp_path_factory):
    return standin.write_standin(tmp_path_factory.mktemp("standin") / "narrow", width="narrow", seed=0)


def test_written_layout_is_the_hubs_pipeline_layout(narrow_dir):
    for f in ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
              "scheduler/scheduler_config.json", "standin_info.json"):
        assert (narrow_dir / f).is_file(), f
    index = json.loads((narrow_dir / "model_index.json").read_text())
    assert index["_class_name"] == "DDPMPipeline" and index["unet"] == ["diffusers", "UNet2DModel"]
    sched = json.loads((narrow_dir / "scheduler/scheduler_config.json").read_text())
    assert sched["_class_name"] == "DDPMScheduler"
    assert {k: sched[k] for k in standin.CELEBAHQ_SCHEDULER_CONFIG} == standin.CELEBAHQ_SCHEDULER_CONFIG
    info = json.loads((narrow_dir / "standin_info.json").read_text())
    assert info["width"] == "narrow" and info["seed"] == 0 and "random" in info["what"]
    from diffusers import DDPMScheduler

    assert DDPMScheduler.from_pretrained(str(narrow_dir), subfolder="scheduler").config.variance_type == "fixed_small"


def test_load_prior_on_the_narrow_standin(narrow_dir):
    from helpers.priors import load_prior
    from helpers.schedule import NoiseSchedule

    prior = load_prior(narrow_dir, device="cpu")
    assert prior.image_shape == (3, 256, 256) and prior.prediction_type == "epsilon"
    expected = NoiseSchedule.from_config(standin.CELEBAHQ_SCHEDULER_CONFIG)
    assert np.array_equal(np.asarray(prior.schedule.betas), np.linspace(1e-4, 0.02, 1000))
    assert np.array_equal(np.asarray(prior.schedule.betas), np.asarray(expected.betas))
    assert prior.schedule.variance_type == "fixed_small" and prior.schedule.clip_sample is True
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eps = prior.eps(x, 500)
    assert eps.shape == (1, 3, 256, 256) and torch.isfinite(eps).all()


def test_same_seed_same_weights(narrow_dir, tmp_path):
    from safetensors.torch import load_file

    again = standin.write_standin(tmp_path / "again", width="narrow", seed=0)
    a = load_file(str(narrow_dir / "unet/diffusion_pytorch_model.safetensors"))
    b = load_file(str(again / "unet/diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = standin.build_standin_unet("narrow", seed=1).state_dict()
    assert not torch.equal(other["conv_in.weight"], a["conv_in.weight"])


def test_seeding_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    standin.build_standin_unet("narrow", seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_refuses_to_overwrite(narrow_dir, tmp_path):
    with pytest.raises(FileExistsError, match="already holds a stand-in"):
        standin.write_standin(narrow_dir, width="narrow")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        standin.write_standin(tmp_path / "other", width="narrow")


def test_cli(tmp_path, capsys):
    assert standin.main(["--out", str(tmp_path / "s"), "--narrow", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "narrow stand-in" in out and "load_prior" in out
    assert json.loads((tmp_path / "s" / "standin_info.json").read_text())["seed"] == 3
    assert standin.main(["--out", str(tmp_path / "s"), "--narrow"]) == 2
    assert "error: --out" in capsys.readouterr().err


def test_bench_times_the_same_architecture():
    # python -m helpers.bench --gpu-celebahq (the measurement that should replace the T4 efficiency
    # assumptions of helpers.gpu_budget) must build this very network
    from diffusers import UNet2DModel

    from helpers.bench import RANDOM_UNETS

    with torch.device("meta"):
        bench = UNet2DModel(**RANDOM_UNETS["celebahq256"])
    cfg = dict(bench.config)
    for key, value in standin.CELEBAHQ_UNET_CONFIG.items():
        assert (list(cfg[key]) if isinstance(value, tuple) else cfg[key]) == (list(value) if isinstance(value, tuple) else value), key
    assert sum(p.numel() for p in bench.parameters()) == standin.CELEBAHQ_NUM_PARAMETERS
