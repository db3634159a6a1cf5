"""Samplers against closed forms: an exact Gaussian prior, finite differences, hand-computed steps."""

import pytest
import torch

from helpers.operators import BoxInpainting, Denoising, GaussianBlur, Operator, RandomInpainting, SuperResolution
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
class _Scale(Operator):
    """A x = c·x: A Aᵀ = c² I, so the operator weight is 1/(σ_y² + γ_t² c²) (found by the generic aat_diagonal)."""

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        return self.c * x


@pytest.mark.parametrize("corrector_steps", [0, 2])
@pytest.mark.parametrize("weight", ["operator", "orthonormal"])
@pytest.mark.parametrize("rule", ["langevin", "poster"])
@pytest.mark.parametrize("c", [1.0, 0.5])
def test_score_ald_update_equals_the_formula_by_hand(rule, weight, corrector_steps, c):
    """Two steps (t = 999 → 0 → clean) on a 1-pixel Gaussian prior with A x = c·x, recomputed by hand from the
    docstring's equations: predictor, operator or poster weight, and Langevin corrector steps at level 0."""
    prior = GaussianPrior(torch.tensor([0.1]), torch.tensor([[0.04]]), (1, 1, 1))
    op = RandomInpainting(1, keep_fraction=1.0) if c == 1.0 else _Scale(c)
    y = torch.tensor([[[[0.3]]]], dtype=torch.float64)
    sigma, lam, eta = 0.05, 0.5 if rule == "langevin" else 1e-3, 2e-5
    res = score_ald(prior, op, y, num_steps=2, step_size=lam, noise_std=sigma, step_rule=rule, likelihood_weight=weight,
                    corrector_steps=corrector_steps, corrector_step_size=eta, seed=9, clip_denoised=False,
                    progress=False)
    assert res.nfe == 2 + corrector_steps  # correctors run at level 0 only (none after the last step)

    s = prior.schedule
    g2 = c**2 if weight == "operator" else 1.0  # (A Aᵀ)_ii
    gamma2_last = 1 / s.alpha_bar(0) - 1
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
        grad = 2 * c * (c * x_ve - y) / (2 * (sigma**2 + gamma2 * g2))  # ∇ (c x̃ − y)²/(2(σ² + γ² g))
        alpha = gamma2 - gamma2_prev if rule == "langevin" else 1.0
        x = mean - a_prev**0.5 * lam * alpha * grad
        if t_prev >= 0:  # ALD corrector at the level just reached
            step = eta * gamma2_prev / gamma2_last
            for _ in range(corrector_steps):
                x_ve = x / a_prev**0.5
                score = -prior.eps(x, t_prev) / gamma2_prev**0.5
                lik = lam * 2 * c * (c * x_ve - y) / (2 * (sigma**2 + gamma2_prev * g2))
                x_ve = x_ve + step * (score - lik) + (2 * step) ** 0.5 * torch.randn((1, 1, 1, 1), generator=gen).double()
                x = a_prev**0.5 * x_ve
    torch.testing.assert_close(res.sample, x.clamp(-1, 1))


# ---------------------------------------------------------------- ScoreALD: the likelihood weight
def test_score_ald_operator_weight_equals_the_posters_for_denoising(gaussian):
    """A = I has A Aᵀ = I: the two weights are the same formula, and the results are equal bit for bit
    (with and without corrector steps)."""
    y = gaussian.sample_data(3, generator=torch.Generator().manual_seed(5)) + 0.1
    for m in (0, 2):
        runs = [score_ald(gaussian, Denoising(), y, num_steps=30, noise_std=0.1, likelihood_weight=w, corrector_steps=m,
                          seed=4, clip_denoised=False, progress=False, trajectory_every=1) for w in ("operator", "orthonormal")]
        assert torch.equal(runs[0].sample, runs[1].sample)
        assert all(torch.equal(p, q) for p, q in zip(runs[0].trajectory_x, runs[1].trajectory_x))


def test_score_ald_operator_weight_for_super_resolution_is_the_formulas():
    """×4 average pooling has A Aᵀ = I/16, so every measured value has variance σ_y² + γ_t²/16, and the
    operator-weighted likelihood step is the poster's times (σ_y² + γ_t²)/(σ_y² + γ_t²/16): almost 16 at
    t = 999. Checked on the first step, against the unconditional DDPM step drawn from the same noise."""
    prior = GaussianPrior(torch.zeros(64), 0.04 * torch.eye(64, dtype=torch.float64), (1, 8, 8))
    op = SuperResolution(4)
    y = op(prior.sample_data(2, generator=torch.Generator().manual_seed(1))) + 0.05
    sigma, steps = 0.05, 10
    kw = dict(num_steps=steps, noise_std=sigma, seed=[7, 8], clip_denoised=False, progress=False, trajectory_every=1)
    first = {w: score_ald(prior, op, y, likelihood_weight=w, **kw).trajectory_x[0] for w in ("operator", "orthonormal")}
    ddpm = sample_ddpm(prior, 2, num_steps=steps, seed=[7, 8], clip_denoised=False, progress=False, trajectory_every=1)
    unconditional = ddpm.trajectory_x[1]  # the DDPM step from the same x_T with the same noise
    t = prior.schedule.timesteps(steps)[0]
    gamma2 = 1 / prior.schedule.alpha_bar(t) - 1
    ratio = (sigma**2 + gamma2) / (sigma**2 + gamma2 / 16)
    step_orth, step_op = first["orthonormal"] - unconditional, first["operator"] - unconditional
    assert step_orth.abs().max() > 1e-3  # the likelihood step is not negligible
    # the trajectory is stored in float32: allow its rounding (2⁻²⁴ of each stored value) and nothing more
    eps32 = 2.0**-24
    bound = eps32 * (first["operator"].abs() + unconditional.abs() + ratio * (first["orthonormal"].abs() + unconditional.abs()))
    assert ((step_op - ratio * step_orth).abs() <= 2 * bound).all()
    assert not torch.allclose(step_op, step_orth, rtol=0.5)  # the poster's weight would give a 16× smaller step
    assert ratio > 15.9


