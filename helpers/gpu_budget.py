"""Budgeting the GPU path: count network evaluations, convert them to seconds on a Colab T4.

On Colab with a GPU the chapters use ``google/ddpm-celebahq-256`` (113.7 M parameters, 256 px).
Each chapter must stay under :data:`CHAPTER_BUDGET_S` (8 min) on a T4 and the book under
:data:`BOOK_BUDGET_S` (45 min). Almost all of a chapter's time is the network, so a budget is
a count of network evaluations times the cost of one:

* :func:`count_evaluations` -- a context manager around a prior that counts *image-evaluations*
  (one image through the network once; a call on a batch of B counts B), split into
  forward-only ones and forward+backward ones (DPS differentiates ε_θ with respect to its
  input, which costs a backward pass through the network).
* :data:`CELEBAHQ_FORWARD_FLOPS`, :data:`CELEBAHQ_FORWARD_BACKWARD_FLOPS` -- the cost of one
  image-evaluation of the real model, counted with ``torch.utils.flop_counter.FlopCounterMode``
  on the stand-in of :mod:`helpers.standin` (:func:`measure_flops`, :func:`standin_flops`).
* :func:`t4_seconds` -- FLOPs ÷ (T4 fp32 peak × efficiency), as an (optimistic, pessimistic)
  range, and :func:`chapter_budget` -- the report a chapter prints at its top.

The efficiencies (:data:`T4_EFFICIENCY`) are assumptions until measured on a T4 (see
:func:`t4_seconds`); ``python -m helpers.bench --gpu-celebahq`` times DPS and DDPM steps of
the same architecture on any CUDA GPU and is the measurement that should replace them.

Per image-evaluation on a T4 at the assumed efficiencies (batch 1, fp32):

=====================  ===========  ====================  =====================
                       GFLOP        optimistic (50 %)     pessimistic (25 %)
=====================  ===========  ====================  =====================
forward                497.0        123 ms                245 ms
forward + backward     994.7        246 ms                491 ms
=====================  ===========  ====================  =====================

So a 1000-step DPS reconstruction of one image takes 4.1–8.2 min on a T4, and a 50-step DDIM
sample 6–12 s.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Optional

import torch

__all__ = [
    "CELEBAHQ_FORWARD_FLOPS",
    "CELEBAHQ_FORWARD_BACKWARD_FLOPS",
    "NARROW_FORWARD_FLOPS",
    "NARROW_FORWARD_BACKWARD_FLOPS",
    "T4_FP32_PEAK_FLOPS",
    "T4_EFFICIENCY",
    "CHAPTER_BUDGET_S",
    "BOOK_BUDGET_S",
    "EvaluationCount",
    "count_evaluations",
    "record_evaluation",
    "evaluations_for",
    "measure_flops",
    "standin_flops",
    "T4Estimate",
    "t4_seconds",
    "per_evaluation_ms",
    "ChapterBudget",
    "chapter_budget",
]

# ------------------------------------------------------------------------------------- constants
# Measured with (torch 2.14.1, diffusers 0.42.1; the network built on the "meta" device, so that
# only shapes are used and nothing is computed):
#     python -c "from helpers.gpu_budget import standin_flops; print(standin_flops('full'), standin_flops('narrow'))"
# tests/test_gpu_budget.py re-measures them.
CELEBAHQ_FORWARD_FLOPS = 497_027_514_368
"""FLOPs of one forward pass of ``google/ddpm-celebahq-256`` on one 256×256 image (batch 1):
convolutions 493.5 G (99.3 %), attention and linear layers the rest. A multiply-add counts 2.
Normalisations, activations and additions are not counted (they are memory-bound, see
:func:`t4_seconds`)."""
CELEBAHQ_FORWARD_BACKWARD_FLOPS = 994_723_627_008
"""FLOPs of one forward pass plus the backward pass to the *input* (the weights are frozen, so no
weight gradients), per image: 2.0× the forward, as in DPS's gradient step."""
NARROW_FORWARD_FLOPS = 31_361_490_944
"""The same for the narrow stand-in (:data:`helpers.standin.NARROW_CHANNELS`): 1/15.8 of the full model."""
NARROW_FORWARD_BACKWARD_FLOPS = 62_892_171_264
"""Forward + backward to the input of the narrow stand-in, per image."""

