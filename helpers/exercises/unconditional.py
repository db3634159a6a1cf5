"""Checkers for the exercises of the chapter *Unconditional generation*.

==============================  ==========================================================
checker                         what the student supplies
==============================  ==========================================================
:func:`check_ddim_step`         ``fn(x_t, eps, t, t_prev) -> x_{t_prev}`` (DDIM with η = 0)
:func:`check_ddim_deterministic` ``fn(prior, x_T, num_steps) -> x_0`` (a DDIM η = 0 loop)
:func:`check_eta_like_ddpm`     the η of DDIM whose samples are closest to DDPM's
==============================  ==========================================================

Every checker takes the schedule (or prior) the chapter samples with: the student's code uses
``prior.schedule``, so the reference must too (the default, the linear schedule, is only a default).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ._checks import CheckResult, _as_tensor, _call, _close, _inputs, _max_diff, _report, _schedule
from ..schedule import NoiseSchedule


__all__ = ["check_ddim_step", "check_ddim_deterministic", "check_eta_like_ddpm", "ddim_ddpm_distances"]


# ---------------------------------------------------------------------- DDIM step
def _ddim_cases(T: int) -> tuple:
    """(t, t_prev) of the steps checked (500→499, 999→979, 500→250, 60→0, 0→−1, 60→−1 for T = 1000)."""
    h, last, k = T // 2, T - 1, max(T * 6 // 100, 2)
    return ((h, h - 1), (last, last - max(T // 50, 1)), (h, T // 4), (k, 0), (0, -1), (k, -1))


def check_ddim_step(fn: Callable, schedule: Optional[NoiseSchedule] = None) -> CheckResult:
    """Does ``fn(x_t, eps, t, t_prev)`` perform one deterministic DDIM step (η = 0)?

    x_{t_prev} = √ᾱ_{t_prev} x̂_0 + √(1 − ᾱ_{t_prev}) ε, checked against
    :meth:`NoiseSchedule.ddim_step` with ``eta=0`` (x̂_0 clipped or not) of ``schedule``: pass the one
    the student's function uses (``prior.schedule``); the default is the linear schedule.
    """
    sched = _schedule(schedule)
    wrong = []
    for k, (t, t_prev) in enumerate(_ddim_cases(sched.num_train_timesteps)):
        x_t, eps, _ = _inputs(200 + k)
        out, err = _call(fn, x_t.clone(), eps.clone(), t, t_prev)
        if err:
            return _report(False, err + " (it is called as fn(x_t, eps, t, t_prev): two tensors and two ints).")
        try:
            mine = _as_tensor(out, x_t)
        except (TypeError, ValueError) as e:
            return _report(False, str(e))
        x, e = x_t.double(), eps.double()
        refs = [sched.ddim_step(e, t, t_prev, x, eta=0.0, clip_sample=c).prev_sample for c in (False, True)]
        if not any(_close(mine, r) for r in refs):
            wrong.append((t, t_prev, x, e, mine))
    if not wrong:
        return _report(True, "your DDIM step (η = 0) matches schedule.ddim_step: no noise, the predicted ε is reused.")

    def variant(kind, x, e, t, tp, clip):
        a_p = sched.alpha_bar(tp)
        x0 = sched.predict_x0(x, e, t)
        x0 = x0.clamp(-1, 1) if clip else x0
        if kind == "ddpm_mean":
            return sched.ddpm_step(e, t, tp, x, noise=None, clip_sample=clip).prev_sample
        if kind == "no_sqrt":
            return a_p**0.5 * x0 + (1 - a_p) * e
        if kind == "no_direction":
            return a_p**0.5 * x0
        if kind == "last_entry":
            a_p = float(sched.alphas_cumprod[tp]) if tp < 0 else a_p
            return a_p**0.5 * x0 + (1 - a_p) ** 0.5 * e
        raise ValueError(kind)

    hints = {
        "ddpm_mean": "that is the DDPM posterior mean (ddpm_step without noise). DDIM is a different update: "
                     "x_{t_prev} = √ᾱ_{t_prev} x̂_0 + √(1 − ᾱ_{t_prev}) ε_θ, the predicted noise put back at the new level.",
        "no_sqrt": "the noise direction is √(1 − ᾱ_{t_prev}) ε (a standard deviation), not (1 − ᾱ_{t_prev}) ε.",
        "no_direction": "you kept only √ᾱ_{t_prev} x̂_0; add the direction pointing to x_t, √(1 − ᾱ_{t_prev}) ε.",
        "last_entry": "at the last step t_prev = −1 and ᾱ_{−1} = 1; alphas_cumprod[-1] is Python's last entry: "
                      "use schedule.alpha_bar(t_prev).",
    }
    for kind, hint in hints.items():
        if all(any(_close(mine, variant(kind, x, e, t, tp, c)) for c in (False, True)) for t, tp, x, e, mine in wrong):
            return _report(False, hint)
    t, tp, x, e, mine = wrong[0]
    ref = sched.ddim_step(e, t, tp, x, eta=0.0, clip_sample=False).prev_sample
    steps = ", ".join(f"{w[0]}→{w[1]}" for w in wrong)
    return _report(False, f"wrong on the steps {steps} (max |error| {_max_diff(mine, ref):.3g} on {t}→{tp}). "
                          "DDIM with η = 0: x_{t_prev} = √ᾱ_{t_prev} x̂_0 + √(1 − ᾱ_{t_prev}) ε, no random noise.")


# ---------------------------------------------------------------------- DDIM loop
def _small_gaussian_prior(schedule: Optional[NoiseSchedule] = None):
    """An exact 1×4×4 Gaussian prior (fast; its ε is known in closed form), on ``schedule`` (default linear)."""
    from ..priors import GaussianPrior

    d = 16
    idx = torch.arange(d, dtype=torch.float64)
    cov = 0.1 * torch.exp(-((idx[:, None] - idx[None, :]) ** 2) / 8.0) + 0.01 * torch.eye(d, dtype=torch.float64)
    mean = 0.3 * torch.sin(idx / 3.0)
    return GaussianPrior(mean, cov, (1, 4, 4), schedule=schedule)


def check_ddim_deterministic(fn: Callable, prior=None, num_steps: int = 10, seed: int = 0,
                             schedule: Optional[NoiseSchedule] = None) -> CheckResult:
    """Is ``fn(prior, x_T, num_steps)`` a deterministic DDIM (η = 0) sampler?

    Checks that (1) two calls with the same x_T return the same image, (2) a different x_T gives a
    different image, and (3) the image equals ``sample_ddim(prior, eta=0, seed=seed)`` started from
    the same x_T (``prior.schedule.timesteps(num_steps)``, final step to t_prev = −1, result
    clamped to [-1, 1]). The default prior is a small exact Gaussian prior on ``schedule`` (default: the
    linear one; a chapter passes ``prior.schedule``), so the check takes milliseconds; pass a real prior
    to check on it (slower).
    """
    from ..operators import make_generator
    from ..samplers import sample_ddim

    if prior is not None and schedule is not None and schedule is not prior.schedule:
        raise ValueError("give either a prior or a schedule (the prior's schedule is used), not both")
    prior = _small_gaussian_prior(schedule) if prior is None else prior
    shape = (2, *prior.image_shape)
    x_T = torch.randn(shape, generator=make_generator(seed)).to(device=prior.device, dtype=prior.dtype)
    outs = []
    for _ in range(2):
        out, err = _call(fn, prior, x_T.clone(), num_steps)
        if err:
            return _report(False, err + " (it is called as fn(prior, x_T, num_steps)).")
        try:
            outs.append(_as_tensor(out, x_T).clamp(-1, 1))
        except (TypeError, ValueError) as e:
            return _report(False, str(e))
    if not torch.equal(outs[0], outs[1]):
        return _report(False, "two calls with the same x_T gave different images: DDIM with η = 0 draws no noise "
                              "inside the loop (eta=0, or noise=None), so the image is a function of x_T alone.")
    other, err = _call(fn, prior, (-x_T).clone(), num_steps)
    if err:
        return _report(False, err)
    if torch.allclose(_as_tensor(other, x_T).clamp(-1, 1), outs[0]):
        return _report(False, "your function returns the same image for a different x_T: start the loop from the "
                              "x_T it is given (do not draw a new one).")
    ref = sample_ddim(prior, shape[0], num_steps=num_steps, eta=0.0, seed=seed, progress=False).sample
    ref_noclip = sample_ddim(prior, shape[0], num_steps=num_steps, eta=0.0, seed=seed, clip_denoised=False,
                             progress=False).sample
    mine = outs[0]
    if _close(mine, ref.cpu(), atol=1e-4) or _close(mine, ref_noclip.cpu(), atol=1e-4):
        return _report(True, "deterministic, and the same image as sample_ddim(eta=0) from this x_T.")
    lead = sample_ddim(prior, shape[0], num_steps=num_steps, eta=0.0, seed=seed, timestep_spacing="leading",
                       progress=False).sample
    if _close(mine, lead.cpu(), atol=1e-4):
        return _report(False, "you used diffusers' 'leading' spacing; visit prior.schedule.timesteps(num_steps) "
                              "(the default 'linspace', which starts at t = T − 1).")
    return _report(False, f"deterministic, but not the DDIM image (max |error| {_max_diff(mine, ref.cpu()):.3g}). "
                          "Visit ts = prior.schedule.timesteps(num_steps) in order; at each t use eps = prior.eps(x, t) "
                          "and prior.schedule.ddim_step(eps, t, t_prev, x, eta=0), with t_prev the next entry of ts "
                          "and −1 after the last one.")




# ---------------------------------------------------------------------- η between DDIM and DDPM
def ddim_ddpm_distances(prior, num_steps: int = 10, seed: int = 0, etas=(0.0, 0.5, 1.0),
                        num_images: int = 4) -> dict:
    """Mean absolute difference between DDIM samples with each η and DDPM samples, same seeds and steps.

    Both samplers run ``num_steps`` steps of ``prior.schedule`` from the same initial noise (image i
    seeded ``seed + i``) and draw their step noise from the same seeded stream. Returns ``{η: distance}``
    in model-space units.
    """
    from ..samplers import sample_ddim, sample_ddpm

    seeds = [seed + i for i in range(num_images)]
    ddpm = sample_ddpm(prior, num_images, num_steps=num_steps, seed=seeds, progress=False).sample.double().cpu()
    out = {}
    for eta in etas:
        ddim = sample_ddim(prior, num_images, num_steps=num_steps, eta=float(eta), seed=seeds,
                           progress=False).sample.double().cpu()
        out[float(eta)] = float((ddim - ddpm).abs().mean())
    return out


def check_eta_like_ddpm(answer, prior=None, num_steps: int = 10, seed: int = 0, etas=(0.0, 0.5, 1.0),
                        num_images: int = 4, schedule: Optional[NoiseSchedule] = None) -> CheckResult:
    """Is ``answer`` the η (one of ``etas``) whose DDIM samples are closest to DDPM's on ``prior``?

    Measured, not assumed: :func:`ddim_ddpm_distances` runs both samplers with ``num_steps`` steps on
    the same seeds (``num_images`` images). The default prior is a small exact Gaussian prior on
    ``schedule``; a chapter passes its ``prior``.
    """
    import math

    from ._checks import _as_number

    prior = _small_gaussian_prior(schedule) if prior is None else prior
    if answer is None or answer is Ellipsis:
        return _report(False, f"replace the `...` with one of the η you tried, {list(etas)}.")
    a = _as_number(answer)
    if a is None or not math.isfinite(a):
        return _report(False, f"the answer must be one number, an η of {list(etas)}; got {answer!r}.")
    if not any(math.isclose(a, float(e), abs_tol=1e-9) for e in etas):
        return _report(False, f"{a:g} is not one of the η compared, {list(etas)}.")
    dist = ddim_ddpm_distances(prior, num_steps, seed, etas, num_images)
    best = min(dist, key=dist.get)
    table = ", ".join(f"η = {e:g}: {d:.3f}" for e, d in dist.items())
    if math.isclose(a, best, abs_tol=1e-9):
        return _report(True, f"η = {best:g}. Mean |DDIM − DDPM| over {num_images} images, {num_steps} steps: {table}. "
                             "With η = 1 DDIM has the ancestral variance and, drawing the same noise, retraces DDPM.")
    if a < best:
        hint = (f"η = {a:g} adds less noise than DDPM: with η = 0 DDIM draws no noise after the start, so its "
                "trajectory leaves DDPM's at the first step.")
    else:
        hint = f"η = {a:g} is not the closest."
    return _report(False, f"{hint} Compare the images (or their mean |difference| to the DDPM images, seed by seed): "
                          f"which η gives DDIM the variance σ_t² of an ancestral step?")
