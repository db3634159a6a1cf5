"""Sampling loops: unconditional DDPM and DDIM, and three ways to condition on a measurement.

Each sampler is a short loop to read beside its paper. They share the core arguments

==================  ==========================================================================
argument            meaning
==================  ==========================================================================
``prior``           a :class:`helpers.priors.Prior` (or :class:`~helpers.priors.GaussianPrior`)
``operator``        a forward model A from :mod:`helpers.operators`
``measurement``     y = A(x) + σ_y n, model space [-1, 1], shape ``operator.output_shape(x)``
``num_steps``       number of denoising steps (≤ the T training steps; strided timesteps)
``step_size``       the method's step-size parameter (ζ′ for DPS, a multiplier λ of the
                    likelihood gradient for ScoreALD)
``seed``            int, ``torch.Generator``, or a list of ints: one per image (then a batch of N
                    gives exactly the images of N single runs with those seeds)
``progress``        show a tqdm progress bar
``trajectory_every`` record x_t and x̂_0 every k steps (and at the last one) for figures
==================  ==========================================================================

All return a :class:`SamplerResult` whose ``sample`` is (B, C, H, W) in [-1, 1] on the
prior's device. Noise is drawn on the CPU from the seed, so the same seed gives the same
image on CPU (and the same noise on any device). A guided sampler (ScoreALD, DPS)
whose iterate becomes NaN/Inf, or leaves the bound :func:`divergence_bound` derived from the
noise schedule, stops with :class:`SamplerDivergedError`, naming the step size and the timestep.
Every number argument accepts Python, numpy and 0-d torch scalars; every image or measurement
argument is checked for NaN/Inf and for its value range (model space [-1, 1]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from ._util import as_float, as_int
from .operators import Operator, _check_image, _check_value_range, _warn_if_image_space, make_generator

__all__ = [
    "SamplerResult",
    "SamplerDivergedError",
    "sample_ddpm",
    "sample_ddim",
    "sdedit",
    "score_ald",
    "dps",
    "dps_zeta_from_official_scale",
    "dps_gradient",
    "divergence_bound",
    "DIVERGENCE_FACTOR",
    "in_batches",
]

SeedLike = Union[None, int, torch.Generator, Sequence[int]]


class SamplerDivergedError(RuntimeError):
    """The iterate of a guided sampler became NaN/Inf or left :func:`divergence_bound` (the step size is too large)."""


# Divergence bound (see divergence_bound): a guided sampler stops when the RMS of an image's x_t exceeds
# DIVERGENCE_FACTOR · (√ᾱ_t + √(1 − ᾱ_t)). Calibrated with `python -m helpers.calibrate_divergence`; see
# divergence_bound for the measured values and margins.
DIVERGENCE_FACTOR = 100.0

# sdedit's start_image: a guide image in model space [-1, 1], with room for a noisy one (e.g. y + σ_y n)
IMAGE_MARGIN = 1.0


def divergence_bound(schedule, t: int, factor: Optional[float] = None) -> float:
    """The largest RMS of one image's x_t a guided sampler accepts at training index ``t`` (−1: the clean image).

    ``factor · (√ᾱ_t + √(1 − ᾱ_t))``, ``factor`` = :data:`DIVERGENCE_FACTOR` (100) by default. A healthy
    x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (|x_0| ≤ 1, ε ~ N(0, I)) has an RMS of at most about
    √ᾱ_t + √(1 − ᾱ_t) (between 1 and √2), so the statistic RMS(x_t)/(√ᾱ_t + √(1 − ᾱ_t)) is ≈ 1 on a
    healthy run; DPS and ScoreALD check it after every step (and record its largest value in
    ``info["rms_iterate_ratio"]``; ``info["max_iterate_ratio"]`` is the same with max |x_t|).

    The RMS of each image (not the largest pixel) is checked: DPS kicks a few pixels far at large
    ζ′ (max |x_t| up to 420× the scale at ζ′ = 30 on the MNIST prior) without the image running away.

    Calibration (``python -m helpers.calibrate_divergence --steps 50 250``: 2 test images, σ_y = 0.05,
    tasks deblur, box and sr4; the largest RMS ratio of each run):

    ====================================================================  =====================
    runs                                                                  RMS ratio
    ====================================================================  =====================
    faces and mnist priors, 50 steps, and faces, 250 steps:
      DPS ζ′ 0.03–3 / ζ′ = 10 / ζ′ = 30                                   ≤ 1.5 / ≤ 8.5 / ≤ 26.9
      ScoreALD λ 0.1–100, both weights, where it does not run away          ≤ 1.06 (≤ 18.2 for the
      (see below); poster rule λ ≤ 1e-3                                     orthonormal λ = 100)
    tests' tiny random UNets (8 px): DPS ζ′ = 1 / ζ′ = 30                 ≤ 2.8 / ≤ 81
      ScoreALD λ = 1, 6 steps, box / sr2 / random (max |x_t|: 258 / 114 / 172)  66 / 38 / 38
    DPS ζ′ = 1e3: sr4 / box / deblur (faces: 50 and 250 steps, 7.3–7.6 dB)  195–201 / 344 / 725–919
    DPS ζ′ = 1e6                                                           ≥ 1.9e5
    ScoreALD poster rule λ = 1: deblur and box (50, 250 steps), sr4 (250)   ≥ 1e10, 4e7
    ScoreALD runs that run away: operator weight λ ≥ 3 deblur, λ ≥ 10 box     ≥ 5e3 (most NaN)
      and sr4 at 50 steps, λ = 30 sr4 at 250 steps; λ = 1 deblur at 50
      steps; λ = 1 with 2–3 steps (tiny nets and faces, 5 dB)
    ====================================================================  =====================

    So the bound (100 on the RMS ratio) is 3.7× above the largest healthy value of the chapters'
    sweeps (26.9, DPS ζ′ = 30, MNIST, box) and about 2× below the smallest divergent one (195,
    DPS ζ′ = 1e3, MNIST, sr4). ScoreALD is bimodal: a ratio ≈ 1, or a runaway by orders of
    magnitude. Not caught: runs that go wrong more gently, e.g. the poster rule at λ = 1 with 50
    steps on sr4 (ratio 13–15), or ScoreALD λ = 1 box inpainting at 6 steps (66; 6 dB on faces):
    the bound tells runaway iterates from healthy ones, not bad reconstructions from good ones.
    (On max |x_t| instead, DPS ζ′ = 30 reaches 420 on MNIST, above DPS ζ′ = 1e3 on sr4 at 419:
    the largest pixel cannot separate them.)
    """
    a = schedule.alpha_bar(t)
    return (DIVERGENCE_FACTOR if factor is None else factor) * (a**0.5 + (1 - a) ** 0.5)


@dataclass
class SamplerResult:
    """Output of a sampler.

    sample: (B, C, H, W), model space [-1, 1] (clamped), on the prior's device.
    timesteps: the training indices t at which the trajectory was recorded.
    trajectory_x: x_t at those times (CPU tensors, (B, C, H, W)).
    trajectory_x0: x̂_0 at those times (CPU tensors).
    nfe: number of network evaluations (forward passes; DPS adds one backward per step).
    info: method-specific extras (e.g. DPS's residual norm per step).
    """

    sample: torch.Tensor
    timesteps: list = field(default_factory=list)
    trajectory_x: list = field(default_factory=list)
    trajectory_x0: list = field(default_factory=list)
    nfe: int = 0
    info: dict = field(default_factory=dict)


# ---------------------------------------------------------------------- shared pieces
class _NoiseSource:
    """Draws N(0, I) noise of shape (B, C, H, W) on the CPU: one generator, or one per image."""

    def __init__(self, seed: SeedLike, batch: int, shape, device, dtype):
        self.shape, self.device, self.dtype, self.batch = tuple(shape), device, dtype, batch
        if isinstance(seed, (list, tuple)):
            if len(seed) != batch:
                raise ValueError(f"seed is a list of {len(seed)} seeds but the batch has {batch} images: give one seed per image")
            self.generators = [make_generator(s, f"seed[{i}]") for i, s in enumerate(seed)]
        else:
            self.generators = [make_generator(seed)]

    def __call__(self) -> torch.Tensor:
        if len(self.generators) == 1:
            z = torch.randn((self.batch, *self.shape), generator=self.generators[0])
        else:
            z = torch.cat([torch.randn((1, *self.shape), generator=g) for g in self.generators])
        return z.to(device=self.device, dtype=self.dtype)


class _Recorder:
    def __init__(self, every: Optional[int], num_steps: int):
        if every is not None:
            every = as_int(every, "trajectory_every", positive=True, hint="or None to record nothing")
        self.every, self.n = every, num_steps
        self.timesteps, self.xs, self.x0s = [], [], []

    def __call__(self, i: int, t: int, x: torch.Tensor, x0: torch.Tensor) -> None:
        if self.every is not None and (i % self.every == 0 or i == self.n - 1):
            self.timesteps.append(int(t))
            self.xs.append(x.detach().float().cpu().clone())
            self.x0s.append(x0.detach().float().cpu().clone())

    def result(self, sample, nfe, **info) -> SamplerResult:
        return SamplerResult(sample.detach().clamp(-1, 1), self.timesteps, self.xs, self.x0s, nfe, info)


class _DivergenceGuard:
    """Checks a guided sampler's iterate after each step: finite, and each image's RMS within :func:`divergence_bound`.

    ``ratio`` / ``rms_ratio`` keep the largest max |x_t| and RMS(x_t) over (√ᾱ_t + √(1 − ᾱ_t)) seen
    (``info["max_iterate_ratio"]``, ``info["rms_iterate_ratio"]``), which the calibration records.
    """

    def __init__(self, schedule, method: str, n: int, param: str):
        self.schedule, self.method, self.n, self.param = schedule, method, n, param
        self.ratio = 0.0
        self.rms_ratio = 0.0

    def __call__(self, x: torch.Tensor, t_level: int, t: int, i: int) -> None:
        """x: the iterate at training index ``t_level`` (−1: clean), produced by step i at timestep t."""
        x = x.detach()
        biggest = float(x.abs().max())
        if not math.isfinite(biggest):
            raise SamplerDivergedError(
                f"{self.method} diverged at timestep t={t} (step {i + 1} of {self.n}) with {self.param}: the iterate "
                "became NaN/Inf. Reduce the step size (try 10× smaller)."
            )
        scale = divergence_bound(self.schedule, t_level, factor=1.0)
        rms = x.flatten(1).double().pow(2).mean(1).sqrt()
        worst = int(rms.argmax())
        self.ratio = max(self.ratio, biggest / scale)
        self.rms_ratio = max(self.rms_ratio, float(rms[worst]) / scale)
        if float(rms[worst]) > DIVERGENCE_FACTOR * scale:
            raise SamplerDivergedError(
                f"{self.method} diverged at timestep t={t} (step {i + 1} of {self.n}) with {self.param}: the RMS of "
                f"x_t (image {worst} of the batch) is {float(rms[worst]):.3g}, more than {DIVERGENCE_FACTOR:g}× that of "
                f"a healthy iterate (√ᾱ_t + √(1 − ᾱ_t) = {scale:.3g}; healthy runs stay below about 30×). "
                "Reduce the step size (try 10× smaller)."
            )


def _check_positive(value, name: str) -> float:
    return as_float(value, name, positive=True)


def _pairs(timesteps: list) -> list:
    """[(t, t_prev), ...] with t_prev = -1 after the last step."""
    return list(zip(timesteps, timesteps[1:] + [-1]))


def _prepare_measurement(prior, operator: Operator, measurement: torch.Tensor, noise_std: float = 0.0) -> torch.Tensor:
    if not isinstance(operator, Operator):
        raise TypeError(f"operator must be a helpers.operators.Operator, got {type(operator).__name__}")
    if not torch.is_tensor(measurement):
        raise TypeError("measurement must be a torch tensor of shape (B, C, h, w) in model space [-1, 1]")
    if measurement.ndim == 3:
        raise ValueError(f"measurement must have shape (B, C, h, w), got {tuple(measurement.shape)}; add a batch axis with y[None]")
    size = tuple(prior.image_shape[-2:])
    if operator.image_size is not None and tuple(operator.image_size) != size:
        raise ValueError(
            f"{type(operator).__name__} was built for {operator.image_size[0]}×{operator.image_size[1]} images but the "
            f"prior makes {size[0]}×{size[1]} images: build the operator with image_size={size[0]}"
        )
    shape = (measurement.shape[0], *prior.image_shape) if measurement.ndim == 4 else None
    operator.check_measurement(measurement, shape or (1, *prior.image_shape), noise_std=noise_std)
    return measurement.to(device=prior.device, dtype=prior.dtype)


def _timesteps(prior, num_steps, spacing) -> list:
    T = prior.schedule.num_train_timesteps
    n = T if num_steps is None else as_int(num_steps, "num_steps", min=1, max=T,
                                            hint=f"the number of denoising steps (at most the {T} training steps)")
    return prior.schedule.timesteps(n, spacing)


def _denoise_loop(prior, x, timesteps, noise, clip, recorder, progress, desc, eta=None) -> torch.Tensor:
    """Unconditional reverse process from x at timesteps[0] down to the clean image (DDPM, or DDIM if eta is set)."""
    sched = prior.schedule
    for i, (t, t_prev) in enumerate(tqdm(_pairs(timesteps), desc=desc, disable=not progress, leave=False)):
        with torch.no_grad():
            eps = prior.eps(x, t)
            if eta is None:
                out = sched.ddpm_step(eps, t, t_prev, x, noise() if t > 0 else None, clip_sample=clip)
            else:
                out = sched.ddim_step(eps, t, t_prev, x, eta=eta, noise=noise() if eta > 0 else None, clip_sample=clip)
        recorder(i, t, x, out.pred_original_sample)
        x = out.prev_sample
    return x


# ---------------------------------------------------------------------- unconditional
def _sample_unconditional(prior, num_samples, num_steps, seed, clip, spacing, progress, every, eta) -> SamplerResult:
    num_samples = as_int(num_samples, "num_samples", positive=True, hint="the number of images to draw")
    ts = _timesteps(prior, num_steps, spacing)
    noise = _NoiseSource(seed, num_samples, prior.image_shape, prior.device, prior.dtype)
    rec = _Recorder(every, len(ts))
    x = _denoise_loop(prior, noise(), ts, noise, clip, rec, progress, "DDPM" if eta is None else "DDIM", eta=eta)
    return rec.result(x, nfe=len(ts))


def sample_ddpm(
    prior,
    num_samples: int = 1,
    num_steps: Optional[int] = None,
    seed: SeedLike = 0,
    clip_denoised: Optional[bool] = None,
    timestep_spacing: str = "linspace",
    progress: bool = True,
    trajectory_every: Optional[int] = None,
) -> SamplerResult:
    """Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2), strided when ``num_steps`` < T.

    x_T ~ N(0, I); for each t: x_{t_prev} = posterior mean(x̂_0, x_t) + σ_t z. ``num_steps=None``
    uses all T steps. ``clip_denoised`` (default: the model's ``clip_sample``) clips x̂_0 to [-1, 1].
    """
    return _sample_unconditional(prior, num_samples, num_steps, seed, clip_denoised, timestep_spacing, progress,
                                 trajectory_every, eta=None)


def sample_ddim(
    prior,
    num_samples: int = 1,
    num_steps: int = 50,
    eta: float = 0.0,
    seed: SeedLike = 0,
    clip_denoised: Optional[bool] = None,
    timestep_spacing: str = "linspace",
    progress: bool = True,
    trajectory_every: Optional[int] = None,
) -> SamplerResult:
    """DDIM sampling (Song et al. 2021, eq. 12): deterministic for η = 0, ancestral-like for η = 1."""
    return _sample_unconditional(prior, num_samples, num_steps, seed, clip_denoised, timestep_spacing, progress,
                                 trajectory_every, eta=as_float(eta, "eta", nonnegative=True,
                                                                hint="0 = deterministic DDIM, 1 = DDPM-like"))


# ---------------------------------------------------------------------- SDEdit
def sdedit(
    prior,
    operator: Operator,
    measurement: torch.Tensor,
    start_time: float = 0.4,
    num_steps: Optional[int] = None,
    repeats: int = 1,
    start_image: Optional[torch.Tensor] = None,
    seed: SeedLike = 0,
    clip_denoised: Optional[bool] = None,
    timestep_spacing: str = "linspace",
    progress: bool = True,
    trajectory_every: Optional[int] = None,
) -> SamplerResult:
    """SDEdit (Meng et al., ICLR 2022): noise a guide image to time t0, then denoise.

    x_{t0} = √ᾱ_{t0} x_guide + √(1 − ᾱ_{t0}) ε, then the unconditional reverse process from t0.

    ================  ============================================================
    paper symbol      argument
    ================  ============================================================
    t0 ∈ (0, 1]       ``start_time`` (fraction of the T training steps; SDEdit's default 0.4)
    x^(g) (guide)     ``start_image``; default ``operator.pseudo_inverse(measurement)``: the
                      blurred image, the masked image, the nearest-upsampled low-res image
    K (repeats)       ``repeats``: re-noise the result to t0 and denoise again, K times
    ================  ============================================================

    ``num_steps`` is the step count of a full (t0 = 1) trajectory; a run from t0 takes about
    t0 · num_steps of them. The measurement is used only through the guide image: SDEdit
    trades fidelity (small t0) against realism (large t0).
    """
    y = _prepare_measurement(prior, operator, measurement)
    start_time = as_float(start_time, "start_time", min=0, min_open=True, max=1, hint="t0, a fraction of the T training steps")
    repeats = as_int(repeats, "repeats", positive=True)
    if start_image is None:
        guide = operator.pseudo_inverse(y)
    else:
        _check_image(start_image, "start_image")
        _check_value_range(start_image, "start_image", margin=IMAGE_MARGIN)
        _warn_if_image_space(start_image, "start_image")
        guide = start_image.to(device=prior.device, dtype=prior.dtype)
    if tuple(guide.shape[1:]) != tuple(prior.image_shape):
        raise ValueError(f"start_image has shape {tuple(guide.shape)} but the prior makes images of shape {prior.image_shape}")
    if guide.shape[0] != y.shape[0]:
        raise ValueError(f"start_image has {guide.shape[0]} images but measurement has {y.shape[0]}: give one per measurement")
    T = prior.schedule.num_train_timesteps
    n_full = T if num_steps is None else as_int(num_steps, "num_steps", min=1, max=T)
    t_start = int(round(start_time * (T - 1)))
    n = max(1, int(round(start_time * n_full)))
    ts = [t_start] if n == 1 else sorted(set(np.linspace(0, t_start, n).round().astype(int).tolist()), reverse=True)
    noise = _NoiseSource(seed, y.shape[0], prior.image_shape, prior.device, prior.dtype)
    rec = _Recorder(trajectory_every, len(ts) * repeats)
    x = guide
    for k in range(repeats):
        x_t = prior.schedule.add_noise(x, noise(), t_start)
        offset = k * len(ts)
        sub = lambda i, t, a, b, o=offset: rec(i + o, t, a, b)  # noqa: E731 - record across repeats
        x = _denoise_loop(prior, x_t, ts, noise, clip_denoised, sub, progress, f"SDEdit {k + 1}/{repeats}")
    return rec.result(x, nfe=len(ts) * repeats, start_timestep=t_start, guide=guide.detach())


# ---------------------------------------------------------------------- ScoreALD
LIKELIHOOD_WEIGHTS = ("operator", "orthonormal")


def _ald_likelihood_grad(operator: Operator, y: torch.Tensor, x_ve: torch.Tensor, gamma2: float, noise_std: float,
                         gain: Optional[torch.Tensor]) -> torch.Tensor:
    """∇_x̃ Σ_i c_i (A x̃ − y)_i² by autograd, c_i = (σ_y² + γ²)/(σ_y² + γ² g_i); c_i = 1 when ``gain`` is None.

    Times 1/(2(σ_y² + γ²)) this is ∇_x̃ Σ_i (A x̃ − y)_i² / (2(σ_y² + γ² g_i)), the negative log-likelihood's
    gradient. Writing it as the poster's weight times c_i keeps the ``"orthonormal"`` rule bit for bit as it
    was, and makes ``"operator"`` equal to it bit for bit where g_i = 1 (then c_i is exactly 1.0). An output
    with g_i = 0 (a dropped pixel: row i of A is zero) carries no information about x and gets c_i = 0.
    x_ve: (B, C, H, W) VE iterate; y: (B, C, h, w); gain: diag(A Aᵀ), broadcastable to y, or None.
    """
    x = x_ve.detach().requires_grad_(True)
    with torch.enable_grad():
        sq = (operator(x) - y) ** 2
        if gain is not None:
            noise_var = (gamma2 * gain + noise_std**2).clamp_min(1e-300)  # σ_y² + γ² g_i
            # tensor / tensor is an IEEE division (a Python float / tensor is a reciprocal times the float,
            # which is not exactly 1.0 where g_i = 1)
            ratio = torch.where(gain > 0, torch.full_like(noise_var, noise_std**2 + gamma2) / noise_var, torch.zeros_like(gain))
            sq = sq * ratio.to(sq.dtype)
        (grad,) = torch.autograd.grad(sq.sum(), x)
    return grad


def score_ald(
    prior,
    operator: Operator,
    measurement: torch.Tensor,
    num_steps: Optional[int] = None,
    step_size: float = 1.0,
    noise_std: float = 0.05,
    step_rule: str = "langevin",
    likelihood_weight: str = "operator",
    corrector_steps: int = 0,
    corrector_step_size: float = 1e-5,
    seed: SeedLike = 0,
    clip_denoised: Optional[bool] = None,
    timestep_spacing: str = "linspace",
    progress: bool = True,
    trajectory_every: Optional[int] = None,
) -> SamplerResult:
    """ScoreALD (Jalal et al., NeurIPS 2021) on a DDPM prior: the predictor form, and with
    ``corrector_steps > 0`` annealed Langevin dynamics (ALD) proper.

    **Predictor (``corrector_steps=0``, "ScoreALD predictor form").** One likelihood step after
    each unconditional DDPM step x'_{t-1}:

        x_{t-1} = x'_{t-1} − √ᾱ_{t-1} · λ · α_t · ∇_{x̃_t} Σ_i (A x̃_t − y)_i² / (2(σ_y² + γ_t² g_i)),

    with x̃_t = x_t/√ᾱ_t and g = diag(A Aᵀ) (:meth:`Operator.aat_diagonal`). Jalal et al. run
    Langevin dynamics on a *variance-exploding* prior, x̃_t = x_0 + γ_t z. A DDPM prior is
    *variance-preserving*: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, so x_t/√ᾱ_t = x_0 + γ_t ε with
    γ_t = √((1 − ᾱ_t)/ᾱ_t). We apply the formula to that VE iterate x̃_t (the gradient is taken
    w.r.t. x̃_t, A is applied to x̃_t, which has the scale of a clean image) and map the
    correction back to VP space by multiplying with √ᾱ_{t-1}. One step per noise level after a
    DDPM step is a predictor, not ALD.

    **The likelihood weight.** With y = A x_0 + σ_y n, the residual A x̃_t − y = γ_t A z − σ_y n
    has per-element variance σ_y² + γ_t² (A Aᵀ)_ii. The poster's weight 1/(σ_y² + γ_t²) is that
    only when A Aᵀ = I (``likelihood_weight="orthonormal"``, which uses g = 1). The default
    ``"operator"`` uses each output's own variance: for ×k average pooling g = 1/k², so early
    (γ_t ≫ σ_y) the weight is k² times the poster's; for a blur g = Σ k² (more near reflected
    borders); for a mask g = 1 on kept pixels (dropped ones carry no information and get weight
    0), so there, and for denoising, the two rules give identical results.

    ``step_rule="langevin"`` (default) keeps Jalal et al.'s Langevin step α_t, which on a VP
    prior is the VE variance removed in this step, α_t = γ_t² − γ_{t-1}²; then λ = 1 is the
    reverse-SDE discretisation of the posterior score, stable at any number of steps.
    ``step_rule="poster"`` drops α_t (α_t = 1), the formula as printed on the course poster;
    it needs a small λ (≈ 1e-3) and diverges otherwise. No gradient flows through the network.

    **Corrector steps (ALD; Jalal et al. 2021, Algorithm 1; Song & Ermon 2019, Algorithm 1).**
    With ``corrector_steps = M > 0``, after the predictor has brought the iterate to level
    c = t − 1 (for every level c ≥ 0; none after the last step, which yields the clean image),
    M Langevin steps at that level follow, in the VE coordinates x̃ = x/√ᾱ_c:

        x̃ ← x̃ + α_c (∇_x̃ log p_c(x̃) − λ ∇_x̃ Σ_i (A x̃ − y)_i² / (2(σ_y² + γ_c² g_i))) + √(2α_c) z,
        α_c = η · (γ_c / γ_L)²,   ∇_x̃ log p_c(x̃) = −ε_θ(x_c, c)/γ_c,

    then x = √ᾱ_c x̃. η is ``corrector_step_size`` (Jalal's ``step_lr``) and γ_L the smallest
    noise level of the run (γ at its last timestep; 0.01 at t = 0 of the linear schedule).
    The VE score is the network's VP score, −ε_θ(x_c, c)/√(1 − ᾱ_c), times √ᾱ_c; written in
    VP space the step is x ← x + ᾱ_c α_c (s_VP(x) − λ ∇_x L_c) + √(2 ᾱ_c α_c) z, Langevin with
    step ᾱ_c α_c (L_c is the likelihood term above as a function of x = √ᾱ_c x̃): the same chain. The likelihood term is the predictor's (same weight g, same λ,
    gradient w.r.t. x̃, mapped to VP by √ᾱ_c). α_c/γ_c² = η/γ_L², so the default η = 1e-5 moves
    by a tenth of the level's variance per step. Each corrector step costs one network
    evaluation: ``nfe`` = number of steps + M · (number of steps − 1).

    ================  ===========================================================
    paper symbol      argument / variable
    ================  ===========================================================
    σ (σ_y)           ``noise_std`` (model space [-1, 1]; DPS's 0.05)
    γ_t               ``schedule.noise_to_signal[t]``; γ_t² is ``gamma2``
    x̃_t               ``x_ve`` = x_t/√ᾱ_t
    (A Aᵀ)_ii         ``gain`` = ``operator.aat_diagonal(x.shape)`` (``"operator"``), or 1
                      (``"orthonormal"``, the poster's weight)
    α_t               predictor step: γ_t² − γ_{t-1}² (``"langevin"``) or 1 (``"poster"``)
    λ                 ``step_size`` (multiplier of the likelihood gradient)
    n_steps_each      ``corrector_steps`` (Langevin steps per level; 0: predictor only)
    step_lr, σ_L      ``corrector_step_size``; γ at the run's last timestep
    ================  ===========================================================

    Shapes: ``measurement`` is (B, C, h, w) = ``operator.output_shape``; the sample is
    (B, C, H, W) in [-1, 1] on the prior's device. ``info`` records the rule choices.
    """
    noise_std = as_float(noise_std, "noise_std", nonnegative=True, hint="σ_y in model-space units [-1, 1]")
    y = _prepare_measurement(prior, operator, measurement, noise_std)
    step_size = _check_positive(step_size, "step_size")
    if step_rule not in ("langevin", "poster"):
        raise ValueError(f"step_rule must be 'langevin' or 'poster', got {step_rule!r}")
    if likelihood_weight not in LIKELIHOOD_WEIGHTS:
        raise ValueError(f"likelihood_weight must be 'operator' (σ_y² + γ_t² (A Aᵀ)_ii) or 'orthonormal' "
                         f"(σ_y² + γ_t², the poster's), got {likelihood_weight!r}")
    corrector_steps = as_int(corrector_steps, "corrector_steps", min=0, hint="Langevin steps per level")
    corrector_step_size = _check_positive(corrector_step_size, "corrector_step_size")
    sched = prior.schedule
    ts = _timesteps(prior, num_steps, timestep_spacing)
    noise = _NoiseSource(seed, y.shape[0], prior.image_shape, prior.device, prior.dtype)
    rec = _Recorder(trajectory_every, len(ts))
    gain = None
    if likelihood_weight == "operator":
        wide = torch.float32 if torch.device(prior.device).type == "mps" else torch.float64  # MPS has no float64
        gain = operator.aat_diagonal((1, *prior.image_shape), device=prior.device, dtype=wide)
    gamma2_last = sched.alpha_bar(ts[-1]) ** -1 - 1  # γ_L² of the corrector step size
    guard = _DivergenceGuard(sched, "ScoreALD", len(ts), f"step_size={step_size:g} (step_rule={step_rule!r})")
    corrector_guard = _DivergenceGuard(sched, "ScoreALD corrector", len(ts),
                                       f"corrector_step_size={corrector_step_size:g}, step_size={step_size:g}")
    nfe = 0
    x = noise()
    for i, (t, t_prev) in enumerate(tqdm(_pairs(ts), desc="ScoreALD", disable=not progress, leave=False)):
        # predictor: DDPM step, then one likelihood step on the VE iterate
        with torch.no_grad():
            out = sched.ddpm_step(prior.eps(x, t), t, t_prev, x, noise() if t > 0 else None, clip_sample=clip_denoised)
        nfe += 1
        gamma2, gamma2_prev = sched.alpha_bar(t) ** -1 - 1, sched.alpha_bar(t_prev) ** -1 - 1
        x_ve = x / sched.alpha_bar(t) ** 0.5
        grad = _ald_likelihood_grad(operator, y, x_ve, gamma2, noise_std, gain)
        langevin_step = gamma2 - gamma2_prev if step_rule == "langevin" else 1.0
        weight = step_size * langevin_step / (2 * (noise_std**2 + gamma2))
        x = out.prev_sample - sched.alpha_bar(t_prev) ** 0.5 * weight * grad
        guard(x, t_prev, t, i)
        # corrector: Langevin steps at the level c = t_prev just reached
        if t_prev >= 0:
            c, a_c, gamma2_c = t_prev, sched.alpha_bar(t_prev), gamma2_prev
            alpha_c = corrector_step_size * gamma2_c / gamma2_last
            for _ in range(corrector_steps):
                with torch.no_grad():
                    score_ve = -prior.eps(x, c) / gamma2_c**0.5  # √ᾱ_c · (−ε/√(1 − ᾱ_c))
                nfe += 1
                x_ve = x / a_c**0.5
                likelihood = step_size / (2 * (noise_std**2 + gamma2_c)) * _ald_likelihood_grad(
                    operator, y, x_ve, gamma2_c, noise_std, gain)
                x_ve = x_ve + alpha_c * (score_ve - likelihood) + (2 * alpha_c) ** 0.5 * noise()
                x = a_c**0.5 * x_ve
                corrector_guard(x, c, c, i)
        rec(i, t, x, out.pred_original_sample)
    return rec.result(x, nfe=nfe, likelihood_weight=likelihood_weight, corrector_steps=corrector_steps,
                      corrector_step_size=corrector_step_size,
                      max_iterate_ratio=max(guard.ratio, corrector_guard.ratio),
                      rms_iterate_ratio=max(guard.rms_ratio, corrector_guard.rms_ratio))


# ---------------------------------------------------------------------- DPS
def dps_zeta_from_official_scale(scale: float) -> float:
    """The paper's ζ′ for the official code's ``scale``: the code steps ``scale · ∇‖r‖`` = 2ζ′ ∇‖r‖, so ζ′ = scale/2."""
    return scale / 2.0


def dps_gradient(prior, operator: Operator, measurement: torch.Tensor, x_t: torch.Tensor, t: int, clip_denoised: bool = True):
    """∇_{x_t} Σ_b ‖y_b − A(x̂_0(x_t)_b)‖ through the network, for a batch x_t (B, C, H, W).

    Returns ``(grad, residual_norm, eps)``: the gradient (shape of x_t), the per-image residual
    norms ‖r_b‖ (B,), and the detached ε_θ(x_t, t) of the same forward pass (one NFE). Each
    image's norm depends only on its own x_t, so the gradient of the sum is per-image.
    """
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        eps = prior.eps(x, t)
        x0 = prior.schedule.predict_x0(x, eps, t)
        if clip_denoised:
            x0 = x0.clamp(-1.0, 1.0)
        residual_norm = (measurement - operator(x0)).flatten(1).norm(dim=1)
        (grad,) = torch.autograd.grad(residual_norm.sum(), x)
    return grad, residual_norm.detach(), eps.detach()


def dps(
    prior,
    operator: Operator,
    measurement: torch.Tensor,
    num_steps: Optional[int] = None,
    step_size: float = 1.0,
    clip_denoised: bool = True,
    seed: SeedLike = 0,
    timestep_spacing: str = "linspace",
    progress: bool = True,
    trajectory_every: Optional[int] = None,
) -> SamplerResult:
    """Diffusion Posterior Sampling (Chung et al., ICLR 2023, Algorithm 1).

    x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ(x_t, t)) / √ᾱ_t                     (Tweedie)
    x'_{t-1} = DDPM step from x_t and x̂_0
    x_{t-1} = x'_{t-1} − ζ_t ∇_{x_t} ‖y − A(x̂_0)‖²,  ζ_t = ζ′ / ‖y − A(x̂_0)‖

    The gradient goes through the network. With ζ_t held constant, ζ_t ∇‖r‖² = 2ζ′ ∇‖r‖, so
    the update is ``x_{t-1} = x'_{t-1} − 2 ζ′ ∇_{x_t}‖r‖``. The official code subtracts
    ``scale · ∇‖r‖`` on the plain norm: **scale = 2ζ′** (its configs' scale 0.3 for deblurring
    and SR×4 is ζ′ = 0.15; 0.5 for inpainting is ζ′ = 0.25; the paper's FFHQ ζ′ = 1.0 is scale 2).
    Each image of a batch uses its own residual norm ‖r_b‖, so a batch of N gives the same
    images as N single runs with the same noise (the official code, written for batch 1,
    would mix the batch into one norm).

    ``clip_denoised=True`` (the official default) clips x̂_0 to [-1, 1] before it enters A
    and the posterior mean: at large t x̂_0 = x_t/√ᾱ_t − … overshoots wildly (1/√ᾱ_t ≈ 156
    at t = T), and clipping keeps A(x̂_0) within the range of images, at the price that clipped
    pixels get no guidance gradient. ``False`` lets every pixel receive guidance.

    ================  ===============================================
    paper symbol      argument / variable
    ================  ===============================================
    ζ′                ``step_size``
    ζ_t               ``step_size / residual_norm``
    x̂_0               ``out.pred_original_sample``
    y, A              ``measurement``, ``operator``
    ================  ===============================================

    ``info["residual_norm"]`` holds ‖y − A(x̂_0)‖ per step (B per row); NFE counts forward passes
    (each step also costs one backward pass through the network).
    """
    y = _prepare_measurement(prior, operator, measurement)
    step_size = _check_positive(step_size, "step_size")
    sched = prior.schedule
    ts = _timesteps(prior, num_steps, timestep_spacing)
    noise = _NoiseSource(seed, y.shape[0], prior.image_shape, prior.device, prior.dtype)
    rec = _Recorder(trajectory_every, len(ts))
    residuals = []
    guard = _DivergenceGuard(sched, "DPS", len(ts), f"step_size ζ′={step_size:g}")
    x = noise()
    for i, (t, t_prev) in enumerate(tqdm(_pairs(ts), desc="DPS", disable=not progress, leave=False)):
        grad, residual_norm, eps = dps_gradient(prior, operator, y, x, t, clip_denoised)
        out = sched.ddpm_step(eps, t, t_prev, x, noise() if t > 0 else None, clip_sample=clip_denoised)
        x = out.prev_sample - 2 * step_size * grad  # = x'_{t-1} − ζ_t ∇‖r‖², ζ_t = ζ′/‖r‖
        residuals.append(residual_norm.cpu())
        guard(x, t_prev, t, i)
        rec(i, t, x, out.pred_original_sample)
    return rec.result(x, nfe=len(ts), residual_norm=torch.stack(residuals), max_iterate_ratio=guard.ratio,
                      rms_iterate_ratio=guard.rms_ratio)


def in_batches(sampler, prior, operator, measurement: torch.Tensor, *, seed: Sequence[int], batch_size: int,
               **kwargs) -> SamplerResult:
    """Run a guided ``sampler`` (:func:`dps`, :func:`score_ald`, :func:`sdedit`) ``batch_size`` images at a time.

    The same result as one call on the whole batch (each image has its own seed, so its noise
    does not depend on the batch), with at most ``batch_size`` images in memory at once: DPS keeps
    every activation of the network for its backward pass, about 2 GB per 256-px image of the
    face model, so 8 images do not fit a 15 GB GPU in one call.

    ``measurement``: (B, …) on any device; ``seed``: B integer seeds (required: one per image);
    other keyword arguments go to ``sampler``. The parts are joined: ``sample`` and the trajectory
    along the batch; ``info`` tensors of shape (steps, b) (DPS's ``residual_norm``) along their
    second axis, numbers by their maximum (the divergence ratios); ``nfe`` is a run's (the same
    for every part). A :class:`SamplerDivergedError` of any part stops the whole run.
    """
    batch = int(measurement.shape[0])
    if not isinstance(seed, (list, tuple)) or len(seed) != batch:
        raise ValueError(f"seed must be a list of {batch} integer seeds, one per image of measurement (so that the "
                         "result does not depend on the batch split)")
    batch_size = as_int(batch_size, "batch_size", positive=True)
    parts = [sampler(prior, operator, measurement[i:i + batch_size], seed=list(seed[i:i + batch_size]), **kwargs)
             for i in range(0, batch, batch_size)]
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    info = {}
    for key, value in first.info.items():
        values = [part.info[key] for part in parts]
        if torch.is_tensor(value) and value.ndim == 2 and value.shape[1] == first.sample.shape[0]:
            info[key] = torch.cat(values, dim=1)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            info[key] = max(values)
        else:
            info[key] = value
    return SamplerResult(
        sample=torch.cat([part.sample for part in parts]),
        timesteps=list(first.timesteps),
        trajectory_x=[torch.cat(xs) for xs in zip(*(part.trajectory_x for part in parts))],
        trajectory_x0=[torch.cat(xs) for xs in zip(*(part.trajectory_x0 for part in parts))],
        nfe=first.nfe,
        info=info,
    )
