"""Figures for the course: image grids and tables, sampling trajectories, metric sweeps.

Every function returns a :class:`matplotlib.figure.Figure` built **without pyplot**: nothing
is shown or kept in pyplot's global state, so the helpers are safe in scripts, tests and
headless CI. In Jupyter a returned figure is displayed as the cell's value; elsewhere save
it with ``fig.savefig(path)``.

Images are torch tensors or numpy arrays in torch layout: one image ``(C, H, W)`` with
C = 1 (grayscale) or 3 (RGB), a bare ``(H, W)`` grayscale image, or a batch
``(B, C, H, W)``. Tensors on any device are copied to the CPU. The value range is always
an explicit argument: ``(-1, 1)`` for model space (network inputs/outputs, samples),
``(0, 1)`` for image space; values are mapped linearly to [0, 1] and clipped for display.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["image_grid", "image_table", "trajectory_strip", "metric_curve", "to_display", "cell_size_for"]


def cell_size_for(image_size: int, base: float = 1.0) -> float:
    """Inches per image cell for images of ``image_size`` pixels: ``base`` up to 100 px, then growing
    in proportion to the size, at most 2.5 × ``base`` (reached at 250 px).

    The chapters size their picture tables for the 32-px CPU prior (``base``); a 256-px result of the
    GPU path drawn in the same cell would show ~100 of its pixels. ``cell_size_for(256)`` = 2.5.
    """
    if not (isinstance(image_size, (int, float)) and image_size > 0):
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size!r}")
    if not (isinstance(base, (int, float)) and base > 0):
        raise ValueError(f"base must be a positive size in inches, got {base!r}")
    return float(base) * min(2.5, max(1.0, float(image_size) / 100.0))


def _register_png_display() -> None:
    """Show pyplot-free figures as PNG in Jupyter (and in the rendered book).

    IPython only knows how to display figures made through pyplot's inline backend; a bare
    :class:`Figure` would print as ``<Figure size ...>``. Registering a PNG formatter for the
    class fixes that without touching pyplot's global state. Outside IPython this does nothing.
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:  # pragma: no cover - IPython is optional
        return
    shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["image/png"]
    formatter.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight", dpi=110))


_register_png_display()

ArrayLike = Union[np.ndarray, torch.Tensor]
ImagesLike = Union[ArrayLike, Sequence[ArrayLike]]

_TEXT_SIZE = 8


def _check_range(value_range: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"value_range must be a pair (low, high), e.g. (-1, 1) for model space or (0, 1) "
            f"for image space, got {value_range!r}"
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"value_range must satisfy low < high, got {value_range!r}")
    return lo, hi


def to_display(image: ArrayLike, value_range: Sequence[float]) -> np.ndarray:
    """One image as a numpy array ready for ``imshow``: (H, W) or (H, W, 3), values in [0, 1].

    Args:
        image: (C, H, W) with C in {1, 3}, (1, C, H, W), or (H, W); tensor (any device)
            or array.
        value_range: (low, high) of the input, mapped to (0, 1); values outside are clipped.
    """
    lo, hi = _check_range(value_range)
    if isinstance(image, torch.Tensor):
        a = image.detach().to("cpu", torch.float32).numpy()
    else:
        a = np.asarray(image, dtype=np.float32)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3:
        if a.shape[0] in (1, 3):
            a = a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)
        elif a.shape[-1] in (1, 3):  # channel-last array, e.g. from skimage or PIL
            a = a[..., 0] if a.shape[-1] == 1 else a
        else:
            raise ValueError(f"image must have 1 or 3 channels in layout (C, H, W), got shape {a.shape}")
    elif a.ndim != 2:
        raise ValueError(f"image must have shape (C, H, W), (1, C, H, W) or (H, W), got {a.shape}")
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def _as_list(images: ImagesLike) -> list[ArrayLike]:
    if isinstance(images, (torch.Tensor, np.ndarray)):
        if images.ndim == 4:
            return list(images)
        return [images]
    return list(images)


def _show(ax, image: ArrayLike, value_range: Sequence[float]) -> None:
    a = to_display(image, value_range)
    if a.ndim == 2:
        ax.imshow(a, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(a, interpolation="nearest")
    ax.set_axis_off()


def _annotate(ax, text: str) -> None:
    """Text centred under an image (axes are off, so an x-label would not show)."""
    ax.text(0.5, -0.03, text, transform=ax.transAxes, ha="center", va="top", fontsize=_TEXT_SIZE)


def _row_label(ax, text: str) -> None:
    ax.text(-0.06, 0.5, text, transform=ax.transAxes, ha="right", va="center", rotation=90,
            fontsize=_TEXT_SIZE + 1)  # fmt: skip


def _check_len(name: str, values: Optional[Sequence], n: int) -> None:
    if values is not None and len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} images")


