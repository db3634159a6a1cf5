"""The inverse problems of the evaluation and their classical reconstructions.

A :class:`Task` is a forward operator with a name (``deblur``, ``box``, ``box_eyes``,
``box_mouth``, ``random``, ``sr2``, ``sr4``: :data:`TASKS`), built at any image size by
:func:`build_task`; :func:`blur_setting` gives the deblurring kernel per resolution.
:func:`baseline_reconstruction` is each task's classical method: Wiener deconvolution,
biharmonic inpainting, bicubic upsampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..operators import (
    BoxInpainting,
    GaussianBlur,
    Operator,
    RandomInpainting,
    SuperResolution,
)

__all__ = ["TASKS", "DEFAULT_TASKS", "RANDOM_KEEP", "Task", "blur_setting", "build_task", "baseline_reconstruction"]

TASKS = {
    "deblur": "Gaussian deblurring",
    "box": "box inpainting (centred box, half the side)",
    "box_eyes": "box inpainting over the eyes",
    "box_mouth": "box inpainting over the mouth",
    "random": "random inpainting (30 % of the pixels kept)",
    "sr2": "super-resolution ×2",
    "sr4": "super-resolution ×4",
}
DEFAULT_TASKS = ("deblur", "box", "random", "sr4")
RANDOM_KEEP = 0.3


@dataclass
class Task:
    """An inverse problem: its name, forward operator, kind and a one-line description."""

    name: str
    operator: Operator
    kind: str  # "deblur" | "inpaint" | "sr"
    description: str


def blur_setting(image_size: int) -> tuple[int, float]:
    """(kernel_size, std in pixels) of the deblurring task at ``image_size``.

    At 32 px: kernel 9, std 1.0 px (the kernel reaches ±4 std). DPS's blur (std 3.0 px at
    256 px, 1.2 % of the side) scaled to 32 px has std 0.375 px: its centre pixel keeps 89 %
    of the weight and on the test faces the blurred image is 43.9 dB from the original --
    nothing to restore. With std 1.0 px the blurred faces are at 23.6 dB, and the details that
    make a face's identity here (pupils, eyelids, mouth corners: 1-3 px) are gone while the
    outline stays, a degradation of the same visual strength as DPS's on 256-px photos, where
    those details are many pixels wide. The std scales with the image (``image_size / 32``
    px). From 128 px on the DPS setting is used, kernel 61 and std 3.0 px at 256 px (std
    scaled with the size), so 256-px results compare with the paper's.
    """
    size = int(image_size)
    if size >= 128:
        std = 3.0 * size / 256
        kernel = 61 if 61 // 2 < size else 2 * math.ceil(4 * std) + 1
        return kernel, std
    std = max(1.0, size / 32)
    kernel = 2 * math.ceil(4 * std) + 1
    while kernel // 2 >= size:  # reflect padding needs pad < size (only for tiny test images)
        kernel -= 2
    return kernel, std


def _box_from(box32: Sequence[int], size: int) -> tuple[tuple[int, int], tuple[float, float]]:
    from ..face_measures import box_slices

    rs, cs = box_slices(box32, size)
    return (rs.stop - rs.start, cs.stop - cs.start), ((rs.start + rs.stop) / 2, (cs.start + cs.stop) / 2)


def build_task(name: str, image_size: int) -> Task:
    """The :class:`Task` called ``name`` (a key of :data:`TASKS`) for square images of ``image_size`` px.

    The one place every caller (chapters, harness, explorers) gets its operators from. The eye and
    mouth boxes follow the faces of the resolution (:func:`face_layout`): the cartoon faces' boxes
    below 128 px, those of CelebA-HQ-aligned faces from 128 px on (:func:`build_face_task`).
    """
    return build_face_task(name, image_size, "auto")


def _build_cartoon_task(name: str, image_size: int) -> Task:
    """:func:`build_task` with the 32-px cartoon faces' part boxes (scaled) at any size."""
    size = int(image_size)
    if name == "deblur":
        k, s = blur_setting(size)
        return Task(name, GaussianBlur(k, s), "deblur", f"Gaussian deblurring (kernel {k}, std {s:g} px)")
    if name == "box":
        op = BoxInpainting(size, size // 2)
        return Task(name, op, "inpaint", f"box inpainting ({size // 2}×{size // 2} centred box)")
    if name in ("box_eyes", "box_mouth"):
        from ..face_measures import EYE_BOX, MOUTH_BOX

        box_size, center = _box_from(EYE_BOX if name == "box_eyes" else MOUTH_BOX, size)
        op = BoxInpainting(size, box_size, center=center)
        part = "eyes" if name == "box_eyes" else "mouth"
        return Task(name, op, "inpaint", f"box inpainting over the {part} ({box_size[0]}×{box_size[1]} box)")
    if name == "random":
        op = RandomInpainting(size, RANDOM_KEEP, seed=0)
        return Task(name, op, "inpaint", f"random inpainting ({RANDOM_KEEP:.0%} of the pixels kept)")
    if name in ("sr2", "sr4"):
        k = int(name[2:])
        return Task(name, SuperResolution(k), "sr", f"super-resolution ×{k} (average pooling)")
    raise ValueError(f"unknown task {name!r}; choose from {list(TASKS)} (or 'all')")



# ---------------------------------------------------------------------------- tasks per resolution and face layout
# The cartoon boxes (helpers.face_measures) scaled to 256 px would hide the forehead and a third of
# the face: at 256 px the faces are aligned photographs (google/ddpm-celebahq-256), whose eyes and
# mouth are elsewhere. build_task and task_operators pick the boxes of the resolution's face layout.
CHAPTER_TASKS = ("deblur", "box", "box_eyes", "box_mouth", "random", "sr4")
"""The tasks the chapters use, in order."""
ALIGNED_FACES_MIN_SIZE = 128
"""From this size on, faces are taken to be aligned real faces (CelebA-HQ), below it cartoon faces (as :func:`blur_setting`)."""


def face_layout(image_size: int, faces: str = "auto") -> str:
    """``"cartoon"`` or ``"aligned"``: whose part boxes apply to faces of ``image_size`` px.

    ``faces="auto"``: ``"aligned"`` from :data:`ALIGNED_FACES_MIN_SIZE` (128) px on (the real face
    model is 256 px), else ``"cartoon"`` (the bundled 32-px prior). ``"cartoon"`` / ``"aligned"``
    force one.
    """
    if faces == "auto":
        return "aligned" if int(image_size) >= ALIGNED_FACES_MIN_SIZE else "cartoon"
    if faces not in ("cartoon", "aligned"):
        raise ValueError(f"faces={faces!r}: choose 'auto', 'cartoon' (32-px cartoon faces) or 'aligned' (CelebA-HQ-aligned photos)")
    return faces


def build_face_task(name: str, image_size: int, faces: str = "auto") -> Task:
    """:func:`build_task`, with ``box_eyes`` / ``box_mouth`` over the parts of the :func:`face_layout`.

    Cartoon layout: the boxes of :mod:`helpers.face_measures` scaled from 32 px. Aligned layout: the boxes of :func:`helpers.aligned_faces.part_boxes` at
    ``image_size`` -- at 256 px the eyes box is rows 105–137, columns 73–183 (32×110) and the mouth
    box rows 166–218, columns 91–165 (52×74). Every other task is :func:`build_task`'s.
    """
    size = int(image_size)
    if name not in ("box_eyes", "box_mouth") or face_layout(size, faces) == "cartoon":
        return _build_cartoon_task(name, size)
    from ..aligned_faces import part_box

    part = "eyes" if name == "box_eyes" else "mouth"
    r0, r1, c0, c1 = part_box(part, size)
    op = BoxInpainting(size, (r1 - r0, c1 - c0), center=((r0 + r1) / 2, (c0 + c1) / 2))
    return Task(name, op, "inpaint", f"box inpainting over the {part} of an aligned face ({r1 - r0}×{c1 - c0} box)")


def task_operators(image_size: int, names: Sequence[str] = CHAPTER_TASKS, faces: str = "auto") -> dict:
    """The chapter tasks for square images of ``image_size`` px: ``{name: Task}`` in the order of ``names``.

    One call gives every resolution its settings: the deblurring kernel of :func:`blur_setting`
    (DPS's 61×61, std 3 px at 256), the centred half-side box, 30 % random pixels, average-pooling
    SR, and the eye/mouth boxes of the face layout (:func:`face_layout`: cartoon boxes at 32 px,
    CelebA-HQ-aligned boxes from 128 px on). Operators act on (B, C, H, W) tensors in model space
    [-1, 1] on any device (their masks and kernels follow the input's device).
    """
    return {n: build_face_task(n, image_size, faces) for n in names}


__all__ += ["CHAPTER_TASKS", "ALIGNED_FACES_MIN_SIZE", "face_layout", "build_face_task", "task_operators"]

# ---------------------------------------------------------------------------- classical baselines
def _wiener(y: torch.Tensor, op: GaussianBlur, balance: float) -> torch.Tensor:
    """Wiener deconvolution in image space, per channel, after reflect padding (the operator's padding)."""
    from skimage.restoration import wiener

    psf = op.kernel.double().numpy()
    p = op.kernel_size
    img = ((y.detach().cpu().double() + 1) / 2).numpy()
    out = np.empty_like(img)
    for b in range(img.shape[0]):
        for c in range(img.shape[1]):
            padded = np.pad(img[b, c], p, mode="reflect")
            out[b, c] = wiener(padded, psf, balance, clip=False)[p:-p, p:-p]
    return torch.from_numpy(np.clip(out, 0, 1) * 2 - 1).float()


def _biharmonic(y: torch.Tensor, op: Operator) -> torch.Tensor:
    from skimage.restoration import inpaint_biharmonic

    missing = op.mask[0, 0].cpu().numpy() == 0
    img = ((y.detach().cpu().double() + 1) / 2).numpy()
    out = np.empty_like(img)
    for b in range(img.shape[0]):
        if img.shape[1] == 1:
            out[b, 0] = inpaint_biharmonic(img[b, 0], missing)
        else:
            out[b] = np.moveaxis(inpaint_biharmonic(np.moveaxis(img[b], 0, -1), missing, channel_axis=-1), -1, 0)
    return torch.from_numpy(np.clip(out, 0, 1) * 2 - 1).float()


def baseline_reconstruction(task: Task, y: torch.Tensor, params: Optional[dict] = None) -> torch.Tensor:
    """The classical reconstruction of ``task`` from measurements ``y`` (B, C, h, w), model space.

    deblur: Wiener deconvolution with the task's kernel (``params["balance"]``, default 0.01);
    inpainting: biharmonic; super-resolution: bicubic upsampling. Returns (B, C, H, W) in [-1, 1].
    """
    params = params or {}
    if task.kind == "deblur":
        return _wiener(y, task.operator, float(params.get("balance", 0.01)))
    if task.kind == "inpaint":
        return _biharmonic(y, task.operator)
    if task.kind == "sr":
        k = task.operator.factor
        return F.interpolate(y.detach().cpu().float(), scale_factor=k, mode="bicubic", align_corners=False).clamp(-1, 1)
    raise ValueError(f"no baseline for task kind {task.kind!r}")
