"""The SDEdit chapter's gain checker accepts the right gains and rejects typical wrong ones with a hint."""

import numpy as np

from helpers.exercises.sdedit import check_sdedit_gains, sdedit_gains
from tests.checker_asserts import fails_with, passes

T0S = [0.1, 0.2, 0.4]


def _sweep():
    rng = np.random.default_rng(0)
    return {
        "deblur": {"psnr": 25 + rng.normal(size=(4, 3)) + np.array([4.0, 2.0, -3.0]), "measurement_psnr": 24 + rng.normal(size=4)},
        "random": {"psnr": 14 + rng.normal(size=(4, 3)), "measurement_psnr": 12 + rng.normal(size=4)},
    }


def _right(sweep):
    return {n: r["psnr"].mean(0).max() - r["measurement_psnr"].mean() for n, r in sweep.items()}


def test_reference_is_best_mean_minus_measurement():
    sweep = _sweep()
    ref = sdedit_gains(sweep, T0S)
    for n, r in sweep.items():
        assert np.isclose(ref[n], r["psnr"].mean(0).max() - r["measurement_psnr"].mean())


def test_accepts_the_right_gains(capsys):
    sweep = _sweep()
    passes(check_sdedit_gains(_right(sweep), sweep, T0S), capsys)
    passes(check_sdedit_gains({n: np.float32(v) for n, v in _right(sweep).items()}, sweep, T0S), capsys)


def test_rejects_typical_mistakes(capsys):
    sweep = _sweep()
    m = {n: r["measurement_psnr"].mean() for n, r in sweep.items()}
    fails_with(check_sdedit_gains(..., sweep, T0S), capsys, "`...`")
    fails_with(check_sdedit_gains([1, 2], sweep, T0S), capsys, "dict")
    fails_with(check_sdedit_gains({"deblur": 1.0}, sweep, T0S), capsys, "random")
    fails_with(check_sdedit_gains({n: -v for n, v in _right(sweep).items()}, sweep, T0S), capsys, "sign")
    fails_with(check_sdedit_gains({n: r["psnr"].mean() - m[n] for n, r in sweep.items()}, sweep, T0S), capsys, "all t0")
    fails_with(check_sdedit_gains({n: r["psnr"].max(1).mean() - m[n] for n, r in sweep.items()}, sweep, T0S), capsys,
               "images first")
    fails_with(check_sdedit_gains({n: r["psnr"].mean(0).max() for n, r in sweep.items()}, sweep, T0S), capsys, "subtract")
    fails_with(check_sdedit_gains({n: "x" for n in sweep}, sweep, T0S), capsys, "finite number")
    fails_with(check_sdedit_gains({n: v + 1 for n, v in _right(sweep).items()}, sweep, T0S), capsys, "differs")
