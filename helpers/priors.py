"""Priors: a denoising network together with its noise schedule.

A *prior* is anything with

- ``schedule``: a :class:`helpers.schedule.NoiseSchedule`,
- ``eps(x_t, t)``: the predicted noise ε_θ(x_t, t), shape of ``x_t``, differentiable in ``x_t``,
- ``image_shape``: ``(C, H, W)``; ``device``; ``dtype``.

Two kinds ship here:

- :class:`Prior` wraps a diffusers ``UNet2DModel`` (loaded with :func:`load_prior`
  from the Hugging Face hub, a local folder, or the small priors that ship in this
  repository).
- :class:`GaussianPrior` is an exact prior for data x_0 ~ N(μ, Σ): its ε is known in
  closed form, so samplers can be checked against exact answers.

Images are in model space [-1, 1], shape (B, C, H, W).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Union

import torch

from .schedule import NoiseSchedule

__all__ = ["Prior", "GaussianPrior", "load_prior", "PriorNotAvailableError", "BUNDLED_PRIORS", "HUB_PRIORS", "default_device",
           "record_weights_sha256", "verify_weights_sha256", "WEIGHTS_FILE", "SHA256_FILE"]

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"

WEIGHTS_FILE = "unet/diffusion_pytorch_model.safetensors"
"""The weights of a prior in pipeline layout, relative to its folder."""
SHA256_FILE = "weights.sha256"
"""Beside ``unet/``: ``<sha256>  unet/diffusion_pytorch_model.safetensors`` (``sha256sum -c`` format),
written by ``helpers.train``'s export and checked by :func:`load_prior` for the bundled priors."""

#: Short names of the priors that ship in this repository (trained by ``python -m helpers.train``).
BUNDLED_PRIORS = {
    "faces": "cartoon faces, 32×32 RGB (python-avatars)",
    "mnist": "MNIST digits, 32×32 grayscale",
}
#: Hub models the course uses on a GPU (need internet the first time).
HUB_PRIORS = {
    "google/ddpm-celebahq-256": "CelebA-HQ faces, 256×256 RGB, 114 M parameters",
    "google/ddpm-cifar10-32": "CIFAR-10, 32×32 RGB, 35.7 M parameters",
}


class PriorNotAvailableError(RuntimeError):
    """A prior could not be loaded (offline, unknown name, missing files)."""


