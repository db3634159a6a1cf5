"""Forward models A of imaging inverse problems, their adjoints, and measurement noise.

The measurement is y = A(x) + σ_y · n with n ~ N(0, I). Everything here works in
**model space [-1, 1]**: σ_y is a standard deviation in [-1, 1] units. The DPS paper's
σ_y = 0.05 is in these units (0.025 in [0, 1] image units).

Every operator takes images ``x`` of shape (B, C, H, W) on any device and is batched.
Linear operators provide ``adjoint`` (Aᵀ, so that ⟨A x, y⟩ = ⟨x, Aᵀ y⟩) and
``pseudo_inverse`` (an image in x-space that a method such as SDEdit can start from) and
``aat_diagonal`` (the diagonal of A Aᵀ: how much white noise in x each measured value picks up,
which sets ScoreALD's likelihood weight). Noise is a separate object (:class:`GaussianNoise`),
as in deepinv's ``physics``.

=========================  =====================================  ================  =========================
operator                   A(x)                                   output shape      diag(A Aᵀ)
=========================  =====================================  ================  =========================
:class:`Denoising`         x                                      (B, C, H, W)      1
:class:`GaussianBlur`      k * x (depthwise, reflect padding)     (B, C, H, W)      Σ k² inside, more at the
                                                                                    border (reflected taps)
:class:`BoxInpainting`     m ⊙ x, m = 0 inside a centred box      (B, C, H, W)      m
:class:`RandomInpainting`  m ⊙ x, m = 1 on a random pixel subset  (B, C, H, W)      m
:class:`SuperResolution`   k×k average pooling                    (B, C, H/k, W/k)  1/k²
=========================  =====================================  ================  =========================
"""

from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

from ._util import as_float, as_int

__all__ = [
    "Operator",
    "Denoising",
    "GaussianBlur",
    "BoxInpainting",
    "RandomInpainting",
    "SuperResolution",
    "GaussianNoise",
    "ImageSpaceWarning",
    "make_generator",
]

SeedLike = Union[None, int, torch.Generator]


def make_generator(seed: SeedLike, name: str = "seed") -> torch.Generator:
    """A CPU ``torch.Generator`` from an int seed (or the generator itself). ``None`` is seed 0.

    Python, numpy and 0-d torch integers are accepted; the seed must lie in [0, 2⁶⁴ − 1] (what
    ``torch.Generator.manual_seed`` takes), else a ``ValueError`` names ``name``.
    """
    if isinstance(seed, torch.Generator):
        return seed
    if seed is None:
        seed = 0
    if isinstance(seed, float) or (hasattr(seed, "dtype") and getattr(seed.dtype, "is_floating_point", False)):
        raise TypeError(f"{name} must be an int or a torch.Generator, got {type(seed).__name__} {seed!r}")
    try:
        seed = as_int(seed, name, min=0, max=2**64 - 1, hint="use an integer seed such as 0")
    except TypeError:
        raise TypeError(f"{name} must be an int or a torch.Generator, got {type(seed).__name__}") from None
    return torch.Generator("cpu").manual_seed(seed)


# A measurement y = A x + σ_y n of an image x in [-1, 1] lies in [-1, 1] for every operator of this module
# (each output is an average or a copy of pixels) widened by the noise: a few σ_y, and at least this much.
MEASUREMENT_MARGIN = 1.0


def _range_hint(x: torch.Tensor, lo: float, hi: float) -> str:
    """What an out-of-range tensor probably is, and how to convert it."""
    if lo >= 0 and hi > 2:
        return "it looks like 0..255 pixel values: divide by 255, then convert with helpers.data.to_model_space"
    if lo >= 0:
        return "it looks like [0, 1] image space: convert with helpers.data.to_model_space"
    return "values this far outside [-1, 1] are not a model-space image: check how it was computed"


class ImageSpaceWarning(UserWarning):
    """A tensor expected in model space [-1, 1] looks like [0, 1] image space (no dark pixels below 0)."""


