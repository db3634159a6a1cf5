"""The exercise checkers accept correct answers and reject wrong ones with a useful hint."""

import numpy as np
import pytest
import torch

from helpers.exercises.ddpm_basics import check_alpha_bar, check_ddpm_step, check_x0_estimate
from helpers.exercises.unconditional import check_ddim_deterministic, check_ddim_step
from helpers.schedule import NoiseSchedule
from tests.checker_asserts import fails_with, passes

SCHED = NoiseSchedule.linear()
BETAS = np.linspace(1e-4, 0.02, 1000)


def _a(t):
    return 1.0 if t < 0 else float(np.prod(1 - BETAS[: t + 1]))


# ---------------------------------------------------------------- answers written as a student would
def x0_correct(x_t, eps, t):
    a = _a(t)
    return (x_t - (1 - a) ** 0.5 * eps) / a**0.5


def ddpm_step_correct(x_t, eps, t, t_prev, noise):
    a_t, a_prev = _a(t), _a(t_prev)
    beta = 1 - a_t / a_prev
    x0 = ((x_t - (1 - a_t) ** 0.5 * eps) / a_t**0.5).clamp(-1, 1)
    mean = a_prev**0.5 * beta / (1 - a_t) * x0 + (a_t / a_prev) ** 0.5 * (1 - a_prev) / (1 - a_t) * x_t
    if t_prev == -1:  # the last step, to the clean image: no noise
        return mean
    return mean + ((1 - a_prev) / (1 - a_t) * beta) ** 0.5 * noise


def ddim_step_correct(x_t, eps, t, t_prev):
    a_t, a_prev = _a(t), _a(t_prev)
    x0 = (x_t - (1 - a_t) ** 0.5 * eps) / a_t**0.5
    return a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps


def ddim_loop_correct(prior, x, num_steps):
    ts = prior.schedule.timesteps(num_steps)
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        x = prior.schedule.ddim_step(prior.eps(x, t), t, t_prev, x).prev_sample
    return x


_fails_with, _passes = fails_with, passes


# ---------------------------------------------------------------- ᾱ_t
def test_alpha_bar_accepts_the_product(capsys):
    _passes(check_alpha_bar(500, np.prod(1 - BETAS[:501])), capsys)
    _passes(check_alpha_bar(999, torch.tensor(_a(999))), capsys)  # 0-d tensors are fine


@pytest.mark.parametrize(
    "value, words",
    [
        (1 - BETAS[500], ["α_t = 1 − β_t"]),  # one factor only
        (np.prod(1 - BETAS[:500]), ["t + 1 factors"]),  # off by one
        (np.prod(1 - BETAS[:501]) ** 0.5, ["√ᾱ_t"]),
        (1 - np.prod(1 - BETAS[:501]), ["1 − ᾱ_t"]),
        (0.9, ["you gave 0.9"]),
        ("half", ["one number"]),
        (..., ["replace the `...`"]),
    ],
)
def test_alpha_bar_rejects_with_a_hint(value, words, capsys):
    _fails_with(check_alpha_bar(500, value), capsys, *words)


def test_alpha_bar_rejects_a_bad_t(capsys):
    _fails_with(check_alpha_bar(1000, 0.5), capsys, "between 0 and 999")


# ---------------------------------------------------------------- x̂_0
def test_x0_estimate_accepts_the_formula_and_the_schedule(capsys):
    _passes(check_x0_estimate(x0_correct), capsys)
    _passes(check_x0_estimate(SCHED.predict_x0), capsys)