def default_device() -> torch.device:
    """``cuda`` when a CUDA GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _as_timestep_tensor(t, batch: int, device) -> torch.Tensor:
    if torch.is_tensor(t) and t.ndim == 1:
        return t.to(device)
    return torch.full((batch,), int(t), device=device, dtype=torch.long)


class Prior:
    """A diffusers ``UNet2DModel`` and its schedule.

    The network is in eval mode with its *parameters* frozen (``requires_grad=False``),
    but gradients with respect to the *input* flow normally: DPS differentiates
    ε_θ(x_t, t) with respect to x_t, so nothing here runs under ``torch.no_grad`` or
    ``torch.inference_mode``.

    Attributes
    ----------
    unet: the network, on ``device``.
    schedule: :class:`NoiseSchedule` read from the model's scheduler config.
    prediction_type: ``"epsilon"`` (native), ``"sample"`` or ``"v_prediction"`` (converted to ε).
    name: where it was loaded from.
    """

    def __init__(self, unet, schedule: NoiseSchedule, prediction_type: str = "epsilon", name: str = "prior"):
        if prediction_type not in ("epsilon", "sample", "v_prediction"):
            raise ValueError(
                f"prediction_type={prediction_type!r} is not supported: the samplers need ε-prediction; "
                "supported are 'epsilon', 'sample' (x_0-prediction) and 'v_prediction', which are converted to ε"
            )
        self.unet = unet.eval()
        self.unet.requires_grad_(False)
        self.schedule = schedule
        self.prediction_type = prediction_type
        self.name = name
        cfg = unet.config
        size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
        self.image_shape = (int(cfg.in_channels), int(size), int(size))
        self._learned_variance = int(cfg.out_channels) == 2 * int(cfg.in_channels)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.unet.parameters())

    def to(self, device) -> "Prior":
        self.unet.to(device)
        return self

    def eps(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """ε_θ(x_t, t) for x_t of shape (B, C, H, W) in [-1, 1]-scaled VP space, t an int index (or (B,) tensor).

        Differentiable in ``x_t``. One call is one network evaluation (NFE).
        """
        out = self.unet(x_t.to(self.dtype), _as_timestep_tensor(t, x_t.shape[0], x_t.device)).sample
        if self._learned_variance:  # learned-range models output [ε, variance]; keep ε
            out = out[:, : self.image_shape[0]]
        if self.prediction_type == "epsilon":
            return out
        a = self.schedule.alpha_bar(int(t) if not torch.is_tensor(t) or t.ndim == 0 else int(t[0]))
        if self.prediction_type == "sample":  # out = x̂_0
            return (x_t - a**0.5 * out) / (1 - a) ** 0.5
        return a**0.5 * out + (1 - a) ** 0.5 * x_t  # v-prediction: ε = √ᾱ v + √(1-ᾱ) x_t

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"Prior({self.name!r}, image_shape={self.image_shape}, params={self.num_parameters / 1e6:.1f}M, device={self.device})"


class GaussianPrior:
    """Exact prior for data x_0 ~ N(μ, Σ) in dimension d = C·H·W.

    Then x_t ~ N(√ᾱ_t μ, ᾱ_t Σ + (1 − ᾱ_t) I), and the optimal noise prediction is
    ε*(x_t, t) = √(1 − ᾱ_t) (ᾱ_t Σ + (1 − ᾱ_t) I)^{-1} (x_t − √ᾱ_t μ), computed through
    the eigendecomposition Σ = U diag(λ) Uᵀ. Differentiable, batched, float64 inside.
    Use it to check samplers against closed forms (:meth:`posterior`).
    """

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, image_shape, schedule: Optional[NoiseSchedule] = None):
        self.image_shape = tuple(int(s) for s in image_shape)
        d = 1
        for s in self.image_shape:
            d *= s
        mean = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
        cov = torch.as_tensor(cov, dtype=torch.float64)
        if mean.numel() != d or cov.shape != (d, d):
            raise ValueError(f"mean must have {d} entries and cov shape ({d}, {d}) for image_shape {self.image_shape}")
        cov = 0.5 * (cov + cov.T)
        evals, evecs = torch.linalg.eigh(cov)
        if evals.min() <= 0:
            raise ValueError("cov must be positive definite")
        self.mean, self.cov, self._evals, self._evecs = mean, cov, evals, evecs
        self.schedule = schedule or NoiseSchedule.linear()
        self.device = torch.device("cpu")
        self.dtype = torch.float64

    def eps(self, x_t: torch.Tensor, t) -> torch.Tensor:
        a = self.schedule.alpha_bar(int(t))
        flat = x_t.reshape(x_t.shape[0], -1).to(torch.float64) - a**0.5 * self.mean
        coeffs = (flat @ self._evecs) / (a * self._evals + (1 - a))
        out = (1 - a) ** 0.5 * coeffs @ self._evecs.T
        return out.reshape(x_t.shape).to(x_t.dtype)

    def sample_data(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """n exact draws of x_0, shape (n, C, H, W)."""
        z = torch.randn(n, self.mean.numel(), generator=generator, dtype=torch.float64)
        x = self.mean + (z * self._evals.sqrt()) @ self._evecs.T
        return x.reshape(n, *self.image_shape)

    def posterior(self, matrix: torch.Tensor, y: torch.Tensor, noise_std: float):
        """Exact posterior of x_0 given y = M x_0 + σ n: returns (mean (d,), covariance (d, d)).

        Σ_post = (Σ^{-1} + Mᵀ M / σ²)^{-1},  μ_post = Σ_post (Σ^{-1} μ + Mᵀ y / σ²).
        ``matrix`` M is (m, d); ``y`` has m entries; ``noise_std`` σ > 0.
        """
        if noise_std <= 0:
            raise ValueError("noise_std must be > 0 for a proper Gaussian posterior")
        M = torch.as_tensor(matrix, dtype=torch.float64)
        y = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
        prec = torch.linalg.inv(self.cov) + M.T @ M / noise_std**2
        cov_post = torch.linalg.inv(prec)
        mean_post = cov_post @ (torch.linalg.solve(self.cov, self.mean) + M.T @ y / noise_std**2)
        return mean_post, 0.5 * (cov_post + cov_post.T)


# ---------------------------------------------------------------------- loading
def _read_json(path: Path) -> dict:
    try:
        with open(path) as fh:
            value = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PriorNotAvailableError(
            f"{path} is not valid JSON ({err}); restore it (git checkout, or re-export the prior), or write a "
            "diffusers scheduler config with diffusers.DDPMScheduler(...).save_pretrained(...)"
        ) from None
    if not isinstance(value, dict):
        raise PriorNotAvailableError(f"{path} holds a JSON {type(value).__name__}, not an object of scheduler settings")
    return value


def record_weights_sha256(folder: Union[str, os.PathLike]) -> str:
    """Write ``folder/weights.sha256`` for the prior's current weights; returns the hex digest.

    Run it after replacing a prior's weights on purpose (``helpers.train``'s export does it).
    """
    from ._util import file_sha256

    folder = Path(folder)
    sha = file_sha256(folder / WEIGHTS_FILE)
    tmp = folder / (SHA256_FILE + f".tmp{os.getpid()}")
    tmp.write_text(f"{sha}  {WEIGHTS_FILE}\n")
    os.replace(tmp, folder / SHA256_FILE)
    return sha


def _expected_sha256(folder: Path) -> Optional[str]:
    """The recorded SHA-256 of ``folder``'s weights: ``weights.sha256``, else ``training_info.json``; None if neither."""
    f = folder / SHA256_FILE
    if f.exists():
        text = f.read_text().split()
        if not text or len(text[0]) != 64 or any(c not in "0123456789abcdef" for c in text[0].lower()):
            raise PriorNotAvailableError(f"{f} does not start with a SHA-256 hex digest; restore it (git checkout)")
        return text[0].lower()
    info = folder / "training_info.json"
    if info.exists():
        try:
            sha = json.loads(info.read_text()).get("weights_sha256")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return None
        return sha.lower() if isinstance(sha, str) else None
    return None