# Below this many values per image the "no pixel below 0" test says too little (a 2×2 low-res measurement).
_IMAGE_SPACE_MIN_VALUES = 1024


def _warn_if_image_space(x: torch.Tensor, name: str, noise_std: float = 0.0) -> None:
    """Warn (:class:`ImageSpaceWarning`) when ``x`` looks like [0, 1] image space although it lies inside [-1, 1].

    Range checks cannot see a [0, 1] image: it lies inside [-1, 1]. But in model space a picture
    almost always has pixels below 0 (dark hair, eyes, an MNIST background at -1), while a [0, 1]
    image has none below 0 apart from the measurement noise. So: every image of the batch has
    no value below -(4 σ_y + 0.02), some value above 0.1, and at least 1024 values (a ×4
    low-resolution 32-px face, 192 values, averages its dark pixels away too often to be judged).
    A warning, not an error: a genuinely light image in model space is legal. Measured on the 256
    held-out cartoon faces with σ_y = 0.05: every [0, 1] image and measurement warns; of the
    model-space ones no clean image and 2 blurred measurements (faces 34 and 235) do.
    """
    if x.ndim != 4 or x.shape[0] == 0 or x[0].numel() < _IMAGE_SPACE_MIN_VALUES:
        return
    floor = -(4 * float(noise_std) + 0.02)
    flat = x.detach().reshape(x.shape[0], -1)
    mins, maxs = flat.min(dim=1).values, flat.max(dim=1).values
    if bool((mins >= floor).all()) and bool((maxs > 0.1).all()):
        lo, hi = float(mins.min()), float(maxs.max())
        warnings.warn(
            f"{name} has no value below {floor:.3g} (range [{lo:.3g}, {hi:.3g}]); model space [-1, 1] is expected, "
            "where images almost always have pixels below 0, so it looks like [0, 1] image space: convert with "
            "helpers.data.to_model_space (if these images really are that light, ignore this warning)",
            ImageSpaceWarning, stacklevel=3,
        )


def _check_dtype(x: torch.Tensor, name: str) -> None:
    if x.dtype == torch.uint8:
        raise TypeError(
            f"{name} has dtype torch.uint8: it looks like 0..255 pixel values, but a floating-point tensor in model "
            "space [-1, 1] is expected: convert with helpers.data.to_model_space(x.float() / 255)"
        )
    if not (x.dtype.is_floating_point or x.dtype.is_complex):
        raise TypeError(
            f"{name} has dtype {x.dtype}, but a floating-point tensor in model space [-1, 1] is expected (an integer "
            f"tensor would be blurred/averaged in integers): convert it with {name}.float() (and to model space "
            "with helpers.data.to_model_space if it holds [0, 1] or 0..255 values)"
        )


def _check_value_range(x: torch.Tensor, name: str, margin: float = 1e-3, what: str = "an image") -> None:
    """Raise a ``ValueError`` naming ``name`` when x leaves [-1 − margin, 1 + margin] (model space)."""
    lo, hi = float(x.min()), float(x.max())
    if lo < -1 - margin or hi > 1 + margin:
        raise ValueError(
            f"{name} has values in [{lo:.3g}, {hi:.3g}] but {what} in model space [-1, 1] is expected "
            f"(accepted: [{-1 - margin:.3g}, {1 + margin:.3g}]); {_range_hint(x, lo, hi)}"
        )


def _check_image(x: torch.Tensor, name: str = "x") -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}; add a batch axis with {name}[None]")
    if x.shape[0] == 0 or x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): give at least one image")
    _check_dtype(x, name)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values; check how it was computed")


