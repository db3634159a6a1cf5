"""Aligned real faces (CelebA-HQ / FFHQ alignment): where the eyes and mouth are, and measures on them.

The face model of the GPU path, ``google/ddpm-celebahq-256``, was trained on CelebA-HQ: faces
cropped and rotated by a fixed recipe from their landmarks, so every face has its eyes and mouth
at nearly the same pixels. This module gives those places, scaled to any image size, and the
face measures that use them:

* :func:`canonical_landmarks` and :func:`part_boxes` -- eye and mouth positions and boxes
  ``(row0, row1, col0, col1)`` (half-open) for ``"eyes"``, ``"left_eye"``, ``"right_eye"``,
  ``"mouth"``. At 256 px (:data:`PART_BOXES_256`)::

      eyes       (105, 137,  73, 183)      left_eye (105, 137, 73, 121)
      mouth      (166, 218,  91, 165)      right_eye (105, 137, 135, 183)

* :func:`eye_symmetry`, :func:`region_psnr`, :func:`region_lpips` -- measures that work on any
  aligned face (not the cartoon classifiers of :mod:`helpers.face_measures`).
* :func:`prior_samples` -- a prior's own samples, as aligned test faces, cached on disk.
* :func:`aligned_photos` / :func:`align_face` -- the two photographs that ship with the
  installed packages, aligned by the same recipe.

Images are in image space [0, 1], shape (B, 3, H, W), square, on any device (the measures
return numpy arrays of shape (B,)).

Where the canonical positions come from (derived from the recipe, *not measured on data*: no
face data set is available offline)
---------------------------------------------------------------------------------------------
Karras et al. 2018 (Progressive GAN, appendix C) made CelebA-HQ from CelebA's five landmarks
(eye centres e_l, e_r, mouth corners m_l, m_r); FFHQ's ``align_images`` uses the same recipe
with dlib's 68 landmarks. With e = (e_l + e_r)/2, e'' = e_r − e_l (eye to eye),
m' = (m_l + m_r)/2 − e (eye midpoint to mouth midpoint):

* the crop is a square of side s = max(4·|e''|, 3.6·|m'|), i.e. max(2·|e''|, 1.8·|m'|) on
  each side of its centre;
* its centre is c = e + 0.1·m' (the eye midpoint moved a tenth of the way to the mouth);
* it is rotated so that its horizontal axis is e'' − rot90(m') (the eye line, averaged with the
  perpendicular of the eye–mouth line), and scaled to the output size S.

So in the aligned image the eye midpoint is at column S/2, row S/2 − 0.1·|m'|·S/s, the mouth
midpoint at row S/2 + 0.9·|m'|·S/s, and the eyes |e''|·S/s apart. Which term of s wins depends
on the face's ratio r = |m'| / |e''|: for r > 1/0.9 = 1.11 the eye–mouth distance sets the scale
and the rows are fixed (eyes at S·(0.5 − 0.1/3.6) = 0.4722·S, mouth at 0.75·S); below it the eye
distance does (eyes S/4 apart). The typical r is taken from the five-point face template used for
ArcFace alignment (insightface; the mean landmarks of a 112×112 face: eyes (38.29, 51.70) and
(73.53, 51.50), mouth corners (41.55, 92.37) and (70.73, 92.20)): |e''| = 35.24, |m'| = 40.69,
r = 1.155, mouth width 29.18 = 0.828·|e''|. Mirror-symmetrised and put through the recipe at
S = 256 (continuous coordinates, pixel k covering [k, k+1)):

    eyes at row 120.9, columns 97.2 and 158.8 (61.6 px apart); mouth midpoint at row 192.0,
    column 128.0, corners at columns 102.5 and 153.5.

Robustness: for r between 1.0 and 1.25 (most frontal faces) the eyes stay within 1 px of these
places (rows 120.9–121.6, columns 96–97.2) and the mouth moves between rows 185.6 and 192.0; a
broad smile (the astronaut below, r = 0.88) puts it at row 178.8. The boxes are drawn around the
canonical places with margins in units of the canonical eye distance D = 61.6 px at 256: each
eye ±0.25·D in rows and ±0.38·D in columns (covering the eye and its lids, not the brows, which
sit ~0.4·D above the eye centre), the mouth ±0.42·D in rows and ±0.6·D in columns around its
midpoint (covering a closed mouth of width 0.83·D, a wide smile, and mouths 14 px higher or
lower). The right-eye box is the left-eye box mirrored about the centre column, so a mirrored
face scores :func:`eye_symmetry` 1.

Compared with the 32-px cartoon boxes of :mod:`helpers.face_measures` (faces cropped tightly from
the brows to the chin): there the eyes sit at row 0.31·S (``EYE_BOX`` rows 6–15 of 32 = 0.19–0.47)
and the mouth box spans rows 0.53–0.94 and columns 0.09–0.91; in an aligned photo, which keeps the
hair, forehead and background, the eyes are at row 0.47·S and the mouth box spans rows 0.65–0.85,
columns 0.36–0.64. Scaling the cartoon boxes to 256 px would inpaint the forehead instead of the
eyes and a third of the image instead of the mouth.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "test_images",
    "GPU_SAMPLE_STEPS",
    "ALIGNED_SIZE",
    "FACE_TEMPLATE_112",
    "PART_NAMES",
    "PART_BOXES_256",
    "PHOTO_LANDMARKS",
    "alignment_frame",
    "align_landmarks",
    "canonical_landmarks",
    "part_boxes",
    "part_box",
    "crop_region",
    "eye_symmetry",
    "region_psnr",
    "region_lpips",
    "prior_samples",
    "prior_samples_path",
    "align_face",
    "aligned_photos",
]

ALIGNED_SIZE = 256
"""The side of CelebA-HQ images as ``google/ddpm-celebahq-256`` sees them."""

FACE_TEMPLATE_112 = {
    "left_eye": (51.6963, 38.2946),
    "right_eye": (51.5014, 73.5318),
    "nose": (71.7366, 56.0252),
    "mouth_left": (92.3655, 41.5493),
    "mouth_right": (92.2041, 70.7299),
}
"""The five-point mean face of ArcFace alignment (insightface), (row, col) in a 112×112 crop.

