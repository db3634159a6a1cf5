"""Samplers against closed forms: an exact Gaussian prior, finite differences, hand-computed steps."""

import pytest
import torch

from helpers.operators import BoxInpainting, Denoising, GaussianBlur, RandomInpainting, SuperResolution
from helpers.priors import GaussianPrior
from helpers.samplers import (SamplerDivergedError, dps, dps_gradient, dps_zeta_from_official_scale, sample_ddim,
                              sample_ddpm, score_ald, sdedit)

SHAPE = (1, 4, 4)
D = 16


@pytest.fixture(scope="module")
def gaussian():
    g = torch.Generator().manual_seed(0)
    B = torch.randn(D, D, generator=g, dtype=torch.float64)
    cov = 0.03 * B @ B.T / D + 0.01 * torch.eye(D, dtype=torch.float64)  # pixel std 0.16-0.27: samples stay in [-1, 1]
    mean = 0.2 * torch.rand(D, generator=g, dtype=torch.float64) - 0.1
    return GaussianPrior(mean, cov, SHAPE)


def _matrix(op):
    eye = torch.eye(D, dtype=torch.float64)
    return torch.stack([op(e.reshape(1, *SHAPE)).reshape(-1) for e in eye], 1)


# ---------------------------------------------------------------- unconditional
@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
def test_unconditional_sampling_reproduces_the_gaussian(gaussian, kind):
    n = 3000
    if kind == "ddpm":
        x = sample_ddpm(gaussian, n, num_steps=250, seed=1, clip_denoised=False, progress=False).sample
    else:
        x = sample_ddim(gaussian, n, num_steps=100, eta=0.0, seed=1, clip_denoised=False, progress=False).sample
    x = x.reshape(n, -1)
    # standard error of a mean is std/sqrt(n) <= 0.27/55 = 0.005; of a covariance entry about 0.07/55 = 0.0013.
    # Tolerances: ~4 standard errors plus the discretisation error of a strided sampler.
    assert (x.mean(0) - gaussian.mean).abs().max() < 0.025
    assert (torch.cov(x.T) - gaussian.cov).abs().max() < 0.012


def test_same_seed_same_image_and_seed_lists_match_single_runs(tiny_prior):
    a = sample_ddpm(tiny_prior, 2, num_steps=10, seed=5, progress=False).sample
    b = sample_ddpm(tiny_prior, 2, num_steps=10, seed=5, progress=False).sample
    assert torch.equal(a, b)
    c = sample_ddpm(tiny_prior, 2, num_steps=10, seed=6, progress=False).sample
    assert not torch.equal(a, c)
    batch = sample_ddim(tiny_prior, 2, num_steps=10, eta=0.5, seed=[3, 4], progress=False).sample
    single = [sample_ddim(tiny_prior, 1, num_steps=10, eta=0.5, seed=[s], progress=False).sample for s in (3, 4)]
    torch.testing.assert_close(batch, torch.cat(single), rtol=1e-5, atol=1e-5)


def test_trajectory_is_recorded(tiny_prior):
    r = sample_ddpm(tiny_prior, 1, num_steps=20, seed=0, progress=False, trajectory_every=5)
    ts = tiny_prior.schedule.timesteps(20)
    assert r.timesteps == [ts[i] for i in (0, 5, 10, 15, 19)]  # every 5th step and the last
    assert len(r.trajectory_x) == len(r.trajectory_x0) == len(r.timesteps)
    assert r.timesteps[-1] == 0 and r.nfe == 20
    assert r.sample.min() >= -1 and r.sample.max() <= 1


# ---------------------------------------------------------------- guided, against the exact posterior
@pytest.fixture(scope="module")
def posterior_problems(gaussian):
    g = torch.Generator().manual_seed(3)
    x_true = gaussian.sample_data(1, generator=g)
    sigma = 0.1
    problems = []
    for op in (BoxInpainting(4, 2), GaussianBlur(3, 1.0)):
        y = op(x_true) + sigma * torch.randn(op.output_shape(x_true.shape), generator=g, dtype=torch.float64)
        mean_post, cov_post = gaussian.posterior(_matrix(op), y, sigma)
        problems.append((op, y, sigma, mean_post, cov_post))
    return problems