class GaussianNoise:
    """Additive white Gaussian noise n ~ N(0, σ² I), σ = ``std`` in model space [-1, 1]."""

    def __init__(self, std: float = 0.05, name: str = "std"):
        self.std = as_float(std, name, nonnegative=True, hint="a standard deviation in model-space units")

    def __call__(self, y: torch.Tensor, seed: SeedLike = 0) -> torch.Tensor:
        if not torch.is_tensor(y):
            raise TypeError(f"y must be a torch tensor, got {type(y).__name__}")
        _check_dtype(y, "y")  # noise cast to an integer dtype would be rounded away (wrong std)
        if self.std == 0:
            return y.clone()
        gen = make_generator(seed)
        noise = torch.randn(y.shape, generator=gen, dtype=torch.float32).to(device=y.device, dtype=y.dtype)
        return y + self.std * noise

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std})"


class Operator:
    """Base class of forward models. Subclasses implement :meth:`forward`; linear ones :meth:`adjoint`.

    ``image_size`` (if not ``None``) is the (H, W) the operator was built for (masks);
    ``forward`` checks it. ``linear`` says whether A is linear.
    """

    linear = True
    image_size: Optional[tuple] = None
    max_exact_probes = 2**16  # the generic aat_diagonal probes at most this many outputs exactly

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Aᵀ y. The default uses autograd (exact for linear A): the vector-Jacobian product of ``forward``."""
        if not self.linear:
            raise NotImplementedError(f"{type(self).__name__} is not linear: it has no adjoint")
        shape = self.input_shape_for(y.shape)
        with torch.enable_grad():
            x = torch.zeros(shape, device=y.device, dtype=y.dtype, requires_grad=True)
            (grad,) = torch.autograd.grad(self.forward(x), x, grad_outputs=y)
        return grad

    def input_shape_for(self, y_shape) -> tuple:
        """Shape of x such that A(x) has shape ``y_shape`` (identity for same-size operators)."""
        return tuple(y_shape)

    def output_shape(self, x_shape) -> tuple:
        """Shape of A(x) for x of shape ``x_shape``."""
        return tuple(x_shape)

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """An x-space image consistent with y (Aᵀ by default): the starting point of SDEdit."""
        return self.adjoint(y)

    def aat_diagonal(self, x_shape, device=None, dtype=torch.float64) -> torch.Tensor:
        """diag(A Aᵀ): the variance of each element of A z for white noise z ~ N(0, I) of shape ``x_shape``.

        (A Aᵀ)_ii = ‖Aᵀ e_i‖² = Var[(A z)_i]. So if x̃ = x_0 + γ z, the residual A x̃ − y with
        y = A x_0 + σ_y n has per-element variance σ_y² + γ² · (A Aᵀ)_ii (ScoreALD's likelihood
        weight uses it; σ_y² + γ² only when A Aᵀ = I).

        ``x_shape``: (B, C, H, W) or (C, H, W) of the images x (B is ignored). Returns a tensor
        of shape (1, C, h, w) with (B, C, h, w) = ``self.output_shape(x_shape)``, which broadcasts
        over a batch of measurements; values ≥ 0, dimensionless (a gain on a variance), on
        ``device`` (default CPU) in ``dtype`` (default float64).

        This generic version is exact: it applies Aᵀ to every basis vector e_i of the output
        (in batches), which needs C·h·w adjoints; above ``max_exact_probes`` (2¹⁶) outputs it
        falls back to a Monte-Carlo estimate, the mean of (A z)² over 1024 draws (with a warning). The operators of this module override it with
        closed forms.
        """
        if not self.linear:
            raise NotImplementedError(f"{type(self).__name__} is not linear: A Aᵀ is not defined")
        out_shape = self._single_output_shape(x_shape)
        m = math.prod(out_shape[1:])
        if m <= self.max_exact_probes:
            diag = torch.empty(m, dtype=torch.float64)
            chunk = 256
            for start in range(0, m, chunk):
                idx = torch.arange(start, min(start + chunk, m))
                basis = torch.zeros(len(idx), m, dtype=torch.float64)
                basis[torch.arange(len(idx)), idx] = 1.0
                rows = self.adjoint(basis.reshape(len(idx), *out_shape[1:]))  # Aᵀ e_i, one per batch entry
                diag[idx] = rows.flatten(1).pow(2).sum(1)
            return diag.reshape(out_shape).to(device=device, dtype=dtype)
        n = 1024
        warnings.warn(
            f"{type(self).__name__}.aat_diagonal: {m} outputs are too many to probe exactly; using a Monte-Carlo "
            f"estimate from {n} noise draws (relative error about {math.sqrt(2 / n):.0%}). Override aat_diagonal "
            "with a closed form.",
            stacklevel=2,
        )
        in_shape = (1, *self._image_shape(x_shape))
        gen = make_generator(0)
        acc = torch.zeros(out_shape, dtype=torch.float64)
        for _ in range(n):
            acc += self.forward(torch.randn(in_shape, generator=gen, dtype=torch.float64)) ** 2
        return (acc / n).to(device=device, dtype=dtype)

    @staticmethod
    def _image_shape(x_shape) -> tuple:
        """(C, H, W) from (B, C, H, W) or (C, H, W)."""
        x_shape = tuple(int(s) for s in x_shape)
        if len(x_shape) not in (3, 4):
            raise ValueError(f"x_shape must be (B, C, H, W) or (C, H, W), got {x_shape}")
        return x_shape[-3:]

    def _single_output_shape(self, x_shape) -> tuple:
        """(1, C, h, w): the output shape of one image of shape ``x_shape``."""
        return tuple(self.output_shape((1, *self._image_shape(x_shape))))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def measure(self, x: torch.Tensor, noise_std: float = 0.0, seed: SeedLike = 0) -> torch.Tensor:
        """y = A(x) + σ_y n for x in model space [-1, 1] (checked), σ_y = ``noise_std`` in [-1, 1] units.

        x must be a floating-point (B, C, H, W) tensor, finite, with B ≥ 1, in [-1, 1] (±0.001);
        integer tensors are refused (a 0..255 image would otherwise be measured as garbage).
        """
        _check_image(x)
        _check_value_range(x, "x")
        _warn_if_image_space(x, "x")
        noise = GaussianNoise(noise_std, name="noise_std")
        return noise(self.forward(x), make_generator(seed))

    def check_measurement(self, y: torch.Tensor, x_shape: Sequence[int], name: str = "measurement",
                          noise_std: float = 0.0) -> None:
        """Raise a clear error when ``y`` cannot be a measurement of an image of shape ``x_shape``.

        Checks the type, shape, dtype (floating point), finiteness and value range: A x of an image
        in [-1, 1] lies in [-1, 1] for every operator here, widened by max(6 σ_y,
        :data:`MEASUREMENT_MARGIN`) for the noise, i.e. at least [-2, 2] (a 0..255 image fails).
        """
        _check_image(y, name)
        _check_value_range(y, name, margin=max(6 * float(noise_std), MEASUREMENT_MARGIN), what="a measurement")
        _warn_if_image_space(y, name, noise_std)
        expected = self.output_shape(tuple(x_shape))
        if tuple(y.shape[1:]) != tuple(expected[1:]):
            raise ValueError(
                f"{name} has shape {tuple(y.shape)} but {type(self).__name__} maps images of shape "
                f"{tuple(x_shape)} to {expected}: measure with operator.measure(x) on images of the prior's size"
            )

    def _check_input(self, x: torch.Tensor) -> None:
        if not torch.is_tensor(x):
            raise TypeError(f"x must be a torch tensor of shape (B, C, H, W), got {type(x).__name__}")
        _check_dtype(x, "x")
        if x.ndim != 4:
            raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}; add a batch axis with x[None]")
        if self.image_size is not None and tuple(x.shape[-2:]) != tuple(self.image_size):
            raise ValueError(
                f"{type(self).__name__} was built for {self.image_size[0]}×{self.image_size[1]} images but x is "
                f"{x.shape[-2]}×{x.shape[-1]}: build the operator with image_size={tuple(x.shape[-2:])}"
            )


class Denoising(Operator):
    """A = I: the measurement is the image plus noise."""

    def forward(self, x):
        self._check_input(x)
        return x

    def adjoint(self, y):
        return y

    def aat_diagonal(self, x_shape, device=None, dtype=torch.float64):
        """A Aᵀ = I: ones of shape (1, C, H, W)."""
        return torch.ones(self._single_output_shape(x_shape), device=device, dtype=dtype)

    def __repr__(self):
        return "Denoising()"


def _gaussian_kernel(kernel_size: int, std: float) -> torch.Tensor:
    r = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    g = torch.exp(-0.5 * (r / std) ** 2)
    k = torch.outer(g, g)
    return k / k.sum()


class GaussianBlur(Operator):
    """Depthwise convolution with a normalised Gaussian kernel (deconvolution task).

    DPS's setting for 256×256 FFHQ is ``kernel_size=61, std=3.0`` with reflection padding
    (:meth:`dps_setting` scales it to other sizes). The kernel is the same for every
    channel. ``padding`` is ``"reflect"`` (as DPS), ``"circular"`` or ``"zeros"``; the
    adjoint is computed exactly by autograd, so it is correct for every padding.
    """

    def __init__(self, kernel_size: int = 61, std: float = 3.0, padding: str = "reflect"):
        kernel_size = as_int(kernel_size, "kernel_size", positive=True)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        std = as_float(std, "std", positive=True, hint="the blur's standard deviation in pixels")
        if padding not in ("reflect", "circular", "zeros"):
            raise ValueError(f"padding={padding!r} is unknown; use 'reflect', 'circular' or 'zeros'")
        self.kernel_size, self.std, self.padding = kernel_size, float(std), padding
        self.kernel = _gaussian_kernel(kernel_size, std).float()

    @classmethod
    def dps_setting(cls, image_size: int) -> "GaussianBlur":
        """DPS's blur (61×61, std 3.0 at 256 px) scaled to ``image_size``: std ∝ size, kernel ±3 std (odd)."""
        std = 3.0 * image_size / 256
        half = max(1, min(30, math.ceil(3 * std)))
        return cls(kernel_size=2 * half + 1, std=std)

    def forward(self, x):
        self._check_input(x)
        c = x.shape[1]
        pad = self.kernel_size // 2
        if pad >= min(x.shape[-2:]) and self.padding == "reflect":
            raise ValueError(
                f"kernel_size={self.kernel_size} is too large for {x.shape[-2]}×{x.shape[-1]} images with reflect "
                "padding: use a kernel smaller than twice the image size (e.g. GaussianBlur.dps_setting(size))"
            )
        w = self.kernel.to(device=x.device, dtype=x.dtype).expand(c, 1, -1, -1)
        if self.padding == "zeros":
            return F.conv2d(x, w, padding=pad, groups=c)
        return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode=self.padding), w, groups=c)

    def pseudo_inverse(self, y):
        """The blurred image itself (a blur has no stable inverse; SDEdit starts from y)."""
        return y

    def _source_index(self, n: int) -> torch.Tensor:
        """For each of the n + 2·pad positions of a padded axis of length n, the pixel it reads (−1: a zero)."""
        pad = self.kernel_size // 2
        j = torch.arange(-pad, n + pad)
        if self.padding == "circular":
            return j % n
        if self.padding == "reflect":  # ... 2 1 | 0 1 2 ... n−1 | n−2 ... (the edge pixel is not repeated)
            return torch.where(j < 0, -j, torch.where(j >= n, 2 * (n - 1) - j, j))
        return torch.where((j < 0) | (j >= n), torch.full_like(j, -1), j)

    def _tap_coincidence(self, n: int) -> torch.Tensor:
        """(n, K, K) float64: entry [p, a, b] is 1 when taps a and b of output p read the same pixel of x."""
        src = self._source_index(n)
        K = self.kernel_size
        windows = torch.stack([src[p : p + K] for p in range(n)])  # (n, K): the pixel read by each tap
        same = (windows[:, :, None] == windows[:, None, :]) & (windows[:, :, None] >= 0)
        return same.to(torch.float64)

    def aat_diagonal(self, x_shape, device=None, dtype=torch.float64):
        """diag(A Aᵀ) with the padding folded in, exactly; shape (1, C, H, W).

        Row p of A adds up the kernel taps that read the same pixel: near a border, reflect
        (or circular) padding makes two taps read one pixel, so (A Aᵀ)_pp = Σ_q (Σ_{taps→q} k)²
        exceeds Σ k² there; zero padding drops the taps that fall outside (less than Σ k²).
        In the interior it is Σ k². Computed as Σ_{a,a′,b,b′} S_H[p_h,a,a′] k[a,b] k[a′,b′]
        S_W[p_w,b,b′], where S[p,a,a′] = 1 when taps a and a′ of output p read the same row
        (column): the padding acts on rows and columns separately, the kernel need not be separable.
        """
        c, h, w = self._image_shape(x_shape)
        pad = self.kernel_size // 2
        if self.padding == "reflect" and pad >= min(h, w):
            raise ValueError(f"kernel_size={self.kernel_size} is too large for {h}×{w} images with reflect padding")
        k = self.kernel.to(torch.float64)
        rows = torch.einsum("pac,ab,cd->pbd", self._tap_coincidence(h), k, k)  # (H, K, K)
        diag = torch.einsum("pbd,qbd->pq", rows, self._tap_coincidence(w))  # (H, W)
        return diag.expand(1, c, h, w).to(device=device, dtype=dtype).contiguous()

    def __repr__(self):
        return f"GaussianBlur(kernel_size={self.kernel_size}, std={self.std:g}, padding={self.padding!r})"