def image_grid(
    images: ImagesLike,
    *,
    value_range: Sequence[float],
    titles: Optional[Sequence[str]] = None,
    nrow: Optional[int] = None,
    annotations: Optional[Sequence[str]] = None,
    figsize: Optional[tuple[float, float]] = None,
    suptitle: Optional[str] = None,
    cell_size: float = 1.8,
) -> Figure:
    """Images in a grid, with optional titles above and annotations below each.

    Args:
        images: a (B, C, H, W) tensor/array, or a list of (C, H, W) / (H, W) images;
            grayscale and RGB may be mixed.
        value_range: required; (-1, 1) for model space, (0, 1) for image space.
        titles: one title per image (above it).
        nrow: images per row (torchvision's ``make_grid`` convention); default
            ``min(len(images), 8)``.
        annotations: one string per image drawn under it, e.g. ``"PSNR 24.1 dB / LPIPS 0.21"``.
        figsize: figure size in inches; default ``cell_size`` per image.
        suptitle: title of the whole figure.

    Returns:
        The figure, with exactly one (axis-off) axes per image.
    """
    imgs = _as_list(images)
    n = len(imgs)
    if n == 0:
        raise ValueError("images is empty")
    _check_len("titles", titles, n)
    _check_len("annotations", annotations, n)
    ncol = min(n, 8) if nrow is None else int(nrow)
    if ncol < 1:
        raise ValueError(f"nrow (images per row) must be >= 1, got {nrow}")
    ncol = min(ncol, n)
    nrows = math.ceil(n / ncol)
    extra = 0.3 * ((titles is not None) + (annotations is not None))
    fig = Figure(figsize=figsize or (cell_size * ncol, (cell_size + extra) * nrows + 0.4 * bool(suptitle)))
    axes = fig.subplots(nrows, ncol, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            fig.delaxes(ax)
            continue
        _show(ax, imgs[i], value_range)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=_TEXT_SIZE + 1)
        if annotations is not None:
            _annotate(ax, str(annotations[i]))
    if suptitle:
        fig.suptitle(suptitle)
    fig.set_layout_engine("constrained")
    return fig


def image_table(
    rows: Mapping[str, ImagesLike],
    *,
    value_range: Sequence[float],
    col_titles: Optional[Sequence[str]] = None,
    annotations: Optional[Mapping[str, Sequence[str]]] = None,
    figsize: Optional[tuple[float, float]] = None,
    suptitle: Optional[str] = None,
    cell_size: float = 1.6,
) -> Figure:
    """A 2-D layout: one row per method (labelled on the left), one column per image.

    Args:
        rows: ``{"measurement": y, "SDEdit": x_sdedit, "DPS": x_dps, "truth": x}``; each value
            a (B, C, H, W) batch or a list of images. Rows may differ in length; missing
            cells stay empty.
        value_range: required; (-1, 1) for model space, (0, 1) for image space. All rows
            share it (convert measurements to the same space first).
        col_titles: titles above the first row, one per column.
        annotations: ``{row name: [one string per image]}`` drawn under the images,
            e.g. PSNR/LPIPS values; rows not in the mapping get none.
        figsize: figure size in inches; default ``cell_size`` per cell.
        suptitle: title of the whole figure.

    Returns:
        The figure, with one (axis-off) axes per image.
    """
    if not rows:
        raise ValueError("rows is empty")
    table = {str(k): _as_list(v) for k, v in rows.items()}
    ncol = max(len(v) for v in table.values())
    if ncol == 0:
        raise ValueError("every row is empty")
    if col_titles is not None and len(col_titles) != ncol:
        raise ValueError(f"col_titles has {len(col_titles)} entries for {ncol} columns")
    annotations = dict(annotations or {})
    unknown = set(annotations) - set(table)
    if unknown:
        raise ValueError(f"annotations name rows {sorted(unknown)} that are not in rows {list(table)}")
    for name, texts in annotations.items():
        _check_len(f"annotations[{name!r}]", texts, len(table[name]))
    nrows = len(table)
    fig = Figure(
        figsize=figsize
        or (cell_size * ncol + 0.4, (cell_size + 0.3 * bool(annotations)) * nrows + 0.3 * bool(col_titles))
    )
    axes = fig.subplots(nrows, ncol, squeeze=False)
    for r, (name, imgs) in enumerate(table.items()):
        for c in range(ncol):
            ax = axes[r, c]
            if c >= len(imgs):
                fig.delaxes(ax)
                continue
            _show(ax, imgs[c], value_range)
            if c == 0:
                _row_label(ax, name)
            if r == 0 and col_titles is not None:
                ax.set_title(str(col_titles[c]), fontsize=_TEXT_SIZE + 1)
            if name in annotations:
                _annotate(ax, str(annotations[name][c]))
    if suptitle:
        fig.suptitle(suptitle)
    fig.set_layout_engine("constrained")
    return fig


def _first_image(a: ArrayLike, index: int) -> ArrayLike:
    return a[index] if a.ndim == 4 else a


