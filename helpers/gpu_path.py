"""Run every chapter's GPU branch without a GPU: the stand-in test and the evaluation counts.

On a CUDA GPU the chapters use the real face model, ``google/ddpm-celebahq-256``. No GPU and no
hub are reachable in CI, so this module executes a chapter notebook with
``$COURSE_GPU_STANDIN`` (:data:`helpers.runtime.STANDIN_ENV`) pointing at a stand-in written by
:mod:`helpers.standin`: :func:`helpers.runtime.choose_prior` then takes the GPU path (GPU
settings, aligned 256-px faces) on the CPU. Two modes, both through :func:`run_chapter`:

``"count"``
    The chapter's GPU settings as they are, with the network replaced by the exact noise predictor
    of a standard Gaussian data set, ``ε(x_t, t) = √(1 − ᾱ_t) · x_t`` (differentiable in ``x_t``),
    so a chapter runs in seconds. A guided run that diverges (a large step size) is counted as if it
    had run to its end, so the counts bound the real settings' work from above. Every call of
    :meth:`helpers.priors.Prior.eps` is counted: forward image-evaluations and those a backward
    pass went through (DPS). These are the evaluations the real settings make; with the per-
    evaluation cost of :mod:`helpers.gpu_budget` they give the chapter's time on a T4. The counts
    are committed in ``helpers/gpu_path_counts.json`` (:data:`COUNTS_FILE`), which every chapter
    reads to print its expected time at its top (:func:`chapter_report`); the test checks that the
    committed counts are the ones the chapters make now.
``"tiny"``
    The real stand-in network (the narrow one in CI: the celebahq block layout, attention and
    scheduler with channels cut by 4) at tiny step counts and few images (:data:`TINY_SETTINGS`,
    set in a cell inserted after the parameters cell): every cell of the GPU branch runs on a
    real UNet at 256 px, so a shape, device or plotting error fails.

Command line (writes the counts file; about 5 minutes on 2 cores)::

    python -m helpers.gpu_path --count --write
    python -m helpers.gpu_path --tiny --chapter sdedit
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from .gpu_budget import (BOOK_BUDGET_S, CHAPTER_BUDGET_S, EvaluationCount, _describe_device, per_evaluation_ms,
                         record_evaluation, t4_seconds)

__all__ = ["CHAPTERS", "COUNTS_FILE", "TINY_SETTINGS", "CPU_BUILD_NOTE", "run_chapter", "read_counts",
           "chapter_report", "install_counter", "main", "NO_GPU_BRANCH", "GPU_CHAPTERS"]

CHAPTERS = ("introduction", "ddpm_basics", "unconditional", "inverse_problems", "sdedit", "score_ald", "dps",
            "comparison")
"""The book's chapters, in reading order (``book/<name>.ipynb``)."""

COUNTS_FILE = Path(__file__).resolve().parent / "gpu_path_counts.json"
"""Committed evaluation counts of every chapter's GPU settings (``python -m helpers.gpu_path --count --write``)."""

TINY_SETTINGS = {
    # chapter -> source lines run right after the parameters cell in "tiny" mode
    "introduction": ["NUM_SAMPLES = 2", "NUM_STEPS = 2"],
    "unconditional": ["NUM_IMAGES = 2", "NUM_STEPS = 3", "DDIM_STEPS = 2", "STEP_COUNTS = [2, 3]", "GRID_IMAGES = 2"],
    "inverse_problems": [],
    "sdedit": ["NUM_IMAGES = 3", "NUM_STEPS = 10", "T0S = [0.1, 0.2, 0.4]", "REPEATS = [1, 2]", "REPEAT_T0 = 0.2"],
    "score_ald": ["NUM_IMAGES = 3", "NUM_STEPS = 3", "SWEEP_IMAGES = 2", "TRAJECTORY_EVERY = 1",
                  "STEP_SIZES = {'operator': [1, 3, 10], 'orthonormal': [10, 30, 100]}"],
    "dps": ["NUM_IMAGES = 3", "NUM_STEPS = 3", "SWEEP_IMAGES = 2", "BATCH_SIZE = 2", "ZETAS = [0.3, 1.0, 3.0]",
            "TRAJECTORY_EVERY = 1"],
    "comparison": ["NUM_IMAGES = 2", "STEPS = {'sdedit': 4, 'score_ald': 3, 'dps': 3}"],
}
"""Overrides of the "tiny" mode: a few steps and images, so the narrow stand-in runs a chapter in a minute or two."""

