"""Forward operators: adjointness, shapes, closed forms and clear errors."""

import math

import pytest
import torch

from helpers.operators import (BoxInpainting, Denoising, GaussianBlur, GaussianNoise, Operator, RandomInpainting,
                               SuperResolution)

SIZE = 16


def _operators():
    return [
        Denoising(),
        GaussianBlur(kernel_size=7, std=1.5),
        GaussianBlur(kernel_size=5, std=1.0, padding="circular"),
        GaussianBlur(kernel_size=5, std=1.0, padding="zeros"),
        BoxInpainting(SIZE, 6),
        BoxInpainting(SIZE, (4, 8), center=(4, 8)),
        RandomInpainting(SIZE, keep_fraction=0.3, seed=1),
        SuperResolution(2),
        SuperResolution(4),
    ]


@pytest.mark.parametrize("op", _operators(), ids=repr)
def test_adjointness(op):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, SIZE, SIZE, generator=g, dtype=torch.float64)
    y = torch.randn(op.output_shape(x.shape), generator=g, dtype=torch.float64)
    lhs = (op.forward(x) * y).sum()
    rhs = (x * op.adjoint(y)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("op", _operators(), ids=repr)
def test_linearity_and_batching(op):
    g = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(2, 2, 1, SIZE, SIZE, generator=g, dtype=torch.float64)
    torch.testing.assert_close(op(2 * x1 - 3 * x2), 2 * op(x1) - 3 * op(x2))
    batch = torch.cat([x1, x2])
    torch.testing.assert_close(op(batch), torch.cat([op(x1), op(x2)]))


def test_blur_preserves_constants_and_matches_closed_form_kernel():
    op = GaussianBlur(kernel_size=9, std=2.0)
    x = torch.full((1, 3, SIZE, SIZE), 0.3)
    torch.testing.assert_close(op(x), x)
    k = op.kernel
    assert k.shape == (9, 9) and abs(float(k.sum()) - 1) < 1e-6
    r = torch.arange(9.0) - 4
    expected = torch.exp(-(r[:, None] ** 2 + r[None] ** 2) / 8)
    torch.testing.assert_close(k, (expected / expected.sum()).float())
    # a centred impulse comes out as the kernel itself
    d = torch.zeros(1, 1, 21, 21)
    d[..., 10, 10] = 1
    torch.testing.assert_close(op(d)[0, 0, 6:15, 6:15], k)


def test_dps_setting_scales_with_image_size():
    assert GaussianBlur.dps_setting(256).kernel_size == 19 and GaussianBlur.dps_setting(256).std == 3.0
    small = GaussianBlur.dps_setting(32)
    assert small.std == pytest.approx(0.375) and small.kernel_size % 2 == 1
    default = GaussianBlur()
    assert default.kernel_size == 61 and default.std == 3.0


def test_box_and_random_masks():
    box = BoxInpainting(32, 16)
    assert box.kept_fraction == pytest.approx(1 - 0.25)
    assert box.mask[0, 0, 16, 16] == 0 and box.mask[0, 0, 0, 0] == 1
    rnd = RandomInpainting(32, keep_fraction=0.08, seed=3)
    assert rnd.kept_fraction == pytest.approx(0.08, abs=1 / 1024)
    torch.testing.assert_close(RandomInpainting(32, 0.08, seed=3).mask, rnd.mask)
    assert not torch.equal(RandomInpainting(32, 0.08, seed=4).mask, rnd.mask)


def test_super_resolution_average_and_pseudo_inverse():
    op = SuperResolution(4)
    x = torch.rand(2, 3, 16, 16)
    y = op(x)
    assert y.shape == (2, 3, 4, 4)
    torch.testing.assert_close(y[0, 0, 0, 0], x[0, 0, :4, :4].mean())
    torch.testing.assert_close(op(op.pseudo_inverse(y)), y)  # A A⁺ = I


def test_measure_is_seeded_and_has_the_stated_noise():
    op = Denoising()
    x = torch.zeros(4, 3, 32, 32)
    y = op.measure(x, noise_std=0.05, seed=7)
    torch.testing.assert_close(y, op.measure(x, noise_std=0.05, seed=7))
    assert not torch.equal(y, op.measure(x, noise_std=0.05, seed=8))
    assert float(y.std()) == pytest.approx(0.05, rel=0.05)
    torch.testing.assert_close(op.measure(x, noise_std=0.0), x)
    assert GaussianNoise(0.0)(x).equal(x)


# ---------------------------------------------------------------- diag(A Aᵀ): the variance of A z
def _monte_carlo_variance(op, x_shape, n=4000, seed=0):
    """Var[(A z)_i] from n draws of white z (its mean is 0, so the mean of (A z)²), and its standard error."""
    g = torch.Generator().manual_seed(seed)
    acc = torch.zeros(op.output_shape((1, *x_shape[1:])), dtype=torch.float64)
    for _ in range(n // 500):
        acc += (op(torch.randn(500, *x_shape[1:], generator=g, dtype=torch.float64)) ** 2).sum(0, keepdim=True)
    var = acc / n
    return var, var * math.sqrt(2 / n)  # s.e. of a Gaussian variance estimate: σ² √(2/n)


@pytest.mark.parametrize("op", _operators() + [GaussianBlur(kernel_size=9, std=3.0, padding="circular")], ids=repr)
def test_aat_diagonal_is_the_variance_of_A_z(op):
    """Every operator's diag(A Aᵀ) against a Monte-Carlo variance of A z (within 5 standard errors per element),
    and against the generic exact probe ‖Aᵀ e_i‖² of the base class (to round-off)."""
    x_shape = (1, 3, SIZE, SIZE)
    diag = op.aat_diagonal(x_shape)
    assert diag.shape == op.output_shape(x_shape) and diag.dtype == torch.float64
    mc, se = _monte_carlo_variance(op, x_shape)
    assert ((mc - diag).abs() <= 5 * se + 1e-12).all(), float(((mc - diag).abs() / (se + 1e-30)).max())
    torch.testing.assert_close(diag, Operator.aat_diagonal(op, x_shape), rtol=1e-10, atol=1e-12)
    # (C, H, W) works too, and device/dtype are honoured
    assert op.aat_diagonal(x_shape[1:], dtype=torch.float32).dtype == torch.float32


def test_aat_diagonal_closed_forms():
    shape = (2, 3, SIZE, SIZE)
    torch.testing.assert_close(Denoising().aat_diagonal(shape), torch.ones(1, 3, SIZE, SIZE, dtype=torch.float64))
    for k in (2, 4):
        d = SuperResolution(k).aat_diagonal(shape)
        assert d.shape == (1, 3, SIZE // k, SIZE // k) and torch.all(d == 1 / k**2)
    for mask_op in (BoxInpainting(SIZE, 6), RandomInpainting(SIZE, 0.3, seed=1)):
        torch.testing.assert_close(mask_op.aat_diagonal(shape), mask_op.mask.double().expand(1, 3, SIZE, SIZE))
    # the blur: Σ k² away from the borders, for every padding
    for padding in ("reflect", "circular", "zeros"):
        op = GaussianBlur(kernel_size=5, std=1.0, padding=padding)
        sum_k2 = float((op.kernel.double() ** 2).sum())
        interior = op.aat_diagonal(shape)[..., 2:-2, 2:-2]
        torch.testing.assert_close(interior, torch.full_like(interior, sum_k2), rtol=1e-12, atol=0)


def test_aat_diagonal_of_the_reflect_blur_exceeds_sum_k2_at_the_border():
    """Reflect padding reads pixel 1 twice for output 0 (taps −1 and +1), so the variance there is larger
    than Σ k²; zero padding drops taps, so it is smaller. The closed form Σ k² alone would be wrong by more
    than the Monte-Carlo error of the test above."""
    shape = (1, 1, SIZE, SIZE)
    reflect = GaussianBlur(kernel_size=7, std=1.5).aat_diagonal(shape)[0, 0]
    zeros = GaussianBlur(kernel_size=7, std=1.5, padding="zeros").aat_diagonal(shape)[0, 0]
    sum_k2 = float((GaussianBlur(kernel_size=7, std=1.5).kernel.double() ** 2).sum())
    assert reflect[0, 0] > 1.5 * sum_k2 and reflect[0, SIZE // 2] > 1.2 * sum_k2
    assert zeros[0, 0] < 0.5 * sum_k2
    # 1-D check of the corner by hand: the row of A for output 0 along one axis is k1 folded: k1[3] on pixel 0,
    # k1[2] + k1[4] on pixel 1, k1[1] + k1[5] on pixel 2, k1[0] + k1[6] on pixel 3
    k1 = GaussianBlur(kernel_size=7, std=1.5).kernel.double().sum(1)
    folded = k1[3] ** 2 + (k1[2] + k1[4]) ** 2 + (k1[1] + k1[5]) ** 2 + (k1[0] + k1[6]) ** 2
    assert float(reflect[0, 0]) == pytest.approx(float(folded) ** 2, rel=1e-6)  # separable kernel: product of axes


class _MatrixOperator(Operator):
    """A dense random matrix on (1, 2, 3) images: a subclass without a closed-form aat_diagonal."""

    def __init__(self, out_features=5, seed=0):
        self.M = torch.randn(out_features, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def forward(self, x):
        return (x.flatten(1) @ self.M.T).reshape(x.shape[0], 1, 1, -1)

    def output_shape(self, x_shape):
        return (x_shape[0], 1, 1, self.M.shape[0])

    def input_shape_for(self, y_shape):
        return (y_shape[0], 1, 2, 3)


def test_aat_diagonal_generic_fallback_is_exact_and_warns_when_estimating():
    op = _MatrixOperator()
    exact = (op.M**2).sum(1).reshape(1, 1, 1, -1)  # (M Mᵀ)_ii
    torch.testing.assert_close(op.aat_diagonal((1, 2, 3)), exact, rtol=1e-12, atol=0)
    op.max_exact_probes = 2
    with pytest.warns(UserWarning, match="Monte-Carlo"):
        estimate = op.aat_diagonal((1, 2, 3))
    assert ((estimate - exact).abs() <= 5 * exact * math.sqrt(2 / 1024)).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (checked on the device machine)")
def test_operators_on_cuda():
    for op in _operators():
        x = torch.randn(2, 3, SIZE, SIZE, device="cuda")
        torch.testing.assert_close(op(x).cpu(), op(x.cpu()), rtol=1e-4, atol=1e-5)


def test_bad_inputs_raise_clear_errors():
    box = BoxInpainting(32, 8)
    with pytest.raises(ValueError, match="built for 32×32"):
        box(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        box(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="not divisible by factor=3"):
        SuperResolution(3)(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="to_model_space"):
        Denoising().measure(torch.full((1, 3, 8, 8), 2.0))
    with pytest.raises(ValueError, match="NaN"):
        Denoising().measure(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="kernel_size"):
        GaussianBlur(kernel_size=4)
    with pytest.raises(ValueError, match="std"):
        GaussianBlur(std=0)
    with pytest.raises(ValueError, match="too large"):
        GaussianBlur(kernel_size=61)(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="keep_fraction"):
        RandomInpainting(32, keep_fraction=0)
    with pytest.raises(ValueError, match="does not fit"):
        BoxInpainting(32, 8, center=(2, 2))
    with pytest.raises(ValueError, match="std"):
        GaussianNoise(-1)
    with pytest.raises(ValueError, match="measurement has shape"):
        SuperResolution(2).check_measurement(torch.zeros(1, 3, 32, 32), (1, 3, 32, 32))
