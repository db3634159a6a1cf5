"""The schedule's update rules against diffusers' own schedulers, step by step."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from helpers.schedule import NoiseSchedule


def _ours_and_theirs(variance_type="fixed_small"):
    ours = NoiseSchedule.linear(1000, 1e-4, 0.02, variance_type=variance_type, clip_sample=False)
    theirs = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                           variance_type=variance_type, clip_sample=False)
    return ours, theirs


def test_coefficients_match_diffusers_and_closed_form():
    ours, theirs = _ours_and_theirs()
    np.testing.assert_allclose(ours.alphas_cumprod.numpy(), theirs.alphas_cumprod.numpy(), rtol=1e-5)
    betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(ours.alphas_cumprod[10].item(), np.prod(1 - betas[:11]), rtol=1e-12)
    # gamma_t is the noise level of x_t / sqrt(alpha_bar_t)
    a = ours.alphas_cumprod[500].item()
    assert ours.noise_to_signal[500].item() == pytest.approx(np.sqrt((1 - a) / a))


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("num_steps", [1000, 50])
def test_ddpm_steps_match_diffusers(variance_type, num_steps):
    ours, theirs = _ours_and_theirs(variance_type)
    ts = ours.timesteps(num_steps)  # linspace spacing, passed to diffusers as custom timesteps
    theirs.set_timesteps(timesteps=ts)
    assert list(theirs.timesteps.numpy()) == ts
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g)
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        eps = torch.randn(x.shape, generator=g)
        z = torch.randn(x.shape, generator=g)
        mine = ours.ddpm_step(eps, t, t_prev, x, noise=z)
        # diffusers draws its own noise: feed ours through a generator-free path by subtracting it
        ref = theirs.step(eps, t, x, generator=torch.Generator().manual_seed(1))
        ref_noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) if t > 0 else torch.zeros_like(x)
        std = ours.step_variance(t, t_prev) ** 0.5 if t > 0 else 0.0
        expected = ref.prev_sample - std * ref_noise + std * z
        torch.testing.assert_close(mine.prev_sample, expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(mine.pred_original_sample, ref.pred_original_sample, rtol=1e-4, atol=1e-4)
        x = mine.prev_sample


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_steps_match_diffusers(eta):
    ours = NoiseSchedule.linear(clip_sample=False)
    theirs = DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                           clip_sample=False, set_alpha_to_one=True, timestep_spacing="leading")
    theirs.set_timesteps(50)
    ts = ours.timesteps(50, spacing="leading")
    assert list(theirs.timesteps.numpy()) == ts
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 8, 8, generator=g)
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        eps = torch.randn(x.shape, generator=g)
        z = torch.randn(x.shape, generator=g)
        mine = ours.ddim_step(eps, t, t_prev, x, eta=eta, noise=z)
        ref = theirs.step(eps, t, x, eta=eta, variance_noise=z)
        torch.testing.assert_close(mine.prev_sample, ref.prev_sample, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(mine.pred_original_sample, ref.pred_original_sample, rtol=1e-4, atol=1e-4)
        x = mine.prev_sample


def test_timestep_spacings():
    s = NoiseSchedule.linear()
    assert s.timesteps(1000) == list(range(999, -1, -1))
    assert s.timesteps(10, "linspace")[0] == 999 and s.timesteps(10, "linspace")[-1] == 0
    assert s.timesteps(10, "leading") == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    with pytest.raises(ValueError, match="num_steps"):
        s.timesteps(0)
    with pytest.raises(ValueError, match="num_steps"):
        s.timesteps(2000)


def test_from_config_reads_diffusers_scheduler_config():
    cfg = dict(DDPMScheduler(beta_schedule="linear", variance_type="fixed_large", clip_sample=False).config)
    s = NoiseSchedule.from_config(cfg)
    assert s.variance_type == "fixed_large" and s.clip_sample is False and s.num_train_timesteps == 1000
    cfg2 = dict(DDPMScheduler(beta_schedule="squaredcos_cap_v2").config)
    np.testing.assert_allclose(NoiseSchedule.from_config(cfg2).betas.numpy(),
                               DDPMScheduler(beta_schedule="squaredcos_cap_v2").betas.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="beta_schedule"):
        NoiseSchedule.from_config({"beta_schedule": "weird"})


def test_add_noise_and_tweedie_invert_each_other():
    s = NoiseSchedule.linear()
    x0 = torch.rand(2, 3, 4, 4) * 2 - 1
    eps = torch.randn(2, 3, 4, 4)
    xt = s.add_noise(x0, eps, 700)
    torch.testing.assert_close(s.predict_x0(xt, eps, 700), x0, rtol=1e-5, atol=1e-5)