CPU_BUILD_NOTE = ("On the CPU the chapter uses the bundled 32-px prior; the introduction's table lists the time each "
                  "chapter took in this book's build.")
NO_GPU_BRANCH = ("ddpm_basics",)
"""Chapters that use only the small bundled priors, on any device (no GPU settings to run or count)."""
GPU_CHAPTERS = tuple(c for c in CHAPTERS if c not in NO_GPU_BRANCH)
"""The chapters with a GPU branch: those :func:`run_chapter` runs and :data:`COUNTS_FILE` covers."""

_MARK = "GPU_PATH_COUNTS "


# ------------------------------------------------------------------------------------- counting
def install_counter(null_network: bool = False) -> EvaluationCount:
    """Count every :meth:`helpers.priors.Prior.eps` call from now on in this process (for a notebook kernel).

    Patches the class, so priors loaded later are counted too; each call is counted by
    :func:`helpers.gpu_budget.record_evaluation` into the returned
    :class:`helpers.gpu_budget.EvaluationCount` (``forward_images``, ``backward_images``). ``null_network=True`` returns ``√(1 − ᾱ_t) · x_t`` instead of calling the network (the
    optimal ε of data drawn from N(0, I)): the counts of a run with real step counts, in seconds.
    """
    import torch

    from . import priors

    counter = EvaluationCount()
    real_eps = priors.Prior.eps

    def eps(self, x_t, t):
        if null_network:
            level = int(t.reshape(-1)[0]) if torch.is_tensor(t) else int(t)
            out = (1.0 - self.schedule.alpha_bar(level)) ** 0.5 * x_t
        else:
            out = real_eps(self, x_t, t)
        return record_evaluation(counter, x_t, out)

    eps.__doc__ = real_eps.__doc__
    priors.Prior.eps = eps
    if null_network:
        _count_diverged_runs_in_full(counter)
    return counter


def _count_diverged_runs_in_full(counter: EvaluationCount) -> None:
    """A guided run that diverges stops early; count the steps it did not run, as the real network might not diverge.

    The counts are then those of every run going to its end: an upper bound of the real settings' work.
    """
    from . import samplers

    guard_call = samplers._DivergenceGuard.__call__

    def call(self, x, t_level, t, i):
        try:
            return guard_call(self, x, t_level, t, i)
        except samplers.SamplerDivergedError:
            left = (self.n - (i + 1)) * int(x.shape[0])
            counter.forward_images += left
            if self.method == "DPS":
                counter.backward_images += left
            raise

    samplers._DivergenceGuard.__call__ = call


def _setup_source(mode: str, chapter: str) -> str:
    lines = [
        "# inserted by helpers.gpu_path: count the network evaluations" + (" (network replaced by a Gaussian prior's ε)" if mode == "count" else ""),
        "import helpers.aligned_faces as _af",
        "from helpers.gpu_path import install_counter as _install_counter",
        f"_af._SAMPLES_VERSION = 'gpu-path-{mode}-' + str(__import__('os').getpid())   # never reuse cached test faces",
        f"_GPU_PATH_COUNTER = _install_counter(null_network={mode == 'count'})",
        "assert GPU_PATH, 'the stand-in did not select the GPU path'",
    ]
    if mode == "tiny":
        lines.append("_af.GPU_SAMPLE_STEPS = 2   # the test faces' DDIM steps")
        lines += TINY_SETTINGS.get(chapter, [])
    return "\n".join(line for line in lines if line)


def _final_source() -> str:
    return ("import json as _json\n"
            f"print({_MARK!r} + _json.dumps({{'calls': _GPU_PATH_COUNTER.calls, "
            "'forward': _GPU_PATH_COUNTER.forward_images, 'backward': _GPU_PATH_COUNTER.backward_images}))\n"
            "import glob as _glob, os as _os\n"
            "from helpers.data import default_cache_dir as _cache\n"
            "for _f in _glob.glob(str(_cache() / 'prior_samples' / '*.npz')):\n"
            "    if _os.path.getmtime(_f) >= _GPU_PATH_T0:\n"
            "        _os.remove(_f)   # the test faces of this run (the stand-in's)\n")


