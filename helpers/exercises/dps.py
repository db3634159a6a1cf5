"""Checkers for the exercises of the chapter *Diffusion Posterior Sampling* (``book/dps.ipynb``).

Same contract as :mod:`helpers.exercises`: each checker prints ``Correct: ...`` or
``Not yet: <hint>`` and returns a :class:`~helpers.exercises.CheckResult` (truthy exactly when
the answer is correct). A checker never raises on the student's answer: ``...`` (Ellipsis),
``None``, a wrong type, a wrong shape or an exception inside the student's function all give a
``Not yet`` with a hint.

================================  ==========================================================
checker                           what the student supplies
================================  ==========================================================
:func:`check_dps_scale`           ζ′ for a given official ``scale``, or ``scale`` for a ζ′
:func:`check_dps_gradient`        ``fn(prior, operator, y, x_t, t) -> ∇_{x_t} Σ_b ‖y_b − A(x̂_0)_b‖``
:func:`check_dps_best_zeta`       the ζ′ of a sweep with the best mean PSNR (or LPIPS)
:func:`check_dps_discrepancy_zeta` the ζ′ whose mean final residual ‖y − A(x̂_0)‖ is closest
                                  to the noise norm (the discrepancy principle: no truth needed)
================================  ==========================================================
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch

from ._checks import CheckResult, _as_number, _call, _max_diff, _report, check_best_of_sweep

__all__ = ["check_dps_scale", "check_dps_gradient", "check_dps_best_zeta", "check_dps_discrepancy_zeta"]


def _number(value, what: str):
    """(float, None) or (None, hint) for a student's number."""
    if value is Ellipsis or value is None:
        return None, f"replace the `...` with your answer: {what} as one number."
    try:
        if torch.is_tensor(value) or isinstance(value, np.ndarray):
            if np.asarray(value.detach().cpu() if torch.is_tensor(value) else value).size != 1:
                return None, f"give {what} as one number, not an array of shape {tuple(value.shape)}."
            value = value.item()
        v = float(value)
    except (TypeError, ValueError):
        return None, f"give {what} as one number (e.g. 0.15), got {type(value).__name__}."
    if not math.isfinite(v):
        return None, f"{what} must be a finite number, got {v}."
    return v, None


# ---------------------------------------------------------------------- ζ′ ↔ scale
def check_dps_scale(answer, *, scale: Optional[float] = None, zeta: Optional[float] = None) -> CheckResult:
    """Convert between the official code's ``scale`` and the paper's ζ′ (scale = 2ζ′).

    Give exactly one of ``scale`` (then ``answer`` must be ζ′ = scale/2) or ``zeta`` (then
    ``answer`` must be scale = 2ζ′).
    """
    if (scale is None) == (zeta is None):
        return _report(False, "call the checker with exactly one of scale=... (answer: ζ′) or zeta=... (answer: scale).")
    given = scale if scale is not None else zeta
    if isinstance(given, bool) or not isinstance(given, (int, float)) or not math.isfinite(given) or given <= 0:
        return _report(False, f"the given {'scale' if scale is not None else 'ζ′'} must be a positive number, got {given!r}.")
    if scale is not None:
        what, truth, wrong_dir = "ζ′", scale / 2.0, scale * 2.0
    else:
        what, truth, wrong_dir = "the official scale", zeta * 2.0, zeta / 2.0
    v, hint = _number(answer, what)
    if hint:
        return _report(False, hint)

    def near(x: float) -> bool:
        return math.isclose(v, x, rel_tol=1e-6, abs_tol=1e-12)

    if near(truth):
        if scale is not None:
            return _report(True, f"scale {scale:g} in the official code is ζ′ = {truth:g} in the paper: the code steps "
                                 f"scale·∇‖r‖, and ζ_t∇‖r‖² = (ζ′/‖r‖)·2‖r‖∇‖r‖ = 2ζ′∇‖r‖.")
        return _report(True, f"the paper's ζ′ = {zeta:g} is scale {truth:g} in the official code (scale = 2ζ′).")
    if near(given):
        return _report(False, "the two numbers differ: the paper's step ζ_t∇‖r‖² with ζ_t = ζ′/‖r‖ equals 2ζ′∇‖r‖ "
                              "(∇‖r‖² = 2‖r‖∇‖r‖), while the code steps scale·∇‖r‖.")
    if near(wrong_dir):
        return _report(False, "the factor 2 goes the other way: scale = 2ζ′, so ζ′ = scale / 2 "
                              "(the paper's ζ′ is the smaller number).")
    if near(given**0.5) or near(given**2):
        return _report(False, "no square or square root is involved: the relation is linear, scale = 2ζ′.")
    return _report(False, f"you gave {v:g}. Write ζ_t∇_{{x_t}}‖r‖² with ζ_t = ζ′/‖r‖ and ∇‖r‖² = 2‖r‖∇‖r‖, "
                          "and compare with the code's scale·∇‖r‖.")