def _posterior_errors(gaussian, sampler, problem, n=1000):
    op, y, sigma, mean_post, _ = problem
    x = sampler(op, y.expand(n, *y.shape[1:]), sigma).reshape(n, -1)
    return (x.mean(0) - mean_post).norm().item(), (gaussian.mean - mean_post).norm().item()


def test_score_ald_approaches_the_exact_posterior_mean(gaussian, posterior_problems):
    """ScoreALD replaces p(y | x_t) by N(A x_t/√ᾱ_t, (σ² + γ_t²) I), which is not exact for a Gaussian
    prior (the exact likelihood has covariance A Cov[x_0|x_t] Aᵀ + σ²). So the sample mean is not the
    posterior mean; we require it to be much closer to it than the prior mean is (measured: 0.2-0.3 of the
    distance) -- a sampler that ignored y (error = distance) or overshot would fail."""
    for problem in posterior_problems:
        err, dist = _posterior_errors(gaussian, lambda op, y, s: score_ald(
            gaussian, op, y, num_steps=100, noise_std=s, seed=2, clip_denoised=False, progress=False).sample, problem)
        assert err < 0.45 * dist, (problem[0], err, dist)


def test_dps_moves_towards_the_exact_posterior_mean(gaussian, posterior_problems):
    """DPS plugs x̂_0 = E[x_0 | x_t] into the likelihood, ignoring the spread of x_0 given x_t, and its
    step ζ′/‖r‖ is tuned for images with many pixels; on this 16-pixel problem it is approximate.
    Expected (measured at ζ′ = 0.1: 0.1-0.25 of the distance): clearly closer than the prior mean."""
    for problem in posterior_problems:
        err, dist = _posterior_errors(gaussian, lambda op, y, s: dps(
            gaussian, op, y, num_steps=100, step_size=0.1, clip_denoised=False, seed=2, progress=False).sample, problem)
        assert err < 0.5 * dist, (problem[0], err, dist)


