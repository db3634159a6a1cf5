"""Checkers for the exercises of the chapter *SDEdit*.

==============================  ==========================================================
checker                         what the student supplies
==============================  ==========================================================
:func:`check_sdedit_start`      ``fn(x_guide, noise, t0, schedule) -> x_{t0}``
:func:`check_sdedit_best_t0`    the t0 of a sweep with the best mean metric
==============================  ==========================================================
"""
from __future__ import annotations

from typing import Callable, Optional


from ._checks import CheckResult, _as_tensor, _call, _close, _inputs, _max_diff, _report, _schedule, check_best_of_sweep
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


__all__ += ["check_sdedit_start", "check_best_of_sweep", "check_sdedit_best_t0"]


