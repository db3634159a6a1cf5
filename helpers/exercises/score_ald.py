"""Checkers for the exercises of the chapter *ScoreALD: annealed Langevin dynamics*.

Each checker prints ``Correct: ...`` or ``Not yet: <hint>`` and returns a
:class:`helpers.exercises.CheckResult`, which is truthy exactly when the answer is correct
(``assert check_ald_weight(my_fn)`` works). A checker never raises on a student's answer:
``...``, ``None``, a function that raises or returns the wrong shape all give a hint.

================================  ==========================================================
checker                           what the student supplies
================================  ==========================================================
:func:`check_ald_weight`          ``fn(t, noise_std, schedule) -> 1/(2(σ_y² + γ_t²))``, the
                                  likelihood weight of the poster's update at training index t
:func:`check_ald_likelihood_grad` ``fn(operator, x, y) -> ∇_x ‖A x − y‖²`` in closed form
                                  (2 Aᵀ(A x − y)), compared with autograd; an answer that
                                  itself uses autograd is refused
:func:`check_best_step_size`      the λ of a sweep with the best mean metric (diverged step
                                  sizes are NaN and never best)
================================  ==========================================================

γ_t = √((1 − ᾱ_t)/ᾱ_t) is ``schedule.noise_to_signal[t]``: the noise level of the VE iterate
x_t/√ᾱ_t of a DDPM (variance-preserving) prior (see :func:`helpers.samplers.score_ald`).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ._checks import CheckResult, _as_number, _call, _close, _max_diff, _report, _schedule, check_best_of_sweep
from ..operators import BoxInpainting, GaussianBlur, Operator, SuperResolution
from ..schedule import NoiseSchedule

__all__ = ["check_ald_weight", "check_ald_likelihood_grad", "check_best_step_size", "ald_weight"]


# ---------------------------------------------------------------------- the weight 1/(2(σ_y² + γ_t²))
def ald_weight(t: int, noise_std: float, schedule: NoiseSchedule) -> float:
    """The reference: 1/(2(σ_y² + γ_t²)) with γ_t² = (1 − ᾱ_t)/ᾱ_t = 1/ᾱ_t − 1."""
    gamma2 = 1.0 / schedule.alpha_bar(t) - 1.0
    return 1.0 / (2.0 * (noise_std**2 + gamma2))


_WEIGHT_CASES = ((0, 0.05), (10, 0.05), (20, 0.2), (100, 0.05), (250, 0.05), (500, 0.1), (999, 0.05))


def check_ald_weight(fn: Callable, schedule: Optional[NoiseSchedule] = None) -> CheckResult:
    """Does ``fn(t, noise_std, schedule)`` return 1/(2(σ_y² + γ_t²)) with γ_t² = (1 − ᾱ_t)/ᾱ_t?

    Checked at t = 0 … 999 and σ_y = 0.05, 0.1, 0.2 against the closed form from
    ``schedule.alpha_bar`` (default: the linear schedule of google's DDPM models), to a
    relative error of 1e-4. Common mistakes (no factor 2, γ_t instead of γ_t², σ_y instead
    of σ_y², the VP noise variance 1 − ᾱ_t or √ᾱ_t instead of γ_t², a missing term) get a hint.
    """
    sched = _schedule(schedule)
    if fn is Ellipsis or fn is None:
        return _report(False, "replace the `...` with your function fn(t, noise_std, schedule).")
    if not callable(fn):
        return _report(False, f"give a function fn(t, noise_std, schedule), got {type(fn).__name__}.")
    wrong = []
    for t, s in _WEIGHT_CASES:
        out, err = _call(fn, t, s, sched)
        if err:
            return _report(False, err + " (it is called as fn(t, noise_std, schedule): an int, a float, a NoiseSchedule).")
        if out is None or out is Ellipsis:
            return _report(False, "your function returned None: replace the `...` with your code and `return` the weight.")
        v = _as_number(out)
        if v is None:
            return _report(False, f"return one number (the weight at this t), got {type(out).__name__} "
                                  f"of shape {tuple(np.shape(out.detach().cpu() if torch.is_tensor(out) else out))}.")
        if not math.isclose(v, ald_weight(t, s, sched), rel_tol=1e-4):
            wrong.append((t, s, v))
    if not wrong:
        return _report(True, "the weight 1/(2(σ_y² + γ_t²)) matches at every t and σ_y tested: about 1/(2γ_t²) "
                             "early (tiny), about 1/(2σ_y²) at the end (large).")

    def a(t):
        return sched.alpha_bar(t)

    def g2(t):
        return 1.0 / a(t) - 1.0

    variants = {
        "you forgot the 2: the gradient of ‖A x − y‖² is 2Aᵀ(A x − y), and the weight is 1/(2(σ_y² + γ_t²)).":
            lambda t, s: 1.0 / (s**2 + g2(t)),
        "γ_t is a standard deviation: add its square, γ_t² = (1 − ᾱ_t)/ᾱ_t, to σ_y².":
            lambda t, s: 1.0 / (2.0 * (s**2 + g2(t) ** 0.5)),
        "σ_y is a standard deviation (`noise_std`): add its square σ_y² to γ_t².":
            lambda t, s: 1.0 / (2.0 * (s + g2(t))),
        "both σ_y and γ_t are standard deviations: add their squares, σ_y² + γ_t².":
            lambda t, s: 1.0 / (2.0 * (s + g2(t) ** 0.5)),
        "1 − ᾱ_t is the noise variance of the VP iterate x_t; the formula needs the noise of x_t/√ᾱ_t, "
        "γ_t² = (1 − ᾱ_t)/ᾱ_t (divide by ᾱ_t).":
            lambda t, s: 1.0 / (2.0 * (s**2 + 1.0 - a(t))),
        "that uses √(1 − ᾱ_t) (the VP noise std); γ_t² = (1 − ᾱ_t)/ᾱ_t is the variance of the noise in x_t/√ᾱ_t.":
            lambda t, s: 1.0 / (2.0 * (s**2 + (1.0 - a(t)) ** 0.5)),
        "√ᾱ_t is the signal's scale, not a noise level: use γ_t² = (1 − ᾱ_t)/ᾱ_t = 1/ᾱ_t − 1.":
            lambda t, s: 1.0 / (2.0 * (s**2 + a(t) ** 0.5)),
        "ᾱ_t is the signal's share, not a noise level: use γ_t² = (1 − ᾱ_t)/ᾱ_t = 1/ᾱ_t − 1.":
            lambda t, s: 1.0 / (2.0 * (s**2 + a(t))),
        "γ_t² = (1 − ᾱ_t)/ᾱ_t, not ᾱ_t/(1 − ᾱ_t) (noise over signal).":
            lambda t, s: 1.0 / (2.0 * (s**2 + a(t) / (1.0 - a(t)))),
        "you left out γ_t²: the residual A x_t − y also carries the noise still in x_t, so the variance is σ_y² + γ_t².":
            lambda t, s: 1.0 / (2.0 * s**2),
        "you left out σ_y²: the measurement noise adds to the noise of x_t (and keeps the weight finite at the end).":
            lambda t, s: 1.0 / (2.0 * g2(t)),
        "that is the variance 2(σ_y² + γ_t²) itself: the weight is its inverse.":
            lambda t, s: 2.0 * (s**2 + g2(t)),
        "use ᾱ_t = schedule.alpha_bar(t) (the product of all α_s up to t), not the single step's α_t = 1 − β_t.":
            lambda t, s: 1.0 / (2.0 * (s**2 + 1.0 / float(sched.alphas[t]) - 1.0)),
    }
    for hint, f in variants.items():
        if all(math.isclose(v, f(t, s), rel_tol=1e-4) for t, s, v in wrong):
            return _report(False, hint)
    t, s, v = wrong[0]
    where = ", ".join(f"t={w[0]}" for w in wrong)
    return _report(False, f"wrong at {where} (at t={t}, σ_y={s}: you gave {v:.6g}, expected {ald_weight(t, s, sched):.6g}). "
                          "Compute γ_t² = 1/ᾱ_t − 1 with ᾱ_t = schedule.alpha_bar(t), then 1/(2(σ_y² + γ_t²)).")


# ---------------------------------------------------------------------- ∇‖A x − y‖² = 2 Aᵀ(A x − y)
def _autograd_grad(operator: Operator, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        xx = x.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(((operator(xx) - y) ** 2).sum(), xx)
    return g


def _grad_cases(seed: int = 0):
    """(name, operator, x, y) on 16×16 images: a blur, a box mask, ×2 super-resolution (changes the shape)."""
    g = torch.Generator().manual_seed(seed)
    ops = [("GaussianBlur", GaussianBlur(5, 1.0)), ("BoxInpainting", BoxInpainting(16, 8)),
           ("SuperResolution(2)", SuperResolution(2))]
    cases = []
    for name, op in ops:
        x = torch.rand((2, 3, 16, 16), generator=g, dtype=torch.float64) * 2 - 1
        x_true = torch.rand((2, 3, 16, 16), generator=g, dtype=torch.float64) * 2 - 1
        y = op(x_true) + 0.05 * torch.randn(op.output_shape(x.shape), generator=g, dtype=torch.float64)
        cases.append((name, op, x, y))
    return cases


class _AutogradWatch(Operator):
    """The operator handed to the student's function: the real one, noting whether the student's code ran it
    on a tensor that requires grad with grad mode on (``.backward()``, ``torch.autograd.grad``,
    ``torch.func.grad`` and ``torch.autograd.functional.vjp`` all do). Aᵀ computed inside the real operator
    (the blur's adjoint is itself a vector-Jacobian product) is not the student's and is not counted."""

    def __init__(self, operator: Operator):
        self._inner = operator
        self.linear, self.image_size = operator.linear, operator.image_size
        self.autograd_used = False

    def _watch(self, t) -> None:
        if torch.is_tensor(t) and t.requires_grad and torch.is_grad_enabled():
            self.autograd_used = True

    def forward(self, x):
        self._watch(x)
        return self._inner.forward(x)

    def adjoint(self, y):
        self._watch(y)
        return self._inner.adjoint(y)

    def pseudo_inverse(self, y):
        self._watch(y)
        return self._inner.pseudo_inverse(y)

    def output_shape(self, x_shape):
        return self._inner.output_shape(x_shape)

    def input_shape_for(self, y_shape):
        return self._inner.input_shape_for(y_shape)

    def __getattr__(self, name):  # mask, factor, kernel, ... of the real operator
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __repr__(self):
        return repr(self._inner)


_AUTOGRAD_HINT = ("you used autograd (the operator ran on a tensor that requires grad). The exercise asks for the "
                  "closed form: write 2·Aᵀ(A x − y) with operator.adjoint, i.e. 2 * operator.adjoint(operator(x) - y), "
                  "no backward pass.")


def check_ald_likelihood_grad(fn: Callable) -> CheckResult:
    """Does ``fn(operator, x, y)`` return ∇_x ‖A x − y‖² = 2 Aᵀ(A x − y) (summed over the batch's pixels),
    in closed form?

    Checked against autograd (what :func:`helpers.samplers.score_ald` uses) for a Gaussian blur,
    a box mask and ×2 super-resolution on (2, 3, 16, 16) float64 images; ``operator.adjoint``
    gives Aᵀ. The gradient has the shape of x, also when y is smaller (super-resolution).
    The student's function gets the operator wrapped so that the checker sees whether it was
    applied to a tensor that requires grad: an answer computed with autograd is "Not yet", even
    when its values are right.
    """
    if fn is Ellipsis or fn is None:
        return _report(False, "replace the `...` with your function fn(operator, x, y).")
    if not callable(fn):
        return _report(False, f"give a function fn(operator, x, y), got {type(fn).__name__}.")
    wrong = []
    for name, op, x, y in _grad_cases():
        watched = _AutogradWatch(op)
        out, err = _call(fn, watched, x.clone(), y.clone())
        if watched.autograd_used:
            return _report(False, _AUTOGRAD_HINT)
        if torch.is_tensor(out) and out.grad_fn is not None:
            return _report(False, _AUTOGRAD_HINT.replace("the operator ran on a tensor that requires grad",
                                                         "your result carries a gradient graph"))
        if err:
            return _report(False, err + f" (with A = {name}; it is called as fn(operator, x, y)).")
        if out is None or out is Ellipsis:
            return _report(False, "your function returned None: replace the `...` with your code and `return` the gradient.")
        try:
            mine = torch.as_tensor(np.asarray(out.detach().cpu() if torch.is_tensor(out) else out), dtype=torch.float64)
        except (TypeError, ValueError) as e:
            return _report(False, f"return a tensor of the shape of x, got {type(out).__name__} ({e}).")
        if tuple(mine.shape) != tuple(x.shape):
            hint = ""
            if tuple(mine.shape) == tuple(y.shape):
                hint = " That is the shape of y: bring the residual back to image space with operator.adjoint (Aᵀ)."
            return _report(False, f"with A = {name} your gradient has shape {tuple(mine.shape)}, expected the shape of x, "
                                  f"{tuple(x.shape)}.{hint}")
        ref = _autograd_grad(op, x, y)
        if not _close(mine, ref, rtol=1e-5, atol=1e-8):
            wrong.append((name, op, x, y, mine))
    if not wrong:
        return _report(True, "∇_x ‖A x − y‖² = 2Aᵀ(A x − y) matches autograd for the blur, the box mask and "
                             "super-resolution: no backward pass through A is needed for a linear operator.")

    def r(op, x, y):
        return op(x) - y

    variants = {
        "you forgot the factor 2: ∇‖A x − y‖² = 2Aᵀ(A x − y).":
            lambda op, x, y: op.adjoint(r(op, x, y)),
        "the sign is wrong: the gradient points away from the measurement, 2Aᵀ(A x − y) (the sampler subtracts it).":
            lambda op, x, y: -2 * op.adjoint(r(op, x, y)),
        "you used the pseudo-inverse A⁺ where the gradient needs the adjoint Aᵀ (operator.adjoint): "
        "they differ for a blur (A⁺ y = y there) and for super-resolution (A⁺ = k²Aᵀ).":
            lambda op, x, y: 2 * op.pseudo_inverse(r(op, x, y)),
        "you used 2Aᵀ(A x − y) without the factor 2 and with the pseudo-inverse: use 2 · operator.adjoint(A x − y).":
            lambda op, x, y: op.pseudo_inverse(r(op, x, y)),
        "the chain rule needs Aᵀ: the gradient of ‖A x − y‖² is 2Aᵀ(A x − y), not 2(A x − y) or 2A(A x − y).":
            lambda op, x, y: 2 * op(r(op, x, y)),
        "you returned the residual's gradient for the *plain* norm ‖A x − y‖; the squared norm gives 2Aᵀ(A x − y).":
            lambda op, x, y: op.adjoint(r(op, x, y)) / r(op, x, y).flatten(1).norm(dim=1).view(-1, 1, 1, 1),
        "you returned the image residual x − Aᵀy: apply A first, then Aᵀ: 2Aᵀ(A x − y).":
            lambda op, x, y: 2 * (x - op.adjoint(y)),
    }
    for hint, f in variants.items():
        try:
            if all(tuple(f(op, x, y).shape) == tuple(mine.shape) and _close(mine, f(op, x, y), rtol=1e-5, atol=1e-8)
                   for _, op, x, y, mine in wrong):
                return _report(False, hint)
        except Exception:  # a variant that does not apply to this operator
            continue
    name, op, x, y, mine = wrong[0]
    names = ", ".join(w[0] for w in wrong)
    return _report(False, f"wrong for A = {names} (max |error| {_max_diff(mine, _autograd_grad(op, x, y)):.3g} for {name}). "
                          "Compute the residual r = operator(x) − y, then return 2 * operator.adjoint(r).")


# ---------------------------------------------------------------------- the best λ of a sweep
def check_best_step_size(answer, step_sizes: Sequence[float], values, higher_is_better: bool = True,
                         metric: str = "PSNR") -> CheckResult:
    """Is ``answer`` the λ of ``step_sizes`` with the best mean of ``values`` over the images?

    ``values``: shape (N,) (one per λ) or (n_images, N); a λ whose run diverged is NaN in its
    column and never counts as best. PSNR: ``higher_is_better=True``; LPIPS: ``False``.
    """
    return check_best_of_sweep(answer, step_sizes, values, name="λ", higher_is_better=higher_is_better, metric=metric)