def verify_weights_sha256(folder: Union[str, os.PathLike], required: bool = False) -> Optional[str]:
    """Check ``folder``'s weights against the recorded SHA-256; returns the digest (None if nothing is recorded).

    Raises :class:`PriorNotAvailableError` naming the weights file when they differ (a corrupt, truncated or
    replaced file), or when ``required`` and no hash is recorded.
    """
    from ._util import file_sha256

    folder = Path(folder)
    expected = _expected_sha256(folder)
    weights = folder / WEIGHTS_FILE
    if expected is None:
        if required:
            raise PriorNotAvailableError(f"{folder} records no SHA-256 of {weights} ({SHA256_FILE} is missing); "
                                         "restore it with git checkout")
        return None
    if not weights.exists():
        raise PriorNotAvailableError(f"{weights} is missing; restore it (git checkout / git lfs pull) or re-export the prior")
    actual = file_sha256(weights)
    if actual != expected:
        raise PriorNotAvailableError(
            f"{weights} has SHA-256 {actual[:16]}…, but {folder / SHA256_FILE} records {expected[:16]}…: the file is "
            "corrupt, truncated or was replaced. Restore it (git checkout / git lfs pull); if you replaced the weights "
            f"on purpose, record their hash with helpers.priors.record_weights_sha256({str(folder)!r})"
        )
    return actual


def _offline_hint() -> str:
    names = ", ".join(f"'{k}' ({v})" for k, v in BUNDLED_PRIORS.items())
    return f"Priors that work offline: {names}, or a local folder holding a diffusers UNet (config.json + weights)."


def _load_local(path: Path, device, dtype, required_sha: bool = False) -> Prior:
    from diffusers import UNet2DModel

    if (path / "unet" / "config.json").exists():  # pipeline layout
        unet_dir = path / "unet"
        sched_candidates = [path / "scheduler" / "scheduler_config.json", path / "scheduler_config.json"]
    elif (path / "config.json").exists():  # bare UNet layout
        unet_dir = path
        sched_candidates = [path / "scheduler_config.json", path / "scheduler" / "scheduler_config.json"]
    else:
        raise PriorNotAvailableError(
            f"{path} holds no diffusers UNet: expected 'unet/config.json' (pipeline layout) or 'config.json' (bare UNet)."
        )
    sched_path = next((p for p in sched_candidates if p.exists()), None)
    if sched_path is None:
        raise PriorNotAvailableError(
            f"{path} has no scheduler config: add 'scheduler/scheduler_config.json' (pipeline layout) or "
            "'scheduler_config.json' beside config.json, e.g. with diffusers.DDPMScheduler(...).save_pretrained(...)."
        )
    sched_cfg = _read_json(sched_path)
    _read_json(unet_dir / "config.json")  # a clear error naming the file, before diffusers parses it
    if unet_dir != path:  # pipeline layout: check the weights when a hash is recorded
        verify_weights_sha256(path, required=required_sha)
    unet = UNet2DModel.from_pretrained(str(unet_dir), low_cpu_mem_usage=False)
    return _make_prior(unet, sched_cfg, str(path), device, dtype)