# ---------------------------------------------------------------------- the guidance gradient
def _tiny_setup(seed: int = 0):
    """A tiny random UNet prior (8×8 RGB), a blur operator, a measurement and an x_t: fast and deterministic."""
    from diffusers import UNet2DModel

    from ..operators import GaussianBlur
    from ..priors import Prior
    from ..schedule import NoiseSchedule

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4)
    prior = Prior(unet, NoiseSchedule.linear(), name="tiny (random weights)")
    operator = GaussianBlur(kernel_size=3, std=1.0)
    return prior, operator


def _case(prior, operator, seed: int, batch: int = 2):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, *prior.image_shape)
    x0 = (0.6 * torch.randn(shape, generator=g)).clamp(-1, 1)
    y = operator(x0) + 0.05 * torch.randn(operator(x0).shape, generator=g)
    x_t = torch.randn(shape, generator=g)
    return y.to(prior.device, prior.dtype), x_t.to(prior.device, prior.dtype)


def _variant(kind: str, prior, operator, y, x_t, t):
    """The gradient of a common mistake (float64 on the CPU)."""
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        if kind == "score_ald":  # A applied to x_t itself: no network, no x̂_0
            loss = (y - operator(x)).flatten(1).norm(dim=1).sum()
            (g,) = torch.autograd.grad(loss, x)
            return g.detach().double().cpu()
        eps = prior.eps(x, t)
        if kind == "detached":
            eps = eps.detach()
        x0 = prior.schedule.predict_x0(x, eps, t)
        if kind != "no_clip":
            x0 = x0.clamp(-1, 1)
        r = (y - operator(x0)).flatten(1)
        if kind == "squared":
            loss = (r**2).sum()
        elif kind == "batch_norm":
            loss = r.norm()
        else:
            loss = r.norm(dim=1).sum()
        (g,) = torch.autograd.grad(loss, x)
    return g.detach().double().cpu()


_GRAD_HINTS = {
    "no_clip": "you did not clip x̂_0: clamp it to [-1, 1] before applying A (the official code does, and "
               "helpers.samplers.dps_gradient with clip_denoised=True does too).",
    "score_ald": "that is the gradient of ‖y − A(x_t)‖, with A applied to x_t itself (ScoreALD's kind of gradient). "
                 "DPS applies A to Tweedie's x̂_0(x_t) = (x_t − √(1 − ᾱ_t) ε_θ(x_t, t)) / √ᾱ_t, so the gradient "
                 "goes through the network.",
    "squared": "you differentiated the squared norm ‖r‖²; DPS's ζ_t = ζ′/‖r‖ turns it into 2ζ′∇‖r‖: return the "
               "gradient of the plain norm ‖r‖ (per image, then summed).",
    "detached": "you detached ε_θ (or computed it under torch.no_grad()): the gradient then skips the network and is "
                "just ∇ through x_t/√ᾱ_t. Compute eps = prior.eps(x, t) on the x that requires grad, inside "
                "torch.enable_grad().",
    "batch_norm": "you took one norm over the whole batch (as the official code, written for batch size 1, does); "
                  "take one norm per image, r.flatten(1).norm(dim=1), and sum them.",
}

_GRAD_TIMES = (50, 400, 900)