def trajectory_strip(
    timesteps: Sequence[int],
    x_t_list: Sequence[ArrayLike],
    x0_list: Sequence[ArrayLike],
    *,
    value_range: Sequence[float] = (-1.0, 1.0),
    index: int = 0,
    row_labels: tuple[str, str] = (r"$x_t$", r"$\hat{x}_0$"),
    figsize: Optional[tuple[float, float]] = None,
    suptitle: Optional[str] = None,
    cell_size: float = 1.4,
) -> Figure:
    """A sampling trajectory: x_t over time (top row), the prediction x̂_0 over time (bottom).

    Args:
        timesteps: the t of each column, e.g. ``[999, 750, 500, 250, 0]``; titles read "t = ...".
        x_t_list: one image per timestep, (C, H, W) or a (B, C, H, W) batch (image ``index``
            of it is shown).
        x0_list: the matching x̂_0(x_t) predictions, same shapes.
        value_range: default (-1, 1), model space, where samplers work.
        index: which image of a batch to show.
        row_labels: labels left of the two rows.

    Returns:
        The figure, with ``2 * len(timesteps)`` axes.
    """
    T = len(timesteps)
    if T == 0:
        raise ValueError("timesteps is empty")
    if len(x_t_list) != T or len(x0_list) != T:
        raise ValueError(
            f"need one x_t and one x0 per timestep: {T} timesteps, {len(x_t_list)} x_t, "
            f"{len(x0_list)} x0"
        )
    fig = Figure(figsize=figsize or (cell_size * T + 0.4, 2 * cell_size + 0.4 + 0.3 * bool(suptitle)))
    axes = fig.subplots(2, T, squeeze=False)
    for c, t in enumerate(timesteps):
        t_label = int(t) if isinstance(t, (int, np.integer)) or float(t).is_integer() else float(t)
        _show(axes[0, c], _first_image(x_t_list[c], index), value_range)
        axes[0, c].set_title(f"t = {t_label}", fontsize=_TEXT_SIZE + 1)
        _show(axes[1, c], _first_image(x0_list[c], index), value_range)
    _row_label(axes[0, 0], row_labels[0])
    _row_label(axes[1, 0], row_labels[1])
    if suptitle:
        fig.suptitle(suptitle)
    fig.set_layout_engine("constrained")
    return fig


def metric_curve(
    xs: Sequence[float],
    ys_dict: Mapping[str, Union[Sequence[float], np.ndarray]],
    *,
    xlabel: str,
    ylabel: str,
    yerr: Optional[Mapping[str, Sequence[float]]] = None,
    title: Optional[str] = None,
    logx: bool = False,
    hlines: Optional[Mapping[str, float]] = None,
    figsize: tuple[float, float] = (4.8, 3.2),
) -> Figure:
    """Metric sweeps, e.g. PSNR vs SDEdit's t0 for several methods, one line per method.

    Args:
        xs: the swept values, length N.
        ys_dict: ``{label: values}``; values of length N, or a 2-D array of shape (R, N)
            (R repeats, e.g. seeds or images), plotted as mean with ±1 std error bars.
        xlabel, ylabel: axis labels (required, with units: "PSNR [dB]").
        yerr: ``{label: error bar half-widths}`` for 1-D series (overrides nothing for 2-D).
        title: axes title.
        logx: logarithmic x axis (e.g. for NFE sweeps).
        hlines: ``{label: y}`` dashed horizontal reference lines (e.g. a paper's number).

    Returns:
        The figure, with one axes.
    """
    xs_arr = np.asarray(xs, dtype=float)
    if xs_arr.ndim != 1 or len(xs_arr) == 0:
        raise ValueError(f"xs must be a non-empty 1-D sequence, got shape {xs_arr.shape}")
    if not ys_dict:
        raise ValueError("ys_dict is empty")
    yerr = dict(yerr or {})
    unknown = set(yerr) - set(ys_dict)
    if unknown:
        raise ValueError(f"yerr names series {sorted(unknown)} that are not in ys_dict")
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot(1, 1, 1)
    for label, ys in ys_dict.items():
        y = np.asarray(ys, dtype=float)
        err = None
        if y.ndim == 2:
            if label in yerr:
                raise ValueError(f"series {label!r} is 2-D (repeats); its error bars come from the std")
            err = y.std(axis=0, ddof=1) if y.shape[0] > 1 else None
            y = y.mean(axis=0)
        elif label in yerr:
            err = np.asarray(yerr[label], dtype=float)
            if err.shape != y.shape:
                raise ValueError(f"yerr[{label!r}] has shape {err.shape}, expected {y.shape}")
        if y.shape != xs_arr.shape:
            raise ValueError(f"series {label!r} has {y.shape[-1] if y.ndim else 0} values for {len(xs_arr)} xs")
        if err is not None:
            ax.errorbar(xs_arr, y, yerr=err, marker="o", markersize=4, capsize=3, label=str(label))
        else:
            ax.plot(xs_arr, y, marker="o", markersize=4, label=str(label))
    for label, yv in (hlines or {}).items():
        ax.axhline(float(yv), linestyle="--", linewidth=1, color="gray")
        ax.annotate(str(label), xy=(0.01, float(yv)), xycoords=("axes fraction", "data"),
                    ha="left", va="bottom", fontsize=_TEXT_SIZE, color="gray")  # fmt: skip
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=_TEXT_SIZE)
    fig.set_layout_engine("constrained")
    return fig