# ---------------------------------------------------------------- DPS gradient and conventions
def test_dps_gradient_matches_finite_differences(tiny_prior):
    tiny_prior.unet.double()
    op = GaussianBlur(3, 1.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    y = op(torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1)
    t = 300

    def f(z):
        eps = tiny_prior.eps(z, t)
        return (y - op(tiny_prior.schedule.predict_x0(z, eps, t))).flatten(1).norm(dim=1).sum()

    grad, norms, _ = dps_gradient(tiny_prior, op, y, x, t, clip_denoised=False)
    v = torch.randn(x.shape, generator=g, dtype=torch.float64)
    h = 1e-5
    with torch.no_grad():
        fd = (f(x + h * v) - f(x - h * v)) / (2 * h)
    assert float((grad * v).sum()) == pytest.approx(float(fd), rel=1e-5)
    assert norms.shape == (2,)
    tiny_prior.unet.float()


def test_dps_paper_step_equals_official_scale():
    """Paper: ζ_t ∇‖r‖² with ζ_t = ζ′/‖r‖ (held constant). Code: scale ∇‖r‖. Equal when scale = 2ζ′."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, dtype=torch.float64, generator=g, requires_grad=True)
    M = torch.randn(3, 5, dtype=torch.float64, generator=g)
    y = torch.randn(3, dtype=torch.float64, generator=g)
    r = y - M @ torch.tanh(x)
    zeta_prime = 0.7
    (g_sq,) = torch.autograd.grad(r.pow(2).sum(), x, retain_graph=True)
    (g_norm,) = torch.autograd.grad(r.norm(), x)
    paper = zeta_prime / r.norm().detach() * g_sq
    official = (2 * zeta_prime) * g_norm
    torch.testing.assert_close(paper, official)
    assert dps_zeta_from_official_scale(0.3) == pytest.approx(0.15)


def test_dps_batch_equals_single_runs(tiny_prior):
    """Each image uses its own ‖r_b‖. The official code's one norm over the batch would couple them.
    (float64, so that batched and single convolutions agree to round-off.)"""
    tiny_prior.unet.double()
    op = BoxInpainting(8, 4)
    g = torch.Generator().manual_seed(2)
    y = op.measure(torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1, noise_std=0.05, seed=1)
    batch = dps(tiny_prior, op, y, num_steps=8, step_size=1.0, seed=[10, 11], progress=False).sample
    singles = torch.cat([dps(tiny_prior, op, y[i:i + 1], num_steps=8, step_size=1.0, seed=[s], progress=False).sample
                         for i, s in enumerate((10, 11))])
    torch.testing.assert_close(batch, singles, rtol=1e-9, atol=1e-9)
    # a shared norm (the official code's) would give different images: the test above can fail
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    per_image, _, _ = dps_gradient(tiny_prior, op, y, x, 500)
    with torch.enable_grad():
        z = x.clone().requires_grad_(True)
        x0 = tiny_prior.schedule.predict_x0(z, tiny_prior.eps(z, 500), 500).clamp(-1, 1)
        (shared,) = torch.autograd.grad((y - op(x0)).norm(), z)
    assert not torch.allclose(per_image, shared, atol=1e-4)


def test_dps_same_seed_same_output(tiny_prior):
    op = Denoising()
    y = torch.zeros(1, 3, 8, 8)
    a = dps(tiny_prior, op, y, num_steps=5, seed=3, progress=False)
    b = dps(tiny_prior, op, y, num_steps=5, seed=3, progress=False)
    assert torch.equal(a.sample, b.sample)
    assert a.info["residual_norm"].shape == (5, 1)


# ---------------------------------------------------------------- ScoreALD by hand
@pytest.mark.parametrize("rule", ["langevin", "poster"])
def test_score_ald_update_equals_the_formula_by_hand(rule):
    """Two steps (t = 999 → 0 → clean) on a 1-pixel Gaussian prior with a mask operator, recomputed by hand."""
    prior = GaussianPrior(torch.tensor([0.1]), torch.tensor([[0.04]]), (1, 1, 1))
    op = RandomInpainting(1, keep_fraction=1.0)
    y = torch.tensor([[[[0.3]]]], dtype=torch.float64)
    sigma, lam = 0.05, 0.5 if rule == "langevin" else 1e-3
    out = score_ald(prior, op, y, num_steps=2, step_size=lam, noise_std=sigma, step_rule=rule,
                    seed=9, clip_denoised=False, progress=False).sample

    s = prior.schedule
    gen = torch.Generator().manual_seed(9)
    x = torch.randn((1, 1, 1, 1), generator=gen).double()
    for t, t_prev in ((999, 0), (0, -1)):
        a, a_prev = s.alpha_bar(t), s.alpha_bar(t_prev)
        # unconditional step: posterior mean of the exact Gaussian denoiser plus noise
        eps = prior.eps(x, t)
        x0 = (x - (1 - a) ** 0.5 * eps) / a**0.5
        beta = 1 - a / a_prev
        mean = a_prev**0.5 * beta / (1 - a) * x0 + (a / a_prev) ** 0.5 * (1 - a_prev) / (1 - a) * x
        if t > 0:
            mean = mean + ((1 - a_prev) / (1 - a) * beta) ** 0.5 * torch.randn((1, 1, 1, 1), generator=gen).double()
        gamma2, gamma2_prev = (1 - a) / a, (1 - a_prev) / a_prev
        x_ve = x / a**0.5
        grad = 2 * (x_ve - y)  # ∇‖x̃ − y‖² for A = I
        alpha = gamma2 - gamma2_prev if rule == "langevin" else 1.0
        x = mean - a_prev**0.5 * lam * alpha / (2 * (sigma**2 + gamma2)) * grad
    torch.testing.assert_close(out, x.clamp(-1, 1))


# ---------------------------------------------------------------- SDEdit limits
def test_sdedit_small_t0_returns_its_input_and_t0_one_ignores_it(gaussian):
    op = Denoising()
    g = torch.Generator().manual_seed(4)
    guide_a = gaussian.sample_data(8, generator=g)
    guide_b = gaussian.sample_data(8, generator=g)
    near = sdedit(gaussian, op, guide_a, start_time=1e-3, seed=0, clip_denoised=False, progress=False)
    noise_level = (1 - gaussian.schedule.alpha_bar(near.info["start_timestep"])) ** 0.5  # 0.015 at t = 1
    assert (near.sample - guide_a).abs().mean() < noise_level and (near.sample - guide_a).abs().max() < 4 * noise_level
    assert near.nfe == 1
    far_a = sdedit(gaussian, op, guide_a, start_time=1.0, num_steps=100, seed=0, clip_denoised=False, progress=False)
    far_b = sdedit(gaussian, op, guide_b, start_time=1.0, num_steps=100, seed=0, clip_denoised=False, progress=False)
    # with the same noise, two different guides give (almost) the same sample: √ᾱ_T = 0.006
    assert (far_a.sample - far_b.sample).abs().max() < 0.05 * (guide_a - guide_b).abs().max()
    assert far_a.nfe == 100


def test_sdedit_repeats_and_trajectory(tiny_prior):
    op = SuperResolution(2)
    y = op(torch.zeros(1, 3, 8, 8))
    r = sdedit(tiny_prior, op, y, start_time=0.5, num_steps=20, repeats=3, seed=0, progress=False, trajectory_every=5)
    assert r.nfe == 30 and r.info["start_timestep"] == 500
    assert r.info["guide"].shape == (1, 3, 8, 8)
    assert len(r.timesteps) >= 6


# ---------------------------------------------------------------- every operator in every guided sampler
@pytest.mark.parametrize("op", [SuperResolution(2), BoxInpainting(8, 4), RandomInpainting(8, 0.5),
                                GaussianBlur(3, 1.0), Denoising()], ids=repr)
def test_every_operator_runs_in_every_guided_sampler(tiny_prior, op):
    y = op.measure(torch.rand(2, 3, 8, 8) * 2 - 1, noise_std=0.05, seed=0)
    for run in (lambda: sdedit(tiny_prior, op, y, start_time=0.5, num_steps=6, progress=False),
                lambda: score_ald(tiny_prior, op, y, num_steps=6, progress=False),
                lambda: dps(tiny_prior, op, y, num_steps=6, progress=False)):
        out = run().sample
        assert out.shape == (2, 3, 8, 8) and torch.isfinite(out).all()


# ---------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors(tiny_prior):
    op = BoxInpainting(8, 4)
    y = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="step_size must be a finite number > 0"):
        dps(tiny_prior, op, y, step_size=0, progress=False)
    with pytest.raises(ValueError, match="step_size must be a finite number > 0"):
        score_ald(tiny_prior, op, y, step_size=-1, progress=False)
    with pytest.raises(ValueError, match="start_time"):
        sdedit(tiny_prior, op, y, start_time=0, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        dps(tiny_prior, op, torch.full((1, 3, 8, 8), float("nan")), progress=False)
    with pytest.raises(ValueError, match="measurement has shape"):
        dps(tiny_prior, SuperResolution(2), torch.zeros(1, 3, 8, 8), progress=False)
    with pytest.raises(ValueError, match="built for 16×16"):
        dps(tiny_prior, BoxInpainting(16, 4), torch.zeros(1, 3, 16, 16), progress=False)
    with pytest.raises(ValueError, match="add a batch axis"):
        dps(tiny_prior, op, torch.zeros(3, 8, 8), progress=False)
    with pytest.raises(ValueError, match="num_steps"):
        sample_ddpm(tiny_prior, 1, num_steps=5000, progress=False)
    with pytest.raises(ValueError, match="one seed per image"):
        dps(tiny_prior, op, y, seed=[1, 2], progress=False)


def test_a_diverging_sampler_names_the_step_size_and_timestep(gaussian):
    op = Denoising()
    y = torch.zeros(1, *SHAPE, dtype=torch.float64)
    with pytest.raises(SamplerDivergedError, match=r"timestep t=\d+ .*step_size=1e\+30"):
        score_ald(gaussian, op, y, num_steps=50, step_size=1e30, noise_std=0.01, step_rule="poster", progress=False)
