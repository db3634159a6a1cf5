"""Static explorers: precomputed slider grids that work in the rendered book, without a kernel.

The ipywidgets explorers of :mod:`helpers.widgets` need a running Python kernel; in the rendered
(static) book their sliders do nothing. This module precomputes a small grid of settings once
(every combination of a few slider values, one held-out face, one seed) and writes it as a
self-contained piece of HTML: the pictures as data-URI PNGs, the numbers as an embedded JSON
block, and a few lines of plain JavaScript that swap pictures and numbers when a slider moves.

Why a hand-written HTML generator (and not a plotting library or a widget state export):

* **self-contained**: one ``<div>`` with everything inside; no external file, URL or CDN, so the
  page works offline, on any static host, and two explorers can share a page;
* **no kernel or server**: moving a slider only looks up a stored picture;
* **nothing to download**: no plotting library (plotly, bokeh, ...) or its JavaScript bundle, which
  the course's offline build could not fetch anyway;
* **testable in Python**: the grid is a JSON file and the HTML a string, so the tests check the
  numbers, the markup contract and the page size without a browser.

The parts:

=============================  ===============================================================
:func:`compute_grid`           run the chapter's sampler for every combination of the slider
                               values (one image, fixed seeds); store each reconstruction as a
                               PNG, the measurement picture (pseudo-inverse, image size), PSNR
                               and LPIPS, or the sampler's message where it failed
:func:`save_grid`,             the grid as JSON (PNG bytes in base64; no pickle anywhere)
:func:`load_grid`
:func:`render_html`            the grid as one self-contained HTML ``<div>``
:func:`static_explorer`        for a chapter cell: ``display(static_explorer("dps"))`` loads the
                               committed grid ``book/explorers/<chapter>.json``
``python -m helpers.static_explorer --chapter sdedit|score_ald|dps|all [--threads 1]``
                               recomputes the committed grids with the faces prior on the CPU
=============================  ===============================================================

HTML contract (a browser test relies on it): the root is
``<div class="static-explorer" data-explorer="<chapter>" id="<chapter>-explorer[-n]">``; each
slider an ``<input type="range" class="explorer-slider" data-param="<name>">`` (its position is
the index of a grid value) with an ``<output class="explorer-value" data-param="<name>">``
showing the value; images ``<img class="explorer-image" data-role="reconstruction|measurement|truth">``;
numbers ``<span class="explorer-metric" data-metric="psnr|lpips|measurement_psnr">``; a failed
grid point shows its message in ``<div class="explorer-message">`` in place of the
reconstruction. The grid is in ``<script type="application/json" class="explorer-data">`` and one
inline ``<script>`` wires the root on ``input`` and ``change``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import itertools
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch

__all__ = [
    "CHAPTERS",
    "GRID_FORMAT",
    "ExplorerSpec",
    "Param",
    "StaticExplorer",
    "compute_grid",
    "default_grid_dir",
    "grid_path",
    "load_grid",
    "make_command",
    "render_html",
    "save_grid",
    "static_explorer",
]

GRID_FORMAT = "static-explorer/1"
"""The ``format`` field of a grid file; :func:`load_grid` refuses any other."""

DISPLAY_PX = 128
"""Displayed side of every picture in px (the PNGs stay at the prior's size; CSS upscales them, pixelated)."""


# ---------------------------------------------------------------------------- the grids
@dataclass(frozen=True)
class Param:
    """One slider: its ``name`` (``data-param``), visible ``label``, grid ``values``, their display
    ``texts`` (default ``f"{v:g}"``) and the ``default`` value the page starts at."""

    name: str
    label: str
    values: tuple
    default: object
    texts: tuple = ()

    def text_of(self, i: int) -> str:
        return str(self.texts[i]) if self.texts else format_value(self.values[i])


def format_value(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


@dataclass(frozen=True)
class ExplorerSpec:
    """A chapter's explorer: method label, the sliders and their default grid, the step count."""

    chapter: str
    method: str
    params: tuple
    num_steps: int
    operator: Optional[str] = None  # the build_task name when the operator is fixed (ScoreALD, DPS)
    notes: str = ""


NOISE_STDS = (0.05, 0.1)
"""σ_y of the committed grids, model space [-1, 1]: the course's value (DPS's) and twice it. σ_y = 0
is left out: ScoreALD divides by σ_y² + γ_t², which goes to 0 at the last steps, so σ_y = 0 would
show only its failure, not a trade-off; 0.1 shows what doubling the noise does to all three methods."""

SDEDIT_T0S = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
"""The SDEdit chapter's swept start times (its ``T0S``)."""

SDEDIT_TASKS = ("deblur", "box", "random", "sr4")
"""The SDEdit chapter's operators (its ``TASKS``: :func:`helpers.evaluation.tasks.build_task` names)."""

SCORE_ALD_STEP_SIZES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
"""λ of the ScoreALD grid (Langevin rule, operator weight, deblurring): half-decades around the
chapter's λ = 1; on the faces prior λ = 3 and 10 diverge on deblurring, so the grid shows the
sampler's message there."""

DPS_STEP_SIZES = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
"""ζ′ of the DPS grid (deblurring): the chapter's sweep (0.03–10) continued by half-decades until
the sampler stops as diverged (ζ′ = 300 on the faces prior; 30 and 100 finish, badly)."""


def _specs() -> dict:
    from .steps_curve import CPU_STEPS

    noise = Param("noise_std", "noise level σ_y", NOISE_STDS, 0.05)
    return {
        "sdedit": ExplorerSpec(
            "sdedit", "SDEdit",
            (Param("t0", "start time t₀", SDEDIT_T0S, 0.4),
             Param("operator", "operator", SDEDIT_TASKS, "deblur"),
             noise),
            num_steps=int(CPU_STEPS["sdedit"]),
            notes="steps of a full trajectory; a run from t₀ takes about t₀ times as many"),
        "score_ald": ExplorerSpec(
            "score_ald", "ScoreALD",
            (Param("step_size", "step size λ", SCORE_ALD_STEP_SIZES, 1.0), noise),
            num_steps=int(CPU_STEPS["score_ald"]), operator="deblur",
            notes="Langevin step rule, operator likelihood weight, the sampler told the true σ_y"),
        "dps": ExplorerSpec(
            "dps", "DPS",
            (Param("step_size", "step size ζ′", DPS_STEP_SIZES, 1.0), noise),
            num_steps=int(CPU_STEPS["dps"]), operator="deblur",
            notes="x̂₀ clipped to [-1, 1], the official default"),
    }


CHAPTERS = ("sdedit", "score_ald", "dps")
"""The chapters that have a static explorer (their notebooks: ``book/<chapter>.ipynb``)."""


def spec(chapter: str) -> ExplorerSpec:
    """The :class:`ExplorerSpec` of ``chapter`` (one of :data:`CHAPTERS`)."""
    specs = _specs()
    if chapter not in specs:
        raise ValueError(f"chapter must be one of {list(specs)}, got {chapter!r}")
    return specs[chapter]


def make_command(chapter: str) -> str:
    """The command that (re)computes ``chapter``'s committed grid."""
    return f"python -m helpers.static_explorer --chapter {chapter} --threads 1"


def _png_b64(image01: torch.Tensor) -> str:
    """Base64 of the PNG of a (C, H, W) image in [0, 1] at its own size (rounded to 8 bits)."""
    from PIL import Image

    a = image01.detach().float().cpu().clamp(0, 1).numpy()
    a = np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a
    arr = (a.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_png(b64: str) -> np.ndarray:
    """The (C, H, W) float image in [0, 1] of a base64 PNG from a grid (its 8-bit values / 255)."""
    from PIL import Image

    arr = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), dtype=np.float64) / 255.0
    return arr.transpose(2, 0, 1)


class _Images:
    """Deduplicated PNG store: ``add(image) -> id``; ``table`` maps id -> base64 PNG."""

    def __init__(self):
        self.table: dict = {}

    def add(self, image01: torch.Tensor) -> str:
        b64 = _png_b64(image01)
        key = "i" + hashlib.sha1(b64.encode("ascii")).hexdigest()[:12]
        self.table.setdefault(key, b64)
        return key


def _finite_or_none(v) -> Optional[float]:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def compute_grid(
    chapter: str,
    prior,
    image,
    *,
    values: Optional[Mapping[str, Sequence]] = None,
    num_steps: Optional[int] = None,
    operator: Optional[str] = None,
    seed: int = 0,
    measurement_seed: int = 0,
    lpips: bool = True,
    image_label: str = "",
    progress: bool = True,
) -> dict:
    """Run ``chapter``'s sampler for every combination of the slider values, on one image.

    Args:
        chapter: ``"sdedit"``, ``"score_ald"`` or ``"dps"``.
        prior: a :class:`helpers.priors.Prior` (any prior the samplers take).
        image: the ground truth, (C, H, W) or (1, C, H, W), image space [0, 1], the prior's size.
        values: ``{param name: values}`` replacing the default grid of those sliders (e.g.
            ``{"t0": [0.2, 0.6]}``); the default is the first value when the spec's default is not among them.
        num_steps: the sampler's steps (default ``CPU_STEPS[chapter]``).
        operator: the :func:`~helpers.evaluation.tasks.build_task` name for ScoreALD/DPS (default ``"deblur"``).
        seed: the sampler's seed (the same for every grid point); ``measurement_seed``: the
            measurement noise's, drawn once per (operator, σ_y).
        lpips: ``False`` skips LPIPS (stored as ``None``).
        image_label: how the image is described in the caption.
        progress: a tqdm bar over the grid points.

    Returns a JSON-ready dict (``format`` :data:`GRID_FORMAT`): ``params`` (name, label, values,
    texts, default index), ``points`` (row-major over ``params``: each with ``settings``,
    ``reconstruction`` and ``measurement`` image ids, ``psnr``, ``lpips``, ``measurement_psnr``,
    ``message``), ``images`` (id -> base64 PNG at the prior's size), ``truth`` (an image id) and
    ``meta``. PSNR (``data_range=1.0``) and LPIPS (:func:`helpers.metrics.lpips_distance`, alex)
    are computed in image space on the float reconstruction, before the PNG's 8-bit rounding.
    A point whose sampler raised :class:`~helpers.samplers.SamplerDivergedError` (or
    ``ValueError`` for an impossible setting) has ``reconstruction``, ``psnr`` and ``lpips``
    ``None`` and the error's text in ``message``.
    """
    from tqdm.auto import tqdm

    from . import samplers as S
    from ._util import as_int
    from .evaluation.tasks import build_task
    from .metrics import lpips_distance, psnr

    sp = spec(chapter)
    params = []
    for p in sp.params:
        vals = tuple(values[p.name]) if values and p.name in values else p.values
        if not vals:
            raise ValueError(f"values[{p.name!r}] is empty")
        params.append(Param(p.name, p.label, vals, p.default if p.default in vals else vals[0]))
    unknown = set(values or {}) - {p.name for p in params}
    if unknown:
        raise ValueError(f"unknown slider(s) {sorted(unknown)}; {chapter}'s sliders are {[p.name for p in params]}")
    num_steps = as_int(sp.num_steps if num_steps is None else num_steps, "num_steps", positive=True)
    task_name = operator or sp.operator
    seed, measurement_seed = as_int(seed, "seed", min=0), as_int(measurement_seed, "measurement_seed", min=0)

    truth = torch.as_tensor(np.asarray(image) if not torch.is_tensor(image) else image).detach().float().cpu()
    truth = truth[0] if truth.ndim == 4 else truth
    if truth.ndim != 3 or tuple(truth.shape) != tuple(prior.image_shape):
        raise ValueError(f"image must have the prior's shape {tuple(prior.image_shape)} (image space [0, 1]), "
                         f"got {tuple(truth.shape)}")
    if truth.min() < -1e-3 or truth.max() > 1 + 1e-3:
        raise ValueError("image must lie in image space [0, 1]")
    truth = truth.clamp(0, 1)
    x = (truth[None] * 2 - 1).to(device=prior.device, dtype=prior.dtype)
    size = int(prior.image_shape[-1])
    store = _Images()

    def to01(t):
        return ((t.detach().float().cpu().clamp(-1, 1) + 1) / 2)[0]

    measured: dict = {}

    def measurement(task: str, sigma: float):
        key = (task, sigma)
        if key not in measured:
            op = build_task(task, size).operator
            y = op.measure(x, noise_std=sigma, seed=measurement_seed)
            m = to01(op.pseudo_inverse(y))
            measured[key] = (op, y, store.add(m), _finite_or_none(psnr(m, truth, data_range=1.0)))
        return measured[key]

    def run(settings):
        sigma = float(settings["noise_std"])
        task = settings.get("operator", task_name)
        op, y, m_id, m_psnr = measurement(task, sigma)
        if chapter == "sdedit":
            out = S.sdedit(prior, op, y, start_time=settings["t0"], num_steps=num_steps, seed=seed, progress=False)
        elif chapter == "score_ald":
            out = S.score_ald(prior, op, y, num_steps=num_steps, step_size=settings["step_size"], noise_std=sigma,
                              seed=seed, progress=False)
        else:
            out = S.dps(prior, op, y, num_steps=num_steps, step_size=settings["step_size"], seed=seed, progress=False)
        return m_id, m_psnr, to01(out.sample)

    points = []
    combos = list(itertools.product(*[p.values for p in params]))
    start = time.perf_counter()
    for combo in tqdm(combos, desc=f"{sp.method} grid", disable=not progress):
        settings = {p.name: v for p, v in zip(params, combo)}
        point = {"settings": settings, "reconstruction": None, "measurement": None, "psnr": None, "lpips": None,
                 "measurement_psnr": None, "message": ""}
        try:
            m_id, m_psnr, recon = run(settings)
        except (S.SamplerDivergedError, ValueError) as e:
            point["message"] = str(e) or type(e).__name__
            task = settings.get("operator", task_name)
            try:  # the measurement is still shown when only the sampler failed
                _, _, point["measurement"], point["measurement_psnr"] = measurement(task, float(settings["noise_std"]))
            except ValueError:
                pass
        else:
            point.update(measurement=m_id, measurement_psnr=m_psnr, reconstruction=store.add(recon),
                         psnr=_finite_or_none(psnr(recon, truth, data_range=1.0)))
            if lpips:
                point["lpips"] = _finite_or_none(lpips_distance(recon[None], truth[None], data_range=1.0)[0])
        points.append(point)
    seconds = time.perf_counter() - start

    truth_id = store.add(truth)
    meta = {
        "prior": str(getattr(prior, "name", type(prior).__name__)),
        "image": image_label or "one image",
        "image_size": size,
        "num_steps": num_steps,
        "steps_note": sp.notes,
        "operator": None if chapter == "sdedit" else task_name,
        "operator_description": None if chapter == "sdedit" else build_task(task_name, size).description,
        "seed": seed,
        "measurement_seed": measurement_seed,
        "lpips": "alex, helpers.metrics.lpips_distance (upsampled to 64 px)" if lpips else None,
        "seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "command": make_command(chapter),
    }
    operator_texts = {}
    for p in params:
        if p.name == "operator":
            operator_texts = {v: build_task(v, size).description for v in p.values}
    return {
        "format": GRID_FORMAT,
        "chapter": chapter,
        "method": sp.method,
        "params": [{"name": p.name, "label": p.label, "values": list(p.values),
                    "texts": [operator_texts.get(v, format_value(v)) for v in p.values],
                    "default": list(p.values).index(p.default)} for p in params],
        "points": points,
        "images": store.table,
        "truth": truth_id,
        "meta": meta,
    }


# ---------------------------------------------------------------------------- files
def default_grid_dir() -> Path:
    """``helpers/explorers``: a link to ``book/explorers`` of the repository, so the grids ship with the package
    (pyproject.toml's package-data) and the explorers show on Colab too."""
    return Path(__file__).resolve().parent / "explorers"


def grid_path(chapter: str, directory: Union[str, os.PathLike, None] = None) -> Path:
    """Where ``chapter``'s grid file lives: ``<directory or book/explorers>/<chapter>.json``."""
    return Path(directory if directory is not None else default_grid_dir()) / f"{chapter}.json"


def save_grid(grid: dict, path: Union[str, os.PathLike]) -> Path:
    """Write ``grid`` as JSON (strict: no NaN/Inf), atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(grid, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _check_grid(grid, where: str) -> dict:
    if not isinstance(grid, dict) or grid.get("format") != GRID_FORMAT:
        raise ValueError(f"{where} is not a static-explorer grid (format {GRID_FORMAT!r})")
    params, points = grid.get("params"), grid.get("points")
    if not params or not isinstance(points, list):
        raise ValueError(f"{where}: no params or points")
    n = math.prod(len(p["values"]) for p in params)
    if len(points) != n:
        raise ValueError(f"{where}: {len(points)} points for a grid of {n}")
    images = grid.get("images", {})
    for pt in points:
        for role in ("reconstruction", "measurement"):
            if pt.get(role) is not None and pt[role] not in images:
                raise ValueError(f"{where}: image {pt[role]!r} missing")
    if grid.get("truth") not in images:
        raise ValueError(f"{where}: the truth image is missing")
    return grid


def load_grid(path: Union[str, os.PathLike]) -> dict:
    """Read a grid written by :func:`save_grid` (plain JSON; checked for its format and completeness)."""
    path = Path(path)
    try:
        grid = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); rebuild it with the command in its 'meta'") from None
    return _check_grid(grid, str(path))


# ---------------------------------------------------------------------------- HTML
_CSS = """
.static-explorer{border:1px solid #ccc;border-radius:6px;padding:10px 12px;margin:1em 0;max-width:720px}
.static-explorer .explorer-controls{display:grid;grid-template-columns:max-content minmax(140px,260px) 1fr;
 gap:4px 10px;align-items:center}
.static-explorer .explorer-value{font-weight:bold}
.static-explorer .explorer-pictures{display:flex;flex-wrap:wrap;gap:14px;margin:10px 0 6px}
.static-explorer figure{margin:0;text-align:center}
.static-explorer figcaption{font-size:0.85em;margin-top:2px}
.static-explorer img.explorer-image{width:128px;height:128px;image-rendering:crisp-edges;image-rendering:pixelated;
 border:1px solid #ddd;display:block}
.static-explorer .explorer-message{width:256px;min-height:118px;box-sizing:border-box;padding:5px;font-size:0.75em;
 color:#a00;background:#fff3f3;border:1px solid #e0b4b4;overflow-wrap:anywhere;text-align:left}
.static-explorer .explorer-caption{font-size:0.8em;color:#555;margin:4px 0 0}
""".strip()

_JS = """
(function () {
  var script = document.currentScript;
  var root = (script && script.closest) ? script.closest(".static-explorer") : null;
  if (!root) { root = document.getElementById(%(root_id)s); }
  if (!root || root.getAttribute("data-wired") === "1") { return; }
  var dataNode = root.querySelector("script.explorer-data");
  var grid;
  try { grid = JSON.parse(dataNode.textContent); } catch (err) { return; }
  root.setAttribute("data-wired", "1");
  var params = grid.params, points = grid.points, images = grid.images;
  function one(selector) { return root.querySelector(selector); }
  function dataUri(id) { return (id && images[id]) ? "data:image/png;base64," + images[id] : ""; }
  function fixed(v, digits) { return (v === null || v === undefined) ? "\\u2014" : Number(v).toFixed(digits); }
  function update() {
    var index = 0, words = [];
    for (var i = 0; i < params.length; i++) {
      var p = params[i], n = p.values.length;
      var slider = one('.explorer-slider[data-param="' + p.name + '"]');
      var k = slider ? parseInt(slider.value, 10) : p["default"];
      if (!(k >= 0)) { k = 0; }
      if (k > n - 1) { k = n - 1; }
      index = index * n + k;
      var label = one('.explorer-value[data-param="' + p.name + '"]');
      if (label) { label.textContent = p.texts[k]; }
      if (slider) { slider.setAttribute("aria-valuetext", p.texts[k]); }
      words.push(p.label + " " + p.texts[k]);
    }
    var point = points[index];
    if (!point) { return; }
    var rec = one('img[data-role="reconstruction"]'), meas = one('img[data-role="measurement"]');
    var message = one(".explorer-message");
    if (meas) {
      if (point.measurement) { meas.src = dataUri(point.measurement); meas.style.visibility = ""; }
      else { meas.style.visibility = "hidden"; }
    }
    if (point.reconstruction) {
      if (rec) {
        rec.src = dataUri(point.reconstruction);
        rec.alt = grid.method + " reconstruction (" + words.join(", ") + ")";
        rec.style.display = "";
      }
      if (message) { message.textContent = ""; message.style.display = "none"; }
    } else {
      if (rec) { rec.style.display = "none"; }
      if (message) { message.textContent = "No image: " + (point.message || "the sampler failed"); message.style.display = ""; }
    }
    var metrics = {psnr: fixed(point.psnr, 2), lpips: fixed(point.lpips, 4), measurement_psnr: fixed(point.measurement_psnr, 2)};
    for (var name in metrics) {
      var span = one('.explorer-metric[data-metric="' + name + '"]');
      if (span) { span.textContent = metrics[name]; }
    }
  }
  var sliders = root.querySelectorAll(".explorer-slider");
  for (var j = 0; j < sliders.length; j++) {
    sliders[j].addEventListener("input", update);
    sliders[j].addEventListener("change", update);
  }
  update();
})();
""".strip()


def _json_for_script(obj) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (no ``<``, ``>``, ``&`` characters)."""
    text = json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _fmt(v, digits: int) -> str:
    return "\u2014" if v is None else f"{v:.{digits}f}"


def _caption(grid: dict) -> str:
    """The caption's HTML (escaped text, the command in ``<code>``) from the grid's ``meta``."""
    m = grid.get("meta", {})
    parts = [f"Precomputed: {grid['method']} with the '{m.get('prior', '?')}' prior on the CPU "
             f"({m.get('image_size', '?')} px), {m.get('image', 'one image')}, {m.get('num_steps', '?')} steps"]
    if m.get("steps_note"):
        parts[-1] += f" ({m['steps_note']})"
    if m.get("operator_description"):
        parts.append(m["operator_description"])
    parts.append(f"sampler seed {m.get('seed', '?')}, measurement noise seed {m.get('measurement_seed', '?')}")
    parts.append("σ_y in model-space units [-1, 1]; PSNR and LPIPS (alex) against the ground truth in image space [0, 1]")
    parts.append("every setting is a stored picture: nothing runs when a slider moves")
    command = m.get("command", "python -m helpers.static_explorer")
    return html.escape("; ".join(parts) + ". Recompute with ") + f"<code>{html.escape(command)}</code>."


def render_html(grid: dict, *, root_id: Optional[str] = None, display_px: int = DISPLAY_PX) -> str:
    """The grid as one self-contained ``<div class="static-explorer">`` (see the module docstring's contract).

    ``root_id`` defaults to ``"<chapter>-explorer"``; give another one for a second explorer of the
    same chapter on a page (ids must be unique). The page starts at each slider's default value.
    """
    grid = _check_grid(grid, "grid")
    chapter, method = str(grid["chapter"]), str(grid["method"])
    root_id = root_id or f"{chapter}-explorer"
    esc = lambda s: html.escape(str(s), quote=True)  # noqa: E731
    params, images = grid["params"], grid["images"]
    index = 0
    for p in params:
        index = index * len(p["values"]) + int(p["default"])
    point = grid["points"][index]

    def uri(img_id):
        return f"data:image/png;base64,{images[img_id]}" if img_id else ""

    controls = []
    words = []
    for p in params:
        pid = f"{root_id}-{p['name']}"
        k = int(p["default"])
        text = p["texts"][k]
        words.append(f"{p['label']} {text}")
        controls.append(
            f'<label for="{esc(pid)}">{esc(p["label"])}</label>'
            f'<input type="range" class="explorer-slider" id="{esc(pid)}" data-param="{esc(p["name"])}" min="0" '
            f'max="{len(p["values"]) - 1}" step="1" value="{k}" aria-valuetext="{esc(text)}">'
            f'<output class="explorer-value" data-param="{esc(p["name"])}" for="{esc(pid)}">{esc(text)}</output>')
    size_css = f' style="width:{int(display_px)}px;height:{int(display_px)}px"'
    ok = point["reconstruction"] is not None
    rec_style = f' style="width:{int(display_px)}px;height:{int(display_px)}px{";display:none" if not ok else ""}"'
    message = "" if ok else f"No image: {point['message'] or 'the sampler failed'}"
    msg_style = ' style="display:none"' if ok else ""
    meas_alt = "the measurement brought to image size by the operator's pseudo-inverse"
    parts = [
        f'<div class="static-explorer" data-explorer="{esc(chapter)}" id="{esc(root_id)}">',
        f"<style>{_CSS}</style>",
        f'<div class="explorer-title"><b>{esc(method)} explorer</b> (static: works without Python)</div>',
        '<div class="explorer-controls">' + "".join(controls) + "</div>",
        '<div class="explorer-pictures">',
        f'<figure><img class="explorer-image" data-role="measurement" alt="{esc(meas_alt)}" '
        f'src="{uri(point["measurement"])}"{size_css}><figcaption>measurement (A⁺y)</figcaption></figure>',
        f'<figure><img class="explorer-image" data-role="reconstruction" '
        f'alt="{esc(method + " reconstruction (" + ", ".join(words) + ")")}" src="{uri(point["reconstruction"])}"'
        f'{rec_style}><div class="explorer-message" role="status"{msg_style}>{esc(message)}</div>'
        f"<figcaption>{esc(method)} reconstruction</figcaption></figure>",
        f'<figure><img class="explorer-image" data-role="truth" alt="the ground truth (a held-out face)" '
        f'src="{uri(grid["truth"])}"{size_css}><figcaption>ground truth</figcaption></figure>',
        "</div>",
        f'<div class="explorer-metrics">{esc(method)}: PSNR <span class="explorer-metric" data-metric="psnr">'
        f'{_fmt(point["psnr"], 2)}</span> dB, LPIPS <span class="explorer-metric" data-metric="lpips">'
        f'{_fmt(point["lpips"], 4)}</span> &nbsp;|&nbsp; measurement: PSNR <span class="explorer-metric" '
        f'data-metric="measurement_psnr">{_fmt(point["measurement_psnr"], 2)}</span> dB</div>',
        f'<p class="explorer-caption">{_caption(grid)}</p>',
        f'<script type="application/json" class="explorer-data">{_json_for_script(grid)}</script>',
        "<script>" + _JS.replace("%(root_id)s", json.dumps(root_id)) + "</script>",
        "</div>",
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------------------- notebook use
_DISPLAY_COUNT: dict = {}


@dataclass
class StaticExplorer:
    """A loaded grid; displaying it in a notebook puts its HTML in the page (``_repr_html_``)."""

    grid: dict
    path: Optional[Path] = None
    root_id: Optional[str] = None
    _html: Optional[str] = field(default=None, repr=False)

    @property
    def chapter(self) -> str:
        return str(self.grid["chapter"])

    @property
    def html(self) -> str:
        if self._html is None:
            self._html = render_html(self.grid, root_id=self.root_id)
        return self._html

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        n = len(self.grid["points"])
        failed = sum(p["reconstruction"] is None for p in self.grid["points"])
        where = self.path.name if self.path is not None else "memory"
        return (f"StaticExplorer({self.chapter!r}: {n} settings, {failed} failed, from {where}; "
                "display it in a notebook to see the sliders)")


@dataclass
class _MissingNote:
    text: str

    def _repr_html_(self) -> str:
        return f'<p class="static-explorer-missing"><i>{html.escape(self.text)}</i></p>'

    def __repr__(self) -> str:
        return self.text


def static_explorer(chapter: str, directory: Union[str, os.PathLike, None] = None, *, required: bool = True):
    """The static explorer of ``chapter`` from its committed grid (``book/explorers/<chapter>.json``).

    ``display(static_explorer("dps"))`` in a notebook cell puts the explorer's HTML in the page.
    Each call gets its own element ids (``dps-explorer``, ``dps-explorer-2``, ...), so a page can
    hold the same explorer twice.

    Raises :class:`FileNotFoundError` naming the chapter and the command that makes the grid when
    the file is missing, unless ``required=False`` (e.g. on Colab, where a pip-installed
    ``helpers`` has no ``book/`` folder): then a short note is returned instead.
    """
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter must be one of {list(CHAPTERS)}, got {chapter!r}")
    path = grid_path(chapter, directory)
    if not path.exists():
        text = (f"The static explorer of the chapter '{chapter}' needs its precomputed grid {path}, which is missing. "
                f"Make it from the repository root with `{make_command(chapter)}` (a few minutes on one CPU thread) "
                "and commit it.")
        if required:
            raise FileNotFoundError(text)
        return _MissingNote(text + " The live explorer above works with a kernel.")
    _DISPLAY_COUNT[chapter] = _DISPLAY_COUNT.get(chapter, 0) + 1
    n = _DISPLAY_COUNT[chapter]
    return StaticExplorer(load_grid(path), path, root_id=f"{chapter}-explorer" + ("" if n == 1 else f"-{n}"))


# ---------------------------------------------------------------------------- command line
def _build(chapter: str, out_dir: Path, num_steps: Optional[int], image_index: int, progress: bool) -> dict:
    from .data import face_dataset
    from .priors import load_prior

    prior = load_prior("faces", device="cpu")
    size = int(prior.image_shape[-1])
    faces = face_dataset("test", size=size, n=image_index + 1, progress=False)[0]
    image = torch.as_tensor(faces[image_index])
    grid = compute_grid(chapter, prior, image, num_steps=num_steps, lpips=True, progress=progress,
                        image_label=f"held-out test face {image_index} (face_dataset('test'))")
    path = save_grid(grid, grid_path(chapter, out_dir))
    page = render_html(grid)
    failed = sum(p["reconstruction"] is None for p in grid["points"])
    print(f"{chapter}: {len(grid['points'])} settings ({failed} failed) in {grid['meta']['seconds']:.1f} s; "
          f"{path} {path.stat().st_size / 1024:.0f} KiB, HTML {len(page.encode('utf-8')) / 1024:.0f} KiB")
    return grid


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.static_explorer",
                                     description="Recompute the static explorers' grids (book/explorers/<chapter>.json) "
                                                 "with the faces prior on the CPU.")
    parser.add_argument("--chapter", required=True, choices=[*CHAPTERS, "all"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: CPU_STEPS of the chapter)")
    parser.add_argument("--image", type=int, default=0, help="index of the held-out test face (default 0)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default book/explorers)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    torch.set_num_threads(args.threads)
    out = args.out if args.out is not None else default_grid_dir()
    for chapter in (CHAPTERS if args.chapter == "all" else [args.chapter]):
        _build(chapter, out, args.steps, args.image, not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