T4_FP32_PEAK_FLOPS = 8.1e12
"""NVIDIA T4's fp32 peak: 2560 CUDA cores × 2 FLOP × 1.59 GHz boost clock."""
T4_EFFICIENCY = (0.50, 0.25)
"""(optimistic, pessimistic) fraction of :data:`T4_FP32_PEAK_FLOPS` the UNet sustains (assumed; see :func:`t4_seconds`)."""

CHAPTER_BUDGET_S = 8 * 60.0
"""Time budget of one chapter on a Colab T4, seconds."""
BOOK_BUDGET_S = 45 * 60.0
"""Time budget of the whole book on a Colab T4, seconds."""


# ------------------------------------------------------------------------------------- counting
@dataclass
class EvaluationCount:
    """Network evaluations counted by :func:`count_evaluations`, in image-evaluations.

    An *image-evaluation* is one image through the network once: a call of ``prior.eps`` on a
    batch of B images counts B.

    Attributes
    ----------
    calls: calls of ``prior.eps``.
    forward_images: image-evaluations of all calls (every call runs a forward pass).
    graph_images: image-evaluations made with autograd recording (``torch.is_grad_enabled()``
        and an input that ``requires_grad``): those that *can* be differentiated.
    backward_images: image-evaluations whose output a backward pass actually went through
        (seen by a hook on the output tensor when autograd computes its gradient): the
        forward+backward ones.
    """

    calls: int = 0
    forward_images: int = 0
    graph_images: int = 0
    backward_images: int = 0

    @property
    def forward_only_images(self) -> int:
        """Image-evaluations without a backward pass (``forward_images - backward_images``)."""
        return self.forward_images - self.backward_images

    @property
    def forward_backward_images(self) -> int:
        """Image-evaluations with a backward pass (= ``backward_images``)."""
        return self.backward_images

    def flops(self, forward_flops: float = CELEBAHQ_FORWARD_FLOPS,
              forward_backward_flops: float = CELEBAHQ_FORWARD_BACKWARD_FLOPS) -> float:
        """Total FLOPs of the counted evaluations, at the given cost per image-evaluation (default: the real face model)."""
        return self.forward_only_images * forward_flops + self.forward_backward_images * forward_backward_flops

    def t4_seconds(self, **kwargs) -> "T4Estimate":
        """:func:`t4_seconds` of these counts (same keyword arguments)."""
        return t4_seconds(self.forward_only_images, self.forward_backward_images, **kwargs)

    def __str__(self) -> str:
        return (f"{self.forward_images} image-evaluations in {self.calls} calls: {self.forward_only_images} forward only, "
                f"{self.forward_backward_images} forward + backward")


@contextlib.contextmanager
def count_evaluations(prior):
    """Count the network evaluations made through ``prior.eps`` inside the ``with`` block.

    ::

        with count_evaluations(prior) as n:
            samplers.dps(prior, operator, y, num_steps=20)
        n.forward_backward_images   # 20 × batch

    ``prior``: any object with an ``eps(x_t, t)`` method (a :class:`helpers.priors.Prior`, a
    :class:`helpers.priors.GaussianPrior`, a wrapper), on any device. Its ``eps`` is replaced on the
    *instance* for the duration of the block (so every code path that calls ``prior.eps`` is
    counted, including samplers that receive ``prior``) and restored afterwards, also after an
    exception. Counters nest (each sees every call). Yields an :class:`EvaluationCount`, live.

    Forward+backward detection: a backward pass through the network is seen by a hook on the
    tensor ``eps`` returns, which fires when autograd computes a gradient through it
    (``loss.backward()`` or ``torch.autograd.grad`` with respect to the input, as in
    :func:`helpers.samplers.dps_gradient`). An output that is recorded but never differentiated
    counts in ``graph_images`` only.
    """
    counter = EvaluationCount()
    original = prior.__dict__.get("eps", None) if hasattr(prior, "__dict__") else None
    inner = prior.eps

    def eps(x_t, t, *args, **kwargs):
        return record_evaluation(counter, x_t, inner(x_t, t, *args, **kwargs))

    prior.eps = eps
    try:
        yield counter
    finally:
        if original is not None:
            prior.eps = original
        else:
            try:
                del prior.eps
            except AttributeError:  # pragma: no cover - eps was not an instance attribute
                pass


