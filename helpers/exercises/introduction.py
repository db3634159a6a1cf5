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


__all__ = ["check_noise_psnr", "check_kept_fraction"]


# ---------------------------------------------------------------------------- chapter 1 (Introduction)
def check_noise_psnr(value, noise_std: float) -> CheckResult:
    """Is ``value`` the PSNR [dB] of an image corrupted only by Gaussian noise of std ``noise_std``?

    ``noise_std`` is σ_y in model space [-1, 1]; PSNR is computed in image space [0, 1]
    (``data_range=1``), where the noise has std σ_y / 2, so the expected answer is
    10·log10(1 / (σ_y/2)²) = 20·log10(2/σ_y) (clipping to the image range ignored).
    """
    if not (isinstance(noise_std, (int, float)) and noise_std > 0):
        raise ValueError(f"noise_std must be a positive number (σ_y in model space), got {noise_std!r}")
    if value is None or value is Ellipsis:
        return _report(False, "replace the `...` with your PSNR in dB (a number).")
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _report(False, f"the answer must be a number in dB, got {type(value).__name__}.")
    expected = 20 * math.log10(2.0 / noise_std)
    if abs(v - expected) < 0.05:
        return _report(True, f"PSNR = 20·log10(2/σ_y) = {expected:.2f} dB for σ_y = {noise_std:g}.")
    if abs(v - 20 * math.log10(1.0 / noise_std)) < 0.05:
        return _report(False, "you used σ_y as the image-space noise. σ_y is in model space [-1, 1], twice as wide as "
                              "image space [0, 1]: the image-space std is σ_y / 2.")
    if abs(v - 10 * math.log10(2.0 / noise_std)) < 0.05 or abs(v - 10 * math.log10(1.0 / noise_std)) < 0.05:
        return _report(False, "PSNR = 10·log10(range² / MSE): the MSE of the noise is its variance, the std *squared*.")
    return _report(False, "PSNR = 10·log10(data_range² / MSE) with data_range = 1 (image space); the MSE of pure "
                          "Gaussian noise is its variance. Convert σ_y from model space [-1, 1] to image space first.")


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


__all__ += ["check_noise_psnr", "check_kept_fraction"]
