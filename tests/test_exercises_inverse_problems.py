"""The checkers of the inverse-problems chapter accept correct answers and reject wrong ones with a hint."""

import numpy as np
import torch
import torch.nn.functional as F

from helpers.exercises import CheckResult
from helpers.exercises.inverse_problems import check_adjoint, check_null_space_vector, true_adjoint
from helpers.operators import BoxInpainting, Denoising, GaussianBlur, RandomInpainting, SuperResolution

SR = SuperResolution(4)


def checkerboard(size, channels=3):
    i = torch.arange(size)
    return ((-1.0) ** (i[:, None] + i[None, :])).expand(1, channels, size, size).clone()


# ---------------------------------------------------------------- check_adjoint
def test_adjoint_correct(capsys):
    def my_adjoint(y):
        return y.repeat_interleave(4, dim=-2).repeat_interleave(4, dim=-1) / 16

    result = check_adjoint(SR, my_adjoint)
    assert isinstance(result, CheckResult) and result
    assert capsys.readouterr().out.startswith("Correct: ")


def test_adjoint_library_adjoints_pass(capsys):
    assert check_adjoint(SR, SR.adjoint)
    blur = GaussianBlur(9, 1.0)
    assert check_adjoint(blur, blur.adjoint)
    box = BoxInpainting(16, 8)
    assert check_adjoint(box, box.adjoint)
    capsys.readouterr()


def test_adjoint_pseudo_inverse_gets_factor_hint(capsys):
    result = check_adjoint(SR, lambda y: F.interpolate(y, scale_factor=4, mode="nearest"))
    assert not result
    out = capsys.readouterr().out
    assert out.startswith("Not yet: ") and "16" in out and "pseudo-inverse" in out


def test_adjoint_wrong_shape_and_missing(capsys):
    assert not check_adjoint(SR, lambda y: y)
    assert "shape" in capsys.readouterr().out
    assert not check_adjoint(SR, lambda y: None)
    assert "returns nothing" in capsys.readouterr().out
    assert not check_adjoint(SR, lambda y: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_adjoint_bilinear_upsampling_is_not_the_adjoint(capsys):
    result = check_adjoint(SR, lambda y: F.interpolate(y, scale_factor=4, mode="bilinear") / 16)
    assert not result
    assert capsys.readouterr().out.startswith("Not yet: ")


def test_adjoint_of_blur_is_not_the_blur_with_reflect_padding(capsys):
    # reflect padding makes the blur non-symmetric at the border: A itself is not Aᵀ
    blur = GaussianBlur(9, 1.5)
    assert not check_adjoint(blur, blur.forward)
    capsys.readouterr()


def test_true_adjoint_matches_dot_product():
    x, y = torch.randn(1, 3, 16, 16), torch.randn(1, 3, 4, 4)
    aty = true_adjoint(SR, y, x.shape)
    assert torch.allclose((SR(x) * y).sum(), (x * aty).sum(), rtol=1e-5)


# ---------------------------------------------------------------- check_null_space_vector
def test_null_space_sr_checkerboard_and_detail(capsys):
    assert check_null_space_vector(SR, checkerboard(16))
    x = torch.rand(1, 3, 16, 16)
    assert check_null_space_vector(SR, x - SR.pseudo_inverse(SR(x)))
    assert capsys.readouterr().out.startswith("Correct: ")


def test_null_space_masks():
    box = BoxInpainting(16, 8)
    assert check_null_space_vector(box, (1 - box.mask) * torch.randn(1, 3, 16, 16))
    rnd = RandomInpainting(16, 0.3, seed=1)
    assert check_null_space_vector(rnd, (1 - rnd.mask) * torch.randn(2, 1, 16, 16))
    assert not check_null_space_vector(rnd, rnd.mask * torch.randn(1, 3, 16, 16))


def test_null_space_blur_is_approximate(capsys):
    blur = GaussianBlur(9, 1.0)
    assert check_null_space_vector(blur, checkerboard(32))
    assert not check_null_space_vector(blur, torch.ones(1, 3, 32, 32))
    assert "checkerboard" in capsys.readouterr().out


def test_null_space_rejects_zero_and_bad_input(capsys):
    assert not check_null_space_vector(SR, torch.zeros(1, 3, 16, 16))
    assert "zero" in capsys.readouterr().out
    assert not check_null_space_vector(SR, None)
    assert not check_null_space_vector(SR, torch.ones(1, 3, 16, 16))
    assert "block" in capsys.readouterr().out
    assert not check_null_space_vector(Denoising(), torch.ones(1, 3, 8, 8))
    assert not check_null_space_vector(SR, torch.ones(1, 3, 15, 15))  # not divisible: A raises
    assert "raised" in capsys.readouterr().out


def test_null_space_accepts_numpy_single_image():
    assert check_null_space_vector(SR, np.asarray(checkerboard(8)[0]))


# ---------------------------------------------------------------- check_deblur_settings (exercise 3)
def test_deblur_settings_measured_by_the_checker(capsys):
    from helpers.data import face_photo, to_model_space
    from helpers.exercises.inverse_problems import check_deblur_settings, deblur_sweep

    x = to_model_space(torch.as_tensor(face_photo("astronaut", 32)))[None]
    sweep = deblur_sweep(x, 0.05)
    assert set(sweep["rl"]) == {5, 20, 100} and set(sweep["wiener"]) == {1e-3, 1e-2, 1e-1}
    best_n = max(sweep["rl"], key=sweep["rl"].get)
    best_lam = max(sweep["wiener"], key=sweep["wiener"].get)
    assert check_deblur_settings(best_n, best_lam, x, 0.05)
    assert capsys.readouterr().out.startswith("Correct: ")
    wrong_n = next(n for n in (5, 20, 100) if n != best_n)
    wrong_lam = next(b for b in (1e-3, 1e-2, 1e-1) if b != best_lam)
    assert not check_deblur_settings(wrong_n, best_lam, x, 0.05)
    assert "Richardson–Lucy's best" in capsys.readouterr().out
    assert not check_deblur_settings(best_n, wrong_lam, x, 0.05)
    assert "Wiener's best" in capsys.readouterr().out
    assert not check_deblur_settings(7, best_lam, x, 0.05)
    assert "not one of the counts" in capsys.readouterr().out
    assert not check_deblur_settings(best_n, 0.5, x, 0.05)
    assert "not one of the balances" in capsys.readouterr().out
    assert not check_deblur_settings(..., best_lam, x, 0.05)
    assert "`...`" in capsys.readouterr().out


def test_richardson_lucy_reference_pads_by_reflection():
    from helpers.exercises.inverse_problems import richardson_lucy_deblur

    blur = GaussianBlur(9, 1.0)
    flat = torch.zeros(1, 3, 32, 32)  # mid-grey: reflect padding keeps it flat, zero padding would darken the border
    out = richardson_lucy_deblur(blur, blur(flat), 20)
    assert out.shape == (1, 3, 32, 32) and torch.allclose(out, torch.full_like(out, 0.5), atol=5e-3)