def record_evaluation(counter: EvaluationCount, x_t, out):
    """Count one call of ``eps`` on the batch ``x_t`` that returned ``out``, in ``counter``; return ``out``.

    Every image of the batch is a forward image-evaluation; one whose output a backward pass goes
    through is also a backward one (a hook on ``out`` sees it). Shared by :func:`count_evaluations`
    (one prior) and :func:`helpers.gpu_path.install_counter` (every prior of a process).
    """
    b = int(x_t.shape[0]) if torch.is_tensor(x_t) and x_t.ndim >= 1 else 1
    counter.calls += 1
    counter.forward_images += b
    if torch.is_tensor(out) and out.requires_grad:
        if torch.is_grad_enabled() and torch.is_tensor(x_t) and x_t.requires_grad:
            counter.graph_images += b

        def _seen_backward(grad, b=b):
            counter.backward_images += b
            return grad

        out.register_hook(_seen_backward)
    return out


def evaluations_for(method: str, num_images: int, nfe: int) -> tuple:
    """(forward-only, forward+backward) image-evaluations of a planned run, for :func:`t4_seconds`.

    ``method``: ``"dps"`` (every evaluation has a backward pass) or any unconditional-network
    sampler (``"ddpm"``, ``"ddim"``, ``"sdedit"``, ``"score_ald"``: forward only; ScoreALD
    differentiates the operator, not the network). ``nfe``: network evaluations per run (a
    sampler's ``SamplerResult.nfe``; for DDPM/DDIM/DPS the number of steps). ``num_images``: images
    per run × runs.
    """
    n = int(num_images) * int(nfe)
    if method == "dps":
        return 0, n
    if method in ("ddpm", "ddim", "sdedit", "score_ald", "forward"):
        return n, 0
    raise ValueError(f"method={method!r}: expected 'dps' or one of 'ddpm', 'ddim', 'sdedit', 'score_ald'")


