"""Small utilities shared by several modules (no algorithms here).

* :func:`file_sha256` -- the SHA-256 of a file;
* :func:`as_int` / :func:`as_float` -- validate "a (positive) integer / number" argument,
  accepting Python, numpy and 0-d torch scalars alike, with an error that names the argument.
"""

from __future__ import annotations

import builtins
import hashlib
import math
import numbers
from pathlib import Path
from typing import Any, Optional

__all__ = ["file_sha256", "as_int", "as_float"]


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _scalar(value: Any, name: str, what: str):
    """``value`` as a Python ``int`` or ``float`` (from Python, numpy or a one-element torch tensor)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise TypeError(f"{name} must be {what}, got the boolean {value!r}")
    if hasattr(value, "numel") and hasattr(value, "item"):  # torch tensor
        if value.numel() != 1:
            raise TypeError(f"{name} must be {what}, got a tensor of shape {tuple(value.shape)}")
        if value.dtype.is_complex or str(value.dtype) == "torch.bool":
            raise TypeError(f"{name} must be {what}, got a {value.dtype} tensor")
        value = value.item()
    elif hasattr(value, "ndim") and hasattr(value, "item") and hasattr(value, "dtype"):  # numpy array / scalar
        if getattr(value, "size", 1) != 1:
            raise TypeError(f"{name} must be {what}, got an array of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool):
        raise TypeError(f"{name} must be {what}, got the boolean {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")


def _bounds_text(low, high, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}" if isinstance(low, float) else f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}" if isinstance(high, float) else f"{'<' if high_open else '<='} {high}")
    return " and ".join(parts)


def as_int(value: Any, name: str, *, min: Optional[int] = None, max: Optional[int] = None,
           positive: bool = False, hint: str = "") -> int:
    """``value`` as a Python ``int``, or a clear error naming ``name``.

    Accepts ``int``, numpy integers, one-element numpy arrays and torch tensors, and
    integral floats (``64.0``, ``torch.tensor(1.0)``); rejects booleans, non-integral or
    non-finite numbers (``TypeError`` for a wrong type, ``ValueError`` for a wrong value).
    ``positive=True`` means ``min=1``; ``min`` / ``max`` are inclusive. ``hint`` is appended
    to the message (how to fix it).
    """
    if positive:
        min = 1 if min is None else builtins.max(min, 1)
    what = "an integer" + (f" {_bounds_text(min, max, False, False)}" if (min is not None or max is not None) else "")
    tail = f"; {hint}" if hint else ""
    v = _scalar(value, name, what)
    if isinstance(v, float):
        if not math.isfinite(v) or not v.is_integer():
            raise ValueError(f"{name} must be {what}, got {v!r}{tail}")
        v = int(v)
    if (min is not None and v < min) or (max is not None and v > max):
        raise ValueError(f"{name} must be {what}, got {v}{tail}")
    return v


def as_float(value: Any, name: str, *, positive: bool = False, nonnegative: bool = False,
             min: Optional[float] = None, max: Optional[float] = None, max_open: bool = False,
             min_open: bool = False, finite: bool = True, hint: str = "") -> float:
    """``value`` as a Python ``float``, or a clear error naming ``name``.

    Accepts Python, numpy and one-element torch numbers alike. ``positive``: ``> 0``;
    ``nonnegative``: ``>= 0``; ``min`` / ``max`` bounds (inclusive unless ``min_open`` /
    ``max_open``); ``finite`` (default) rejects NaN and ±inf. ``TypeError`` for a wrong type,
    ``ValueError`` for a wrong value; ``hint`` is appended to the message.
    """
    if positive:
        min, min_open = (0.0, True) if min is None or min <= 0 else (min, min_open)
    elif nonnegative and (min is None or min < 0):
        min, min_open = 0.0, False
    conds = _bounds_text(None if min is None else float(min), None if max is None else float(max), min_open, max_open)
    what = ("a finite number" if finite else "a number") + (f" {conds}" if conds else "")
    tail = f"; {hint}" if hint else ""
    v = float(_scalar(value, name, what))
    if math.isnan(v) or (finite and not math.isfinite(v)):
        raise ValueError(f"{name} must be {what}, got {v!r}{tail}")
    if min is not None and (v < min or (min_open and v == min)):
        raise ValueError(f"{name} must be {what}, got {v!r}{tail}")
    if max is not None and (v > max or (max_open and v == max)):
        raise ValueError(f"{name} must be {what}, got {v!r}{tail}")
    return v

