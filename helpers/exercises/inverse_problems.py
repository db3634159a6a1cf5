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
================================  ==========================================================

Images are float32 tensors in the (B, C, H, W) layout of :mod:`helpers.operators`.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ._checks import CheckResult
from ..operators import GaussianBlur, Operator, SuperResolution, _MaskOperator

__all__ = ["check_adjoint", "check_null_space_vector", "true_adjoint"]


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
