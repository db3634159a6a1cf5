"""The ScoreALD chapter's checkers accept correct answers and reject typical wrong ones with a hint."""

import math

import numpy as np
import pytest
import torch

from helpers.exercises.score_ald import ald_weight, check_ald_likelihood_grad, check_ald_weight, check_best_step_size
from helpers.operators import GaussianBlur
from helpers.schedule import NoiseSchedule
from tests.checker_asserts import fails_with, passes

SCHED = NoiseSchedule.linear()
BETAS = np.linspace(1e-4, 0.02, 1000)


def _a(t):
    return float(np.prod(1 - BETAS[: t + 1]))


_fails_with, _passes = fails_with, passes


# ---------------------------------------------------------------- the weight 1/(2(σ_y² + γ_t²))
def weight_correct(t, noise_std, schedule):
    a = schedule.alpha_bar(t)
    gamma2 = (1 - a) / a
    return 1 / (2 * (noise_std**2 + gamma2))


def test_weight_reference_matches_the_sampler_schedule():
    # γ_t of the schedule (what score_ald uses) and the closed form agree
    for t in (0, 10, 500, 999):
        gamma = float(SCHED.noise_to_signal[t])
        assert math.isclose(ald_weight(t, 0.05, SCHED), 1 / (2 * (0.05**2 + gamma**2)), rel_tol=1e-12)


def test_weight_accepts_correct_answers(capsys):
    _passes(check_ald_weight(weight_correct), capsys)
    # the schedule's table, a tensor output and numpy are all fine
    _passes(check_ald_weight(lambda t, s, sch: torch.tensor(1 / (2 * (s**2 + float(sch.noise_to_signal[t]) ** 2)))), capsys)
    _passes(check_ald_weight(lambda t, s, sch: np.float64(1 / (2 * (s**2 + 1 / _a(t) - 1)))), capsys)


def test_weight_uses_the_given_schedule(capsys):
    other = NoiseSchedule.linear(beta_start=1e-3, beta_end=0.03)
    _passes(check_ald_weight(weight_correct, other), capsys)
    _fails_with(check_ald_weight(lambda t, s, sch: weight_correct(t, s, SCHED), other), capsys, "wrong at")


@pytest.mark.parametrize(
    "fn, words",
    [
        (lambda t, s, sch: 1 / (s**2 + 1 / sch.alpha_bar(t) - 1), ["forgot the 2"]),
        (lambda t, s, sch: 1 / (2 * (s**2 + (1 / sch.alpha_bar(t) - 1) ** 0.5)), ["γ_t²"]),
        (lambda t, s, sch: 1 / (2 * (s + 1 / sch.alpha_bar(t) - 1)), ["σ_y²"]),
        (lambda t, s, sch: 1 / (2 * (s**2 + sch.alpha_bar(t) ** 0.5)), ["√ᾱ_t is the signal"]),
        (lambda t, s, sch: 1 / (2 * (s**2 + 1 - sch.alpha_bar(t))), ["divide by ᾱ_t"]),
        (lambda t, s, sch: 1 / (2 * s**2), ["left out γ_t²"]),
        (lambda t, s, sch: 1 / (2 * (1 / sch.alpha_bar(t) - 1)), ["left out σ_y²"]),
        (lambda t, s, sch: 2 * (s**2 + 1 / sch.alpha_bar(t) - 1), ["inverse"]),
        (lambda t, s, sch: 0.5, ["wrong at", "schedule.alpha_bar(t)"]),
        (lambda t, s, sch: None, ["`return`"]),
        (lambda t, s, sch: ..., ["`return`"]),
        (lambda t, s: 0.5, ["raised TypeError", "fn(t, noise_std, schedule)"]),
        (lambda t, s, sch: torch.ones(3), ["one number"]),
        (lambda t, s, sch: "half", ["one number"]),
    ],
)
def test_weight_rejects_with_a_hint(fn, words, capsys):
    _fails_with(check_ald_weight(fn), capsys, *words)


def test_weight_rejects_ellipsis_and_non_callables(capsys):
    _fails_with(check_ald_weight(...), capsys, "`...`")
    _fails_with(check_ald_weight(0.5), capsys, "function")


# ---------------------------------------------------------------- ∇‖A x − y‖²
def grad_correct(operator, x, y):
    return 2 * operator.adjoint(operator(x) - y)


def test_grad_accepts_the_closed_form(capsys):
    _passes(check_ald_likelihood_grad(grad_correct), capsys)
    # written out with forward and a numpy round trip: still the closed form
    _passes(check_ald_likelihood_grad(lambda op, x, y: (2 * op.adjoint(op.forward(x) - y)).numpy()), capsys)