@pytest.mark.parametrize(
    "fn, words",
    [
        (lambda x, e, t: x - (1 - _a(t)) ** 0.5 * e, ["divide by √ᾱ_t"]),
        (lambda x, e, t: (x - (1 - _a(t)) * e) / _a(t) ** 0.5, ["standard deviation"]),
        (lambda x, e, t: x0_correct(x, e, t).clamp(-1, 1), ["clipped"]),
        (lambda x, e, t: (x + (1 - _a(t)) ** 0.5 * e) / _a(t) ** 0.5, ["sign"]),
        (lambda x, e, t: x, ["wrong at t ="]),
        (lambda x, e, t: None, ["`return`"]),
        (lambda x, e: x, ["raised TypeError", "fn(x_t, eps, t)"]),
        (lambda x, e, t: x[0], ["shape"]),
    ],
)
def test_x0_estimate_rejects_with_a_hint(fn, words, capsys):
    _fails_with(check_x0_estimate(fn), capsys, *words)


# ---------------------------------------------------------------- DDPM step
def test_ddpm_step_accepts_hand_and_schedule_steps(capsys):
    _passes(check_ddpm_step(ddpm_step_correct), capsys)
    # unclipped x̂_0 is accepted too, and so is a thin wrapper around the schedule
    _passes(check_ddpm_step(lambda x, e, t, tp, z: SCHED.ddpm_step(e, t, tp, x, z, clip_sample=False)), capsys)


def _no_noise(x, e, t, tp, z):
    return ddpm_step_correct(x, e, t, tp, torch.zeros_like(z))


def _unit_beta(x, e, t, tp, z):  # Ho et al.'s eq. 7 with β_t, α_t of one step, whatever t_prev is
    beta, a_t = BETAS[t], _a(t)
    a_prev = _a(t - 1) if t > 0 else 1.0
    x0 = ((x - (1 - a_t) ** 0.5 * e) / a_t**0.5).clamp(-1, 1)
    mean = a_prev**0.5 * beta / (1 - a_t) * x0 + (1 - beta) ** 0.5 * (1 - a_prev) / (1 - a_t) * x
    return mean + (((1 - a_prev) / (1 - a_t) * beta) ** 0.5 * z if t > 0 else 0)


def _fixed_large(x, e, t, tp, z):
    mean = ddpm_step_correct(x, e, t, tp, torch.zeros_like(z))
    return mean + ((1 - _a(t) / _a(tp)) ** 0.5 * z if t > 0 else 0)


def _python_last_entry(x, e, t, tp, z):
    acp = np.cumprod(1 - BETAS)
    a_t, a_prev = acp[t], acp[tp]  # acp[-1] is ᾱ_999, not 1
    beta = 1 - a_t / a_prev
    x0 = ((x - (1 - a_t) ** 0.5 * e) / a_t**0.5).clamp(-1, 1)
    mean = a_prev**0.5 * beta / (1 - a_t) * x0 + (a_t / a_prev) ** 0.5 * (1 - a_prev) / (1 - a_t) * x
    return mean if tp == -1 else mean + ((1 - a_prev) / (1 - a_t) * beta) ** 0.5 * z


@pytest.mark.parametrize(
    "fn, words",
    [
        (_no_noise, ["forgot the noise"]),
        (_unit_beta, ["strides", "effective"]),
        (_fixed_large, ["fixed_large"]),
        (_python_last_entry, ["alphas_cumprod[-1]", "alpha_bar(t_prev)"]),
        (lambda x, e, t, tp, z: x, ["wrong on the steps"]),
        (lambda x, e, t, tp: x, ["raised TypeError"]),
    ],
)
def test_ddpm_step_rejects_with_a_hint(fn, words, capsys):
    _fails_with(check_ddpm_step(fn), capsys, *words)


# ---------------------------------------------------------------- DDIM step
def test_ddim_step_accepts(capsys):
    _passes(check_ddim_step(ddim_step_correct), capsys)
    _passes(check_ddim_step(lambda x, e, t, tp: SCHED.ddim_step(e, t, tp, x, eta=0.0)), capsys)


