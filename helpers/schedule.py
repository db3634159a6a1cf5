"""The DDPM noise schedule and its update rules (DDPM ancestral step, DDIM step).

This module knows nothing about networks: like diffusers' ``scheduling_ddpm.py``
it turns a model output (the predicted noise ε) into the next sample and the
estimate x̂_0. Samplers (:mod:`helpers.samplers`) own the loop and the network.

Notation (Ho et al. 2020; Song et al. 2021 for DDIM):

============================  ===================================================
paper symbol                  attribute / argument
============================  ===================================================
T                             ``num_train_timesteps`` (1000 for google's models)
β_t                           ``betas[t]``
α_t = 1 − β_t                 ``alphas[t]``
ᾱ_t = Π_{s≤t} α_s             ``alphas_cumprod[t]``
√ᾱ_t, √(1 − ᾱ_t)              ``sqrt_alphas_cumprod``, ``sqrt_one_minus_alphas_cumprod``
γ_t = √((1 − ᾱ_t)/ᾱ_t)        ``noise_to_signal[t]`` (noise level of x_t/√ᾱ_t, VE view)
ε_θ(x_t, t)                   ``model_output`` (epsilon prediction)
x̂_0                           ``pred_original_sample`` (Tweedie's estimate)
η                             ``eta`` (DDIM stochasticity; 0 = deterministic)
============================  ===================================================

Time indices are the training indices 0 … T−1 (diffusers' convention: index 0 is
the least noisy level, β_0 = 1e-4). A sampler with fewer steps than T visits a
strided subsequence (:meth:`NoiseSchedule.timesteps`); a step from ``t`` to
``t_prev`` uses the effective β = 1 − ᾱ_t/ᾱ_{t_prev}, exactly as diffusers and
the DPS code's respacing do. ``t_prev = -1`` means "to the clean image" (ᾱ = 1).

All tensors are in model space [-1, 1], shape (B, C, H, W), on any device; the
schedule's coefficients are moved to the sample's device and dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np
import torch

from ._util import as_float, as_int

__all__ = ["NoiseSchedule", "StepOutput"]

_VARIANCE_TYPES = ("fixed_small", "fixed_large", "fixed_small_log", "fixed_large_log", "learned_range", "learned")


@dataclass
class StepOutput:
    """Result of one update: the new sample x_{t_prev} and the estimate x̂_0 (both (B, C, H, W), [-1, 1] space)."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class NoiseSchedule:
    """A variance-preserving DDPM schedule: q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I).

    Parameters
    ----------
    betas:
        β_1 … β_T as a 1-D array (stored in float64 for exact coefficients).
    variance_type:
        Variance of the ancestral step: ``"fixed_small"`` (the posterior variance
        β̃_t, google's CelebA-HQ model) or ``"fixed_large"`` (β_t, google's CIFAR-10
        model). Learned variances fall back to ``"fixed_small"`` for sampling.
    clip_sample:
        Default for clipping x̂_0 to [-1, 1] inside a step (diffusers' ``clip_sample``).
    """

    def __init__(self, betas, variance_type: str = "fixed_small", clip_sample: bool = True):
        betas = torch.as_tensor(np.asarray(betas, dtype=np.float64))
        if betas.ndim != 1 or len(betas) < 2:
            raise ValueError(f"betas must be a 1-D array of at least 2 values, got shape {tuple(betas.shape)}")
        if not torch.all((betas > 0) & (betas < 1)):
            raise ValueError("betas must lie strictly between 0 and 1")
        if variance_type not in _VARIANCE_TYPES:
            raise ValueError(f"variance_type={variance_type!r} is not supported; use one of {_VARIANCE_TYPES}")
        self.variance_type = variance_type
        self.clip_sample = bool(clip_sample)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()
        self.sqrt_recip_alphas_cumprod = (1.0 / self.alphas_cumprod).sqrt()
        self.sqrt_recipm1_alphas_cumprod = (1.0 / self.alphas_cumprod - 1.0).sqrt()
        self.noise_to_signal = self.sqrt_recipm1_alphas_cumprod  # γ_t in the VE view
        # Posterior q(x_{t-1} | x_t, x_0) for unit strides (Ho et al. eq. 6-7).
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def linear(cls, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, **kw) -> "NoiseSchedule":
        """Ho et al.'s linear schedule (google's DDPM models: 1e-4 → 0.02 over 1000 steps)."""
        n = as_int(num_train_timesteps, "num_train_timesteps", min=2)
        lo = as_float(beta_start, "beta_start", min=0, min_open=True, max=1, max_open=True)
        hi = as_float(beta_end, "beta_end", min=0, min_open=True, max=1, max_open=True)
        return cls(np.linspace(lo, hi, n, dtype=np.float64), **kw)

    @classmethod
    def from_config(cls, config: Mapping) -> "NoiseSchedule":
        """Build from a diffusers scheduler config (``scheduler_config.json`` as a dict).

        Supports ``beta_schedule`` ``"linear"``, ``"scaled_linear"``, ``"squaredcos_cap_v2"``
        and ``trained_betas``, and ``prediction_type="epsilon"``; other prediction types are
        handled by :class:`helpers.priors.Prior`, which converts them to ε.
        """
        n = int(config.get("num_train_timesteps", 1000))
        trained = config.get("trained_betas")
        kind = config.get("beta_schedule", "linear")
        b0, b1 = float(config.get("beta_start", 1e-4)), float(config.get("beta_end", 0.02))
        if trained is not None:
            betas = np.asarray(trained, dtype=np.float64)
        elif kind == "linear":
            betas = np.linspace(b0, b1, n, dtype=np.float64)
        elif kind == "scaled_linear":
            betas = np.linspace(b0**0.5, b1**0.5, n, dtype=np.float64) ** 2
        elif kind == "squaredcos_cap_v2":
            f = lambda s: np.cos((s + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
            s = np.arange(n, dtype=np.float64)
            betas = np.minimum(1 - f((s + 1) / n) / f(s / n), 0.999)
        else:
            raise ValueError(
                f"beta_schedule={kind!r} in the scheduler config is not supported; "
                "use 'linear', 'scaled_linear', 'squaredcos_cap_v2' or trained_betas"
            )
        variance_type = config.get("variance_type", "fixed_small") or "fixed_small"
        return cls(betas, variance_type=variance_type, clip_sample=bool(config.get("clip_sample", True)))

    @property
    def num_train_timesteps(self) -> int:
        return len(self.betas)

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return (
            f"NoiseSchedule(T={self.num_train_timesteps}, beta {self.betas[0]:.2e}→{self.betas[-1]:.2e}, "
            f"variance_type={self.variance_type!r}, clip_sample={self.clip_sample})"
        )

    # ------------------------------------------------------------------ time grid
    def timesteps(self, num_steps: int, spacing: str = "linspace") -> list[int]:
        """Descending training indices visited by a sampler with ``num_steps`` steps.

        ``"linspace"`` spreads them evenly over [0, T−1] including both ends (this
        matches the respacing of the DPS authors' code, DPS2022/diffusion-posterior-sampling);
        ``"leading"`` is diffusers' default (0, T/n, 2T/n, …); ``"trailing"`` ends at T−1.
        """
        T = self.num_train_timesteps
        num_steps = as_int(num_steps, "num_steps", min=1, max=T, hint=f"at most the {T} training steps")
        if spacing == "linspace":
            ts = np.linspace(0, T - 1, num_steps).round().astype(int)
        elif spacing == "leading":
            ts = np.arange(num_steps) * (T // num_steps)
        elif spacing == "trailing":
            ts = np.round(np.arange(T, 0, -T / num_steps)).astype(int) - 1
        else:
            raise ValueError(f"spacing={spacing!r} is unknown; use 'linspace', 'leading' or 'trailing'")
        return [int(t) for t in sorted(set(ts.tolist()), reverse=True)]

    # ------------------------------------------------------------------ coefficients
    def alpha_bar(self, t: int) -> float:
        """ᾱ_t, with ᾱ_{-1} = 1 (the clean image)."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def _check_t(self, t: int, name: str = "t") -> int:
        if isinstance(t, float) or (hasattr(t, "dtype") and getattr(t.dtype, "is_floating_point", False)) \
                or (isinstance(getattr(t, "dtype", None), np.dtype) and t.dtype.kind == "f"):
            raise TypeError(f"{name} must be an integer training index, got {type(t).__name__} {t!r}")
        t = as_int(t, name)
        if not -1 <= t < self.num_train_timesteps:
            raise ValueError(f"{name}={t} is outside the schedule's indices [0, {self.num_train_timesteps - 1}]")
        return t

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: int) -> torch.Tensor:
        """Sample q(x_t | x_0): x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε  (Ho et al. eq. 4)."""
        t = self._check_t(t)
        a = self.alpha_bar(t)
        return a**0.5 * x0 + (1 - a) ** 0.5 * noise

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """Tweedie's estimate x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ) / √ᾱ_t, differentiable in x_t and ε."""
        a = self.alpha_bar(self._check_t(t))
        return (x_t - (1 - a) ** 0.5 * eps) / a**0.5

    def step_variance(self, t: int, t_prev: int) -> float:
        """Variance of the ancestral step t → t_prev (strided: β_eff = 1 − ᾱ_t/ᾱ_{t_prev})."""
        a_t, a_prev = self.alpha_bar(t), self.alpha_bar(t_prev)
        beta_eff = 1.0 - a_t / a_prev
        if self.variance_type in ("fixed_large", "fixed_large_log"):
            return beta_eff
        return max((1.0 - a_prev) / (1.0 - a_t) * beta_eff, 1e-20)

    # ------------------------------------------------------------------ update rules
    def ddpm_step(
        self,
        model_output: torch.Tensor,
        t: int,
        t_prev: int,
        x_t: torch.Tensor,
        noise: Optional[torch.Tensor] = None,
        clip_sample: Optional[bool] = None,
    ) -> StepOutput:
        """One ancestral step x_t → x_{t_prev} (Ho et al. eq. 6-7, strided as in diffusers).

        x_{t_prev} = c_0 · x̂_0 + c_t · x_t + σ · z with
        c_0 = √ᾱ_prev β_eff / (1 − ᾱ_t),  c_t = √(ᾱ_t/ᾱ_prev) (1 − ᾱ_prev) / (1 − ᾱ_t),
        σ² = :meth:`step_variance`. ``noise`` is z (same shape as ``x_t``); no noise is
        added when ``t == 0`` or ``noise is None``. Differentiable in ``x_t``.
        """
        t, t_prev = self._check_t(t), self._check_t(t_prev, "t_prev")
        if t_prev >= t:
            raise ValueError(f"t_prev={t_prev} must be smaller than t={t}")
        clip = self.clip_sample if clip_sample is None else clip_sample
        a_t, a_prev = self.alpha_bar(t), self.alpha_bar(t_prev)
        beta_eff = 1.0 - a_t / a_prev
        x0 = self.predict_x0(x_t, model_output, t)
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
        coef_x0 = a_prev**0.5 * beta_eff / (1.0 - a_t)
        coef_xt = (a_t / a_prev) ** 0.5 * (1.0 - a_prev) / (1.0 - a_t)
        prev = coef_x0 * x0 + coef_xt * x_t
        if t > 0 and noise is not None:
            prev = prev + self.step_variance(t, t_prev) ** 0.5 * noise
        return StepOutput(prev, x0)

    def ddim_step(
        self,
        model_output: torch.Tensor,
        t: int,
        t_prev: int,
        x_t: torch.Tensor,
        eta: float = 0.0,
        noise: Optional[torch.Tensor] = None,
        clip_sample: Optional[bool] = None,
    ) -> StepOutput:
        """One DDIM step x_t → x_{t_prev} (Song et al. 2021, eq. 12).

        x_{t_prev} = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε_θ + σ z, with
        σ = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev). η = 0 is deterministic;
        η = 1 has the ancestral (fixed_small) variance. ``noise`` is z, needed when η > 0.
        """
        t, t_prev = self._check_t(t), self._check_t(t_prev, "t_prev")
        if t_prev >= t:
            raise ValueError(f"t_prev={t_prev} must be smaller than t={t}")
        eta = as_float(eta, "eta", nonnegative=True, hint="0 = deterministic DDIM, 1 = DDPM-like")
        clip = self.clip_sample if clip_sample is None else clip_sample
        a_t, a_prev = self.alpha_bar(t), self.alpha_bar(t_prev)
        x0 = self.predict_x0(x_t, model_output, t)
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
        sigma = eta * ((1 - a_prev) / (1 - a_t)) ** 0.5 * (1 - a_t / a_prev) ** 0.5
        direction = max(1 - a_prev - sigma**2, 0.0) ** 0.5 * model_output
        prev = a_prev**0.5 * x0 + direction
        if eta > 0:
            if noise is None:
                raise ValueError("ddim_step with eta > 0 needs a noise tensor")
            prev = prev + sigma * noise
        return StepOutput(prev, x0)