def run_chapter(chapter: str, standin: os.PathLike, mode: str = "count", book_dir: Optional[os.PathLike] = None,
                timeout: int = 3600, threads: Optional[int] = None) -> dict:
    """Execute ``book/<chapter>.ipynb`` on the GPU path with the stand-in in ``standin``; return its counts.

    ``mode``: ``"count"`` (GPU settings, network replaced by a Gaussian prior's ε) or ``"tiny"`` (the stand-in's
    network, :data:`TINY_SETTINGS`). Returns ``{"calls", "forward", "backward", "seconds"}``;
    raises ``nbclient.exceptions.CellExecutionError`` (with the cell and its traceback) if a
    cell fails. The notebook on disk is not changed. ``threads``: ``$COURSE_THREADS`` for the
    kernel (default: left as it is).
    """
    import nbformat
    from nbclient import NotebookClient

    if chapter not in GPU_CHAPTERS:
        raise ValueError(f"chapter={chapter!r} is not one of the chapters with a GPU branch, {list(GPU_CHAPTERS)}")
    if mode not in ("count", "tiny"):
        raise ValueError(f"mode={mode!r}: expected 'count' or 'tiny'")
    if not Path(standin, "unet").is_dir():
        raise FileNotFoundError(f"standin={str(standin)!r} has no unet/ folder: write one with "
                                f"`python -m helpers.standin --out {standin} --narrow`")
    book = Path(book_dir) if book_dir else Path(__file__).resolve().parent.parent / "book"
    path = book / f"{chapter}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: pass book_dir, the repository's book/ folder")
    nb = nbformat.read(path, as_version=4)
    where = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if where is None:
        raise ValueError(f"{path} has no cell tagged 'parameters'")
    nb.cells.insert(where + 1, nbformat.v4.new_code_cell(_setup_source(mode, chapter)))
    nb.cells.insert(where + 1, nbformat.v4.new_code_cell(f"_GPU_PATH_T0 = {time.time() - 1:.3f}"))
    nb.cells.append(nbformat.v4.new_code_cell(_final_source()))
    env = {"COURSE_GPU_STANDIN": str(Path(standin).resolve()), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    if threads:
        env["COURSE_THREADS"] = str(int(threads))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(book)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    for out in nb.cells[-1].get("outputs", []):
        for line in out.get("text", "").splitlines():
            if line.startswith(_MARK):
                return {**json.loads(line[len(_MARK):]), "seconds": round(seconds, 1)}
    raise RuntimeError(f"{chapter}: the counting cell printed nothing")


# ------------------------------------------------------------------------------------- reporting
def read_counts(path: os.PathLike = COUNTS_FILE) -> dict:
    """The committed counts: ``{chapter: {"forward": …, "backward": …}}`` (empty if the file is missing)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}
    return data.get("chapters", {})


def chapter_report(chapter: str, prior=None, gpu_path: bool = True, device=None) -> str:
    """The lines a chapter prints at its top: the device it found, and its expected run time there.

    GPU path: the committed evaluation count of this chapter's GPU settings (:data:`COUNTS_FILE`),
    its estimated time on a Colab T4 (:func:`helpers.gpu_budget.t4_seconds`, within the 8-min
    budget or not), and, on a CUDA device with ``prior`` given, the time here from one timed
    forward pass of ``prior``. CPU path: :data:`CPU_BUILD_NOTE`.
    """
    dev = _describe_device(device if device is not None else (prior.device if prior is not None else None))
    lines = [f"{chapter}: device {dev}" + (f", prior {getattr(prior, 'name', '')}" if prior is not None else "")]
    if chapter in NO_GPU_BRANCH:
        return "\n".join(lines + ["This chapter uses only the small bundled priors, on any device; the introduction's "
                                   "table lists its time in this book's build (CPU)."])
    if not gpu_path:
        return "\n".join(lines + [CPU_BUILD_NOTE])
    counts = read_counts().get(chapter)
    if counts is None:
        return "\n".join(lines + ["No committed evaluation count for this chapter (python -m helpers.gpu_path --count --write)."])
    fwd, bwd = int(counts["forward"]), int(counts["backward"])
    est = t4_seconds(fwd - bwd, bwd)
    ms = per_evaluation_ms()
    lines.append(f"GPU settings: {fwd - bwd} forward and {bwd} forward + backward image-evaluations of the network "
                 "(counted with these settings by helpers.gpu_path).")
    lines.append(f"Expected on a Colab T4: {est.optimistic / 60:.1f}–{est.pessimistic / 60:.1f} min "
                 f"({ms['forward'][0]:.0f}–{ms['forward'][1]:.0f} ms per forward image-evaluation, from the FLOP count at "
                 f"50–25 % of the T4's fp32 peak); budget {CHAPTER_BUDGET_S / 60:g} min.")
    if prior is not None and getattr(prior, "device", None) is not None and prior.device.type == "cuda":
        here = _time_forward_ms(prior)
        total = (fwd - bwd) * here + bwd * 2 * here
        lines.append(f"Measured here: {here:.0f} ms per forward image-evaluation, so about {total / 60e3:.1f} min "
                     "(a backward pass counted as a second forward).")
    return "\n".join(lines)


def _time_forward_ms(prior, batch: int = 4) -> float:
    import torch

    x = torch.randn(batch, *prior.image_shape, device=prior.device, dtype=prior.dtype)
    with torch.no_grad():
        prior.eps(x, 500)  # warm-up (cuDNN picks its algorithms)
        torch.cuda.synchronize()
        start = time.perf_counter()
        prior.eps(x, 500)
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3 / batch


# ------------------------------------------------------------------------------------- command line
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.gpu_path", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--count", action="store_true", help="GPU settings, network replaced by a Gaussian prior's ε: count evaluations")
    mode.add_argument("--tiny", action="store_true", help="the stand-in's network at tiny step counts")
    parser.add_argument("--chapter", nargs="+", default=["all"], help="chapters (default: all)")
    parser.add_argument("--standin", default=None, help="stand-in folder (default: a narrow one in a temporary folder)")
    parser.add_argument("--write", action="store_true", help=f"write the counts to {COUNTS_FILE.name} (with --count)")
    parser.add_argument("--threads", type=int, default=None, help="COURSE_THREADS for the kernels")
    args = parser.parse_args(argv)
    chapters = list(GPU_CHAPTERS) if args.chapter == ["all"] else args.chapter
    for c in chapters:
        if c in NO_GPU_BRANCH:
            parser.error(f"--chapter {c}: this chapter has no GPU branch (it uses only the bundled priors)")
        if c not in CHAPTERS:
            parser.error(f"--chapter {c!r} is not one of {list(CHAPTERS)}")
    if args.write and not args.count:
        parser.error("--write needs --count")
    if args.write and chapters != list(GPU_CHAPTERS):
        parser.error("--write needs every chapter (leave out --chapter)")
    with tempfile.TemporaryDirectory() as tmp:
        standin = args.standin
        if standin is None:
            from .standin import write_standin
            standin = write_standin(Path(tmp) / "standin", width="narrow")
        results = {}
        for c in chapters:
            r = run_chapter(c, standin, "count" if args.count else "tiny", threads=args.threads)
            results[c] = r
            est = t4_seconds(r["forward"] - r["backward"], r["backward"])
            print(f"{c:>17}: {r['forward'] - r['backward']:5d} forward, {r['backward']:4d} forward+backward, "
                  f"T4 {est.optimistic / 60:4.1f}–{est.pessimistic / 60:4.1f} min; ran in {r['seconds']:.0f} s", flush=True)
    if args.count:
        total = t4_seconds(sum(r["forward"] - r["backward"] for r in results.values()),
                           sum(r["backward"] for r in results.values()))
        print(f"{'book':>17}: T4 {total.optimistic / 60:.1f}–{total.pessimistic / 60:.1f} min "
              f"(budget {BOOK_BUDGET_S / 60:g} min)")
    if args.write:
        data = {"command": "python -m helpers.gpu_path --count --write",
                "chapters": {c: {"forward": r["forward"], "backward": r["backward"]}
                             for c, r in results.items()}}
        COUNTS_FILE.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {COUNTS_FILE}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
