"""Checkers for the exercises of the chapter *Inverse problems and forward operators*.

Each checker prints ``Correct: ...`` or ``Not yet: <hint>`` and returns a
:class:`helpers.exercises.CheckResult`, which is truthy exactly when the answer is correct
(``assert check_adjoint(op, my_adjoint)`` works).

================================  ==========================================================
checker                           what the student supplies
================================  ==========================================================
:func:`check_adjoint`             ``fn(y) -> Aᵀ y`` for a linear operator ``op`` (e.g. the
                                  adjoint of ``SuperResolution(4)``)
:func:`check_null_space_vector`   an image ``v`` (B, C, H, W) with ``A v ≈ 0`` and ``v ≠ 0``
:func:`check_deblur_settings`     the Richardson–Lucy iteration count and the Wiener λ with the
                                  best PSNR on one image (:func:`deblur_sweep` measures them)
================================  ==========================================================

Images are float32 tensors in the (B, C, H, W) layout of :mod:`helpers.operators`.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ._checks import CheckResult
from ..operators import GaussianBlur, Operator, SuperResolution, _MaskOperator

__all__ = ["check_adjoint", "check_null_space_vector", "true_adjoint", "check_deblur_settings", "deblur_sweep",
           "richardson_lucy_deblur"]


def _report(passed: bool, text: str) -> CheckResult:
    message = ("Correct: " if passed else "Not yet: ") + text
    print(message)
    return CheckResult(passed, message)


def true_adjoint(op_forward: Callable, y: torch.Tensor, x_shape: Sequence[int]) -> torch.Tensor:
    """Aᵀ y for a linear ``op_forward``, exactly, as the vector-Jacobian product of autograd."""
    with torch.enable_grad():
        x = torch.zeros(tuple(x_shape), dtype=y.dtype, requires_grad=True)
        (grad,) = torch.autograd.grad(op_forward(x), x, grad_outputs=y)
    return grad


def _default_x_shape(op_forward: Callable) -> tuple:
    size = getattr(op_forward, "image_size", None)
    if size is not None:
        return (2, 3, int(size[0]), int(size[1]))
    return (2, 3, 16, 16)


def check_adjoint(
    op_forward: Callable,
    op_adjoint: Callable,
    x_shape: Optional[Sequence[int]] = None,
    seed: int = 0,
    rtol: float = 1e-4,
) -> CheckResult:
    """Is ``op_adjoint`` the adjoint Aᵀ of the linear ``op_forward``?

    Draws random ``x`` (shape ``x_shape``, default (2, 3, 16, 16), or the operator's
    ``image_size``) and random ``y`` of the shape of ``A x``, and compares the student's
    ``op_adjoint(y)`` with the true adjoint (autograd's vector-Jacobian product of
    ``op_forward``); it also reports the dot-product test ⟨A x, y⟩ = ⟨x, Aᵀ y⟩.
    """
    shape = tuple(x_shape) if x_shape is not None else _default_x_shape(op_forward)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen)
    with torch.no_grad():
        ax = op_forward(x)
    y = torch.randn(ax.shape, generator=gen)
    truth = true_adjoint(op_forward, y, shape)
    try:
        with torch.no_grad():
            out = op_adjoint(y.clone())
    except Exception as err:  # noqa: BLE001 - any student error becomes a hint
        return _report(False, f"your adjoint raised {type(err).__name__}: {err}. It takes y of shape "
                              f"{tuple(y.shape)} and must return an image of shape {shape}.")
    if out is None or out is Ellipsis:
        return _report(False, "your function returns nothing yet: return Aᵀ y, an image of shape "
                              f"{shape} for y of shape {tuple(y.shape)}.")
    out = torch.as_tensor(out, dtype=torch.float32)
    if tuple(out.shape) != shape:
        return _report(False, f"Aᵀ y must have the shape of x, {shape}, but yours has {tuple(out.shape)}: "
                              "Aᵀ maps measurements back to image space.")
    lhs = float((ax.double() * y.double()).sum())
    rhs = float((x.double() * out.double()).sum())
    scale = float(truth.double().norm())
    err = float((out.double() - truth.double()).norm()) / max(scale, 1e-12)
    dot = f"⟨A x, y⟩ = {lhs:.4f} and ⟨x, Aᵀ y⟩ = {rhs:.4f}"
    if err <= rtol:
        return _report(True, f"{dot} agree, and your Aᵀ y equals the true adjoint (relative error {err:.1e}).")
    ratio = float((out.double() * truth.double()).sum()) / max(scale**2, 1e-24)
    resid = float((out.double() - ratio * truth.double()).norm()) / max(scale, 1e-12)
    if resid <= 1e-3 and abs(ratio) > 1e-12:
        hint = f"your Aᵀ y is {ratio:.4g} times the true one. "
        k2 = getattr(op_forward, "factor", None)
        if k2 is not None and abs(ratio - k2**2) < 1e-3 * k2**2:
            hint += (f"That factor is k² = {k2**2}: nearest-neighbour upsampling is the pseudo-inverse; "
                     "the adjoint of averaging over k×k pixels also divides by k².")
        else:
            hint += "Check the normalisation of your weights."
        return _report(False, f"{dot} differ. {hint}")
    return _report(False, f"{dot} differ (relative error of your Aᵀ y: {err:.2g}). Aᵀ must satisfy "
                          "⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for every x and y: where does each entry of y come from in A x?")


def _kind_hint(op) -> str:
    if isinstance(op, SuperResolution):
        k = op.factor
        return (f"A averages each {k}×{k} block, so v must average to zero over every block, "
                "e.g. a +1/−1 checkerboard, or x minus its blocky upsampled version.")
    if isinstance(op, _MaskOperator):
        return "A keeps the pixels where op.mask is 1: put v only where the mask is 0, e.g. (1 - op.mask) * noise."
    if isinstance(op, GaussianBlur):
        return ("a blur damps high frequencies most: the highest frequency an image can hold is the "
                "+1/−1 checkerboard (−1)^(i+j).")
    return "which images does A map to (almost) zero?"


def check_null_space_vector(op: Operator, v, rtol: float = 1e-2) -> CheckResult:
    """Is ``v`` a nonzero image in the (numerical) null space of ``op``: ‖A v‖ ≤ ``rtol`` · ‖v‖?

    ``rtol`` (default 1 %) admits the near-null space of a blur, whose Fourier transform is
    small but never exactly zero. ``v`` is a (B, C, H, W) tensor or array (a (C, H, W) image
    gets a batch axis).
    """
    if v is None or v is Ellipsis:
        return _report(False, "v is not set yet: build an image tensor of shape (1, 3, H, W).")
    v = torch.as_tensor(np.asarray(v) if not torch.is_tensor(v) else v).detach().float().cpu()
    if v.ndim == 3:
        v = v[None]
    if v.ndim != 4:
        return _report(False, f"v must be an image of shape (B, C, H, W), got shape {tuple(v.shape)}.")
    if not torch.isfinite(v).all():
        return _report(False, "v contains NaN or Inf values.")
    nv = float(v.double().norm())
    if nv <= 1e-6 * max(1.0, v.numel() ** 0.5):
        return _report(False, "v is (almost) zero. The zero image is in every null space; find a nonzero one. "
                              + _kind_hint(op))
    try:
        with torch.no_grad():
            av = op(v)
    except Exception as err:  # noqa: BLE001
        return _report(False, f"A(v) raised {type(err).__name__}: {err}")
    nav = float(av.double().norm())
    ratio = nav / nv
    if ratio <= rtol:
        return _report(True, f"‖A v‖ / ‖v‖ = {ratio:.1e}: A cannot tell x from x + v, so no method can recover "
                             "this part of x from the measurement alone; a prior has to fill it in.")
    return _report(False, f"‖A v‖ / ‖v‖ = {ratio:.3g}, above {rtol:g}: A still sees v. " + _kind_hint(op))


# ---------------------------------------------------------------- Wiener versus Richardson–Lucy
def richardson_lucy_deblur(operator: GaussianBlur, y: torch.Tensor, num_iter: int) -> torch.Tensor:
    """Richardson–Lucy deconvolution of a blurred measurement ``y`` (model space, (B, C, H, W)).

    Works in image space [0, 1] (RL needs non-negative values), pads by reflection as the operator
    does (scikit-image would pad with zeros and darken the borders), and returns the image in
    image space [0, 1], (B, C, H, W).
    """
    from skimage.restoration import richardson_lucy

    from ..data import to_image_space

    p = operator.kernel_size
    kernel = operator.kernel.double().cpu().numpy()[..., None]
    out = []
    for img in to_image_space(y.detach().cpu()).clamp(0, 1):
        padded = np.pad(img.permute(1, 2, 0).double().numpy(), ((p, p), (p, p), (0, 0)), mode="reflect")
        rl = richardson_lucy(padded, kernel, num_iter=num_iter)[p:-p, p:-p]
        out.append(torch.from_numpy(np.ascontiguousarray(rl)).permute(2, 0, 1).float())
    return torch.stack(out)


def deblur_sweep(image: torch.Tensor, noise_std: float, seed: int = 0, iterations=(5, 20, 100),
                 balances=(1e-3, 1e-2, 1e-1)) -> dict:
    """PSNR [dB] (image space, ``data_range=1``) of Richardson–Lucy for each iteration count and of
    Wiener deconvolution for each λ, on ``image`` (model space, (1, C, H, W)) blurred by the course's
    deblurring task for its size (:func:`helpers.evaluate.build_task`) with noise ``noise_std``, seed ``seed``.

    Returns ``{"rl": {iterations: psnr}, "wiener": {λ: psnr}}``.
    """
    from ..data import to_image_space
    from ..evaluate import baseline_reconstruction, build_task
    from ..metrics import psnr

    image = torch.as_tensor(image, dtype=torch.float32)
    image = image[None] if image.ndim == 3 else image[:1]
    task = build_task("deblur", image.shape[-1])
    y = task.operator.measure(image, noise_std=noise_std, seed=seed)
    ref = to_image_space(image)
    rl = {int(n): float(psnr(richardson_lucy_deblur(task.operator, y, int(n)), ref, data_range=1.0)[0])
          for n in iterations}
    wiener = {float(b): float(psnr(to_image_space(baseline_reconstruction(task, y, {"balance": float(b)})), ref,
                                   data_range=1.0)[0]) for b in balances}
    return {"rl": rl, "wiener": wiener}


def check_deblur_settings(best_iterations, best_balance, image: torch.Tensor, noise_std: float, seed: int = 0,
                          iterations=(5, 20, 100), balances=(1e-3, 1e-2, 1e-1)) -> CheckResult:
    """Are ``best_iterations`` (of ``iterations``) and ``best_balance`` (of ``balances``) the Richardson–Lucy
    iteration count and the Wiener λ with the highest PSNR on ``image``?

    The checker measures them itself with :func:`deblur_sweep` (same task, noise and seed as the chapter's
    exercise), so it also catches a sweep computed without the reflect padding or in the wrong space.
    """
    import math

    from ._checks import _as_number

    for name, answer in (("best_iterations", best_iterations), ("best_balance", best_balance)):
        if answer is None or answer is Ellipsis:
            return _report(False, f"replace the `...` of {name} with one value of your sweep.")
    n, lam = _as_number(best_iterations), _as_number(best_balance)
    if n is None or lam is None:
        return _report(False, "give one number each: the iteration count and the λ with the highest PSNR.")
    if not any(n == k for k in iterations):
        return _report(False, f"{n:g} iterations is not one of the counts of the exercise, {list(iterations)}.")
    if not any(math.isclose(lam, b, rel_tol=1e-6) for b in balances):
        return _report(False, f"λ = {lam:g} is not one of the balances of the exercise, {list(balances)}.")
    sweep = deblur_sweep(image, noise_std, seed, iterations, balances)
    best_n = max(sweep["rl"], key=sweep["rl"].get)
    best_lam = max(sweep["wiener"], key=sweep["wiener"].get)
    rl = ", ".join(f"{k}: {v:.2f}" for k, v in sweep["rl"].items())
    wi = ", ".join(f"{k:g}: {v:.2f}" for k, v in sweep["wiener"].items())
    hints = []
    if n != best_n:
        more = "more" if n > best_n else "fewer"
        hints.append(f"{n:g} iterations is not Richardson–Lucy's best: with {more} iterations than the best, "
                     + ("it fits the noise (PSNR rises, then falls: semi-convergence)." if n > best_n else
                        "the image is still blurred.")
                     + " Pad by reflection before richardson_lucy, or the borders darken and every PSNR drops.")
    if not math.isclose(lam, best_lam, rel_tol=1e-6):
        hints.append(f"λ = {lam:g} is not Wiener's best: " + ("a smaller λ inverts more of the blur and lets "
                     "more noise through; " if lam < best_lam else "a larger λ smooths more; ")
                     + "compare the PSNR of each λ.")
    if hints:
        return _report(False, " ".join(hints))
    return _report(True, f"Richardson–Lucy is best at {best_n} iterations (PSNR by iterations: {rl} dB), Wiener at "
                         f"λ = {best_lam:g} (PSNR by λ: {wi} dB).")