@pytest.mark.parametrize(
    "fn, words",
    [
        (lambda x, e, t, tp: SCHED.ddpm_step(e, t, tp, x, noise=None).prev_sample, ["DDPM posterior mean"]),
        (lambda x, e, t, tp: _a(tp) ** 0.5 * x0_correct(x, e, t) + (1 - _a(tp)) * e, ["standard deviation"]),
        (lambda x, e, t, tp: _a(tp) ** 0.5 * x0_correct(x, e, t), ["direction"]),
        (lambda x, e, t, tp: x * 0.5, ["wrong on the steps"]),
    ],
)
def test_ddim_step_rejects_with_a_hint(fn, words, capsys):
    _fails_with(check_ddim_step(fn), capsys, *words)


# ---------------------------------------------------------------- DDIM loop
def test_ddim_deterministic_accepts_a_ddim_loop(capsys):
    _passes(check_ddim_deterministic(ddim_loop_correct), capsys)


def _ddpm_loop(prior, x, num_steps):  # draws fresh noise: not deterministic
    ts = prior.schedule.timesteps(num_steps)
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        z = torch.randn_like(x)
        x = prior.schedule.ddpm_step(prior.eps(x, t), t, t_prev, x, noise=z).prev_sample
    return x


def _ignores_x_T(prior, x, num_steps):
    from helpers.samplers import sample_ddim

    return sample_ddim(prior, x.shape[0], num_steps, seed=123, progress=False).sample


def _leading(prior, x, num_steps):
    ts = prior.schedule.timesteps(num_steps, spacing="leading")
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        x = prior.schedule.ddim_step(prior.eps(x, t), t, t_prev, x).prev_sample
    return x


def _skips_last_step(prior, x, num_steps):
    ts = prior.schedule.timesteps(num_steps)
    for t, t_prev in zip(ts[:-1], ts[1:]):
        x = prior.schedule.ddim_step(prior.eps(x, t), t, t_prev, x).prev_sample
    return x


@pytest.mark.parametrize(
    "fn, words",
    [
        (_ddpm_loop, ["different images", "eta=0"]),
        (_ignores_x_T, ["same image for a different x_T"]),
        (_leading, ["leading"]),
        (_skips_last_step, ["−1 after the last one"]),
    ],
)
def test_ddim_deterministic_rejects_with_a_hint(fn, words, capsys):
    _fails_with(check_ddim_deterministic(fn), capsys, *words)


def test_result_displays_nothing_but_is_boolean(capsys):
    r = check_alpha_bar(0, 1 - 1e-4)
    capsys.readouterr()
    assert r.passed and bool(r) and r._ipython_display_() is None
    assert repr(r) == "CheckResult(passed=True)"


# ---------------------------------------------------------------- SDEdit checkers
from helpers.exercises.sdedit import check_sdedit_best_t0, check_sdedit_start  # noqa: E402


def sdedit_start_correct(x, noise, t0, schedule):
    s = round(t0 * (schedule.num_train_timesteps - 1))
    a = schedule.alpha_bar(s)
    return a**0.5 * x + (1 - a) ** 0.5 * noise


def test_check_sdedit_start_accepts_and_matches_sampler(capsys):
    assert check_sdedit_start(sdedit_start_correct)
    assert capsys.readouterr().out.startswith("Correct: ")


def test_check_sdedit_start_rejects_with_hints(capsys):
    def no_sqrt(x, noise, t0, schedule):
        a = schedule.alpha_bar(round(t0 * (schedule.num_train_timesteps - 1)))
        return a * x + (1 - a) * noise

    def uses_T(x, noise, t0, schedule):
        return schedule.add_noise(x, noise, min(999, round(t0 * schedule.num_train_timesteps)))

    _fails_with(check_sdedit_start(no_sqrt), capsys, "square roots")
    _fails_with(check_sdedit_start(uses_T), capsys, "T − 1")
    _fails_with(check_sdedit_start(lambda x, noise, t0, schedule: x), capsys, "guide itself")
    _fails_with(check_sdedit_start(lambda x, noise, t0, schedule: None), capsys, "None")
    _fails_with(check_sdedit_start(lambda x, noise, t0, schedule: 1 / 0), capsys, "ZeroDivisionError")


