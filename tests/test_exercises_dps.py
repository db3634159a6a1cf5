"""The DPS chapter's checkers accept correct answers and reject wrong ones with a useful hint."""

import numpy as np
import pytest
import torch

from helpers.exercises.dps import check_dps_best_zeta, check_dps_discrepancy_zeta, check_dps_gradient, check_dps_scale
from tests.checker_asserts import fails_with, passes


_fails_with, _passes = fails_with, passes


# ---------------------------------------------------------------- ζ′ ↔ scale
def test_scale_to_zeta(capsys):
    _passes(check_dps_scale(0.15, scale=0.3), capsys)
    _passes(check_dps_scale(np.float32(0.25), scale=0.5), capsys)
    _passes(check_dps_scale(torch.tensor(2.0), zeta=1.0), capsys)


@pytest.mark.parametrize(
    "answer, kwargs, words",
    [
        (0.6, {"scale": 0.3}, ["other way"]),
        (0.3, {"scale": 0.3}, ["differ"]),
        (0.5, {"zeta": 1.0}, ["other way"]),
        (0.3 ** 0.5, {"scale": 0.3}, ["square"]),
        (7.0, {"scale": 0.3}, ["2‖r‖∇‖r‖"]),
        (..., {"scale": 0.3}, ["`...`"]),
        (None, {"scale": 0.3}, ["`...`"]),
        ("abc", {"scale": 0.3}, ["one number"]),
        (np.ones(3), {"scale": 0.3}, ["one number"]),
        (float("nan"), {"scale": 0.3}, ["finite"]),
    ],
)
def test_scale_rejects(answer, kwargs, words, capsys):
    _fails_with(check_dps_scale(answer, **kwargs), capsys, *words)


def test_scale_needs_exactly_one_given(capsys):
    _fails_with(check_dps_scale(1.0), capsys, "exactly one")
    _fails_with(check_dps_scale(1.0, scale=1.0, zeta=1.0), capsys, "exactly one")


# ---------------------------------------------------------------- the gradient
def grad_correct(prior, operator, y, x_t, t):
    x = x_t.detach().requires_grad_(True)
    eps = prior.eps(x, t)
    x0 = prior.schedule.predict_x0(x, eps, t).clamp(-1, 1)
    r = (y - operator(x0)).flatten(1).norm(dim=1)
    return torch.autograd.grad(r.sum(), x)[0]


def grad_no_clip(prior, operator, y, x_t, t):
    x = x_t.detach().requires_grad_(True)
    x0 = prior.schedule.predict_x0(x, prior.eps(x, t), t)
    return torch.autograd.grad((y - operator(x0)).flatten(1).norm(dim=1).sum(), x)[0]


def grad_score_ald(prior, operator, y, x_t, t):
    x = x_t.detach().requires_grad_(True)
    return torch.autograd.grad((y - operator(x)).flatten(1).norm(dim=1).sum(), x)[0]


def grad_squared(prior, operator, y, x_t, t):
    x = x_t.detach().requires_grad_(True)
    x0 = prior.schedule.predict_x0(x, prior.eps(x, t), t).clamp(-1, 1)
    return torch.autograd.grad(((y - operator(x0)) ** 2).sum(), x)[0]


def grad_detached(prior, operator, y, x_t, t):
    x = x_t.detach().requires_grad_(True)
    with torch.no_grad():
        eps = prior.eps(x, t)
    x0 = prior.schedule.predict_x0(x, eps, t).clamp(-1, 1)
    return torch.autograd.grad((y - operator(x0)).flatten(1).norm(dim=1).sum(), x)[0]


def grad_batch_norm(prior, operator, y, x_t, t):
    x = x_t.detach().requires_grad_(True)
    x0 = prior.schedule.predict_x0(x, prior.eps(x, t), t).clamp(-1, 1)
    return torch.autograd.grad((y - operator(x0)).norm(), x)[0]


def test_gradient_accepts_the_autograd_version(capsys):
    _passes(check_dps_gradient(grad_correct), capsys)


def test_gradient_accepts_the_helpers_version(capsys):
    from helpers.samplers import dps_gradient

    _passes(check_dps_gradient(dps_gradient), capsys)  # returns (grad, norm, eps): the first entry counts


def test_gradient_on_a_given_prior(tiny_prior, capsys):
    _passes(check_dps_gradient(grad_correct, prior=tiny_prior), capsys)


@pytest.mark.parametrize(
    "fn, words",
    [
        (grad_no_clip, ["clip"]),
        (grad_score_ald, ["ScoreALD"]),
        (grad_squared, ["squared"]),
        (grad_detached, ["detached"]),
        (grad_batch_norm, ["one norm per image"]),
        (lambda p, o, y, x, t: -grad_correct(p, o, y, x, t), ["sign"]),
        (lambda p, o, y, x, t: torch.zeros_like(x), ["zero"]),
        (lambda p, o, y, x, t: grad_correct(p, o, y, x, t)[0], ["shape"]),
        (lambda p, o, y, x, t: None, ["return"]),
        (lambda p, o, y, x, t: 1 / 0, ["ZeroDivisionError"]),
        (lambda p, o, y, x, t: grad_correct(p, o, y, x, t) + 0.1, ["wrong at t"]),
    ],
)
def test_gradient_rejects(fn, words, capsys):
    _fails_with(check_dps_gradient(fn), capsys, *words)


