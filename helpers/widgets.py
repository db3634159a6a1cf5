"""Interactive explorers (ipywidgets) for the conditional samplers.

Two explorers, each a small class whose ``widget`` attribute is the box to display:

==========================  ===========================================================
:func:`sdedit_explorer`     SDEdit: a slider for the start time t0, a dropdown for the
                            operator (blur / box / random / SR) and a slider for its strength
:func:`step_size_explorer`  DPS or ScoreALD: a log slider for the step size, a seed box
==========================  ===========================================================

Both show the measurement (brought to image size by the operator's pseudo-inverse), the
reconstruction and the ground truth, with PSNR and LPIPS (image space [0, 1],
``data_range=1.0``) against the ground truth.

Design, so that the explorers stay responsive and can be tested without a browser:

* **Cache.** Every result is stored in ``explorer.cache``, a dict keyed by the setting
  (a tuple of the widget values); moving a slider back to a value seen before costs nothing.
  ``explorer.num_runs`` counts the sampler runs actually made.
* **Progress.** An ``IntProgress`` bar counts the network evaluations of the running sampler
  (the prior is wrapped so that each call of ``prior.eps`` advances it).
* **No crash.** A sampler that diverges (NaN/Inf, or an iterate past
  :func:`helpers.samplers.divergence_bound`) raises :class:`helpers.samplers.SamplerDivergedError`;
  the explorer catches it (and ``ValueError`` from an impossible setting) and shows the
  message where the image would be.
* **Driving from code.** ``explorer.update(t0=0.6)`` sets widget values and recomputes once;
  setting a widget's value (``explorer.t0_slider.value = 0.6``) does the same through the
  widget's observer, synchronously. The last result is in ``explorer.result`` and its pieces in
  ``explorer.psnr``, ``explorer.lpips``, ``explorer.message``, ``explorer.images``.
* ``lpips=False`` skips LPIPS (fast tests, or machines without the LPIPS backbones).

Sliders use ``continuous_update=False``: a computation starts when the slider is released.
In a static page (the rendered book) the widgets show the state they had when the notebook
ran, and moving them does nothing: there is no Python kernel behind them. For the rendered page,
:mod:`helpers.static_explorer` writes static explorers (a precomputed grid of settings as
self-contained HTML with a few lines of JavaScript) that the chapters show next to these widgets.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from . import samplers as _samplers
from ._util import as_float, as_int
from .operators import BoxInpainting, GaussianBlur, Operator, RandomInpainting, SuperResolution

__all__ = [
    "OperatorChoice",
    "ExplorerResult",
    "SDEditExplorer",
    "StepSizeExplorer",
    "default_operator_choices",
    "sdedit_explorer",
    "step_size_explorer",
]


# ---------------------------------------------------------------------------- operators
@dataclass
class OperatorChoice:
    """An entry of the operator dropdown: how to build the operator from a strength value.

    ``build(strength, image_size) -> Operator``; ``strengths``: the values the strength slider
    offers; ``default``: the initial one; ``label``: what the strength means.
    """

    build: Callable[[float, int], Operator]
    strengths: Sequence[float]
    default: float
    label: str


def _blur(std: float, size: int) -> Operator:
    kernel = 2 * math.ceil(4 * std) + 1
    while kernel // 2 >= size:  # reflect padding needs pad < size
        kernel -= 2
    return GaussianBlur(kernel_size=max(kernel, 1), std=std)


def default_operator_choices(image_size: int) -> dict:
    """The operators of the course's tasks at ``image_size`` px, each with a strength.

    At its default strength every choice is the chapter's task at that resolution
    (:func:`helpers.evaluation.tasks.build_task`, the one function the chapters, the evaluation and
    the explorers take their operators from): blur: Gaussian std in px, the task's std (1 px at
    32 px, DPS's 61×61 kernel with std 3 px at 256 px) and multiples of it; box: side of the centred
    box as a fraction of the image side (0.5 is the course's box); random: fraction of the pixels
    kept (0.3 is the course's); SR: the downsampling factor (4).
    """
    from .evaluation.tasks import RANDOM_KEEP, blur_setting, build_task

    size = int(image_size)
    factors = [k for k in (2, 4, 8, 16) if size % k == 0 and k < size] or [1]
    task_std = blur_setting(size)[1]
    blur_stds = [round(task_std * f, 4) for f in (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)]

    def blur(strength, n):
        if n == size and float(strength) == task_std:
            return build_task("deblur", n).operator  # exactly the chapter's kernel
        return _blur(float(strength), n)

    return {
        "blur": OperatorChoice(blur, blur_stds, task_std, "blur std [px]"),
        "box": OperatorChoice(lambda s, n: BoxInpainting(n, max(1, int(round(s * n)))), [0.25, 0.375, 0.5, 0.625, 0.75],
                              0.5, "box side / image side"),
        "random": OperatorChoice(lambda s, n: RandomInpainting(n, keep_fraction=float(s), seed=0),
                                 sorted({0.05, 0.1, 0.2, RANDOM_KEEP, 0.5, 0.7, 0.9}), RANDOM_KEEP, "fraction of pixels kept"),
        "SR": OperatorChoice(lambda s, n: SuperResolution(int(s)), factors, 4 if 4 in factors else factors[0],
                             "downsampling factor"),
    }


# ---------------------------------------------------------------------------- results
@dataclass
class ExplorerResult:
    """One computed setting: images in image space [0, 1], (1, C, H, W) on the CPU.

    ``reconstruction``, ``psnr`` and ``lpips`` are ``None`` when the sampler failed; then
    ``message`` says why. ``lpips`` is also ``None`` when the explorer was built with
    ``lpips=False``.
    """

    settings: dict
    measurement: Optional[torch.Tensor]
    reconstruction: Optional[torch.Tensor]
    truth: torch.Tensor
    psnr: Optional[float] = None
    lpips: Optional[float] = None
    measurement_psnr: Optional[float] = None
    message: str = ""
    seconds: float = 0.0
    ok: bool = True
    extra: dict = field(default_factory=dict)


class _CountingPrior:
    """Delegates to ``prior`` and calls ``callback()`` after each ``eps`` (one network evaluation)."""

    def __init__(self, prior, callback: Callable[[], None]):
        self._prior, self._callback = prior, callback

    def eps(self, x_t, t):
        out = self._prior.eps(x_t, t)
        self._callback()
        return out

    def __getattr__(self, name):
        return getattr(self._prior, name)


def _as_image_batch(image, value_range) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(image) if not torch.is_tensor(image) else image).detach().float().cpu()
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"image must have shape (C, H, W) or (1, C, H, W), got {tuple(x.shape)}")
    lo, hi = value_range
    if x.min() < lo - 1e-3 or x.max() > hi + 1e-3:
        raise ValueError(f"image values lie in [{x.min():.3g}, {x.max():.3g}], outside value_range={tuple(value_range)}; "
                         "pass value_range=(-1, 1) for a model-space image")
    return ((x - lo) / (hi - lo)).clamp(0, 1)  # image space [0, 1]


def _png(image01: Optional[torch.Tensor], size: int) -> bytes:
    """PNG bytes of a (1, C, H, W) image in [0, 1], upscaled with nearest neighbours; grey if ``None``."""
    from PIL import Image

    if image01 is None:
        arr = np.full((8, 8, 3), 200, dtype=np.uint8)
    else:
        a = image01[0].detach().cpu().clamp(0, 1).numpy()
        a = np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a
        arr = (a.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).resize((size, size), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------- base class
class _Explorer:
    method_label = ""

    def __init__(self, prior, image, *, noise_std: float, num_steps: int, lpips: bool, lpips_net: str,
                 value_range, display_size: int, measurement_seed: int):
        import ipywidgets as W

        self.prior = prior
        noise_std = as_float(noise_std, "noise_std", nonnegative=True)
        num_steps = as_int(num_steps, "num_steps", positive=True)
        display_size = as_int(display_size, "display_size", positive=True)
        measurement_seed = as_int(measurement_seed, "measurement_seed", min=0)
        self.truth = _as_image_batch(image, value_range)  # (1, C, H, W) in [0, 1]
        if tuple(self.truth.shape[1:]) != tuple(prior.image_shape):
            raise ValueError(f"image has shape {tuple(self.truth.shape[1:])} but the prior makes {tuple(prior.image_shape)}")
        self.x = (self.truth * 2 - 1).to(device=prior.device, dtype=prior.dtype)  # model space
        self.image_size = int(prior.image_shape[-1])
        self.noise_std, self.num_steps = float(noise_std), int(num_steps)
        self.use_lpips, self.lpips_net = bool(lpips), lpips_net
        self.measurement_seed, self.display_size = measurement_seed, int(display_size)
        self.cache: dict = {}
        self._measurements: dict = {}
        self.num_runs = 0
        self._hold = False
        self.result: Optional[ExplorerResult] = None

        self.progress = W.IntProgress(value=0, min=0, max=1, description="", bar_style="",
                                      layout=W.Layout(width="60%"))
        self.status = W.HTML(value="")
        pic = dict(format="png", width=self.display_size, height=self.display_size)
        self.measurement_view = W.Image(value=_png(None, 8), **pic)
        self.reconstruction_view = W.Image(value=_png(None, 8), **pic)
        self.truth_view = W.Image(value=_png(self.truth, self.display_size), **pic)
        self.info = W.HTML(value="")

        def column(title, view):
            return W.VBox([W.HTML(f"<b>{title}</b>"), view], layout=W.Layout(align_items="center", margin="0 6px"))

        self.measurement_column = column("measurement", self.measurement_view)
        self.reconstruction_column = column(f"{self.method_label} reconstruction", self.reconstruction_view)
        self.pictures = W.HBox([self.measurement_column, self.reconstruction_column, column("ground truth", self.truth_view)])
        self.widget = W.VBox([W.HBox(self.controls()), W.HBox([self.progress, self.status]), self.pictures, self.info])
        for c in self.controls():
            c.observe(self._on_change, names="value")

    # subclasses: controls(), settings(), _key(settings), _operator(settings), _run(prior, op, y, settings)
    def controls(self) -> list:
        raise NotImplementedError

    def settings(self) -> dict:
        raise NotImplementedError

    def _key(self, settings: dict) -> tuple:
        return tuple(sorted(settings.items()))

    # ------------------------------------------------------------------ public API
    @property
    def psnr(self) -> Optional[float]:
        return None if self.result is None else self.result.psnr

    @property
    def lpips(self) -> Optional[float]:
        return None if self.result is None else self.result.lpips

    @property
    def message(self) -> str:
        return "" if self.result is None else self.result.message

    @property
    def images(self) -> dict:
        """``{"measurement", "reconstruction", "truth"}`` of the last result, image space (1, C, H, W)."""
        r = self.result
        return {} if r is None else {"measurement": r.measurement, "reconstruction": r.reconstruction, "truth": r.truth}

    def update(self, **settings) -> ExplorerResult:
        """Set widget values by name (e.g. ``t0=0.6``) and recompute once; returns the result."""
        widgets = self._named_controls()
        unknown = set(settings) - set(widgets)
        if unknown:
            raise TypeError(f"unknown setting(s) {sorted(unknown)}; the settings are {sorted(widgets)}")
        settings = self._check_settings(dict(settings))  # all checked before any widget changes
        self._hold = True
        try:
            for name in self._order(settings):
                widgets[name].value = settings[name]
        finally:
            self._hold = False
        return self.refresh()

    def _order(self, settings):
        return list(settings)

    def _check_settings(self, settings: dict) -> dict:
        """``settings`` with each value checked (``ValueError``/``TypeError`` naming it) and converted."""
        return settings

    def refresh(self) -> ExplorerResult:
        """Show the result of the widgets' current setting (computed, or from the cache)."""
        self.result = self.compute(self.settings())
        self._show(self.result)
        return self.result

    def compute(self, settings: dict) -> ExplorerResult:
        """The result of ``settings`` (a dict like :meth:`settings` returns), cached."""
        key = self._key(settings)
        if key in self.cache:
            return self.cache[key]
        start = time.perf_counter()
        try:
            op = self._operator(settings)
            y = self._measurement(op, settings)
        except (ValueError, TypeError) as e:  # an operator that cannot be built at this size
            return self._store(key, ExplorerResult(dict(settings), None, None, self.truth, message=f"Cannot build the operator: {e}",
                                                   ok=False))
        measured = self._to_image(op.pseudo_inverse(y).clamp(-1, 1))
        m_psnr = self._psnr(measured)
        total = self._expected_nfe(settings)
        self.progress.max, self.progress.value = max(1, total), 0
        self.status.value = "<i>computing…</i>"

        def tick():
            self.progress.value = min(self.progress.value + 1, self.progress.max)

        self.num_runs += 1
        try:
            sample = self._run(_CountingPrior(self.prior, tick), op, y, settings)
        except _samplers.SamplerDivergedError as e:
            result = ExplorerResult(dict(settings), measured, None, self.truth, measurement_psnr=m_psnr, message=str(e), ok=False,
                                    seconds=time.perf_counter() - start)
        except ValueError as e:  # an impossible setting (e.g. a step size of 0)
            result = ExplorerResult(dict(settings), measured, None, self.truth, measurement_psnr=m_psnr, message=str(e), ok=False,
                                    seconds=time.perf_counter() - start)
        else:
            recon = self._to_image(sample)
            result = ExplorerResult(dict(settings), measured, recon, self.truth, psnr=self._psnr(recon),
                                    lpips=self._lpips(recon), measurement_psnr=m_psnr, seconds=time.perf_counter() - start)
        finally:
            self.progress.value = self.progress.max
            self.status.value = ""
        return self._store(key, result)

    def _store(self, key, result):
        self.cache[key] = result
        return result

    # ------------------------------------------------------------------ helpers
    def _named_controls(self) -> dict:
        raise NotImplementedError

    def _on_change(self, change) -> None:
        if not self._hold:
            self.refresh()

    def _measurement(self, op: Operator, settings: dict) -> torch.Tensor:
        key = self._operator_key(settings)
        if key not in self._measurements:
            self._measurements[key] = op.measure(self.x, noise_std=self.noise_std, seed=self.measurement_seed)
        return self._measurements[key]

    @staticmethod
    def _to_image(x: torch.Tensor) -> torch.Tensor:
        return ((x.detach().float().cpu().clamp(-1, 1) + 1) / 2)

    def _psnr(self, img01) -> float:
        from .metrics import psnr

        return float(psnr(img01[0], self.truth[0], data_range=1.0))

    def _lpips(self, img01) -> Optional[float]:
        if not self.use_lpips:
            return None
        from .metrics import lpips_distance

        try:
            return float(lpips_distance(img01, self.truth, net=self.lpips_net, data_range=1.0)[0])
        except Exception as e:  # noqa: BLE001 - no backbone weights offline: show PSNR only
            self.use_lpips = False
            self._lpips_error = str(e)
            return None

    def _show(self, r: ExplorerResult) -> None:
        size = self.display_size
        self.measurement_view.value = _png(r.measurement, size)
        self.reconstruction_view.value = _png(r.reconstruction, size)
        parts = []
        if r.measurement_psnr is not None:
            parts.append(f"measurement: PSNR {r.measurement_psnr:.2f} dB")
        if r.ok:
            text = f"{self.method_label}: PSNR {r.psnr:.2f} dB"
            if r.lpips is not None:
                text += f", LPIPS {r.lpips:.3f}"
            parts.append(text + f" &nbsp;({r.seconds:.1f} s)")
            self.info.value = "<br>".join(parts)
        else:
            parts.append(f"<span style='color:#b00'><b>No image:</b> {_escape(r.message)}</span>")
            self.info.value = "<br>".join(parts)

    def _ipython_display_(self):  # display(explorer) shows its widget
        from IPython.display import display

        display(self.widget)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------------------- SDEdit
class SDEditExplorer(_Explorer):
    """SDEdit with sliders for t0, the operator and its strength (see :func:`sdedit_explorer`)."""

    method_label = "SDEdit"
    T0_RANGE = (0.05, 1.0)
    """The t0 slider's range (SDEdit's start time as a fraction of the trajectory)."""

    def __init__(self, prior, image, operators: Optional[Mapping[str, OperatorChoice]] = None, *, noise_std: float = 0.05,
                 num_steps: int = 100, seed: int = 0, t0: float = 0.4, operator: Optional[str] = None, repeats: int = 1,
                 lpips: bool = True, lpips_net: str = "alex", value_range=(0.0, 1.0), display_size: int = 128,
                 measurement_seed: int = 0):
        import ipywidgets as W

        size = int(prior.image_shape[-1])
        self.operators = dict(default_operator_choices(size) if operators is None else operators)
        if not self.operators:
            raise ValueError("operators is empty")
        name = operator if operator is not None else next(iter(self.operators))
        if name not in self.operators:
            raise ValueError(f"operator {name!r} is not one of {list(self.operators)}")
        self.seed, self.repeats = as_int(seed, "seed", min=0), as_int(repeats, "repeats", positive=True)
        t0 = self._check_t0(t0)
        self.t0_slider = W.FloatSlider(value=t0, min=self.T0_RANGE[0], max=self.T0_RANGE[1], step=0.05, description="t0", readout_format=".2f",
                                       continuous_update=False)
        self.operator_dropdown = W.Dropdown(options=list(self.operators), value=name, description="operator")
        choice = self.operators[name]
        self.strength_slider = W.SelectionSlider(options=list(choice.strengths), value=choice.default,
                                                 description="strength", continuous_update=False)
        self.strength_label = W.HTML(value=choice.label)
        self._controls = [self.t0_slider, self.operator_dropdown, self.strength_slider]
        super().__init__(prior, image, noise_std=noise_std, num_steps=num_steps, lpips=lpips, lpips_net=lpips_net,
                         value_range=value_range, display_size=display_size, measurement_seed=measurement_seed)
        self.widget.children = (W.HBox([self.t0_slider, self.operator_dropdown]),
                                W.HBox([self.strength_slider, self.strength_label]), *self.widget.children[1:])
        self.operator_dropdown.unobserve(self._on_change, names="value")
        self.operator_dropdown.observe(self._on_operator, names="value")
        self.refresh()

    def controls(self) -> list:
        return self._controls

    def _named_controls(self) -> dict:
        return {"t0": self.t0_slider, "operator": self.operator_dropdown, "strength": self.strength_slider}

    def _order(self, settings):  # the operator first: it resets the strength slider's options
        return sorted(settings, key=lambda k: k != "operator")

    def _check_t0(self, t0) -> float:
        lo, hi = self.T0_RANGE
        return as_float(t0, "t0", min=lo, max=hi, hint="t0 is the start time as a fraction of the trajectory")

    def _check_settings(self, settings: dict) -> dict:
        if "t0" in settings:
            settings["t0"] = self._check_t0(settings["t0"])
        name = settings.get("operator", self.operator_dropdown.value)
        if name not in self.operators:
            raise ValueError(f"operator={name!r} is not one of {list(self.operators)}")
        if "strength" in settings:
            options = list(self.operators[name].strengths)
            strength = settings["strength"]
            try:
                strength = as_float(strength, "strength")
            except (TypeError, ValueError):
                pass
            if strength not in options:
                raise ValueError(f"strength={settings['strength']!r} is not offered for operator {name!r}: "
                                 f"choose one of {options} ({self.operators[name].label})")
            settings["strength"] = options[options.index(strength)]
        return settings

    def _on_operator(self, change) -> None:
        choice = self.operators[change["new"]]
        hold, self._hold = self._hold, True
        try:
            self.strength_slider.options = list(choice.strengths)
            self.strength_slider.value = choice.default
            self.strength_label.value = choice.label
        finally:
            self._hold = hold
        if not self._hold:
            self.refresh()

    def settings(self) -> dict:
        return {"t0": round(float(self.t0_slider.value), 4), "operator": self.operator_dropdown.value,
                "strength": self.strength_slider.value}

    def _operator_key(self, s):
        return (s["operator"], s["strength"])

    def _operator(self, s) -> Operator:
        return self.operators[s["operator"]].build(s["strength"], self.image_size)

    def _expected_nfe(self, s) -> int:
        return max(1, int(round(s["t0"] * self.num_steps))) * self.repeats

    def _run(self, prior, op, y, s):
        return _samplers.sdedit(prior, op, y, start_time=s["t0"], num_steps=self.num_steps, repeats=self.repeats,
                                seed=self.seed, progress=False).sample

    def operator_for(self, settings: Optional[dict] = None) -> Operator:
        """The operator of ``settings`` (default: the current widget values)."""
        return self._operator(settings or self.settings())


def sdedit_explorer(prior, image, operators: Optional[Mapping[str, OperatorChoice]] = None, noise_std: float = 0.05,
                    num_steps: int = 100, seed: int = 0, **kwargs) -> SDEditExplorer:
    """An SDEdit explorer for one image: t0 slider (0.05–1.0), operator dropdown, strength slider.

    Args:
        prior: a :class:`helpers.priors.Prior` (or any prior with ``eps``, ``schedule``, ``image_shape``).
        image: the ground truth, (C, H, W) or (1, C, H, W), image space [0, 1] (``value_range=(-1, 1)``
            for a model-space image), of the prior's size.
        operators: ``{name: OperatorChoice}``; default :func:`default_operator_choices` (blur, box,
            random, SR).
        noise_std: σ_y of the measurement, model space [-1, 1]; the measurement noise is drawn
            once per operator from ``measurement_seed`` (default 0).
        num_steps: steps of a full (t0 = 1) trajectory; SDEdit from t0 runs about t0 · num_steps.
        seed: the sampler's seed.
        **kwargs: ``t0`` (initial value, 0.4), ``operator`` (initial name), ``repeats`` (SDEdit's K),
            ``lpips`` (False skips LPIPS), ``lpips_net``, ``value_range``, ``display_size`` (px).

    Returns the explorer; display ``explorer.widget`` (or the explorer itself) in a notebook.
    """
    return SDEditExplorer(prior, image, operators, noise_std=noise_std, num_steps=num_steps, seed=seed, **kwargs)


# ---------------------------------------------------------------------------- DPS / ScoreALD step size
_STEP_DEFAULTS = {  # method: (initial value, min exponent, max exponent) of the log slider (base 10)
    "dps": (1.0, -3.0, 3.0),
    "score_ald": (1.0, -4.0, 4.0),
}


class StepSizeExplorer(_Explorer):
    """DPS or ScoreALD with a log slider for the step size and a seed box (see :func:`step_size_explorer`)."""

    def __init__(self, prior, image, method: str = "dps", operator: Union[str, Operator, None] = None, *,
                 noise_std: float = 0.05, num_steps: int = 100, seed: int = 0, step_size: Optional[float] = None,
                 step_range: Optional[tuple] = None, sampler_kwargs: Optional[dict] = None, lpips: bool = True,
                 lpips_net: str = "alex", value_range=(0.0, 1.0), display_size: int = 128, measurement_seed: int = 0):
        import ipywidgets as W

        if method not in _STEP_DEFAULTS:
            raise ValueError(f"method must be one of {list(_STEP_DEFAULTS)}, got {method!r}")
        self.method = method
        self.method_label = {"dps": "DPS", "score_ald": "ScoreALD"}[method]
        size = int(prior.image_shape[-1])
        if operator is None or isinstance(operator, str):
            choices = default_operator_choices(size)
            name = operator or "blur"
            if name not in choices:
                raise ValueError(f"operator {name!r} is not one of {list(choices)} (or pass an Operator)")
            operator = choices[name].build(choices[name].default, size)
        if not isinstance(operator, Operator):
            raise TypeError(f"operator must be a name or a helpers.operators.Operator, got {type(operator).__name__}")
        self.operator = operator
        self.sampler_kwargs = dict(sampler_kwargs or {})
        default, lo, hi = _STEP_DEFAULTS[method]
        if step_range is not None:
            try:
                low, high = step_range
            except (TypeError, ValueError):
                raise ValueError(f"step_range={step_range!r} must be a pair (low, high) of step sizes") from None
            low = as_float(low, "step_range[0]", positive=True, hint="the slider is logarithmic")
            high = as_float(high, "step_range[1]", positive=True, hint="the slider is logarithmic")
            if not low < high:
                raise ValueError(f"step_range={tuple(step_range)!r} must have low < high")
            lo, hi = math.log10(low), math.log10(high)
        self._step_bounds = (10.0 ** lo, 10.0 ** hi)
        value = default if step_size is None else self._check_step_size(step_size)
        if step_size is None and not self._step_bounds[0] <= value <= self._step_bounds[1]:
            value = 10.0 ** ((lo + hi) / 2)  # the default lies outside a custom range: start in its middle
        seed = as_int(seed, "seed", min=0)
        self.step_slider = W.FloatLogSlider(value=value, base=10, min=lo, max=hi, step=0.25, description="step size",
                                            readout_format=".3g", continuous_update=False)
        self.seed_box = W.IntText(value=int(seed), description="seed", layout=W.Layout(width="180px"))
        super().__init__(prior, image, noise_std=noise_std, num_steps=num_steps, lpips=lpips, lpips_net=lpips_net,
                         value_range=value_range, display_size=display_size, measurement_seed=measurement_seed)
        self.refresh()

    def controls(self) -> list:
        return [self.step_slider, self.seed_box]

    def _check_step_size(self, value) -> float:
        low, high = self._step_bounds
        v = as_float(value, "step_size", positive=True)
        if not low * (1 - 1e-9) <= v <= high * (1 + 1e-9):
            raise ValueError(f"step_size={v:g} is outside the slider's range [{low:g}, {high:g}]; "
                             "widen it with step_range=(low, high)")
        return v

    def _check_settings(self, settings: dict) -> dict:
        if "step_size" in settings:
            settings["step_size"] = self._check_step_size(settings["step_size"])
        if "seed" in settings:
            settings["seed"] = as_int(settings["seed"], "seed", min=0)
        return settings

    def _named_controls(self) -> dict:
        return {"step_size": self.step_slider, "seed": self.seed_box}

    def settings(self) -> dict:
        return {"step_size": float(f"{float(self.step_slider.value):.6g}"), "seed": int(self.seed_box.value)}

    def _operator_key(self, s):
        return "fixed"

    def _operator(self, s) -> Operator:
        return self.operator

    def _expected_nfe(self, s) -> int:
        return self.num_steps

    def _run(self, prior, op, y, s):
        fn = getattr(_samplers, self.method)
        kwargs = dict(self.sampler_kwargs)
        if self.method == "score_ald":
            kwargs.setdefault("noise_std", self.noise_std)
        return fn(prior, op, y, num_steps=self.num_steps, step_size=s["step_size"], seed=s["seed"], progress=False,
                  **kwargs).sample


def step_size_explorer(prior, image, method: str = "dps", operator: Union[str, Operator, None] = None,
                       noise_std: float = 0.05, num_steps: int = 100, seed: int = 0, **kwargs) -> StepSizeExplorer:
    """A step-size explorer for DPS (ζ′) or ScoreALD (λ) on one image: log slider and seed box.

    Args:
        prior, image, noise_std, num_steps: as in :func:`sdedit_explorer`.
        method: ``"dps"`` or ``"score_ald"``.
        operator: a name of :func:`default_operator_choices` (default ``"blur"``, at its default
            strength) or an :class:`~helpers.operators.Operator`.
        seed: the sampler's initial seed (the seed box); the measurement noise stays fixed.
        **kwargs: ``step_size`` (initial value, default 1), ``step_range`` ((low, high), default
            10^-3…10^3 for DPS, 10^-4…10^4 for ScoreALD), ``sampler_kwargs`` (e.g.
            ``{"step_rule": "poster"}`` for ScoreALD), ``lpips``, ``lpips_net``, ``value_range``,
            ``display_size``.

    A step size that makes the sampler diverge shows the sampler's message instead of an image.
    """
    return StepSizeExplorer(prior, image, method, operator, noise_std=noise_std, num_steps=num_steps, seed=seed, **kwargs)