def test_check_sdedit_best_t0(capsys):
    t0s = [0.1, 0.2, 0.3]
    psnr_values = np.array([[20.0, 22.0, 18.0], [21.0, 21.5, 19.0]])
    assert check_sdedit_best_t0(0.2, t0s, psnr_values)
    assert capsys.readouterr().out.startswith("Correct: ")
    assert check_sdedit_best_t0(0.3, t0s, psnr_values, higher_is_better=False, metric="LPIPS")
    capsys.readouterr()
    _fails_with(check_sdedit_best_t0(0.1, t0s, psnr_values), capsys, "arg max")
    _fails_with(check_sdedit_best_t0(..., t0s, psnr_values), capsys, "`...`")
    _fails_with(check_sdedit_best_t0(0.25, t0s, psnr_values), capsys, "not one of")
    _fails_with(check_sdedit_best_t0("a", t0s, psnr_values), capsys, "number")
    _fails_with(check_sdedit_best_t0(0.2, t0s, np.zeros((2, 4))), capsys, "shape")


# ---------------------------------------------------------------------------- chapter 1
def _measured_noise_psnr(x, sigma, seed):
    """A student's measured answer: noise σ_y in model space, PSNR in image space (to_image_space clips)."""
    from helpers.data import to_image_space
    from helpers.metrics import psnr

    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return float(psnr(to_image_space(x + sigma * noise), to_image_space(x), data_range=1.0)[0])


def _chapter_image():
    from helpers.data import face_photo, to_model_space

    return to_model_space(torch.as_tensor(face_photo("astronaut", 64)))[None]


@pytest.mark.parametrize("sigma", [0.05, 0.2])
def test_check_noise_psnr_accepts_answers_measured_over_many_seeds(sigma, capsys):
    from helpers.exercises.introduction import check_noise_psnr, noise_psnr_range

    x = _chapter_image()
    measured = [_measured_noise_psnr(x, sigma, seed) for seed in range(1000, 1100)]  # not the checker's seeds
    closed = 20 * np.log10(2 / sigma)
    assert np.mean(measured) > closed  # clipping to [0, 1] only removes noise: on average measured values lie above
    assert all(check_noise_psnr(v, sigma, x) for v in measured)
    assert check_noise_psnr(closed, sigma, x) and check_noise_psnr(np.float64(closed), sigma)
    r = noise_psnr_range(x, sigma)
    assert closed < r["min"] <= r["mean"] <= r["max"] and r["n_seeds"] == 20
    assert min(measured) < r["min"] or max(measured) > r["max"]  # other draws fall outside the checker's 20, yet pass
    assert "measured on this image" in check_noise_psnr(measured[0], sigma, x).message
    capsys.readouterr()


def test_check_noise_psnr_accepts_an_unclipped_measurement():
    from helpers.exercises.introduction import check_noise_psnr

    x = torch.zeros(1, 3, 64, 64)  # mid-grey: no clipping; the measured PSNR scatters around the closed form
    measured = [_measured_noise_psnr(x, 0.05, seed) for seed in range(100)]
    assert all(check_noise_psnr(v, 0.05, x) for v in measured)
    assert all(check_noise_psnr(v, 0.05) for v in measured)  # without the image: closed form ± 3 s.d.


@pytest.mark.parametrize(
    "value, words",
    [
        (20 * np.log10(1 / 0.05), ["model space", "σ_y / 2"]),  # forgot the model→image factor
        (10 * np.log10(2 / 0.05), ["squared"]),
        (20 * np.log10(4 / 0.05), ["halved the noise twice"]),
        (40.0, ["above the accepted range"]),
        (31.5, ["below the accepted range"]),
        (..., ["`...`"]),
        ("a lot", ["one number"]),
        (float("inf"), ["finite"]),
    ],
)
def test_check_noise_psnr_rejects_with_a_hint(value, words, capsys):
    from helpers.exercises.introduction import check_noise_psnr

    _fails_with(check_noise_psnr(value, 0.05, _chapter_image()), capsys, *words)


