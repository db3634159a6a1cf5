"""Compare the course's methods on inverse problems: methods × tasks × images × seeds.

Run it from the repository root (one thread on a busy machine)::

    python -m helpers.evaluate --prior faces --threads 1
    python -m helpers.evaluate --prior faces --tasks deblur box --noise 0.05 --methods baseline sdedit dps \\
        --n-images 8 --n-select 8 --steps 50 --seeds 0 1 --out results/faces-small

**Methods** (``--methods``):

===============  =====================================================================
``measurement``  the measurement itself, brought to image size by the operator's
                 pseudo-inverse: the blurred image, the masked image (missing pixels
                 grey), the nearest-neighbour upsampled low-resolution image
``baseline``     the classical method of each task: Wiener deconvolution
                 (``skimage.restoration.wiener`` with the operator's kernel, its balance
                 chosen from ``--wiener-balance`` on the selection images), biharmonic
                 inpainting (``skimage.restoration.inpaint_biharmonic``), bicubic
                 upsampling (``torch.nn.functional.interpolate(mode="bicubic")``)
``sdedit``       :func:`helpers.samplers.sdedit`, a sweep over ``--sdedit-t0``; the t0
                 reported per task and noise level is chosen on the *selection images*
``score_ald``    :func:`helpers.samplers.score_ald` (λ = ``--ald-lambda``, Langevin rule)
``dps``          :func:`helpers.samplers.dps` (ζ′ = ``--dps-zeta``)
===============  =====================================================================

Any method given several values (``--sdedit-t0``, ``--wiener-balance``, ``--dps-zeta``,
``--ald-lambda``) is run with every value on the selection images, and the value with the
best mean ``--select-by`` metric (PSNR by default) is reported. A best value at the *edge* of
its grid is not trusted: the grid is widened past that edge in ×3 steps (λ 0.3 1 3 with the best
at 3: 9, then 27, ...) until the best value is interior, the next value diverges, or
``--max-widenings`` (default 6) or the parameter's range (t0 ≤ 1) is reached; ``summary.md`` and
``config.json`` say which, per task, noise level and method
(:mod:`helpers.evaluation.selection`). A value that diverges on a selection image is never chosen.
The selection images are the first ``--n-select`` images of the data set (default 8; fewer
are refused for a choice among several values unless ``--allow-small-selection`` is given, for
tests and quick runs), the reported ones the next ``--n-images``: the two sets never overlap.
SDEdit's whole sweep (widened values included) is also run on the reported images, for the
t0 plot.

**Tasks** (``--tasks``, all with measurement noise ``--noise``, default σ_y = 0.05 in
model space [-1, 1] *and* noiseless): ``deblur`` (Gaussian blur, see :func:`blur_setting`),
``box`` (a centred box of half the image side), ``box_eyes`` / ``box_mouth`` (boxes over
the eyes / the mouth of the cartoon faces, :data:`helpers.face_measures.EYE_BOX` /
:data:`~helpers.face_measures.MOUTH_BOX`), ``random`` (keep 30 % of the pixels), ``sr2`` and
``sr4`` (super-resolution ×2, ×4: average pooling). ``all`` runs every task.

**Data**: the faces prior is scored on ``face_dataset("test")`` (never the training faces),
the MNIST prior on ``mnist_digits("heldout")``.

**Metrics** (image space [0, 1], ``data_range=1.0``): PSNR, SSIM, LPIPS (``--lpips``: alex
and vgg), wall time per image (the batch's time divided by its size), NFE; on faces also
whether the attribute classifiers of :mod:`helpers.face_measures` recover the true eye type
and mouth type from the reconstruction, and the eye-symmetry score. Tables give mean ± standard
error over the reported images (each image's values are first averaged over the seeds).

**Outputs** in ``--out`` (default ``results/<prior>/``):

* ``results.csv`` -- one row per (method, params, task, noise, image, seed), appended as
  each batch finishes. A restarted run reads it and skips every key already there, so an
  interrupted run loses at most one batch. Rows of other configurations (e.g. another
  ``--steps``) stay in the file and are ignored by the summary.
* ``summary.md`` -- a table per task and noise level, the chosen parameters, the SDEdit sweep.
* ``sdedit_sweep_psnr.png``, ``sdedit_sweep_lpips_<net>.png`` -- metric vs t0 (colour = task,
  line style = noise level); ``bars_<task>.png`` -- bar charts per task.
* ``config.json`` (settings, the chosen parameters, and under ``selection`` every value tried and
  whether the optimum is interior), ``command.txt`` (the exact command).
* ``fingerprint.json`` -- what the rows depend on beyond their key (prior and a hash of its
  weights, data set and a hash per image, LPIPS nets and minimum size, face measures, ScoreALD's
  likelihood weight and step rule). A run into a folder of another configuration stops naming
  the differing fields: give it its own ``--out``. A folder from before fingerprints is adopted
  when its ``config.json`` agrees.
* ``evaluate.lock`` -- while a run writes the folder: pid, host and start time. A second run on
  the same folder stops and names that process; a lock whose process is gone is taken over.

From Python, :func:`run_evaluation` takes an :class:`EvalConfig` and, optionally, the prior,
the images (and face attributes) and the attribute classifiers to use instead of loading them.

This module is the command line and the one place to import from; the code lives in
:mod:`helpers.evaluation`: ``tasks`` (the inverse problems and classical baselines),
``selection`` (choosing a parameter on a grid, widened past its edge), ``harness``
(:class:`EvalConfig`, :func:`run_evaluation`, the results file and resuming) and ``report``
(summary tables and figures).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Optional

import torch

from . import samplers  # noqa: F401 - the samplers the harness calls (tests patch helpers.evaluate.samplers.dps)
from .evaluation.harness import (
    CSV_FIELDS,
    KEY_FIELDS,
    METHOD_NAMES,
    METHODS,
    MIN_SELECT_IMAGES,
    EvalConfig,
    EvalResult,
    ParameterSearch,
    ResultsLockedError,
    ResultsMismatchError,
    _mean_se,  # noqa: F401 - re-exported: findings and steps_curve import it from here
    _noise_str,  # noqa: F401 - re-exported
    per_image_values,
    read_results,
    run_evaluation,
    summarize,
)
from .evaluation.report import METRIC_COLUMNS, keyed_lines_figure, parse_summary_tables
from .evaluation.selection import MAX_WIDENINGS, GridChoice, choose_on_grid
from .evaluation.tasks import (
    DEFAULT_TASKS,
    TASKS,
    Task,
    baseline_reconstruction,
    blur_setting,
    build_task,
)

__all__ = [
    "TASKS",
    "DEFAULT_TASKS",
    "METHODS",
    "METHOD_NAMES",
    "CSV_FIELDS",
    "KEY_FIELDS",
    "METRIC_COLUMNS",
    "MIN_SELECT_IMAGES",
    "MAX_WIDENINGS",
    "Task",
    "EvalConfig",
    "EvalResult",
    "ParameterSearch",
    "ResultsMismatchError",
    "ResultsLockedError",
    "GridChoice",
    "blur_setting",
    "build_task",
    "baseline_reconstruction",
    "choose_on_grid",
    "run_evaluation",
    "read_results",
    "per_image_values",
    "summarize",
    "parse_summary_tables",
    "keyed_lines_figure",
    "config_from_args",
    "small_selection_problem",
    "main",
]


def small_selection_problem(cfg: EvalConfig) -> Optional[str]:
    """Why ``cfg`` chooses parameters on too few images (None if it does not): a choice among several
    values made on fewer than :data:`MIN_SELECT_IMAGES` images is mostly noise."""
    choosing = cfg.methods_choosing()
    if not choosing or cfg.n_select >= MIN_SELECT_IMAGES:
        return None
    return (
        f"--n-select {cfg.n_select}: {', '.join(choosing)} choose among several values on the selection images, "
        f"and fewer than {MIN_SELECT_IMAGES} images make that choice mostly noise. Give --n-select "
        f"{MIN_SELECT_IMAGES} or more, a single value per method, or --allow-small-selection (tests, quick runs)."
    )


def _parser() -> argparse.ArgumentParser:
    d = EvalConfig()
    p = argparse.ArgumentParser(prog="python -m helpers.evaluate", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--prior", default=d.prior, help="bundled name (faces, mnist), local folder or hub id")
    p.add_argument("--dataset", default=None, choices=["faces", "mnist"], help="default: from the prior's name")
    p.add_argument("--tasks", nargs="+", default=list(d.tasks), help=f"some of {list(TASKS)}, or 'all'")
    p.add_argument("--noise", nargs="+", type=float, default=list(d.noise_levels), help="σ_y values (model space)")
    p.add_argument("--methods", nargs="+", default=list(d.methods), choices=list(METHODS))
    p.add_argument("--n-images", type=int, default=d.n_images, help="reported images")
    p.add_argument("--n-select", type=int, default=d.n_select,
                   help=f"images for choosing t0 etc. (disjoint; at least {MIN_SELECT_IMAGES} for a choice)")
    p.add_argument("--steps", type=int, default=d.steps, help="sampler steps (SDEdit: of a full t0 = 1 trajectory)")
    p.add_argument("--seeds", nargs="+", type=int, default=list(d.seeds))
    p.add_argument("--sdedit-t0", nargs="+", type=float, default=list(d.sdedit_t0s))
    p.add_argument("--no-sdedit-sweep-report", action="store_true", help="run only the chosen t0 on the reported images")
    p.add_argument("--dps-zeta", nargs="+", type=float, default=list(d.dps_step_sizes), help="DPS ζ′ (several: chosen)")
    p.add_argument("--ald-lambda", nargs="+", type=float, default=list(d.ald_step_sizes), help="ScoreALD λ")
    p.add_argument("--ald-rule", default=d.ald_step_rule, choices=["langevin", "poster"])
    p.add_argument("--wiener-balance", nargs="+", type=float, default=list(d.wiener_balances))
    p.add_argument("--select-by", default=d.select_by, choices=["psnr", "ssim", "lpips_alex", "lpips_vgg"])
    p.add_argument("--max-widenings", type=int, default=d.max_widenings,
                   help="×3 steps past a grid edge holding the best value (0: never widen)")
    p.add_argument("--allow-small-selection", action="store_true",
                   help=f"choose among several values on fewer than {MIN_SELECT_IMAGES} selection images (tests, quick runs)")
    p.add_argument("--lpips", nargs="+", default=list(d.lpips_nets), help="LPIPS nets: alex vgg, or none")
    p.add_argument("--face-measures", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 on a busy machine)")
    p.add_argument("--out", default=None, help="output folder; None means results/<prior>/")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(argv: Optional[list] = None) -> tuple[EvalConfig, argparse.Namespace]:
    """The :class:`EvalConfig` of a command line (and the parsed arguments).

    Exits with a usage error when parameters would be chosen on fewer than :data:`MIN_SELECT_IMAGES`
    images without ``--allow-small-selection``.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    tasks = list(TASKS) if args.tasks == ["all"] else args.tasks
    lpips_nets = [] if args.lpips == ["none"] else args.lpips
    argv_list = sys.argv[1:] if argv is None else list(argv)
    cfg = EvalConfig(
        prior=args.prior, dataset=args.dataset, tasks=tasks, noise_levels=args.noise, methods=args.methods,
        n_images=args.n_images, n_select=args.n_select, steps=args.steps, seeds=args.seeds,
        sdedit_t0s=args.sdedit_t0, sdedit_sweep_on_report=not args.no_sdedit_sweep_report,
        dps_step_sizes=args.dps_zeta, ald_step_sizes=args.ald_lambda, ald_step_rule=args.ald_rule,
        wiener_balances=args.wiener_balance, select_by=args.select_by, max_widenings=args.max_widenings,
        lpips_nets=lpips_nets,
        face_measures={"auto": None, "on": True, "off": False}[args.face_measures], batch_size=args.batch_size,
        device=args.device, out_dir=args.out, plots=not args.no_plots, progress=not args.no_progress,
        command="python -m helpers.evaluate" + ("" if not argv_list else " " + shlex.join(argv_list)),
    )
    problem = small_selection_problem(cfg)
    if problem and not args.allow_small_selection:
        parser.error(problem)
    return cfg, args


def main(argv: Optional[list] = None) -> int:
    cfg, args = config_from_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = run_evaluation(cfg)
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result.summary_path.read_text())
    print(f"wrote {result.csv_path}, {result.summary_path} and {len(result.plots)} plot(s) in {result.out_dir} "
          f"({result.computed} reconstructions computed, {result.skipped} found in results.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