def check_dps_gradient(fn: Callable, prior=None, operator=None, seed: int = 0) -> CheckResult:
    """Does ``fn(prior, operator, y, x_t, t)`` return DPS's guidance gradient?

    The gradient is ∇_{x_t} Σ_b ‖y_b − A(clip(x̂_0(x_t))_b)‖ with Tweedie's x̂_0 computed from
    ``prior.eps(x_t, t)``, i.e. :func:`helpers.samplers.dps_gradient` (its first output). Checked on
    a batch of two images at t = 50, 400, 900. Default: a tiny random-weight UNet on 8×8 images and
    a 3×3 blur (milliseconds); pass ``prior`` (and ``operator``) to check on a real prior (slower).
    """
    from ..samplers import dps_gradient

    if prior is None:
        prior, default_op = _tiny_setup(seed)
        operator = default_op if operator is None else operator
    elif operator is None:
        from ..operators import GaussianBlur

        operator = GaussianBlur(kernel_size=3, std=1.0)
    if fn is Ellipsis or fn is None or not callable(fn):
        return _report(False, "pass your function itself (not `...` or its result): "
                              "check_dps_gradient(my_dps_gradient).")
    wrong = []
    for k, t in enumerate(_GRAD_TIMES):
        y, x_t = _case(prior, operator, 1000 * seed + k)
        out, err = _call(fn, prior, operator, y.clone(), x_t.clone(), t)
        if err:
            return _report(False, err + " (it is called as fn(prior, operator, y, x_t, t): y and x_t are (B, C, H, W) "
                                        "tensors, t an int).")
        if isinstance(out, (tuple, list)) and len(out) > 0:  # e.g. the (grad, norm, eps) of dps_gradient
            out = out[0]
        if out is None or out is Ellipsis:
            return _report(False, "your function returned nothing: replace the `...` and `return` the gradient "
                                  "(a tensor shaped like x_t).")
        try:
            mine = torch.as_tensor(np.asarray(out.detach().cpu() if torch.is_tensor(out) else out), dtype=torch.float64)
        except Exception:  # noqa: BLE001 - any odd object from the student
            return _report(False, f"return a tensor shaped like x_t, got {type(out).__name__}.")
        if tuple(mine.shape) != tuple(x_t.shape):
            return _report(False, f"your function returned shape {tuple(mine.shape)}, expected {tuple(x_t.shape)} "
                                  "(the gradient has the shape of x_t).")
        if not torch.isfinite(mine).all():
            return _report(False, "your gradient contains NaN or Inf.")
        ref = dps_gradient(prior, operator, y, x_t, t)[0].detach().double().cpu()
        scale = float(ref.abs().max()) + 1e-12
        if float((mine - ref).abs().max()) <= 1e-4 * scale + 1e-6:
            continue
        wrong.append((t, y, x_t, mine, ref))
    if not wrong:
        return _report(True, "your gradient equals helpers.samplers.dps_gradient: through the network and the clipped "
                             "x̂_0, of the plain residual norm, one norm per image.")
    if all(float(m.abs().max()) == 0.0 for *_, m, _ in wrong):
        return _report(False, "your gradient is zero everywhere: call x.requires_grad_() on a detached copy of x_t, "
                              "compute eps, x̂_0 and the norm from that x, then torch.autograd.grad(norm.sum(), x).")
    for kind, hint in _GRAD_HINTS.items():
        ok = True
        for t, y, x_t, mine, _ in wrong:
            v = _variant(kind, prior, operator, y, x_t, t)
            if float((mine - v).abs().max()) > 1e-4 * (float(v.abs().max()) + 1e-12) + 1e-6:
                ok = False
                break
        if ok:
            return _report(False, hint)
    for t, y, x_t, mine, ref in wrong:
        for factor, what in ((-1.0, "the sign is flipped: return the gradient of the residual norm (the sampler subtracts it)"),
                             (2.0, "your gradient is twice the reference: the norm's gradient, not the squared norm's"),
                             (0.5, "your gradient is half the reference")):
            if torch.allclose(mine, factor * ref, rtol=1e-4, atol=1e-6):
                return _report(False, what + ".")
    t, _, _, mine, ref = wrong[0]
    times = ", ".join(str(w[0]) for w in wrong)
    return _report(False, f"wrong at t = {times} (max |error| {_max_diff(mine, ref):.3g} at t = {t}, the gradient's "
                          f"largest entry is {float(ref.abs().max()):.3g}). Steps: x = x_t.detach().requires_grad_(True); "
                          "eps = prior.eps(x, t); x0 = prior.schedule.predict_x0(x, eps, t).clamp(-1, 1); "
                          "r = (y − operator(x0)).flatten(1).norm(dim=1); torch.autograd.grad(r.sum(), x).")


# ---------------------------------------------------------------------- best ζ′ of a sweep
def check_dps_best_zeta(answer, zetas, values, higher_is_better: bool = True, metric: str = "PSNR") -> CheckResult:
    """Is ``answer`` the ζ′ of ``zetas`` with the best mean of ``values`` over the images?

    ``values``: shape (N,) or (n_images, N), one column per ζ′; NaN marks a run that diverged
    (it never wins).
    """
    result = check_best_of_sweep(answer, zetas, values, name="ζ′", higher_is_better=higher_is_better, metric=metric)
    edge = _best_at_edge(zetas, values, higher_is_better)
    if result and edge:
        note = (f" Note: ζ′ = {edge:g} is at the {'lower' if edge == min(float(z) for z in zetas) else 'upper'} edge of the "
                "grid, so the optimum may lie beyond it: widen the grid by ×3 on that side until the best ζ′ is inside "
                "(or the sampler diverges).")
        print(note.strip())
        result = CheckResult(True, result.message + note)
    return result