def test_check_noise_psnr_needs_a_positive_sigma():
    from helpers.exercises.introduction import check_noise_psnr

    with pytest.raises(ValueError, match="noise_std"):
        check_noise_psnr(30.0, 0)


def test_check_kept_fraction_agrees_with_the_operators():
    from helpers.exercises.introduction import check_kept_fraction
    from helpers.operators import BoxInpainting, RandomInpainting, SuperResolution

    size = 64
    x = torch.ones(1, 1, size, size)
    measured = {
        "box": float((BoxInpainting(size, size // 2).forward(x) != 0).float().mean()),
        "random": float((RandomInpainting(size, keep_fraction=0.3, seed=0).forward(x) != 0).float().mean()),
        "sr4": SuperResolution(4).forward(x).numel() / x.numel(),
    }
    assert check_kept_fraction(measured)
    wrong = dict(measured, box=0.5)
    res = check_kept_fraction(wrong)
    assert not res and "half the side" in res.message
    assert not check_kept_fraction({"box": 0.75})
    assert not check_kept_fraction({"box": ..., "random": 0.3, "sr4": 0.0625})
    assert not check_kept_fraction([0.75, 0.3, 0.0625])


# ---------------------------------------------------------------- checkers follow the prior's schedule, not the default
COSINE = NoiseSchedule.from_config({"beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 1000})
SHORT = NoiseSchedule.linear(200, beta_start=1e-3, beta_end=0.05)


def _students_answers(sched):
    """Answers written with ``sched`` (as a chapter's student would with ``schedule = prior.schedule``)."""
    a = sched.alpha_bar

    def x0(x, e, t):
        return (x - (1 - a(t)) ** 0.5 * e) / a(t) ** 0.5

    def ddpm(x, e, t, tp, z):
        beta = 1 - a(t) / a(tp)
        mean = a(tp) ** 0.5 * beta / (1 - a(t)) * x0(x, e, t).clamp(-1, 1) + (a(t) / a(tp)) ** 0.5 * (1 - a(tp)) / (1 - a(t)) * x
        return mean if tp == -1 else mean + ((1 - a(tp)) / (1 - a(t)) * beta) ** 0.5 * z

    def ddim(x, e, t, tp):
        return a(tp) ** 0.5 * x0(x, e, t) + (1 - a(tp)) ** 0.5 * e

    return x0, ddpm, ddim


@pytest.mark.parametrize("sched", [COSINE, SHORT], ids=["cosine", "linear-T200"])
def test_checkers_use_the_schedule_they_are_given(sched, capsys):
    x0, ddpm, ddim = _students_answers(sched)
    t = sched.num_train_timesteps // 2
    _passes(check_alpha_bar(t, sched.alpha_bar(t), sched), capsys)
    _passes(check_alpha_bar(t, float(np.prod(1 - sched.betas.numpy()[: t + 1])), sched), capsys)
    _passes(check_x0_estimate(x0, sched), capsys)
    _passes(check_ddpm_step(ddpm, sched), capsys)
    _passes(check_ddim_step(ddim, sched), capsys)
    _passes(check_ddim_deterministic(ddim_loop_correct, schedule=sched), capsys)
    # the same answers written with the default linear schedule are wrong for this prior
    lin_x0, lin_ddpm, lin_ddim = _students_answers(SCHED)
    if sched is COSINE:
        _fails_with(check_alpha_bar(t, SCHED.alpha_bar(t), sched), capsys, "schedule.betas")
        _fails_with(check_x0_estimate(lin_x0, sched), capsys)
        _fails_with(check_ddpm_step(lin_ddpm, sched), capsys)
        _fails_with(check_ddim_step(lin_ddim, sched), capsys)
    # and answers with the given schedule fail against the default one
    _fails_with(check_ddim_step(ddim, None) if sched is COSINE else check_alpha_bar(t, sched.alpha_bar(t)), capsys)


def test_ddim_deterministic_on_a_prior_uses_its_schedule(capsys):
    from helpers.exercises.unconditional import _small_gaussian_prior

    prior = _small_gaussian_prior(COSINE)
    assert prior.schedule is COSINE
    _passes(check_ddim_deterministic(ddim_loop_correct, prior=prior), capsys)

    def linear_loop(prior, x, num_steps):  # ignores prior.schedule
        ts = SCHED.timesteps(num_steps)
        for t, t_prev in zip(ts, ts[1:] + [-1]):
            x = SCHED.ddim_step(prior.eps(x, t), t, t_prev, x).prev_sample
        return x

    _fails_with(check_ddim_deterministic(linear_loop, prior=prior), capsys, "not the DDIM image")
    with pytest.raises(ValueError, match="either a prior or a schedule"):
        check_ddim_deterministic(ddim_loop_correct, prior=prior, schedule=SCHED)


def test_ddpm_step_last_step_from_a_strided_t(capsys):
    """The last step reaches the clean image from any t (a strided sampler), with no noise."""
    def noise_unless_t0(x, e, t, tp, z):  # adds (β_eff-sized) noise on a strided last step
        out = ddpm_step_correct(x, e, t, tp, z)
        return out + ((1 - _a(t)) ** 0.5 * z if tp == -1 and t > 0 else 0)

    _fails_with(check_ddpm_step(noise_unless_t0), capsys, "t_prev == −1")


# ---------------------------------------------------------------- DDPM basics exercise 4: L_simple at one t
def test_check_loss_at(capsys):
    from helpers.exercises.ddpm_basics import check_loss_at, loss_at

    def mine(prior, x0, t, eps):
        a = prior.schedule.alpha_bar(t)
        x_t = a**0.5 * x0 + (1 - a) ** 0.5 * eps
        return ((prior.eps(x_t, t) - eps) ** 2).mean()

    _passes(check_loss_at(mine), capsys)
    _passes(check_loss_at(loss_at, schedule=COSINE), capsys)
    _fails_with(check_loss_at(lambda p, x0, t, e: loss_at(p, x0, t, e) * e.numel()), capsys, "mean")

    def no_sqrt(prior, x0, t, eps):
        a = prior.schedule.alpha_bar(t)
        return ((prior.eps(a * x0 + (1 - a) * eps, t) - eps) ** 2).mean()

    def x0_target(prior, x0, t, eps):
        x_t = prior.schedule.add_noise(x0, eps, t)
        return ((prior.schedule.predict_x0(x_t, prior.eps(x_t, t), t) - x0) ** 2).mean()

    _fails_with(check_loss_at(no_sqrt), capsys, "square roots")
    _fails_with(check_loss_at(x0_target), capsys, "compares noises")
    _fails_with(check_loss_at(lambda p, x0, t, e: None), capsys, "`return`")
    _fails_with(check_loss_at(lambda p, x0, t, e: (e - e) ** 2), capsys, "one number")
    _fails_with(check_loss_at(lambda p, x0, t: 0.0), capsys, "raised TypeError")
    _fails_with(check_loss_at(lambda p, x0, t, e: 1.0), capsys, "L_simple is")


# ---------------------------------------------------------------- unconditional exercise 3: η versus DDPM
def test_check_eta_like_ddpm(capsys):
    from helpers.exercises.unconditional import _small_gaussian_prior, check_eta_like_ddpm, ddim_ddpm_distances

    d = ddim_ddpm_distances(_small_gaussian_prior(), num_steps=10)
    assert min(d, key=d.get) == 1.0 and d[1.0] < d[0.5] < d[0.0]
    _passes(check_eta_like_ddpm(1), capsys)
    _passes(check_eta_like_ddpm(1.0, schedule=COSINE), capsys)
    _fails_with(check_eta_like_ddpm(0), capsys, "draws no noise")
    _fails_with(check_eta_like_ddpm(0.5), capsys, "variance")
    _fails_with(check_eta_like_ddpm(2), capsys, "not one of")
    _fails_with(check_eta_like_ddpm(...), capsys, "`...`")
    _fails_with(check_eta_like_ddpm("one"), capsys, "one number")