def _backward(operator, x, y):
    x = x.detach().requires_grad_(True)
    ((operator(x) - y) ** 2).sum().backward()
    return x.grad


def _autograd_grad(operator, x, y):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(((operator(x) - y) ** 2).sum(), x)
    return g


def _func_grad(operator, x, y):
    return torch.func.grad(lambda z: ((operator(z) - y) ** 2).sum())(x)


def _vjp(operator, x, y):
    r = operator(x) - y
    _, g = torch.autograd.functional.vjp(operator, x, 2 * r)  # Aᵀ by autograd instead of operator.adjoint
    return g


@pytest.mark.parametrize("fn", [_backward, _autograd_grad, _func_grad, _vjp], ids=lambda f: f.__name__)
def test_grad_rejects_autograd_with_the_closed_form_hint(fn, capsys):
    """The exercise forbids autograd. These answers have the right values (the checker's own reference is
    autograd), so only the detection of autograd can refuse them."""
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    y = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(fn(GaussianBlur(5, 1.0), x, y), grad_correct(GaussianBlur(5, 1.0), x, y))
    _fails_with(check_ald_likelihood_grad(fn), capsys, "you used autograd", "2·Aᵀ(A x − y)", "operator.adjoint")


@pytest.mark.parametrize(
    "fn, words",
    [
        (lambda op, x, y: op.adjoint(op(x) - y), ["factor 2"]),
        (lambda op, x, y: 2 * op.adjoint(y - op(x)), ["sign"]),
        (lambda op, x, y: 2 * op.pseudo_inverse(op(x) - y), ["pseudo-inverse", "adjoint"]),
        (lambda op, x, y: 2 * (op(x) - y), ["shape", "operator.adjoint"]),  # SR gives the shape of y
        (lambda op, x, y: x, ["wrong for A ="]),
        (lambda op, x, y: None, ["`return`"]),
        (lambda op, x, y: 1 / 0, ["ZeroDivisionError", "fn(operator, x, y)"]),
        (lambda op, x, y: x[0], ["shape"]),
        (lambda op, x, y: "grad", ["tensor"]),
    ],
)
def test_grad_rejects_with_a_hint(fn, words, capsys):
    _fails_with(check_ald_likelihood_grad(fn), capsys, *words)


def test_grad_rejects_ellipsis(capsys):
    _fails_with(check_ald_likelihood_grad(...), capsys, "`...`")


def test_grad_reference_is_the_samplers_gradient():
    # score_ald takes torch.autograd.grad of ((A x − y)**2).sum(): for a linear A it is 2Aᵀ(A x − y)
    op = GaussianBlur(5, 1.0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn((1, 3, 16, 16), generator=g, dtype=torch.float64)
    y = torch.randn((1, 3, 16, 16), generator=g, dtype=torch.float64)
    x_ = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(((op(x_) - y) ** 2).sum(), x_)
    assert torch.allclose(auto, grad_correct(op, x, y))


# ---------------------------------------------------------------- the best λ
def test_best_step_size(capsys):
    lams = [0.3, 1.0, 3.0, 30.0]
    psnr_values = np.array([[20.0, 25.0, 30.0, np.nan], [19.0, 26.0, 31.0, np.nan]])
    _passes(check_best_step_size(3.0, lams, psnr_values), capsys)
    lpips_values = np.array([[0.1, 0.05, 0.06, np.nan], [0.1, 0.04, 0.07, np.nan]])
    _passes(check_best_step_size(1, lams, lpips_values, higher_is_better=False, metric="LPIPS"), capsys)
    _passes(check_best_step_size(np.float64(3.0), lams, psnr_values.mean(0)), capsys)  # 1-D values
    _fails_with(check_best_step_size(1.0, lams, psnr_values), capsys, "arg max")
    _fails_with(check_best_step_size(30.0, lams, psnr_values), capsys, "diverged")
    _fails_with(check_best_step_size(..., lams, psnr_values), capsys, "`...`")
    _fails_with(check_best_step_size(None, lams, psnr_values), capsys, "`...`")
    _fails_with(check_best_step_size(2.0, lams, psnr_values), capsys, "not one of")
    _fails_with(check_best_step_size("a", lams, psnr_values), capsys, "number")
    _fails_with(check_best_step_size(3.0, lams, np.zeros((2, 3))), capsys, "shape")
    _fails_with(check_best_step_size(3.0, lams, np.full((2, 4), np.nan)), capsys, "diverged")