def _posterior_se(problem, n=1000):
    """Standard error of the norm of a sample mean of n exact posterior draws: √(tr Σ_post / n)."""
    return float(problem[4].trace() / n) ** 0.5


def test_score_ald_operator_weight_is_closer_to_the_posterior_for_the_blur(gaussian, posterior_problems):
    """For the blur A Aᵀ ≠ I (Σ k² ≈ 0.2 inside, folded at the reflected borders): the poster's weight
    under-weights the measurement. Measured: 0.24 of the distance with the operator weight, 0.38 without."""
    _, blur = posterior_problems
    n = 4000
    errs = {w: _posterior_errors(gaussian, lambda op, y, s: score_ald(
        gaussian, op, y, num_steps=100, noise_std=s, likelihood_weight=w, seed=2, clip_denoised=False,
        progress=False).sample, blur, n=n)[0] for w in ("operator", "orthonormal")}
    assert errs["operator"] < errs["orthonormal"] - 3 * _posterior_se(blur, n), errs


# ---------------------------------------------------------------- ScoreALD: corrector steps (ALD)
def test_score_ald_with_correctors_approaches_the_exact_posterior_mean(gaussian, posterior_problems):
    """Annealed Langevin dynamics (2 corrector steps per level) meets the predictor's tolerance and is no
    further from the posterior mean than the predictor alone, up to Monte-Carlo error.
    Measured (1 and 3 steps): 0.16-0.21 of the distance, the predictor 0.21-0.24."""
    for problem in posterior_problems:
        def run(m):
            return _posterior_errors(gaussian, lambda op, y, s: score_ald(
                gaussian, op, y, num_steps=100, noise_std=s, corrector_steps=m, seed=2, clip_denoised=False,
                progress=False).sample, problem)
        (err, dist), (err_predictor, _) = run(2), run(0)
        assert err < 0.45 * dist, (problem[0], err, dist)
        assert err < err_predictor + 3 * _posterior_se(problem), (problem[0], err, err_predictor)


def test_score_ald_corrector_counts_network_evaluations_and_checks_arguments(tiny_prior):
    op = GaussianBlur(3, 1.0)
    y = op(torch.zeros(1, 3, 8, 8))
    r = score_ald(tiny_prior, op, y, num_steps=6, step_size=0.1, corrector_steps=3, progress=False)
    assert r.nfe == 6 + 3 * 5 and r.info["corrector_steps"] == 3
    assert score_ald(tiny_prior, op, y, num_steps=6, step_size=0.1, progress=False).nfe == 6
    with pytest.raises(ValueError, match="likelihood_weight"):
        score_ald(tiny_prior, op, y, num_steps=2, likelihood_weight="poster", progress=False)
    with pytest.raises(ValueError, match="corrector_steps"):
        score_ald(tiny_prior, op, y, num_steps=2, corrector_steps=-1, progress=False)
    with pytest.raises(ValueError, match="corrector_step_size"):
        score_ald(tiny_prior, op, y, num_steps=2, corrector_steps=1, corrector_step_size=0, progress=False)


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
                # λ = 0.1: with 6 steps the operator weight of the blur (1/Σk² = 8) makes λ = 1 run away
                # (RMS 1e4 × a healthy iterate), which the divergence bound now reports
                lambda: score_ald(tiny_prior, op, y, num_steps=6, step_size=0.1, progress=False),
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


def test_in_batches_equals_one_call(tiny_prior):
    from helpers.samplers import in_batches, score_ald

    op = GaussianBlur(kernel_size=3, std=1.0)
    y = op.measure(torch.rand(5, 3, 8, 8) * 2 - 1, noise_std=0.05, seed=1)
    seeds = [3, 4, 5, 6, 7]
    for sampler, kw in ((dps, {"step_size": 1.0}), (score_ald, {"step_size": 0.01, "noise_std": 0.5})):
        whole = sampler(tiny_prior, op, y, num_steps=6, seed=seeds, trajectory_every=2, progress=False, **kw)
        parts = in_batches(sampler, tiny_prior, op, y, seed=seeds, batch_size=2, num_steps=6, trajectory_every=2,
                           progress=False, **kw)
        torch.testing.assert_close(parts.sample, whole.sample, atol=1e-5, rtol=1e-5)
        assert parts.timesteps == whole.timesteps and parts.nfe == whole.nfe
        for a, b in zip(parts.trajectory_x, whole.trajectory_x):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        for key, value in whole.info.items():
            if torch.is_tensor(value) and value.ndim == 2:
                torch.testing.assert_close(parts.info[key], value, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="one per image"):
        in_batches(dps, tiny_prior, op, y, seed=0, batch_size=2, num_steps=2)