# ------------------------------------------------------------------------------------- FLOPs
def measure_flops(unet, batch: int = 1, backward: bool = False, timestep: int = 500, by_op: bool = False):
    """FLOPs of one call of a diffusers ``UNet2DModel`` on a batch, counted by ``FlopCounterMode``.

    ``unet``: the network (or a :class:`helpers.priors.Prior`: its ``.unet``), on any device;
    on the ``"meta"`` device (:func:`helpers.standin.build_standin_unet` with ``device="meta"``)
    only shapes are used, so even the full 113.7 M-parameter network is counted in under a second.
    The input is (batch, C, H, W) from the network's config. ``backward=True`` adds the backward
    pass to the input with the weights frozen (what DPS costs); the weights' ``requires_grad`` is
    restored afterwards. Counted are convolutions, matrix products and attention (2 FLOPs per
    multiply-add), not normalisations or pointwise operations.

    Returns the total (int), or ``(total, {op name: FLOPs})`` with ``by_op=True``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    net = getattr(unet, "unet", unet)
    cfg = net.config
    size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
    p0 = next(net.parameters())
    device = p0.device
    x = torch.randn(int(batch), int(cfg.in_channels), int(size), int(size), device=device, dtype=p0.dtype)
    t = torch.full((int(batch),), int(timestep), device=device, dtype=torch.long)
    flags = [p.requires_grad for p in net.parameters()]
    net.requires_grad_(False)
    try:
        with FlopCounterMode(display=False) as fc:
            if backward:
                with torch.enable_grad():
                    xg = x.requires_grad_(True)
                    out = net(xg, t).sample
                    out.backward(torch.ones_like(out))  # FlopCounterMode does not support torch.autograd.grad here
            else:
                with torch.no_grad():
                    net(x, t)
    finally:
        for p, f in zip(net.parameters(), flags):
            p.requires_grad_(f)
    total = int(fc.get_total_flops())
    if by_op:
        return total, {str(k): int(v) for k, v in fc.get_flop_counts()["Global"].items()}
    return total


def standin_flops(width: str = "full", batch: int = 1) -> dict:
    """``{"forward": …, "forward_backward": …}`` FLOPs of the :mod:`helpers.standin` network of ``width``.

    Built on the meta device (no memory, no computation): the numbers of
    :data:`CELEBAHQ_FORWARD_FLOPS` (``"full"``) and :data:`NARROW_FORWARD_FLOPS` (``"narrow"``).
    """
    from .standin import build_standin_unet

    net = build_standin_unet(width, device="meta")
    return {"forward": measure_flops(net, batch), "forward_backward": measure_flops(net, batch, backward=True)}


# ------------------------------------------------------------------------------------- T4 time
@dataclass(frozen=True)
class T4Estimate:
    """Estimated seconds on a Colab T4: ``optimistic`` ≤ ``pessimistic``; ``flops`` the work counted."""

    optimistic: float
    pessimistic: float
    flops: float

    @property
    def minutes(self) -> tuple:
        return self.optimistic / 60.0, self.pessimistic / 60.0

    def __str__(self) -> str:
        lo, hi = self.optimistic, self.pessimistic
        if hi < 120:
            return f"{lo:.0f}–{hi:.0f} s"
        return f"{lo / 60:.1f}–{hi / 60:.1f} min"


def t4_seconds(forward_images: float = 0, backward_images: float = 0, *,
               forward_flops: float = CELEBAHQ_FORWARD_FLOPS,
               forward_backward_flops: float = CELEBAHQ_FORWARD_BACKWARD_FLOPS,
               peak_flops: float = T4_FP32_PEAK_FLOPS,
               efficiency: tuple = T4_EFFICIENCY) -> T4Estimate:
    """Estimated seconds of network time on a Colab T4 (fp32).

    ``forward_images``: forward-only image-evaluations; ``backward_images``: forward+backward
    image-evaluations (each costs ``forward_backward_flops``, not ``forward_flops`` on top).
    seconds = (forward_images · forward_flops + backward_images · forward_backward_flops)
    / (peak_flops · efficiency), for the two efficiencies of ``efficiency`` = (optimistic,
    pessimistic). Sampler overhead (the update rules, the operator, noise) is not included:
    ``python -m helpers.bench`` measures it below 5 % of the network time.

    Why 50 % and 25 % of the 8.1 TFLOPS peak (assumptions, not measurements: no T4 was available
    when they were chosen; replace them with ``python -m helpers.bench --gpu-celebahq`` run on a
    Colab T4, which times DDPM and DPS steps of this exact architecture):

    * The peak assumes the 1.59 GHz boost clock; the T4 is capped at 70 W and lowers its clock
      under sustained dense arithmetic (NVIDIA's forum reports a sustained fp16 GEMM at 24 of the
      nominal 65 TFLOPS), so a long sampling loop runs below the peak before any software loss.
    * 99 % of the counted FLOPs are 3×3 convolutions of 128–512 channels at 256² … 8², run by
      cuDNN in fp32 (Turing has no TF32): large ones reach roughly 60–70 % of the clock's peak,
      the small late ones (8², 16² with attention) less.
    * The uncounted GroupNorm, SiLU, additions and skip concatenations are memory-bound: a few GB
      of activation traffic per forward at 256² against the T4's 320 GB/s, some 15–30 ms per image
      forward on top of the convolutions' ~100 ms.

    Together: about half the peak when the clock holds (optimistic), a quarter when it throttles
    and cuDNN picks slow algorithms (pessimistic; the value budgets are checked against).
    Per image-evaluation: forward 123–245 ms, forward+backward 246–491 ms (:func:`per_evaluation_ms`).
    Not for other GPUs: an A100/L4 changes the peak *and* (TF32, fp16) the efficiency.
    """
    lo_eff, hi_eff = (float(e) for e in efficiency)
    if not (0 < hi_eff <= lo_eff <= 1):
        raise ValueError(f"efficiency={efficiency!r}: expected (optimistic, pessimistic) with 0 < pessimistic ≤ optimistic ≤ 1")
    if forward_images < 0 or backward_images < 0:
        raise ValueError("forward_images and backward_images must be ≥ 0")
    flops = float(forward_images) * float(forward_flops) + float(backward_images) * float(forward_backward_flops)
    return T4Estimate(flops / (peak_flops * lo_eff), flops / (peak_flops * hi_eff), flops)


def per_evaluation_ms(**kwargs) -> dict:
    """Milliseconds per image-evaluation on a T4: ``{"forward": (opt, pess), "forward_backward": (opt, pess)}``.

    Keyword arguments as :func:`t4_seconds` (default: the real face model at :data:`T4_EFFICIENCY`).
    """
    f, fb = t4_seconds(1, 0, **kwargs), t4_seconds(0, 1, **kwargs)
    return {"forward": (1e3 * f.optimistic, 1e3 * f.pessimistic),
            "forward_backward": (1e3 * fb.optimistic, 1e3 * fb.pessimistic)}


# ------------------------------------------------------------------------------------- chapter report
def _describe_device(device) -> str:
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return str(dev)


@dataclass
class ChapterBudget:
    """A chapter's planned or counted network work and its estimated time on a Colab T4.

    ``verdict``: ``"within"`` when even the pessimistic estimate fits ``budget_s``, ``"uncertain"``
    when only the optimistic one does, ``"over"`` when neither does. ``within_budget`` is True only
    for ``"within"``. ``str(report)`` is the few lines a chapter prints at its top.
    """

    chapter: str
    device: str
    forward_images: int
    backward_images: int
    estimate: T4Estimate
    budget_s: float = CHAPTER_BUDGET_S
    source: str = "planned"
    items: list = field(default_factory=list)

    @property
    def within_budget(self) -> bool:
        return self.estimate.pessimistic <= self.budget_s

    @property
    def verdict(self) -> str:
        if self.estimate.pessimistic <= self.budget_s:
            return "within"
        if self.estimate.optimistic <= self.budget_s:
            return "uncertain"
        return "over"

    def __str__(self) -> str:
        lo, hi = self.estimate.minutes
        text = {"within": "within", "uncertain": "possibly over", "over": "OVER"}[self.verdict]
        lines = [
            f"{self.chapter}: device {self.device}",
            (f"  network work ({self.source}): {self.forward_images} forward image-evaluations, "
             f"{self.backward_images} forward + backward"),
            f"  estimated on a Colab T4: {lo:.1f}–{hi:.1f} min; {text} the {self.budget_s / 60:g}-min chapter budget",
        ]
        lines += [f"    {name}: {f} forward, {b} forward + backward" for name, f, b in self.items]
        return "\n".join(lines)


def chapter_budget(chapter: str, *, runs: Optional[list] = None, counted: Optional[EvaluationCount] = None,
                   forward_images: int = 0, backward_images: int = 0, device=None,
                   budget_s: float = CHAPTER_BUDGET_S, **t4_kwargs) -> ChapterBudget:
    """The budget report of a chapter: device, evaluations, estimated T4 minutes, within 8 min or not.

    The work is the sum of

    - ``runs``: planned runs, a list of ``(name, method, num_images, nfe)`` tuples (see
      :func:`evaluations_for`), e.g. ``[("DPS, 4 tasks × 1 image", "dps", 4, 100)]``;
    - ``counted``: an :class:`EvaluationCount` from :func:`count_evaluations` (what actually ran);
    - ``forward_images`` / ``backward_images``: any other image-evaluations.

    ``device``: the device the chapter runs on (default: CUDA if visible, else the CPU), shown
    by name. Further keyword arguments go to :func:`t4_seconds` (e.g. the narrow stand-in's
    FLOPs). Returns a :class:`ChapterBudget`; print it.
    """
    fwd, bwd = int(forward_images), int(backward_images)
    items = []
    for name, method, num_images, nfe in runs or []:
        f, b = evaluations_for(method, num_images, nfe)
        items.append((name, f, b))
        fwd, bwd = fwd + f, bwd + b
    if counted is not None:
        fwd += counted.forward_only_images
        bwd += counted.forward_backward_images
    source = "counted" if counted is not None and not runs else "planned" if not counted else "planned + counted"
    return ChapterBudget(chapter, _describe_device(device), fwd, bwd, t4_seconds(fwd, bwd, **t4_kwargs),
                         budget_s=float(budget_s), source=source, items=items)