def _size_pair(value, name: str) -> tuple:
    """(h, w) from an integer (Python, numpy, torch, or an integral float such as 32.0) or a pair of them."""
    if isinstance(value, (tuple, list)) or (hasattr(value, "__len__") and not torch.is_tensor(value)
                                           and getattr(value, "ndim", 1) == 1):
        if len(value) != 2:
            raise ValueError(f"{name} must be an integer or an (h, w) pair, got {value!r}")
        return as_int(value[0], f"{name}[0]", positive=True), as_int(value[1], f"{name}[1]", positive=True)
    n = as_int(value, name, positive=True)
    return n, n


class _MaskOperator(Operator):
    """A = diag(m): keeps pixels where the mask is 1. Self-adjoint; the pseudo-inverse is m ⊙ y."""

    mask: torch.Tensor  # (1, 1, H, W), float 0/1

    def forward(self, x):
        self._check_input(x)
        return x * self.mask.to(device=x.device, dtype=x.dtype)

    def adjoint(self, y):
        return self.forward(y)

    def aat_diagonal(self, x_shape, device=None, dtype=torch.float64):
        """A Aᵀ = diag(m)² = diag(m): the mask, 1 on kept and 0 on dropped pixels; shape (1, C, H, W)."""
        c, h, w = self._image_shape(x_shape)
        if (h, w) != tuple(self.image_size):
            raise ValueError(f"{type(self).__name__} was built for {self.image_size} images, not {h}×{w}")
        return self.mask.to(torch.float64).expand(1, c, h, w).to(device=device, dtype=dtype).contiguous()

    @property
    def kept_fraction(self) -> float:
        return float(self.mask.mean())


