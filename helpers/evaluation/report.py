"""What an evaluation shows: the summary tables (``summary.md``) and the figures.

Everything here is computed from the rows of ``results.csv`` (:mod:`helpers.evaluation.harness`):
:func:`summary_markdown` writes a table per task and noise level (mean ± standard error over the
reported images), the parameters chosen on the selection images with the outcome of the grid
search (interior, widened, bounded by divergence, cap), and the SDEdit sweep;
:func:`parse_summary_tables` reads the per-task tables back. :func:`make_plots` draws the SDEdit
sweep and a bar chart per task; :func:`keyed_lines_figure` draws many lines that cannot be
confused: one key by colour, the other by line style, both explained in the legend.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .harness import (
    CHOSEN_PARAMETER,
    METHOD_NAMES,
    METHODS,
    _fmt,
    _noise_str,
    summarize,
)

__all__ = ["METRIC_COLUMNS", "summary_markdown", "parse_summary_tables", "make_plots", "keyed_lines_figure"]

#: (CSV field, column title in summary.md, decimals, higher is better)
METRIC_COLUMNS = [
    ("psnr", "PSNR [dB] ↑", 2, True),
    ("ssim", "SSIM ↑", 3, True),
    ("lpips_alex", "LPIPS-alex ↓", 3, False),
    ("lpips_vgg", "LPIPS-vgg ↓", 3, False),
    ("eyes_ok", "eye type ✓ ↑", 2, True),
    ("mouth_ok", "mouth type ✓ ↑", 2, True),
    ("eye_symmetry", "eye symmetry ↑", 2, True),
]


def _fmt_ms(m: float, se: float, decimals: int) -> str:
    if not math.isfinite(m):
        return "–"
    if not math.isfinite(se):
        return f"{m:.{decimals}f}"
    return f"{m:.{decimals}f} ± {se:.{decimals}f}"


def _fmt_sig(v: float, sig: int = 3) -> str:
    if not math.isfinite(v):
        return "–"
    if float(v).is_integer() and abs(v) < 1e6:
        return str(int(v))
    decimals = max(0, min(6, sig - 1 - int(math.floor(math.log10(abs(v))))))
    return f"{v:.{decimals}f}"


def _rows_for(rows, method, params, task, noise, image_idx) -> list[dict]:
    ims = set(image_idx)
    return [
        r for r in rows
        if r["method"] == method and r["params"] == params and r["task"] == task
        and _noise_str(float(r["noise"])) == noise and int(r["image"]) in ims
    ]


def _metric_columns(cfg, face: bool) -> list:
    cols = [c for c in METRIC_COLUMNS if c[0] in ("psnr", "ssim")]
    cols += [c for c in METRIC_COLUMNS if c[0].startswith("lpips_") and c[0][6:] in cfg.lpips_nets]
    if face:
        cols += [c for c in METRIC_COLUMNS if c[0] in ("eyes_ok", "mouth_ok", "eye_symmetry")]
    return cols


def summary_markdown(cfg, tasks, searches, rows, report_idx, select_idx, prior, command, reference) -> str:
    """The text of ``summary.md``: ``searches`` maps (task, noise string, method) to the harness's
    ``ParameterSearch`` (settings tried, the chosen one, the outcome), ``rows`` are this configuration's CSV rows."""
    face = reference is not None
    cols = _metric_columns(cfg, face)
    lines = []
    pname = getattr(prior, "name", cfg.prior)
    lines.append(f"# Evaluation of `{pname}`: {len(report_idx)} images × {len(cfg.seeds)} seed(s), "
                 + (f"{cfg.steps} steps" if not cfg.method_steps else
                    "steps " + ", ".join(f"{METHOD_NAMES[m]} {cfg.steps_for(m)}" for m in ("sdedit", "score_ald", "dps"))))
    lines.append("")
    lines.append(f"Command: `{command}`")
    lines.append("")
    data = {"faces": 'face_dataset("test")', "mnist": 'mnist_digits("heldout")'}.get(cfg.dataset or "", "the given images")
    lines.append(
        f"- Images: {data}, reported images {report_idx[0]}–{report_idx[-1]}; parameters chosen on images "
        + (f"{select_idx[0]}–{select_idx[-1]}" if select_idx else "(none)")
        + f" by mean {cfg.select_by} (the two sets are disjoint). Seeds: {list(cfg.seeds)}."
    )
    lines.append(
        "- Values: mean ± standard error over the reported images (each image's value is first averaged over "
        "the seeds; deterministic methods run once). Metrics in image space [0, 1] (data_range 1.0); "
        "σ_y is in model space [-1, 1]."
    )
    lines.append(
        f"- s / image: wall time of a batch (up to {cfg.batch_size} images) divided by its size, on "
        f"{getattr(prior, 'device', 'cpu')} with {torch.get_num_threads()} thread(s). NFE: network forward passes "
        "per image (DPS adds as many backward passes)."
    )
    if face:
        ref = "; ".join(f"{title.split(' ↑')[0]} {_fmt_ms(*reference[f][:2], d)}" for f, title, d, _ in cols if f in reference)
        lines.append(f"- Clean reported images (what a perfect reconstruction scores): {ref}.")
    lines.append("")
    header = ["method", "params", "n"] + [c[1] for c in cols] + ["s / image", "NFE"]
    for t in tasks:
        for noise in cfg.noise_levels:
            ns = _noise_str(noise)
            lines.append(f"## {t.description}, σ_y = {ns}")
            lines.append("")
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
            for m in cfg.methods:
                search = searches.get((t.name, ns, m))
                if search is None:
                    continue
                s, params = search.chosen, search.chosen.params
                rs = _rows_for(rows, m, params, t.name, ns, report_idx)
                n_div = sum(r["status"] == "diverged" for r in rs)
                ok = [r for r in rs if r["status"] == "ok"]
                cells = [s.label + (f" ({n_div} diverged)" if n_div else ""), f"`{params}`", str(len({int(r['image']) for r in ok}))]
                for f, _, d, _ in cols:
                    mean, se, _ = summarize(ok, f)
                    cells.append(_fmt_ms(mean, se, d))
                cells.append(_fmt_sig(summarize(ok, "seconds")[0]))
                cells.append(_fmt_sig(summarize(ok, "nfe")[0]))
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    lines += _selection_section(cfg, tasks, searches)
    lines += _sdedit_sweep_section(cfg, tasks, searches, rows, report_idx, cols)
    lines.append("Tasks: " + "; ".join(f"`{t.name}` = {t.description}" for t in tasks) + ".")
    lines.append("")
    return "\n".join(lines)


