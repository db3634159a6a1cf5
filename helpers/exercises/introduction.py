"""Checkers for the exercises of the chapter *Introduction*.

==============================  ==========================================================
checker                         what the student supplies
==============================  ==========================================================
:func:`check_noise_psnr`        the PSNR of a noisy measurement (noise alone)
:func:`check_kept_fraction`     the fraction of pixels each operator keeps
==============================  ==========================================================
"""
from __future__ import annotations

import math


from ._checks import CheckResult, _report


__all__ = ["check_noise_psnr", "check_kept_fraction", "noise_psnr_range", "noise_psnr_closed_form"]


# ---------------------------------------------------------------------------- chapter 1 (Introduction)
#: The number of noise draws over which :func:`noise_psnr_range` measures the spread of the PSNR.
NOISE_PSNR_SEEDS = 20


def noise_psnr_closed_form(noise_std: float) -> float:
    """20·log10(2/σ_y): the PSNR [dB] in image space [0, 1] of noise of std σ_y in model space [-1, 1]."""
    return 20 * math.log10(2.0 / noise_std)


def _unclipped_sd_db(n_values: int) -> float:
    """Standard deviation [dB] of a *measured* PSNR of pure Gaussian noise over ``n_values`` numbers.

    The MSE is a mean of n squared Gaussians: its relative standard deviation is √(2/n), which is
    (10/ln 10)·√(2/n) dB (about 0.056 dB on a 64×64 colour image).
    """
    return 10 / math.log(10) * math.sqrt(2.0 / n_values)


def noise_psnr_range(image, noise_std: float, n_seeds: int = NOISE_PSNR_SEEDS) -> dict:
    """The PSNR [dB] of ``image + noise_std · n`` (model space) against ``image``, measured as the course does.

    Each draw ``n`` is seeded 0 … n_seeds − 1; both images go through :func:`helpers.data.to_image_space`
    (which clips to [0, 1]) and :func:`helpers.metrics.psnr` with ``data_range=1``. Returns
    ``{"min", "max", "mean", "sd", "closed_form", "n_seeds"}``: clipping only removes noise, so the
    measured values lie a little above the closed form 20·log10(2/σ_y), the more the darker or
    brighter the image.
    """
    import numpy as np
    import torch

    from ..data import to_image_space
    from ..metrics import psnr

    x = torch.as_tensor(image, dtype=torch.float32)
    x = x[None] if x.ndim == 3 else x
    ref = to_image_space(x)
    values = []
    for seed in range(n_seeds):
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        values.append(float(np.mean(psnr(to_image_space(x + noise_std * noise), ref, data_range=1.0))))
    v = np.asarray(values)
    return {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean()),
            "sd": float(v.std(ddof=1)) if n_seeds > 1 else 0.0,
            "closed_form": noise_psnr_closed_form(noise_std), "n_seeds": n_seeds}


