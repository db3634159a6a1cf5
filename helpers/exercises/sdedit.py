"""Checkers for the exercises of the chapter *SDEdit*.

==============================  ==========================================================
checker                         what the student supplies
==============================  ==========================================================
:func:`check_sdedit_start`      ``fn(x_guide, noise, t0, schedule) -> x_{t0}``
:func:`check_sdedit_best_t0`    the t0 of a sweep with the best mean metric
:func:`check_sdedit_gains`      ``{task: gain}``: each task's best mean PSNR over the t0 sweep
                                minus the measurement's mean PSNR (dB)
==============================  ==========================================================
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Optional

import numpy as np


from ._checks import CheckResult, _as_number, _as_tensor, _call, _close, _inputs, _max_diff, _report, _schedule, check_best_of_sweep
from ..schedule import NoiseSchedule


__all__ = ["check_sdedit_start", "check_sdedit_best_t0"]


# ---------------------------------------------------------------------- SDEdit (chapter "SDEdit")
def check_sdedit_start(fn: Callable, schedule: Optional[NoiseSchedule] = None) -> CheckResult:
    """Does ``fn(x_guide, noise, t0, schedule)`` return SDEdit's starting point x_{t0}?

    x_{t0} = √ᾱ_s x_guide + √(1 − ᾱ_s) ε with the training index s = round(t0 · (T − 1)), as in
    :func:`helpers.samplers.sdedit` (t0 is a fraction of the T training steps). Checked at
    t0 = 0.1, 0.4, 0.75, 1.0 on random tensors.
    """
    sched = _schedule(schedule)
    T = sched.num_train_timesteps
    for k, t0 in enumerate((0.1, 0.4, 0.75, 1.0)):
        x, _, z = _inputs(100 + k)
        s = int(round(t0 * (T - 1)))
        ref = sched.add_noise(x.double(), z.double(), s)
        out, err = _call(fn, x.clone(), z.clone(), t0, sched)
        if err:
            return _report(False, err + " (it is called as fn(x_guide, noise, t0, schedule)).")
        try:
            mine = _as_tensor(out, x)
        except (TypeError, ValueError) as e:
            return _report(False, str(e))
        if _close(mine, ref):
            continue
        if _close(mine, x.double()):
            return _report(False, f"at t0 = {t0} you returned the guide itself: add noise of the level of time "
                                  "s = round(t0 · (T − 1)).")
        for wrong, hint in ((int(round(t0 * T)), "use s = round(t0 · (T − 1)): training indices run from 0 to T − 1"),
                            (int(t0 * (T - 1)), "round t0 · (T − 1) to the nearest integer (int() truncates)")):
            if 0 <= wrong < T and _close(mine, sched.add_noise(x.double(), z.double(), wrong)):
                return _report(False, hint + ".")
        a = sched.alpha_bar(s)
        if _close(mine, a * x.double() + (1 - a) * z.double()):
            return _report(False, "the weights are √ᾱ_s and √(1 − ᾱ_s) (square roots), not ᾱ_s and 1 − ᾱ_s.")
        return _report(False, f"at t0 = {t0} the result differs from √ᾱ_s x + √(1 − ᾱ_s) ε with s = {s} "
                              f"(max |error| {_max_diff(mine, ref):.3g}); schedule.alpha_bar(s) gives ᾱ_s.")
    return _report(True, "x_{t0} = √ᾱ_s x_guide + √(1 − ᾱ_s) ε with s = round(t0 · (T − 1)), as in helpers.samplers.sdedit.")



def check_sdedit_best_t0(answer, t0s, values, higher_is_better: bool = True, metric: str = "PSNR") -> CheckResult:
    """Is ``answer`` the t0 of ``t0s`` with the best mean of ``values`` over the images?

    ``values``: shape (N,) (one per t0) or (n_images, N), e.g. PSNR (``higher_is_better=True``)
    or LPIPS (``higher_is_better=False``). The student computes the best t0 from a sweep.
    """
    return check_best_of_sweep(answer, t0s, values, name="t0", higher_is_better=higher_is_better, metric=metric)


def sdedit_gains(sweep: Mapping, t0s) -> dict:
    """The reference: ``{task: max_j mean_i psnr[i, j] − mean_i measurement_psnr[i]}`` (dB)."""
    out = {}
    for name, r in sweep.items():
        p = np.asarray(r["psnr"], dtype=float)
        if p.ndim != 2 or p.shape[1] != len(t0s):
            raise ValueError(f"sweep[{name!r}]['psnr'] must have shape (images, {len(t0s)}), got {p.shape}")
        out[name] = float(p.mean(axis=0).max() - np.asarray(r["measurement_psnr"], dtype=float).mean())
    return out


def check_sdedit_gains(gains, sweep: Mapping, t0s, tol: float = 1e-3) -> CheckResult:
    """Is ``gains`` the gain of SDEdit's best start time over the measurement, for every task of ``sweep``?

    ``sweep``: the chapter's ``{task: {"psnr": (n_images, len(t0s)), "measurement_psnr": (n_images,)}}``.
    The gain of a task is the largest mean PSNR over the swept t0 minus the mean PSNR of the
    measurement (dB); ``gains`` maps every task name to it (within ``tol`` dB).
    """
    ref = sdedit_gains(sweep, t0s)
    if gains is None or gains is Ellipsis:
        return _report(False, "replace the `...` with a dict {task name: gain in dB} for every task of the sweep.")
    if not isinstance(gains, Mapping):
        return _report(False, f"gains must be a dict {{task name: gain in dB}}, got {type(gains).__name__}.")
    missing = [n for n in ref if n not in gains]
    if missing:
        return _report(False, f"gains has no value for {missing}: give one for every task of the sweep ({list(ref)}).")
    for name, want in ref.items():
        got = _as_number(gains[name])
        if got is None or not math.isfinite(got):
            return _report(False, f"gains[{name!r}] must be one finite number (dB), got {gains[name]!r}.")
        if abs(got - want) <= tol:
            continue
        r = sweep[name]
        p, m = np.asarray(r["psnr"], dtype=float), float(np.asarray(r["measurement_psnr"], dtype=float).mean())
        if abs(got + want) <= tol:
            return _report(False, f"{name}: the sign is reversed: the gain is SDEdit's PSNR minus the measurement's.")
        if abs(got - (p.mean(axis=0).mean() - m)) <= tol:
            return _report(False, f"{name}: you averaged over all t0; take the best t0 (the max of the mean over the images).")
        if abs(got - (p.max(axis=1).mean() - m)) <= tol or abs(got - (p.max() - m)) <= tol:
            return _report(False, f"{name}: average over the images first (axis 0), then take the max over t0: one t0 "
                                  "for all images, not the best per image.")
        if abs(got - p.mean(axis=0).max()) <= tol:
            return _report(False, f"{name}: that is SDEdit's best PSNR itself; subtract the measurement's mean PSNR.")
        return _report(False, f"{name}: {got:.3f} dB differs from the gain of the best t0 over the measurement "
                              f"(mean over the images, max over t0, minus the measurement's mean).")
    best, worst = max(ref, key=ref.get), min(ref, key=ref.get)
    return _report(True, f"largest gain for {best} ({ref[best]:+.2f} dB), smallest for {worst} ({ref[worst]:+.2f} dB).")


__all__ += ["check_sdedit_start", "check_best_of_sweep", "check_sdedit_best_t0", "check_sdedit_gains", "sdedit_gains"]