def test_gradient_never_crashes_on_ellipsis(capsys):
    _fails_with(check_dps_gradient(...), capsys, "function")

    def student(prior, operator, y, x_t, t):
        ...

    _fails_with(check_dps_gradient(student), capsys, "return")


# ---------------------------------------------------------------- best ζ′
ZETAS = [0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
PSNRS = np.array([[18.0, 23.0, 33.0, 36.0, 34.0, 16.0],
                  [19.0, 24.0, 35.0, 30.0, 33.0, 15.0]])  # image 0 prefers 1.0, the mean prefers 0.3


def test_best_zeta(capsys):
    _passes(check_dps_best_zeta(0.3, ZETAS, PSNRS), capsys)
    _passes(check_dps_best_zeta(ZETAS[int(np.argmax(PSNRS.mean(0)))], ZETAS, PSNRS), capsys)
    _passes(check_dps_best_zeta(10.0, ZETAS, PSNRS, higher_is_better=False, metric="LPIPS"), capsys)


def test_best_zeta_ignores_diverged_runs(capsys):
    p = PSNRS.copy()
    p[:, -1] = np.nan
    _passes(check_dps_best_zeta(0.3, ZETAS, p), capsys)
    _fails_with(check_dps_best_zeta(10.0, ZETAS, p), capsys, "diverged")


@pytest.mark.parametrize(
    "answer, words",
    [
        (1.0, ["first image only"]),
        (3.0, ["mean PSNR"]),
        (0.5, ["not one of the swept values"]),
        (..., ["`...`"]),
        ("best", ["one number"]),
    ],
)
def test_best_zeta_rejects(answer, words, capsys):
    _fails_with(check_dps_best_zeta(answer, ZETAS, PSNRS), capsys, *words)


def test_best_zeta_wrong_shape(capsys):
    _fails_with(check_dps_best_zeta(0.3, ZETAS, np.zeros((2, 3))), capsys, "shape")


def test_best_zeta_at_the_edge_says_widen(capsys):
    p = PSNRS.copy()
    p[:, -1] = 40.0                      # the largest ζ′ is best: the optimum may lie beyond the grid
    result = check_dps_best_zeta(10.0, ZETAS, p)
    out = capsys.readouterr().out
    assert result and out.startswith("Correct: ") and "edge" in out and "widen" in out and "edge" in result.message
    _passes(check_dps_best_zeta(0.3, ZETAS, PSNRS), capsys)   # an interior optimum: no note
    assert "edge" not in check_dps_best_zeta(0.3, ZETAS, PSNRS).message


# ---------------------------------------------------------------- ζ′ by the discrepancy principle
RESIDUALS = np.array([[6.5, 3.1, 2.85, 2.6, 3.1, 5.3],
                      [6.7, 2.9, 2.75, 2.7, 3.3, 5.5]])   # means 6.6, 3.0, 2.8, 2.65, 3.2, 5.4
NOISE = 2.78


def test_discrepancy_zeta(capsys):
    _passes(check_dps_discrepancy_zeta(0.3, ZETAS, RESIDUALS, NOISE), capsys)
    _passes(check_dps_discrepancy_zeta(np.float64(0.3), ZETAS, RESIDUALS.mean(0), NOISE), capsys)


def test_discrepancy_ignores_diverged_runs(capsys):
    r = RESIDUALS.copy()
    r[:, 2] = np.nan
    _passes(check_dps_discrepancy_zeta(1.0, ZETAS, r, NOISE), capsys)      # |2.65 − 2.78| < |3.0 − 2.78|
    _fails_with(check_dps_discrepancy_zeta(0.3, ZETAS, r, NOISE), capsys, "diverged")


@pytest.mark.parametrize(
    "answer, words",
    [
        (1.0, ["fitting the noise", "closest"]),      # the smallest residual, below the noise
        (10.0, ["away from the noise norm"]),
        (0.5, ["not one of the swept values"]),
        (..., ["`...`"]),
        ("x", ["one finite number"]),
    ],
)
def test_discrepancy_rejects(answer, words, capsys):
    _fails_with(check_dps_discrepancy_zeta(answer, ZETAS, RESIDUALS, NOISE), capsys, *words)


def test_discrepancy_bad_inputs(capsys):
    _fails_with(check_dps_discrepancy_zeta(0.3, ZETAS, np.zeros((2, 3)), NOISE), capsys, "shape")
    _fails_with(check_dps_discrepancy_zeta(0.3, ZETAS, RESIDUALS, -1.0), capsys, "positive")
    _fails_with(check_dps_discrepancy_zeta(0.3, ZETAS, np.full((2, 6), np.nan), NOISE), capsys, "diverged")
