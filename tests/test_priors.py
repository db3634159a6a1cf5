"""load_prior on locally saved tiny UNets (pipeline and bare layouts), errors, prediction types."""

import json

import pytest
import torch
from diffusers import DDPMScheduler

from conftest import tiny_unet
from helpers.priors import GaussianPrior, Prior, PriorNotAvailableError, load_prior
from helpers.schedule import NoiseSchedule


def _save(tmp_path, layout):
    unet = tiny_unet()
    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, variance_type="fixed_large")
    if layout == "pipeline":
        unet.save_pretrained(tmp_path / "unet")
        sched.save_pretrained(tmp_path / "scheduler")
    else:
        unet.save_pretrained(tmp_path)
        sched.save_pretrained(tmp_path)
    return unet


@pytest.mark.parametrize("layout", ["pipeline", "bare"])
def test_load_local_layouts(tmp_path, layout):
    unet = _save(tmp_path, layout)
    prior = load_prior(tmp_path, device="cpu")
    assert prior.image_shape == (3, 8, 8)
    assert prior.schedule.variance_type == "fixed_large"
    assert prior.schedule.num_train_timesteps == 1000
    assert not prior.unet.training
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = unet(x, torch.full((2,), 500)).sample
    torch.testing.assert_close(prior.eps(x, 500), expected)
    # gradients flow to the input even though the parameters are frozen
    x.requires_grad_(True)
    prior.eps(x, 10).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in prior.unet.parameters())


def test_missing_scheduler_config_is_a_clear_error(tmp_path):
    tiny_unet().save_pretrained(tmp_path)
    with pytest.raises(PriorNotAvailableError, match="scheduler config"):
        load_prior(tmp_path, device="cpu")


def test_unknown_name_and_offline_hub_errors():
    with pytest.raises(PriorNotAvailableError, match="Unknown prior 'celeba'.*faces"):
        load_prior("celeba")
    with pytest.raises(PriorNotAvailableError, match="not reachable.*'faces'"):
        load_prior("google/ddpm-cifar10-32")  # HF_HUB_OFFLINE=1 in conftest: fails at once, no traceback from the hub


def test_prediction_types_are_converted_to_epsilon():
    sched = NoiseSchedule.linear()
    unet = tiny_unet()
    x, t = torch.randn(2, 3, 8, 8), 300
    a = sched.alpha_bar(t)
    with torch.no_grad():
        out = unet(x, torch.full((2,), t)).sample
        eps_sample = Prior(unet, sched, "sample").eps(x, t)
        eps_v = Prior(unet, sched, "v_prediction").eps(x, t)
    torch.testing.assert_close(sched.predict_x0(x, eps_sample, t), out, rtol=1e-4, atol=1e-4)  # x0-prediction
    x0_v = sched.predict_x0(x, eps_v, t)
    torch.testing.assert_close(a**0.5 * eps_v - (1 - a) ** 0.5 * x0_v, out, rtol=1e-4, atol=1e-4)  # v = √ᾱε − √(1−ᾱ)x0
    with pytest.raises(ValueError, match="prediction_type='flow'"):
        Prior(unet, sched, "flow")


def test_scheduler_config_prediction_type_reaches_the_prior(tmp_path):
    _save(tmp_path, "pipeline")
    cfg_path = tmp_path / "scheduler" / "scheduler_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["prediction_type"] = "v_prediction"
    cfg_path.write_text(json.dumps(cfg))
    assert load_prior(tmp_path, device="cpu").prediction_type == "v_prediction"


def test_gaussian_prior_epsilon_is_the_exact_conditional_mean_of_the_noise():
    """E[ε | x_t] for Gaussian data, checked by regression on simulated pairs."""
    g = torch.Generator().manual_seed(0)
    d = 3
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    prior = GaussianPrior(torch.tensor([0.2, -0.1, 0.0]), 0.05 * A @ A.T + 0.02 * torch.eye(d), (1, 1, 3))
    x0 = prior.sample_data(200_000, generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = 400
    xt = prior.schedule.add_noise(x0, eps, t)
    # E[eps | x_t] is linear in x_t: least squares recovers the closed form
    X = torch.cat([xt.reshape(-1, d), torch.ones(len(xt), 1, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(X, eps.reshape(-1, d)).solution
    pred_ls = (X @ coef).reshape(xt.shape)
    torch.testing.assert_close(prior.eps(xt[:1000], t), pred_ls[:1000], atol=0.02, rtol=0)
