"""What every exercise checker shares: :class:`CheckResult`, the printed verdict, tolerant
comparison of a student's tensors, number parsing, and the best-of-a-sweep checker.

Each checker compares a student's number or function with the reference code of :mod:`helpers`,
prints ``Correct: ...`` or ``Not yet: <hint>``, and returns a :class:`CheckResult`, which is truthy
exactly when the answer is correct (``assert check_x0_estimate(my_fn)`` works). In Jupyter the
result itself displays nothing, so the printed sentence is the only output. A checker never raises
on a student's answer: ``...``, ``None``, a function that raises or returns the wrong shape all
give a hint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..schedule import NoiseSchedule

@dataclass
class CheckResult:
    """Outcome of a checker: ``passed`` (also its truth value) and the printed ``message``."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __eq__(self, other) -> bool:
        if isinstance(other, bool):
            return self.passed is other
        if isinstance(other, CheckResult):
            return (self.passed, self.message) == (other.passed, other.message)
        return NotImplemented

    __hash__ = None  # mutable dataclass with a custom __eq__

    def __repr__(self) -> str:
        return f"CheckResult(passed={self.passed})"

    def _ipython_display_(self) -> None:  # the message was printed already
        pass


def _report(passed: bool, text: str) -> CheckResult:
    message = ("Correct: " if passed else "Not yet: ") + text
    print(message)
    return CheckResult(passed, message)


def _schedule(schedule: Optional[NoiseSchedule]) -> NoiseSchedule:
    return NoiseSchedule.linear() if schedule is None else schedule


def _as_tensor(out, like: torch.Tensor) -> torch.Tensor:
    """The student's output as a float64 tensor (accepts tensors, arrays and StepOutput-like objects)."""
    if hasattr(out, "prev_sample"):
        out = out.prev_sample
    if out is None:
        raise TypeError("your function returned None: replace the `...` with your code and `return` the result.")
    t = torch.as_tensor(np.asarray(out.detach().cpu() if torch.is_tensor(out) else out), dtype=torch.float64)
    if tuple(t.shape) != tuple(like.shape):
        raise ValueError(f"your function returned shape {tuple(t.shape)}, expected {tuple(like.shape)} (the shape of x_t)")
    return t


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    return bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol))


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def _call(fn: Callable, *args):
    """Call the student's function; return (output, None) or (None, hint)."""
    try:
        return fn(*args), None
    except Exception as err:  # the student's code: report, never raise
        return None, f"your function raised {type(err).__name__}: {err}"


def _inputs(seed: int, shape=(2, 1, 4, 4)):
    g = torch.Generator().manual_seed(seed)
    x_t = torch.randn(shape, generator=g)
    eps = torch.randn(shape, generator=g)
    noise = torch.randn(shape, generator=g)
    return x_t, eps, noise



def _as_number(value) -> Optional[float]:
    """A float from a number, a 0-d/one-element tensor or array; ``None`` if it is not one."""
    try:
        if torch.is_tensor(value):
            return float(value.detach().cpu().reshape(-1)[0]) if value.numel() == 1 else None
        arr = np.asarray(value, dtype=float)
        return float(arr.reshape(-1)[0]) if arr.size == 1 else None
    except (TypeError, ValueError):
        return None


def check_best_of_sweep(answer, swept, values, *, name: str, higher_is_better: bool = True,
                        metric: str = "PSNR") -> CheckResult:
    """Is ``answer`` the value of ``swept`` (e.g. SDEdit's t0, ScoreALD's λ, DPS's ζ′) with the best
    mean of ``values`` over the images?

    ``values``: shape (N,) (one per swept value) or (n_images, N). A column holding NaN is a run
    that diverged: it never counts as best. ``name`` is the swept symbol used in the messages.
    The chapters' checkers :func:`check_sdedit_best_t0`,
    :func:`helpers.exercises.score_ald.check_best_step_size` and
    :func:`helpers.exercises.dps.check_dps_best_zeta` are this function with their symbol.
    """
    try:
        swept = [float(s) for s in swept]
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return _report(False, f"the swept values must be numbers and values a numeric array (one column per {name}).")
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2 or v.shape[1] != len(swept) or not swept:
        return _report(False, f"values must have shape ({len(swept)},) or (n_images, {len(swept)}), one column per "
                              f"{name}; got {np.asarray(values).shape}.")
    finite = np.isfinite(v).all(axis=0)
    if not finite.any():
        return _report(False, f"every {name} of the sweep diverged (all NaN): there is no best one.")
    mean = np.where(finite, np.where(np.isfinite(v), v, 0.0).mean(axis=0), np.nan)
    best_i = int(np.nanargmax(mean) if higher_is_better else np.nanargmin(mean))
    if answer is None or answer is Ellipsis:
        return _report(False, f"replace the `...` with your {name} (a number from the sweep).")
    a = _as_number(answer)
    if a is None:
        return _report(False, f"the answer must be one number (a {name} of the sweep), got {type(answer).__name__}.")
    if not math.isfinite(a):
        return _report(False, "the answer must be a finite number.")
    matches = [i for i, s in enumerate(swept) if math.isclose(a, s, rel_tol=1e-9, abs_tol=1e-12)]
    if best_i in matches:
        word = "highest" if higher_is_better else "lowest"
        return _report(True, f"{name} = {swept[best_i]:g} gives the {word} mean {metric} ({mean[best_i]:.3f}).")
    if not matches:
        return _report(False, f"{a:g} is not one of the swept values {swept}.")
    i = matches[0]
    if not finite[i]:
        return _report(False, f"{name} = {a:g} diverged (NaN in its column): it cannot be the best. Ignore NaN columns "
                              f"(np.nanmean / np.nanargmax, or skip the diverged {name}).")
    arg = "arg max" if higher_is_better else "arg min"
    extra = ""
    if v.shape[0] > 1 and np.isfinite(v[0]).any():
        first = np.where(np.isfinite(v[0]), v[0], -np.inf if higher_is_better else np.inf)
        if i == int(np.argmax(first) if higher_is_better else np.argmin(first)):
            extra = f" That is the best {name} for the first image only: average over the images (axis 0) first."
    worse = "lower" if higher_is_better else "higher"
    return _report(False, f"{name} = {a:g} has a mean {metric} of {mean[i]:.3f}, {worse} than another {name} of the "
                          f"sweep; average over the images (axis 0) and take the {arg}.{extra}")