def _best_at_edge(zetas, values, higher_is_better: bool = True) -> Optional[float]:
    """The best ζ′ (by the mean over images) when it is the smallest or largest swept value, else None."""
    try:
        z = np.asarray([float(v) for v in zetas])
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return None
    v = v[None] if v.ndim == 1 else v
    if v.ndim != 2 or v.shape[1] != len(z) or len(z) < 3:
        return None
    finite = np.isfinite(v).all(axis=0)
    if not finite.any():
        return None
    mean = np.where(finite, np.where(np.isfinite(v), v, 0.0).mean(axis=0), np.nan)
    best = z[int(np.nanargmax(mean) if higher_is_better else np.nanargmin(mean))]
    return float(best) if best in (z.min(), z.max()) else None


# ---------------------------------------------------------------------- ζ′ by the discrepancy principle
def check_dps_discrepancy_zeta(answer, zetas, residuals, noise_norm) -> CheckResult:
    """Is ``answer`` the ζ′ of ``zetas`` whose mean final residual is closest to ``noise_norm``?

    The discrepancy principle (Morozov) picks a regularisation setting without the ground truth: a
    reconstruction should explain the measurement up to the noise, ‖y − A(x̂)‖ ≈ ‖noise‖, neither
    more (it fits the noise) nor less. ``residuals``: the final ‖y − A(x̂_0)‖, shape (N,) or
    (n_images, N), one column per ζ′; a column with NaN (a diverged run) never counts.
    ``noise_norm``: the expected norm of the measurement noise (e.g. σ_y √m, or ‖y − A(x_0)‖ of the
    true images averaged over them).
    """
    try:
        zetas = [float(z) for z in zetas]
        r = np.asarray(residuals, dtype=float)
        noise = float(noise_norm)
    except (TypeError, ValueError):
        return _report(False, "zetas must be numbers, residuals a numeric array (one column per ζ′) and noise_norm "
                              "one number.")
    if r.ndim == 1:
        r = r[None]
    if r.ndim != 2 or r.shape[1] != len(zetas) or not zetas:
        return _report(False, f"residuals must have shape ({len(zetas)},) or (n_images, {len(zetas)}), one column per "
                              f"ζ′; got {np.asarray(residuals).shape}.")
    if not math.isfinite(noise) or noise <= 0:
        return _report(False, f"noise_norm must be a positive number, got {noise_norm!r}.")
    finite = np.isfinite(r).all(axis=0)
    if not finite.any():
        return _report(False, "every ζ′ of the sweep diverged (all NaN): there is no residual to compare.")
    mean = np.where(finite, np.where(np.isfinite(r), r, 0.0).mean(axis=0), np.nan)
    gap = np.abs(mean - noise)
    best = int(np.nanargmin(gap))
    if answer is None or answer is Ellipsis:
        return _report(False, "replace the `...` with your ζ′ (a number from the sweep).")
    a = _as_number(answer)
    if a is None or not math.isfinite(a):
        return _report(False, f"the answer must be one finite number (a ζ′ of the sweep), got {answer!r}.")
    matches = [i for i, z in enumerate(zetas) if math.isclose(a, z, rel_tol=1e-9, abs_tol=1e-12)]
    if not matches:
        return _report(False, f"{a:g} is not one of the swept values {zetas}.")
    i = matches[0]
    if i == best:
        return _report(True, f"ζ′ = {zetas[best]:g}: its mean final residual {mean[best]:.3g} is the closest to the "
                             f"noise norm {noise:.3g}, and choosing it needed no ground truth.")
    if not finite[i]:
        return _report(False, f"ζ′ = {a:g} diverged (NaN in its column): it has no residual. Skip the NaN columns.")
    if i == int(np.nanargmin(mean)):
        return _report(False, f"ζ′ = {a:g} has the smallest residual ({mean[i]:.3g}), but a residual below the noise "
                              f"norm ({noise:.3g}) means fitting the noise: take the ζ′ whose mean residual is "
                              "*closest* to the noise norm, np.nanargmin(np.abs(mean − noise_norm)).")
    return _report(False, f"ζ′ = {a:g} has a mean final residual {mean[i]:.3g}, {gap[i]:.3g} away from the noise norm "
                          f"{noise:.3g}; another ζ′ of the sweep comes closer. Average the residuals over the images "
                          "(axis 0) first, then compare |mean − noise_norm|.")