class BoxInpainting(_MaskOperator):
    """Removes a centred square box of ``box_size`` pixels (DPS: 128 of 256, i.e. half the side).

    ``center=(row, col)`` moves the box (e.g. over the eyes or the mouth). Masked pixels are 0
    (grey in model space) in the measurement.
    """

    def __init__(self, image_size: Union[int, tuple], box_size: Union[int, tuple], center: Optional[tuple] = None):
        h, w = _size_pair(image_size, "image_size")
        bh, bw = _size_pair(box_size, "box_size")
        if center is not None:
            if not isinstance(center, (tuple, list)) or len(center) != 2:
                raise ValueError(f"center must be a (row, col) pair, got {center!r}")
            center = (as_float(center[0], "center[0]"), as_float(center[1], "center[1]"))
        if not (0 < bh <= h and 0 < bw <= w):
            raise ValueError(f"box_size={box_size!r} must be positive and fit in image_size={image_size!r}")
        cy, cx = center if center is not None else (h / 2, w / 2)
        top, left = int(round(cy - bh / 2)), int(round(cx - bw / 2))
        if top < 0 or left < 0 or top + bh > h or left + bw > w:
            raise ValueError(f"a box of {bh}×{bw} centred at {center} does not fit in a {h}×{w} image")
        mask = torch.ones(1, 1, h, w)
        mask[..., top : top + bh, left : left + bw] = 0
        self.image_size, self.box_size, self.box = (h, w), (bh, bw), (top, left, bh, bw)
        self.mask = mask

    def __repr__(self):
        return f"BoxInpainting(image_size={self.image_size}, box (top, left, h, w)={self.box})"