def check_noise_psnr(value, noise_std: float, image=None, n_seeds: int = NOISE_PSNR_SEEDS) -> CheckResult:
    """Is ``value`` the PSNR [dB] of an image corrupted only by Gaussian noise of std ``noise_std``?

    ``noise_std`` is σ_y in model space [-1, 1]; PSNR is computed in image space [0, 1]
    (``data_range=1``), where the noise has std σ_y / 2. Two answers are right:

    * the closed form 10·log10(1 / (σ_y/2)²) = 20·log10(2/σ_y), and
    * a PSNR *measured* on ``image`` (model space, (C, H, W) or (1, C, H, W)) with
      ``to_image_space``, which clips to [0, 1] and so removes part of the noise: its values lie a
      little above the closed form.

    Accepted: from the closed form minus 3 standard deviations of an unclipped measurement (the MSE of
    n noisy numbers varies by √(2/n)) up to the largest PSNR measured on ``image`` over ``n_seeds`` draws
    (:func:`noise_psnr_range`) plus 3 standard deviations of those draws. Without ``image`` only the
    closed form ± 3 standard deviations of an unclipped measurement on a 64×64 colour image is accepted.
    """
    from ._checks import _as_number

    if not (isinstance(noise_std, (int, float)) and noise_std > 0):
        raise ValueError(f"noise_std must be a positive number (σ_y in model space), got {noise_std!r}")
    if value is None or value is Ellipsis:
        return _report(False, "replace the `...` with your PSNR in dB (a number).")
    v = _as_number(value)
    if v is None:
        return _report(False, f"the answer must be one number in dB, got {type(value).__name__}.")
    if not math.isfinite(v):
        return _report(False, "the answer must be a finite number of dB (an infinite PSNR means no noise was added).")
    closed = noise_psnr_closed_form(noise_std)
    if image is not None:
        import torch

        n_values = int(torch.as_tensor(image).numel())
        measured = noise_psnr_range(image, noise_std, n_seeds)
        low = closed - 3 * _unclipped_sd_db(n_values)
        high = max(measured["max"] + 3 * measured["sd"], closed + 3 * _unclipped_sd_db(n_values))
        span = (f"measured on this image over {n_seeds} noise draws, {measured['min']:.2f}–{measured['max']:.2f} dB "
                f"(clipping to [0, 1] removes part of the noise of dark and bright pixels, so a measurement lies a "
                f"little above the closed form)")
    else:
        n_values = 3 * 64 * 64
        low, high = closed - 3 * _unclipped_sd_db(n_values), closed + 3 * _unclipped_sd_db(n_values)
        span = "a measurement on a real image lies a little above it, because clipping to [0, 1] removes some noise"
    if low <= v <= high:
        return _report(True, f"{v:.2f} dB. The closed form is 20·log10(2/σ_y) = {closed:.2f} dB for σ_y = {noise_std:g}; "
                             f"{span}.")

    def near(x: float) -> bool:
        return abs(v - x) < 0.3

    if near(20 * math.log10(1.0 / noise_std)):
        return _report(False, "you used σ_y as the image-space noise. σ_y is in model space [-1, 1], twice as wide as "
                              "image space [0, 1]: the image-space std is σ_y / 2 (or, measuring, bring both images "
                              "to image space with to_image_space before psnr).")
    if near(10 * math.log10(2.0 / noise_std)) or near(10 * math.log10(1.0 / noise_std)):
        return _report(False, "PSNR = 10·log10(range² / MSE): the MSE of the noise is its variance, the std *squared*.")
    if near(20 * math.log10(4.0 / noise_std)):
        return _report(False, "you halved the noise twice: σ_y in model space is σ_y / 2 in image space, not σ_y / 4 "
                              "(add noise_std · randn in model space, then map both images with to_image_space).")
    where = "above" if v > high else "below"
    return _report(False, f"{v:.2f} dB is {where} the accepted range {low:.2f}–{high:.2f} dB. PSNR = 10·log10(data_range² "
                          "/ MSE) with data_range = 1 (image space); the MSE of pure Gaussian noise is its variance. "
                          "Convert σ_y from model space [-1, 1] to image space first.")


def check_kept_fraction(answers, image_size: int = 64) -> CheckResult:
    """Fractions of an image's numbers that each measurement keeps, for the first chapter's operators.

    ``answers``: ``{"box": f, "random": f, "sr4": f}`` for a ``BoxInpainting(image_size,
    image_size // 2)`` (a box of half the side), ``RandomInpainting(keep_fraction=0.3)`` and
    ``SuperResolution(4)``; each f in [0, 1]. Expected 0.75, 0.3 and 1/16.
    """
    expected = {"box": 1 - 0.25, "random": 0.3, "sr4": 1 / 16}
    hints = {
        "box": "the box has half the side of the image, so it hides (1/2)² of the pixels.",
        "random": "RandomInpainting(keep_fraction=0.3) keeps 30 % of the pixels.",
        "sr4": "×4 super-resolution averages 4 × 4 blocks: one number per 16 pixels (per channel).",
    }
    if not isinstance(answers, dict):
        return _report(False, f"give a dict {{'box': ..., 'random': ..., 'sr4': ...}}, got {type(answers).__name__}.")
    missing = [k for k in expected if k not in answers]
    if missing:
        return _report(False, f"the dict lacks {missing}; give one fraction per operator.")
    wrong = []
    for k, e in expected.items():
        a = answers[k]
        if a is None or a is Ellipsis:
            return _report(False, f"replace the `...` of {k!r} with a fraction between 0 and 1.")
        try:
            a = float(a)
        except (TypeError, ValueError):
            return _report(False, f"{k!r}: the fraction must be a number, got {type(a).__name__}.")
        if abs(a - e) > 0.01:
            wrong.append(k)
    if wrong:
        return _report(False, " ".join(f"{k}: {hints[k]}" for k in wrong))
    return _report(True, "box 0.75, random 0.30, ×4 super-resolution 0.0625: super-resolution keeps the fewest numbers, "
                         "yet its missing information is only fine detail, spread evenly over the face.")