def _selection_section(cfg, tasks, searches) -> list:
    """The parameters chosen on the selection images, every value tried, and whether the optimum is interior."""
    chosen = [(t, _noise_str(n), m) for t in tasks for n in cfg.noise_levels for m in cfg.methods
              if searches.get((t.name, _noise_str(n), m)) is not None and searches[(t.name, _noise_str(n), m)].choice]
    if not chosen:
        return []
    lines = [f"## Parameters chosen on the selection images (best mean {cfg.select_by})", ""]
    lines.append(
        f"A best value at the edge of its grid was checked by widening the grid past that edge in ×3 steps (at most "
        f"{cfg.max_widenings}), until the best value was interior, the next value diverged, or the cap or the "
        "parameter's range (SDEdit: t0 ≤ 1) was reached. *grid edge* says which; values marked ⁺ were added by "
        "widening. A value that diverged on any selection image is never chosen."
    )
    lines.append("")
    lines.append(f"| task | σ_y | method | chosen | grid edge | mean {cfg.select_by} on the selection images |")
    lines.append("|---|---:|---|---|---|---|")
    for t, ns, m in chosen:
        search = searches[(t.name, ns, m)]
        parts = []
        for v, score in search.choice.tried:
            mark = " ✔" if v == search.chosen.value else ""
            added = "⁺" if v in search.choice.widened else ""
            parts.append(f"{_fmt(v)}{added}: {_fmt_sig(score, 4) if math.isfinite(score) else 'diverged'}{mark}")
        name = f"{METHOD_NAMES[m]} ({CHOSEN_PARAMETER.get(m, '')})"
        lines.append(f"| {t.name} | {ns} | {name} | `{search.chosen.params}` | {search.outcome()} | {'; '.join(parts)} |")
    lines.append("")
    return lines