Used only for its proportions (eye distance : eye–mouth distance : mouth width); "left" is the
left of the image."""

PART_NAMES = ("eyes", "left_eye", "right_eye", "mouth")

# margins of the boxes around the canonical landmarks, in units of the canonical eye distance D
_EYE_HALF_HEIGHT, _EYE_HALF_WIDTH = 0.25, 0.38
_MOUTH_HALF_HEIGHT, _MOUTH_HALF_WIDTH = 0.42, 0.60

PHOTO_LANDMARKS = {
    # (row, col) in continuous pixel coordinates of the original photo (pixel k covers [k, k+1));
    # found by marking them on 6×-8× enlargements (eye centre = centre of the iris, mouth corner =
    # where the lips meet) and checking the marks by eye.
    "astronaut": {  # skimage.data.astronaut(), 512 × 512
        "left_eye": (101.5, 203.5), "right_eye": (102.5, 246.0),
        "mouth_left": (140.0, 202.0), "mouth_right": (139.0, 244.0),
    },
    "grace_hopper": {  # matplotlib's grace_hopper.jpg, 600 × 512 (H × W)
        "left_eye": (188.0, 220.5), "right_eye": (186.5, 302.0),
        "mouth_left": (278.5, 229.0), "mouth_right": (276.0, 304.0),
    },
}
"""Eye centres and mouth corners of the two photos of :func:`helpers.data.face_photo`."""


# ------------------------------------------------------------------------------------- the recipe
def alignment_frame(landmarks: dict) -> tuple:
    """The CelebA-HQ / FFHQ crop of a face: ``(centre, x_axis, y_axis)`` as numpy (x=col, y=row) vectors.

    ``landmarks``: ``{"left_eye", "right_eye", "mouth_left", "mouth_right"}`` → (row, col) in
    continuous pixel coordinates. The crop is the square ``centre + a·x_axis + b·y_axis`` for
    a, b in [-1, 1] (``a`` to the right, ``b`` down); its side is ``2·|x_axis|`` source pixels.
    See the module docstring for the recipe.
    """
    def xy(name):
        r, c = landmarks[name]
        return np.array([float(c), float(r)])

    e_l, e_r, m_l, m_r = xy("left_eye"), xy("right_eye"), xy("mouth_left"), xy("mouth_right")
    eye_avg = (e_l + e_r) / 2
    eye_to_eye = e_r - e_l
    eye_to_mouth = (m_l + m_r) / 2 - eye_avg

    def rot90(v):  # +90° in image coordinates (y down): (x, y) -> (-y, x)
        return np.array([-v[1], v[0]])

    x = eye_to_eye - rot90(eye_to_mouth)
    x = x / np.hypot(*x) * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = rot90(x)
    c = eye_avg + 0.1 * eye_to_mouth
    return c, x, y


def align_landmarks(landmarks: dict, size: int = ALIGNED_SIZE, frame: Optional[tuple] = None) -> dict:
    """Where ``landmarks`` ((row, col) in the source) land after :func:`align_face` to ``size`` px.

    ``frame``: the crop to use (default: :func:`alignment_frame` of the same landmarks).
    Returns ``{name: (row, col)}`` in continuous coordinates of the aligned image.
    """
    c, x, y = frame if frame is not None else alignment_frame(landmarks)
    inv = np.linalg.inv(np.stack([x, y], axis=1))
    out = {}
    for name, (r, col) in landmarks.items():
        a, b = inv @ (np.array([float(col), float(r)]) - c)
        out[name] = ((b + 1) * size / 2, (a + 1) * size / 2)
    return out


def _symmetric_template() -> dict:
    t = FACE_TEMPLATE_112
    mid = (t["left_eye"][1] + t["right_eye"][1] + t["mouth_left"][1] + t["mouth_right"][1]) / 4
    eye_row = (t["left_eye"][0] + t["right_eye"][0]) / 2
    mouth_row = (t["mouth_left"][0] + t["mouth_right"][0]) / 2
    d_ee = math.dist(t["left_eye"], t["right_eye"])
    w_m = math.dist(t["mouth_left"], t["mouth_right"])
    d_em = math.dist(((t["left_eye"][0] + t["right_eye"][0]) / 2, (t["left_eye"][1] + t["right_eye"][1]) / 2),
                     (mouth_row, (t["mouth_left"][1] + t["mouth_right"][1]) / 2))
    eye_row = mouth_row - d_em  # keep the true eye–mouth distance on a vertical line
    return {"left_eye": (eye_row, mid - d_ee / 2), "right_eye": (eye_row, mid + d_ee / 2),
            "mouth_left": (mouth_row, mid - w_m / 2), "mouth_right": (mouth_row, mid + w_m / 2)}


_CANONICAL_UNIT = align_landmarks(_symmetric_template(), size=1)


def canonical_landmarks(size: int = ALIGNED_SIZE) -> dict:
    """Canonical (row, col) of ``left_eye``, ``right_eye``, ``mouth_left``, ``mouth_right``, ``mouth`` at ``size`` px.

    Continuous coordinates (pixel k covers [k, k+1); subtract 0.5 for pixel-centre indices).
    At 256: eyes (120.9, 97.2) and (120.9, 158.8), mouth corners (192.0, 102.5) and (192.0, 153.5),
    mouth midpoint (192.0, 128.0). Derived from the alignment recipe and the ArcFace template
    (module docstring), not measured on CelebA-HQ.
    """
    s = float(size)
    out = {k: (r * s, c * s) for k, (r, c) in _CANONICAL_UNIT.items()}
    ml, mr = out["mouth_left"], out["mouth_right"]
    out["mouth"] = ((ml[0] + mr[0]) / 2, (ml[1] + mr[1]) / 2)
    return out


def part_boxes(size: int = ALIGNED_SIZE) -> dict:
    """Boxes ``(row0, row1, col0, col1)``, half-open, of ``"eyes"``, ``"left_eye"``, ``"right_eye"``, ``"mouth"``.

    For square aligned faces of ``size`` px (any size ≥ 4; the fractions are fixed, the edges are
    rounded outwards and clipped to the image). ``right_eye`` mirrors ``left_eye`` about the
    centre column; ``eyes`` spans both. At 256: :data:`PART_BOXES_256`.
    """
    size = int(size)
    if size < 4:
        raise ValueError(f"size={size}: aligned-face boxes need images of at least 4 px")
    u = _CANONICAL_UNIT
    d = abs(u["right_eye"][1] - u["left_eye"][1])

    def box(r0, r1, c0, c1):
        b = [max(0, math.floor(r0 * size + 1e-9)), min(size, math.ceil(r1 * size - 1e-9)),
             max(0, math.floor(c0 * size + 1e-9)), min(size, math.ceil(c1 * size - 1e-9))]
        return tuple(int(v) for v in b)

    er, ec = u["left_eye"]
    left = box(er - _EYE_HALF_HEIGHT * d, er + _EYE_HALF_HEIGHT * d, ec - _EYE_HALF_WIDTH * d, ec + _EYE_HALF_WIDTH * d)
    right = (left[0], left[1], size - left[3], size - left[2])
    mr = (u["mouth_left"][0] + u["mouth_right"][0]) / 2
    mouth = box(mr - _MOUTH_HALF_HEIGHT * d, mr + _MOUTH_HALF_HEIGHT * d, 0.5 - _MOUTH_HALF_WIDTH * d,
                0.5 + _MOUTH_HALF_WIDTH * d)
    return {"eyes": (left[0], left[1], left[2], right[3]), "left_eye": left, "right_eye": right, "mouth": mouth}


PART_BOXES_256 = part_boxes(256)
""":func:`part_boxes` at 256 px: eyes (105, 137, 73, 183), left_eye (105, 137, 73, 121), right_eye
(105, 137, 135, 183), mouth (166, 218, 91, 165)."""


def part_box(name: str, size: int = ALIGNED_SIZE) -> tuple:
    """One box of :func:`part_boxes`: ``name`` in :data:`PART_NAMES`."""
    boxes = part_boxes(size)
    if name not in boxes:
        raise ValueError(f"unknown face part {name!r}; choose from {PART_NAMES}")
    return boxes[name]


# ------------------------------------------------------------------------------------- measures
def _as_batch(x, name: str) -> torch.Tensor:
    from .data import check_range

    t = x.detach() if torch.is_tensor(x) else torch.from_numpy(np.asarray(x, dtype=np.float32))
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] != t.shape[-2]:
        raise ValueError(f"{name} has shape {tuple(t.shape)}: expected square images (B, C, H, W) or (C, H, W)")
    check_range(t, 0.0, 1.0, name)
    return t


def _resolve_box(region, size: int) -> tuple:
    if isinstance(region, str):
        return part_box(region, size)
    box = tuple(int(v) for v in region)
    if len(box) != 4 or not (0 <= box[0] < box[1] <= size and 0 <= box[2] < box[3] <= size):
        raise ValueError(f"region={region!r} is not a (row0, row1, col0, col1) box inside a {size}×{size} image")
    return box


def crop_region(images, region) -> torch.Tensor:
    """The pixels of ``region`` (a name of :data:`PART_NAMES`, boxed at the images' size, or a box tuple).

    ``images``: (B, C, H, W) or (C, H, W), square, [0, 1], tensor or array. Returns a tensor
    (B, C, row1 − row0, col1 − col0) on the images' device.
    """
    x = _as_batch(images, "images")
    r0, r1, c0, c1 = _resolve_box(region, x.shape[-1])
    return x[..., r0:r1, c0:c1]


def eye_symmetry(images, eps: float = 1e-6) -> np.ndarray:
    """How much the left eye looks like the mirrored right eye, per image, in [-1, 1].

    With ``a`` the ``left_eye`` box and ``b`` the ``right_eye`` box flipped left-right (the boxes are
    mirror images about the centre column), each minus its per-channel mean (skin tone and lighting
    level do not count)::

        s = 2·mean(a·b) / (mean(a²) + mean(b²) + eps)  =  1 − mean((a − b)²) / (mean(a²) + mean(b²) + eps)

    the definition of :func:`helpers.face_measures.eye_symmetry`, here on the aligned-face boxes at
    the image's own resolution, with means instead of sums so that ``eps`` (per value) does not
    depend on the size. A mirror-symmetric image scores 1 (up to ``eps``: 1 − 1e-4 for patches of
    std 0.07); unrelated patches ~0; one eye erased to flat skin 0; an eye and its negative −1.
    Real faces are not mirror images (lighting, gaze, the head's turn), so compare values between
    methods on the same faces rather than with 1.

    ``images``: (B, 3, H, W) or (3, H, W) in [0, 1], square, aligned (any size ≥ 4), tensor or
    array, any device. Returns float64 numpy (B,).
    """
    x = _as_batch(images, "images").double()
    boxes = part_boxes(x.shape[-1])
    (r0, r1, c0, c1), (s0, s1, d0, d1) = boxes["left_eye"], boxes["right_eye"]
    a = x[..., r0:r1, c0:c1]
    b = x[..., s0:s1, d0:d1].flip(-1)
    a = a - a.mean(dim=(-2, -1), keepdim=True)
    b = b - b.mean(dim=(-2, -1), keepdim=True)
    num = 2 * (a * b).mean(dim=(1, 2, 3))
    den = (a * a).mean(dim=(1, 2, 3)) + (b * b).mean(dim=(1, 2, 3)) + eps
    return (num / den).cpu().numpy()


def region_psnr(x, truth, region, data_range: float = 1.0) -> np.ndarray:
    """PSNR (dB) inside a face part: :func:`helpers.metrics.psnr` of the two images cropped to ``region``.

    ``x``, ``truth``: (B, C, H, W) or (C, H, W), square, image space [0, ``data_range``].
    ``region``: ``"eyes"``, ``"left_eye"``, ``"right_eye"``, ``"mouth"`` (boxes of :func:`part_boxes`
    at the images' size) or a box ``(row0, row1, col0, col1)``. Returns numpy (B,) (a float for
    one (C, H, W) image). The MSE is over the box only, so a method that fills the box badly but
    keeps the rest exact is not hidden by the untouched pixels.
    """
    from .metrics import psnr

    batched = np.ndim(x) == 4
    a, b = crop_region(_scaled(x, data_range), region), crop_region(_scaled(truth, data_range), region)
    out = psnr(a * data_range, b * data_range, data_range=data_range)
    return out if batched else float(np.asarray(out).reshape(-1)[0])


def _scaled(x, data_range):
    if data_range == 1.0:
        return x
    t = x.detach() if torch.is_tensor(x) else torch.from_numpy(np.asarray(x, dtype=np.float32))
    return t / float(data_range)


def region_lpips(x, truth, region, data_range: float = 1.0, net: str = "alex", **kwargs) -> np.ndarray:
    """LPIPS distance inside a face part: :func:`helpers.metrics.lpips_distance` of the two crops.

    Arguments as :func:`region_psnr`; ``net`` and further keyword arguments go to ``lpips_distance``.
    Its small-image protocol applies: crops whose shorter side is under 64 px (the mouth box at
    256 px is 52 × 74, an eye 32 × 48) are upsampled bilinearly to 64 px before AlexNet, so values
    are comparable between methods at the same image size, not with whole-image LPIPS.
    Returns numpy (B,) (a float for one image).
    """
    from .metrics import lpips_distance

    batched = np.ndim(x) == 4
    a, b = crop_region(_scaled(x, data_range), region), crop_region(_scaled(truth, data_range), region)
    out = lpips_distance(a, b, net=net, data_range=1.0, **kwargs)
    return out if batched else float(np.asarray(out).reshape(-1)[0])


# ------------------------------------------------------------------------------------- test faces
_SAMPLES_VERSION = 1


def _weights_digest(prior) -> str:
    h = hashlib.sha256()
    unet = getattr(prior, "unet", None)
    if unet is not None:
        tensors = sorted(unet.state_dict().items())
    elif hasattr(prior, "mean") and hasattr(prior, "cov"):  # GaussianPrior
        tensors = [("mean", prior.mean), ("cov", prior.cov)]
    else:
        raise TypeError(f"cannot key the cache of a {type(prior).__name__}: it has no .unet (nor .mean/.cov)")
    for name, t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _samples_key(prior, n, seed, num_steps, eta) -> dict:
    return {"version": _SAMPLES_VERSION, "weights_sha256": _weights_digest(prior),
            "image_shape": list(prior.image_shape), "n": int(n), "seed": int(seed), "num_steps": int(num_steps),
            "eta": float(eta), "sampler": "sample_ddim", "timestep_spacing": "linspace",
            "schedule_T": int(prior.schedule.num_train_timesteps)}


def prior_samples_path(prior, n: int, seed: int = 0, num_steps: int = 50, eta: float = 0.0,
                       cache_dir: Union[str, os.PathLike, None] = None) -> Path:
    """The cache file :func:`prior_samples` uses for these settings (it may not exist yet)."""
    from .data import default_cache_dir

    key = _samples_key(prior, n, seed, num_steps, eta)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    label = re.sub(r"[^A-Za-z0-9]+", "-", str(getattr(prior, "name", "prior"))).strip("-")[-40:] or "prior"
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / "prior_samples" / f"{label}_n{int(n)}_s{int(seed)}_k{int(num_steps)}_{digest}.npz"


def prior_samples(prior, n: int, seed: int = 0, num_steps: int = 50, eta: float = 0.0, batch_size: int = 8,
                  cache_dir: Union[str, os.PathLike, None] = None, progress: bool = False) -> torch.Tensor:
    """``n`` samples of the prior itself, as aligned test faces: (n, C, H, W) float32 in [0, 1], CPU.

    Drawn with :func:`helpers.samplers.sample_ddim` (``num_steps`` steps, ``eta``, ``"linspace"``
    spacing), image i from seed ``seed + i`` alone (so a batch split, ``batch_size`` images at a
    time on the prior's device, gives the same images). A face model's samples are aligned the
    way its training faces were, so :func:`part_boxes` apply; the ground truth of a reconstruction
    test is then exactly in the prior's distribution.

    Cached under the course cache (:func:`helpers.data.default_cache_dir` or ``cache_dir``), in
    ``prior_samples/<name>_n<n>_s<seed>_k<steps>_<key>.npz``: the key hashes the network's weights
    (every tensor of ``prior.unet``), the image shape and all settings, so a changed prior or setting
    never reuses old samples. The file is a plain ``.npz`` (read with ``allow_pickle=False``)
    holding ``images`` and the key as JSON text; a file that does not match is recomputed.
    Cost: ``n · num_steps`` forward image-evaluations the first time (50 steps of the real face
    model: 6–12 s per image on a T4, :mod:`helpers.gpu_budget`), none afterwards.
    """
    from ._util import as_int
    from .data import to_image_space
    from .samplers import sample_ddim

    n = as_int(n, "n", positive=True)
    num_steps = as_int(num_steps, "num_steps", positive=True)
    batch_size = as_int(batch_size, "batch_size", positive=True)
    key = _samples_key(prior, n, seed, num_steps, eta)
    key_text = json.dumps(key, sort_keys=True)
    path = prior_samples_path(prior, n, seed, num_steps, eta, cache_dir)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                if str(f["key"]) == key_text and f["images"].shape == (n, *prior.image_shape):
                    return torch.from_numpy(np.array(f["images"], dtype=np.float32))
        except (OSError, ValueError, KeyError):
            pass  # unreadable or foreign: recompute and overwrite
    out = []
    for start in range(0, n, batch_size):
        seeds = [int(seed) + i for i in range(start, min(n, start + batch_size))]
        res = sample_ddim(prior, num_samples=len(seeds), num_steps=num_steps, eta=eta, seed=seeds, progress=progress)
        out.append(to_image_space(res.sample.detach().float()).cpu())
    images = torch.cat(out).contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.savez(fh, images=images.numpy().astype(np.float32), key=np.array(key_text))
    os.replace(tmp, path)
    return images


# ------------------------------------------------------------------------------------- photos
def align_face(image, landmarks: dict, size: int = ALIGNED_SIZE) -> torch.Tensor:
    """Crop, rotate and scale a face photo by the CelebA-HQ recipe to ``size`` × ``size``.

    ``image``: (H, W, 3) uint8 / float in [0, 1], or (3, H, W) tensor/array in [0, 1].
    ``landmarks``: ``{"left_eye", "right_eye", "mouth_left", "mouth_right"}`` → (row, col),
    continuous coordinates in ``image`` (left = left of the image). Resampling: bicubic from the
    source, on a grid ``k`` times finer than the output when the crop shrinks the face by more
    than ``k − 1`` (then averaged down ``k × k``: antialiasing); reflection outside the photo
    (CelebA-HQ pads by reflection and blurs the padding). Returns (3, size, size) float32 in [0, 1].
    """
    a = image.detach().cpu() if torch.is_tensor(image) else torch.from_numpy(np.array(image))  # a copy: photos may be read-only
    if a.ndim != 3:
        raise ValueError(f"image has shape {tuple(a.shape)}: expected (H, W, 3) or (3, H, W)")
    if a.shape[0] != 3 and a.shape[-1] == 3:
        a = a.permute(2, 0, 1)
    a = a.float() / 255.0 if a.dtype == torch.uint8 or a.max() > 1.5 else a.float()
    h, w = a.shape[-2:]
    c, x, y = alignment_frame(landmarks)
    side = 2 * float(np.hypot(*x))
    k = max(1, math.ceil(side / size))
    n = size * k
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n * 2 - 1  # output a, b in (-1, 1)
    bb, aa = torch.meshgrid(t, t, indexing="ij")
    sx = c[0] + aa * x[0] + bb * y[0]
    sy = c[1] + aa * x[1] + bb * y[1]
    grid = torch.stack([2 * sx / w - 1, 2 * sy / h - 1], dim=-1)[None].float()
    out = F.grid_sample(a[None], grid, mode="bicubic", padding_mode="reflection", align_corners=False)
    if k > 1:
        out = F.avg_pool2d(out, k)
    return out[0].clamp(0, 1).contiguous()


def aligned_photos(size: int = ALIGNED_SIZE, names: Sequence[str] = ("astronaut", "grace_hopper")) -> torch.Tensor:
    """The photos of :func:`helpers.data.face_photo`, aligned like CelebA-HQ: (N, 3, size, size) float32 in [0, 1], CPU.

    Each is put through the CelebA-HQ recipe (:func:`align_face`) with its landmarks
    :data:`PHOTO_LANDMARKS` (marked by hand), which is how a CelebA-HQ image of that face would
    have been made. How well they match the canonical places (:func:`canonical_landmarks`), at 256 px:

    * **grace_hopper** -- eye–mouth ratio r = 1.11, close to the template's 1.155: eyes within
      1.2 px (columns 96.0/160.0 vs 97.2/158.8), mouth midpoint at row 191.7 (canonical 192.0).
      The recipe shrinks the photo by 0.785 (a 326-px crop), against 0.948 for
      ``face_photo(..., crop=True)``, whose face is 1.2× too large for this model. She wears large
      glasses and a uniform cap, rare in CelebA-HQ: expect the prior to be less sure there.
    * **astronaut** -- a broad smile lifts the mouth corners (r = 0.88): the eye distance sets the
      scale, the eyes land within 1.5 px (row 122.4), the mouth midpoint at row 178.8, 13 px above
      the canonical 192 (inside the mouth box, rows 166–218). The 170-px crop is *upscaled* 1.5×
      (bicubic) to 256, so the image is softer than CelebA-HQ's downscaled photos.
    """
    from .data import _photo_array

    out = []
    for name in names:
        if name not in PHOTO_LANDMARKS:
            raise ValueError(f"no landmarks for photo {name!r}; choose from {list(PHOTO_LANDMARKS)}")
        out.append(align_face(_photo_array(name), PHOTO_LANDMARKS[name], size))
    return torch.stack(out)


# ------------------------------------------------------------------------------------- test sets
GPU_SAMPLE_STEPS = 25
"""DDIM steps (η = 0) of the prior's own samples that :func:`test_images` uses as test faces: 25
steps of the face model are 6–12 s per image on a T4 (:mod:`helpers.gpu_budget`), and a face
drawn with 25 DDIM steps is sharp enough to be a ground truth (it only has to be *a* face of the
prior's distribution, not its best sample)."""


def test_images(prior, n: int, seed: int = 0, sample_steps: Optional[int] = None,
                photos: Sequence[str] = ("astronaut", "grace_hopper"), progress: bool = False) -> tuple:
    """The test images of a chapter for ``prior``: ``(images, names)``.

    ``images``: (n, 3, S, S) float32 in image space [0, 1], CPU, with S the prior's image size;
    ``names``: one label per image.

    * A small prior (S < 128, the bundled cartoon ``faces``): the first ``n`` held-out cartoon
      faces (:func:`helpers.data.face_dataset`, split ``"test"``), never seen in training.
    * A face model at 128 px or more (the GPU path): aligned faces, ``n - len(photos)`` of the
      prior's own samples (:func:`prior_samples`: DDIM, ``sample_steps`` steps (default
      :data:`GPU_SAMPLE_STEPS`, read at call time), seeds
      ``seed``, ``seed + 1``, …, cached on disk), then the photos, aligned like CelebA-HQ
      (:func:`aligned_photos`). The samples are exactly in the prior's distribution, which
      *flatters* every method that uses the prior; the photos are not.
    """
    from ._util import as_int
    from .data import face_dataset

    n = as_int(n, "n", positive=True)
    sample_steps = GPU_SAMPLE_STEPS if sample_steps is None else as_int(sample_steps, "sample_steps", positive=True)
    channels, size = prior.image_shape[0], prior.image_shape[-1]
    if channels != 3:
        raise ValueError(f"test_images needs a colour face prior; {getattr(prior, 'name', prior)!r} has {channels} "
                         "channel(s): use helpers.data.mnist_digits for the digit prior")
    if size < 128:
        images = torch.as_tensor(face_dataset("test", size=size, n=n, progress=False)[0]).float()
        return images, [f"test face {i}" for i in range(n)]
    k = max(0, n - len(photos))
    parts, names = [], []
    if k:
        parts.append(prior_samples(prior, k, seed=seed, num_steps=sample_steps, progress=progress))
        names += [f"prior sample {seed + i}" for i in range(k)]
    chosen = list(photos)[: n - k]
    if chosen:
        parts.append(aligned_photos(size, chosen))
        names += list(chosen)
    return torch.cat(parts).float(), names