def _make_prior(unet, sched_cfg: dict, name: str, device, dtype) -> Prior:
    prediction_type = sched_cfg.get("prediction_type", "epsilon")
    schedule = NoiseSchedule.from_config(sched_cfg)
    unet = unet.to(device) if dtype is None else unet.to(device=device, dtype=dtype)
    return Prior(unet, schedule, prediction_type=prediction_type, name=name)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers (False at once when HF_HUB_OFFLINE=1 or DNS fails)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_hub(repo_id: str, local_files_only: bool):
    import warnings

    from diffusers import DDPMScheduler, UNet2DModel

    warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")

    kw = dict(local_files_only=local_files_only, low_cpu_mem_usage=False)
    try:  # pipeline layout (google/ddpm-*): unet/ and scheduler/ subfolders
        unet = UNet2DModel.from_pretrained(repo_id, subfolder="unet", **kw)
        return unet, dict(DDPMScheduler.load_config(repo_id, subfolder="scheduler", local_files_only=local_files_only))
    except EnvironmentError:  # bare layout
        unet = UNet2DModel.from_pretrained(repo_id, **kw)
        return unet, dict(DDPMScheduler.load_config(repo_id, local_files_only=local_files_only))


def _load_hub(repo_id: str, device, dtype) -> Prior:
    try:  # a model downloaded before loads from the local cache, also offline
        unet, sched_cfg = _from_hub(repo_id, local_files_only=True)
    except Exception:
        if not _hub_reachable():
            raise PriorNotAvailableError(
                f"Cannot download '{repo_id}': the Hugging Face hub is not reachable from this machine (offline, "
                "or HF_HUB_OFFLINE=1) and the model is not in the local cache. " + _offline_hint()
            ) from None
        try:
            unet, sched_cfg = _from_hub(repo_id, local_files_only=False)
        except Exception as err:  # wrong id, gated repo, network failure mid-way
            raise PriorNotAvailableError(
                f"Could not load '{repo_id}' from the Hugging Face hub ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:200]}). Check the id. " + _offline_hint()
            ) from None
    return _make_prior(unet, sched_cfg, repo_id, device, dtype)


def load_prior(name_or_path: Union[str, os.PathLike], device=None, dtype: Optional[torch.dtype] = None) -> Prior:
    """Load a diffusion prior: a ``UNet2DModel`` plus its noise schedule.

    ``name_or_path`` is one of

    - a short name of a prior that ships in this repository: ``"faces"``, ``"mnist"``;
    - a local folder in diffusers *pipeline* layout (``unet/`` and ``scheduler/``) or
      *bare* layout (``config.json``, weights, ``scheduler_config.json``);
    - a Hugging Face hub id such as ``"google/ddpm-celebahq-256"`` (needs internet the
      first time; offline you get a :class:`PriorNotAvailableError` naming the offline priors).

    ``device`` defaults to CUDA when available. The schedule (β, ᾱ, T, variance type,
    clipping) is read from the model's diffusers scheduler config.

    The weights of a bundled prior are checked against the SHA-256 in its ``weights.sha256``
    (a local folder's too, when it has one, e.g. from ``helpers.train``'s export): a
    mismatch, or a config that is not JSON, raises :class:`PriorNotAvailableError` naming the file.
    """
    device = torch.device(device) if device is not None else default_device()
    key = os.fspath(name_or_path)
    if key in BUNDLED_PRIORS:
        path = PRETRAINED_DIR / key
        if not path.exists():
            raise PriorNotAvailableError(
                f"The bundled prior '{key}' is not in this checkout ({path} is missing). "
                f"Train it with `python -m helpers.train --dataset {key} --out {path} --force`."
            )
        prior = _load_local(path, device, dtype, required_sha=True)
        prior.name = key
        return prior
    path = Path(key).expanduser()
    if path.exists():
        if not path.is_dir():
            raise PriorNotAvailableError(f"{path} is a file; load_prior needs a folder holding a diffusers UNet")
        return _load_local(path, device, dtype)
    if key.count("/") == 1 and not key.startswith((".", "/", "~")):
        return _load_hub(key, device, dtype)
    raise PriorNotAvailableError(
        f"Unknown prior {key!r}: it is neither a bundled name ({', '.join(BUNDLED_PRIORS)}), nor an existing folder, "
        f"nor a hub id like {', '.join(HUB_PRIORS)}. " + _offline_hint()
    )