def _sdedit_curves(cfg, tasks, searches, rows, report_idx, field_name) -> dict:
    """{(task name, noise string): [(t0, mean, s.e., chosen?)]} of the SDEdit sweep on the reported images."""
    curves = {}
    for t in tasks:
        for noise in cfg.noise_levels:
            ns = _noise_str(noise)
            search = searches.get((t.name, ns, "sdedit"))
            if search is None or search.choice is None:
                continue
            points = []
            for s in search.report_settings(True):
                ok = [r for r in _rows_for(rows, "sdedit", s.params, t.name, ns, report_idx) if r["status"] == "ok"]
                mean, se, _ = summarize(ok, field_name)
                points.append((s.value, mean, se, s.params == search.chosen.params))
            curves[(t.name, ns)] = points
    return curves


def _sdedit_sweep_section(cfg, tasks, searches, rows, report_idx, cols) -> list:
    if "sdedit" not in cfg.methods or not cfg.sdedit_sweep_on_report:
        return []
    lines = []
    for f, title, d, _ in [c for c in cols if c[0] in ("psnr",) or c[0].startswith("lpips_")][:2]:
        curves = _sdedit_curves(cfg, tasks, searches, rows, report_idx, f)
        if not curves:
            return []
        t0s = sorted({p[0] for points in curves.values() for p in points})
        lines.append(f"## SDEdit sweep on the reported images: {title} vs t0 (✔ = chosen on the selection images)")
        lines.append("")
        lines.append("| task | σ_y | " + " | ".join(f"t0 = {_fmt(t0)}" for t0 in t0s) + " |")
        lines.append("|---|---:|" + "---:|" * len(t0s))
        for (task, ns), points in curves.items():
            by_t0 = {p[0]: p for p in points}
            cells = [(_fmt_ms(by_t0[t0][1], by_t0[t0][2], d) + (" ✔" if by_t0[t0][3] else "")) if t0 in by_t0 else "–"
                     for t0 in t0s]
            lines.append(f"| {task} | {ns} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def parse_summary_tables(text: str) -> dict:
    """Read the per-task tables of a ``summary.md`` back: ``{(task description, σ_y string): [row dicts]}``.

    Each row dict maps the table's column titles to the cell strings. Used by the tests to check
    that the Markdown agrees with ``results.csv``.
    """
    tables, current, header = {}, None, None
    for line in text.splitlines():
        if line.startswith("## ") and ", σ_y = " in line:
            desc, ns = line[3:].rsplit(", σ_y = ", 1)
            current, header = (desc, ns.strip()), None
            tables[current] = []
        elif line.startswith("## "):
            current = None
        elif current is not None and line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
            elif not set("".join(cells)) <= set("-: "):
                tables[current].append(dict(zip(header, cells)))
    return tables


# ---------------------------------------------------------------------------- figures
#: line styles that tell up to 8 keys apart (then dash patterns of growing length)
_LINE_STYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2)), (0, (3, 1, 1, 1, 3, 1))]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _colours(n: int) -> list:
    """``n`` colours, all different: the 10-colour cycle up to 10, then a 20-colour map, then a continuous one."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]


def _line_style(i: int):
    return _LINE_STYLES[i] if i < len(_LINE_STYLES) else (0, tuple([2 + i, 2] + [1, 2] * (i - len(_LINE_STYLES) + 1)))


def keyed_lines_figure(series: Sequence[tuple], *, colour_title: str, style_title: str, xlabel: str, ylabel: str,
                       title: Optional[str] = None, logx: bool = False, figsize=(6.4, 4.4)):
    """One line per ``(colour key, style key, xs, ys, errs or None)``: colour tells the first key, line style
    (and marker) the second, so no two lines look alike however many there are. The legend has two parts,
    titled ``colour_title`` ("colour = task") and ``style_title`` ("line style = σ_y")."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if not series:
        raise ValueError("series is empty")
    colour_keys = list(dict.fromkeys(s[0] for s in series))
    style_keys = list(dict.fromkeys(s[1] for s in series))
    colour = dict(zip(colour_keys, _colours(len(colour_keys))))
    style = {k: (_line_style(i), _MARKERS[i % len(_MARKERS)]) for i, k in enumerate(style_keys)}
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot(1, 1, 1)
    for ckey, skey, xs, ys, errs in series:
        ls, marker = style[skey]
        kw = dict(color=colour[ckey], linestyle=ls, marker=marker, markersize=4)
        if errs is not None:
            ax.errorbar(np.asarray(xs, float), np.asarray(ys, float), yerr=np.asarray(errs, float), capsize=3, **kw)
        else:
            ax.plot(np.asarray(xs, float), np.asarray(ys, float), **kw)
    colour_handles = [Line2D([], [], color=colour[k], linestyle="-", linewidth=2) for k in colour_keys]
    style_handles = [Line2D([], [], color="0.3", linestyle=style[k][0], marker=style[k][1], markersize=4) for k in style_keys]
    first = ax.legend(colour_handles, [str(k) for k in colour_keys], title=colour_title, fontsize=7, title_fontsize=7,
                      loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.add_artist(first)
    ax.legend(style_handles, [str(k) for k in style_keys], title=style_title, fontsize=7, title_fontsize=7,
              loc="lower left", bbox_to_anchor=(1.01, 0.0))
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.set_layout_engine("constrained")
    return fig


def _method_colours() -> dict:
    """One fixed colour per method, the same in every figure."""
    return dict(zip(METHODS, _colours(len(METHODS))))


def make_plots(out: Path, cfg, tasks, searches, rows, report_idx) -> list:
    """``sdedit_sweep_<metric>.png`` (colour = task, line style = σ_y) and ``bars_<task>.png``; returns the paths."""
    from matplotlib.figure import Figure

    paths = []
    metrics = [("psnr", "PSNR [dB]")] + [(f"lpips_{n}", f"LPIPS ({n})") for n in cfg.lpips_nets]
    if "sdedit" in cfg.methods and cfg.sdedit_sweep_on_report:
        for f, ylabel in metrics[:2]:
            curves = _sdedit_curves(cfg, tasks, searches, rows, report_idx, f)
            if not curves:
                break
            series = [(task, f"σ_y = {ns}", [p[0] for p in pts], [p[1] for p in pts],
                       [p[2] if math.isfinite(p[2]) else 0.0 for p in pts]) for (task, ns), pts in curves.items()]
            fig = keyed_lines_figure(series, colour_title="colour = task", style_title="line style = noise",
                                     xlabel="SDEdit start time t0", ylabel=ylabel,
                                     title=f"SDEdit sweep ({len(report_idx)} images, mean ± s.e.)",
                                     figsize=(6.4, 3.6) if len(series) <= 4 else (7.2, 4.6))
            p = out / f"sdedit_sweep_{f}.png"
            fig.savefig(p, dpi=120)
            paths.append(p)
    bar_metrics = [("psnr", "PSNR [dB] ↑"), ("ssim", "SSIM ↑")] + [(f"lpips_{n}", f"LPIPS-{n} ↓") for n in cfg.lpips_nets[:1]]
    method_colour = _method_colours()
    for t in tasks:
        methods = list(cfg.methods)
        fig = Figure(figsize=(4.2 * len(bar_metrics), 3.4))
        axes = fig.subplots(1, len(bar_metrics), squeeze=False)[0]
        width = 0.8 / max(1, len(methods))
        for ax, (f, title) in zip(axes, bar_metrics):
            for j, m in enumerate(methods):
                means, ses = [], []
                for noise in cfg.noise_levels:
                    ns = _noise_str(noise)
                    search = searches.get((t.name, ns, m))
                    ok = ([r for r in _rows_for(rows, m, search.chosen.params, t.name, ns, report_idx) if r["status"] == "ok"]
                          if search else [])
                    mean, se, _ = summarize(ok, f)
                    means.append(mean)
                    ses.append(se if math.isfinite(se) else 0.0)
                xs = np.arange(len(cfg.noise_levels)) + (j - (len(methods) - 1) / 2) * width
                ax.bar(xs, means, width, yerr=ses, capsize=2, label=METHOD_NAMES[m], color=method_colour[m])
            ax.set_xticks(np.arange(len(cfg.noise_levels)))
            ax.set_xticklabels([f"σ_y = {_noise_str(n)}" for n in cfg.noise_levels])
            ax.set_title(title, fontsize=9)
            ax.grid(True, axis="y", alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{t.description} ({len(report_idx)} images, mean ± s.e.)", fontsize=10)
        fig.set_layout_engine("constrained")
        p = out / f"bars_{t.name}.png"
        fig.savefig(p, dpi=120)
        paths.append(p)
    return paths