class RandomInpainting(_MaskOperator):
    """Keeps a random ``keep_fraction`` of the pixels (same pixels in every channel and image).

    The DPS paper drops 92% of the pixels (``keep_fraction=0.08``); its default config 30–70%.
    The mask is drawn once from ``seed``.
    """

    def __init__(self, image_size: Union[int, tuple], keep_fraction: float = 0.3, seed: SeedLike = 0):
        h, w = _size_pair(image_size, "image_size")
        keep_fraction = as_float(keep_fraction, "keep_fraction", min=0, min_open=True, max=1)
        gen = make_generator(seed)
        n_keep = max(1, int(round(keep_fraction * h * w)))
        idx = torch.randperm(h * w, generator=gen)[:n_keep]
        mask = torch.zeros(h * w)
        mask[idx] = 1
        self.image_size, self.keep_fraction = (h, w), float(keep_fraction)
        self.mask = mask.reshape(1, 1, h, w)

    def __repr__(self):
        return f"RandomInpainting(image_size={self.image_size}, keep_fraction={self.keep_fraction})"


class SuperResolution(Operator):
    """Downsampling by ``factor`` × ``factor`` average pooling: (B, C, H, W) → (B, C, H/k, W/k).

    Aᵀ spreads each low-res pixel over its k×k block divided by k², so A Aᵀ = I/k² and the
    pseudo-inverse is k² Aᵀ: nearest-neighbour upsampling (the SDEdit start).
    """

    def __init__(self, factor: int = 4):
        self.factor = as_int(factor, "factor", positive=True)

    def _check_divisible(self, x):
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(
                f"image size {x.shape[-2]}×{x.shape[-1]} is not divisible by factor={self.factor}; "
                "choose a factor that divides the image size"
            )

    def forward(self, x):
        self._check_input(x)
        self._check_divisible(x)
        return F.avg_pool2d(x, self.factor)

    def adjoint(self, y):
        return F.interpolate(y, scale_factor=self.factor, mode="nearest") / self.factor**2

    def pseudo_inverse(self, y):
        return F.interpolate(y, scale_factor=self.factor, mode="nearest")

    def aat_diagonal(self, x_shape, device=None, dtype=torch.float64):
        """A Aᵀ = I/k²: an average of k² independent unit-variance pixels has variance 1/k². Shape (1, C, H/k, W/k)."""
        c, h, w = self._image_shape(x_shape)
        if h % self.factor or w % self.factor:
            raise ValueError(f"image size {h}×{w} is not divisible by factor={self.factor}")
        return torch.full(self._single_output_shape(x_shape), 1.0 / self.factor**2, device=device, dtype=dtype)

    def output_shape(self, x_shape):
        b, c, h, w = x_shape
        return (b, c, h // self.factor, w // self.factor)

    def input_shape_for(self, y_shape):
        b, c, h, w = y_shape
        return (b, c, h * self.factor, w * self.factor)

    def __repr__(self):
        return f"SuperResolution(factor={self.factor})"
